// A Redis Cluster client: routes every command and script to the master that
// serves its key's slot, over one multiplexed redis::connection per node.
//
// Routing. A call's slot is the key slot (crc16.hpp) of its routing key in
// async_exec(), or of its script keys in async_eval(). Script keys must
// share one slot, else the call fails with errc::cross_slot before anything
// is sent. The slot map comes
// from CLUSTER SLOTS: read at start(), after every MOVED, after a node could
// not be reached, and every cluster_options::refresh_interval. At most one
// refresh runs at a time, and two refreshes start at least
// refresh_min_interval apart; requests that arrive meanwhile share it.
//
// Replies the client handles itself, per command of a request:
//   MOVED        the slot's owner changed: the map is updated and the
//                command follows to the new owner;
//   ASK          the slot is being migrated: the command is sent once to
//                the target, preceded by ASKING in the same request; the
//                map is not updated;
//   TRYAGAIN, CLUSTERDOWN, LOADING
//                retried with exponential backoff and jitter (see
//                cluster_options) until the call's retry budget runs out,
//                then the call fails with errc::cluster_down;
//   NOSCRIPT     (async_eval) the script is sent again by EVAL on that node.
// Commands of a pipelined request that got a final reply are not sent again;
// only the redirected ones are.
//
// Retries never repeat a command that may have run. A node that cannot be
// reached (errc::not_connected: nothing was sent) is retried after a map
// refresh, within the retry budget. errc::connection_lost and errc::timeout
// (the command may have run) are returned to the caller, after asking for a
// map refresh so that the next call finds a promoted replica.
//
// Example:
//   auto seed = redis::parse_url("redis://127.0.0.1:7000").value();
//   redis::cluster_client cluster(io.get_executor(), seed);
//   cluster.start();
//   co_await cluster.async_wait_ready(std::chrono::seconds(5));
//   redis::request req;
//   req.push("SET", "{user1}:name", "ada");
//   req.push("GET", "{user1}:name");
//   auto replies = co_await cluster.async_exec(req, "{user1}:name");
//   // replies.value()[1].str == "ada"
//   cluster.close();
//
// Thread safety: every member function must be called from the executor
// passed to the constructor, as with redis::connection. Any number of
// coroutines may await calls at once.
//
// Lifetime: the client must outlive every coroutine that awaits it. close()
// completes every pending call with errc::closed.

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "tracewatch/error.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/redis/reply.hpp"

namespace tracewatch::redis {

struct cluster_options {
  // MOVED and ASK replies one call follows before it fails with
  // errc::cluster_down. A reshard moves a slot once, so a call needs one or
  // two; more means that the nodes disagree about the slot.
  std::uint32_t max_redirects = 16;
  // How long one call keeps retrying TRYAGAIN, CLUSTERDOWN, LOADING and
  // unreachable nodes, counted from its first attempt. By our estimate a
  // replica promotion in Redis 7.0 takes cluster-node-timeout plus one to
  // two seconds of election delay, so the default covers node timeouts up
  // to about 2 s. Raise it for larger node timeouts.
  std::chrono::milliseconds retry_budget{5000};
  // Waits between retries: min_delay doubling per retry up to max_delay,
  // each drawn between half the value and the full value.
  std::chrono::milliseconds retry_min_delay{10};
  std::chrono::milliseconds retry_max_delay{500};
  // How long a call waits for a node's connection to come up before it
  // re-reads the slot map and tries again.
  std::chrono::milliseconds node_ready_wait{250};
  // The minimum time between two CLUSTER SLOTS refreshes.
  std::chrono::milliseconds refresh_min_interval{100};
  // The time between periodic refreshes; zero disables them.
  std::chrono::milliseconds refresh_interval{std::chrono::seconds(15)};
};

// Checks the options: every duration positive (refresh_interval may be
// zero), max_redirects at least 1, retry_min_delay <= retry_max_delay.
result<void> validate(const cluster_options& options);

// Counters of one cluster client, for metrics and tests.
struct cluster_stats {
  std::uint64_t moved = 0;             // MOVED replies followed
  std::uint64_t ask = 0;               // ASK replies followed
  std::uint64_t retries = 0;           // waits after TRYAGAIN, CLUSTERDOWN, LOADING or an unreachable node
  std::uint64_t refreshes = 0;         // CLUSTER SLOTS refreshes that installed a map
  std::uint64_t refresh_failures = 0;  // refreshes in which no node replied with a slot map
  std::size_t nodes = 0;               // node connections open now
};

class cluster_client final : public client {
 public:
  // `seed` is any node of the cluster (redis://, or unix:// for a node on
  // this host). Every node connection copies its settings (password,
  // timeouts, limits) with the node's host and port. Throws
  // std::invalid_argument when `options` fail validate().
  cluster_client(asio::any_io_executor executor, config seed, cluster_options options = {},
                 logger log = {});
  ~cluster_client() override;
  cluster_client(const cluster_client&) = delete;
  cluster_client& operator=(const cluster_client&) = delete;

  // Starts the refresh loop, which connects to the seed and reads the slot
  // map. Calls made before the map arrives wait for it, within their retry
  // budget.
  void start();

  // Waits until a slot map is installed or `timeout` passes. Returns the
  // last refresh error on timeout (errc::timeout when none finished), and
  // errc::unsupported at once when the seed runs without cluster support.
  asio::awaitable<result<void>> async_wait_ready(std::chrono::milliseconds timeout);

  // Sends `req` to the master of routing_key's slot and returns one reply
  // per command, in order. Error replies other than those listed at the top
  // of this file are values, as with redis::connection.
  // REQUIRES: every command of `req` touches only keys of routing_key's
  // slot. An empty routing_key sends the request to any master: allowed only
  // for commands without keys, such as TIME, PING or INFO.
  // Errors: errc::cluster_down (redirections or retry budget exhausted),
  // the connection errors of redis::connection::async_exec, errc::closed.
  asio::awaitable<result<std::vector<reply>>> async_exec(
      const request& req, std::string_view routing_key = {}) override;

  // Runs `s` on the master of its keys' slot (any master when `keys` is
  // empty), by EVALSHA with an EVAL fallback on NOSCRIPT. Errors:
  // errc::cross_slot when the keys hash to different slots (nothing is
  // sent), errc::server_error for an error reply of the script, and the
  // errors of async_exec().
  asio::awaitable<result<reply>> async_eval(const script& s, std::span<const std::string_view> keys,
                                            std::span<const std::string_view> args) override;

  bool is_cluster() const noexcept override { return true; }

  // Asks for a slot map refresh and waits until one finishes. Returns its
  // outcome.
  asio::awaitable<result<void>> async_refresh();

  // Stops the refresh loop, closes every node connection and completes
  // every pending call with errc::closed. Safe to call more than once.
  void close();

  cluster_stats stats() const noexcept;

  // The "host:port" of the master that serves `key` in the current map;
  // empty when no map is installed or the slot is not covered.
  std::string master_for(std::string_view key) const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

// Returns true when the server behind `c` runs with cluster support (its
// INFO cluster section reports cluster_enabled:1), false when it does not.
// An error reply (INFO denied by an ACL, for example) is returned as
// errc::server_error.
asio::awaitable<result<bool>> async_is_cluster(client& c);

}  // namespace tracewatch::redis
