// The I/O-free parts of the cluster client: node addresses, the slot map
// built from CLUSTER SLOTS, the error replies that redirect or delay a
// command, the per-call retry budget, and the splitting of a pipelined
// request into its commands. cluster_client carries out their decisions.

#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracewatch/error.hpp"
#include "tracewatch/redis/crc16.hpp"
#include "tracewatch/redis/reply.hpp"

namespace tracewatch::redis::detail {

// A node's TCP endpoint as the cluster announces it.
struct node_address {
  std::string host;
  std::uint16_t port = 0;

  // "host:port"; the key under which the client keeps the node's connection.
  std::string to_string() const;
  friend bool operator==(const node_address&, const node_address&) = default;
};

// Parses "host:port" as MOVED and ASK write it. The port follows the last
// ':', so an IPv6 host without brackets ("::1:7000") parses too. An empty
// host is kept empty: Redis sends one when the node does not know its own
// address, and the caller substitutes the host it sent the command to.
std::optional<node_address> parse_node_address(std::string_view text);

// An error reply that a cluster client handles itself instead of returning.
struct cluster_error {
  enum class kind : std::uint8_t {
    none,          // an ordinary error: the caller gets it
    moved,         // MOVED: the slot has a new owner; update the map and follow
    ask,           // ASK: follow once, with ASKING, without updating the map
    try_again,     // TRYAGAIN: a multi-key command during a slot migration
    cluster_down,  // CLUSTERDOWN: the cluster cannot serve the slot now
    loading,       // LOADING: the node is loading its dataset
  };
  kind type = kind::none;
  std::uint16_t slot = 0;  // moved and ask
  node_address target;     // moved and ask; the host may be empty

  bool is_redirect() const noexcept { return type == kind::moved || type == kind::ask; }
  // True for the errors after which the same command may succeed later.
  bool is_retry() const noexcept {
    return type == kind::try_again || type == kind::cluster_down || type == kind::loading;
  }
};

// Classifies the text of an error reply ("MOVED 3999 127.0.0.1:6381",
// "ASK …", "TRYAGAIN …", "CLUSTERDOWN …", "LOADING …"). A MOVED or ASK
// reply whose slot or address does not parse is kind::none, so the caller
// sees the server's text instead of a redirection that cannot be followed.
cluster_error classify_error(std::string_view text);

// The slot shared by every key in `keys`: empty when there are no keys,
// errc::cross_slot naming two keys of different slots otherwise.
result<std::optional<std::uint16_t>> common_slot(std::span<const std::string_view> keys);

// The master of every slot, and the replicas of each master.
class slot_map {
 public:
  slot_map();

  // Builds the map from a CLUSTER SLOTS reply: an array of
  // [first slot, last slot, [host, port, id, …] of the master, replicas…].
  // An empty host is replaced by `replying_host`, the host the request went
  // to. Returns errc::protocol_error when the reply has another shape.
  static result<slot_map> from_cluster_slots(const reply& r, std::string_view replying_host);

  // The master of `slot`, or null when no node covers it.
  const node_address* master_of(std::uint16_t slot) const noexcept;

  // Records `master` as the owner of `slot`, as a MOVED reply reports.
  void assign(std::uint16_t slot, const node_address& master);

  // Every master, then every replica, without repeats.
  std::vector<node_address> nodes() const;
  std::vector<node_address> masters() const;
  // True when `address` is a master or a replica of this map.
  bool contains(const node_address& address) const;

  // The number of slots that have a master; kClusterSlots when fully covered.
  std::uint32_t covered_slots() const noexcept;
  bool empty() const noexcept { return covered_slots() == 0; }

  friend bool operator==(const slot_map&, const slot_map&) = default;

 private:
  static constexpr std::uint16_t kNoOwner = 0xFFFF;
  std::uint16_t index_of(const node_address& address);

  std::vector<node_address> nodes_;        // masters and replicas; owner_ indexes into it
  std::vector<bool> is_master_;            // parallel to nodes_
  std::vector<std::uint16_t> owner_;       // one entry per slot
};

// The retry budget of one call. Redirections (MOVED, ASK) count against
// max_redirects. Waits after TRYAGAIN, CLUSTERDOWN, LOADING or a node that
// cannot be reached count against a time budget from the call's start, with
// exponential backoff from min_delay up to max_delay.
class retry_budget {
 public:
  using clock = std::chrono::steady_clock;

  retry_budget(std::uint32_t max_redirects, std::chrono::milliseconds budget,
               std::chrono::milliseconds min_delay, std::chrono::milliseconds max_delay,
               clock::time_point start);

  // Counts one redirection; false when the call has used all of them.
  bool take_redirect() noexcept;

  // Returns the wait before the next retry, or empty when waiting it would
  // end past the budget. `jitter` in [0, 1] picks the wait between half
  // the backoff and all of it, so that many callers do not retry in step.
  std::optional<std::chrono::milliseconds> next_delay(clock::time_point now, double jitter) noexcept;

  // The time left before the budget runs out (zero when it has).
  std::chrono::milliseconds remaining(clock::time_point now) const noexcept;

  std::uint32_t redirects() const noexcept { return redirects_; }
  std::uint32_t retries() const noexcept { return retries_; }
  std::chrono::milliseconds budget() const noexcept { return budget_; }

 private:
  std::uint32_t max_redirects_;
  std::chrono::milliseconds budget_;
  std::chrono::milliseconds min_delay_;
  std::chrono::milliseconds max_delay_;
  clock::time_point deadline_;
  std::uint32_t redirects_ = 0;
  std::uint32_t retries_ = 0;
};

// When the refresh loop should next ask for CLUSTER SLOTS: as soon as the
// minimum interval since the last refresh allows when one was requested,
// else one periodic interval after the last refresh (never, when
// `periodic` is zero).
std::chrono::steady_clock::time_point next_refresh_at(
    std::chrono::steady_clock::time_point last_refresh, bool requested,
    std::chrono::milliseconds min_interval, std::chrono::milliseconds periodic) noexcept;

// The arguments of each command of a request payload (RESP arrays of bulk
// strings, as request::push writes them). The views point into `payload`.
// Returns empty when the payload is not in that form.
std::optional<std::vector<std::vector<std::string_view>>> split_commands(std::string_view payload);

}  // namespace tracewatch::redis::detail
