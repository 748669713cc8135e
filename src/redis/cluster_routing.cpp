// The I/O-free parts of the cluster client; see
// tracewatch/redis/detail/cluster_routing.hpp.

#include "tracewatch/redis/detail/cluster_routing.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace tracewatch::redis::detail {
namespace {

template <class Int>
std::optional<Int> parse_number(std::string_view text) {
  Int value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Reads "<slot> <host>:<port>", the operands of MOVED and ASK.
bool parse_redirect(std::string_view operands, cluster_error& out) {
  const auto space = operands.find(' ');
  if (space == std::string_view::npos) return false;
  auto slot = parse_number<std::uint16_t>(operands.substr(0, space));
  if (!slot || *slot >= kClusterSlots) return false;
  auto address = parse_node_address(operands.substr(space + 1));
  if (!address) return false;
  out.slot = *slot;
  out.target = std::move(*address);
  return true;
}

// Reads the [host, port, …] entry of a node in a CLUSTER SLOTS reply.
std::optional<node_address> read_node(const reply& r, std::string_view replying_host) {
  if (!r.is_array() || r.elements.size() < 2 || !r.elements[1].is_integer()) return std::nullopt;
  const reply& host = r.elements[0];
  const std::int64_t port = r.elements[1].integer;
  if (port <= 0 || port > 65535) return std::nullopt;
  node_address address;
  // A nil, empty or "?" host means that the node does not know its address:
  // it is reached on the host the request went to.
  if (host.is_nil() || host.str.empty() || host.str == "?") {
    address.host = std::string(replying_host);
  } else if (host.is_string()) {
    address.host = host.str;
  } else {
    return std::nullopt;
  }
  address.port = static_cast<std::uint16_t>(port);
  return address;
}

}  // namespace

std::string node_address::to_string() const { return fmt::format("{}:{}", host, port); }

std::optional<node_address> parse_node_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto port = parse_number<std::uint16_t>(text.substr(colon + 1));
  if (!port || *port == 0) return std::nullopt;
  return node_address{std::string(text.substr(0, colon)), *port};
}

cluster_error classify_error(std::string_view text) {
  cluster_error out;
  auto starts = [&](std::string_view prefix) {
    return text.size() >= prefix.size() && text.substr(0, prefix.size()) == prefix &&
           (text.size() == prefix.size() || text[prefix.size()] == ' ');
  };
  if (starts("MOVED")) {
    if (parse_redirect(text.substr(std::min<std::size_t>(6, text.size())), out)) {
      out.type = cluster_error::kind::moved;
    }
  } else if (starts("ASK")) {
    if (parse_redirect(text.substr(std::min<std::size_t>(4, text.size())), out)) {
      out.type = cluster_error::kind::ask;
    }
  } else if (starts("TRYAGAIN")) {
    out.type = cluster_error::kind::try_again;
  } else if (starts("CLUSTERDOWN")) {
    out.type = cluster_error::kind::cluster_down;
  } else if (starts("LOADING")) {
    out.type = cluster_error::kind::loading;
  }
  return out;
}

result<std::optional<std::uint16_t>> common_slot(std::span<const std::string_view> keys) {
  if (keys.empty()) return std::optional<std::uint16_t>{};
  const std::uint16_t slot = key_slot(keys.front());
  for (std::string_view key : keys.subspan(1)) {
    const std::uint16_t other = key_slot(key);
    if (other != slot) {
      return error(errc::cross_slot,
                   fmt::format("keys '{}' (slot {}) and '{}' (slot {}) hash to different cluster "
                               "slots, so one request cannot use both; give them a common hash "
                               "tag such as {{tag}}",
                               keys.front(), slot, key, other));
    }
  }
  return std::optional<std::uint16_t>{slot};
}

// --- slot_map ------------------------------------------------------------------

slot_map::slot_map() : owner_(kClusterSlots, kNoOwner) {}

result<slot_map> slot_map::from_cluster_slots(const reply& r, std::string_view replying_host) {
  auto malformed = [](std::string_view what) {
    return error(errc::protocol_error, fmt::format("unexpected CLUSTER SLOTS reply: {}", what));
  };
  if (!r.is_array()) return malformed("not an array");

  slot_map map;
  for (const reply& range : r.elements) {
    if (!range.is_array() || range.elements.size() < 3 || !range.elements[0].is_integer() ||
        !range.elements[1].is_integer()) {
      return malformed("a range is not [first, last, master, …]");
    }
    const std::int64_t first = range.elements[0].integer;
    const std::int64_t last = range.elements[1].integer;
    if (first < 0 || last < first || last >= kClusterSlots) {
      return malformed(fmt::format("slot range {}-{} is out of bounds", first, last));
    }
    auto master = read_node(range.elements[2], replying_host);
    if (!master) return malformed("a master entry is not [host, port, …]");
    const std::uint16_t master_index = map.index_of(*master);
    map.is_master_[master_index] = true;
    for (std::size_t i = 3; i < range.elements.size(); ++i) {
      auto replica = read_node(range.elements[i], replying_host);
      if (!replica) return malformed("a replica entry is not [host, port, …]");
      map.index_of(*replica);
    }
    std::fill(map.owner_.begin() + first, map.owner_.begin() + last + 1, master_index);
  }
  return map;
}

std::uint16_t slot_map::index_of(const node_address& address) {
  auto it = std::find(nodes_.begin(), nodes_.end(), address);
  if (it != nodes_.end()) return static_cast<std::uint16_t>(it - nodes_.begin());
  nodes_.push_back(address);
  is_master_.push_back(false);
  return static_cast<std::uint16_t>(nodes_.size() - 1);
}

const node_address* slot_map::master_of(std::uint16_t slot) const noexcept {
  if (slot >= kClusterSlots) return nullptr;
  const std::uint16_t index = owner_[slot];
  return index == kNoOwner ? nullptr : &nodes_[index];
}

void slot_map::assign(std::uint16_t slot, const node_address& master) {
  if (slot >= kClusterSlots) return;
  const std::uint16_t index = index_of(master);
  is_master_[index] = true;
  owner_[slot] = index;
}

std::vector<node_address> slot_map::masters() const {
  std::vector<node_address> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (is_master_[i]) out.push_back(nodes_[i]);
  }
  return out;
}

std::vector<node_address> slot_map::nodes() const {
  std::vector<node_address> out = masters();
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (!is_master_[i]) out.push_back(nodes_[i]);
  }
  return out;
}

bool slot_map::contains(const node_address& address) const {
  return std::find(nodes_.begin(), nodes_.end(), address) != nodes_.end();
}

std::uint32_t slot_map::covered_slots() const noexcept {
  return static_cast<std::uint32_t>(
      std::count_if(owner_.begin(), owner_.end(), [](std::uint16_t o) { return o != kNoOwner; }));
}

// --- retry_budget ----------------------------------------------------------------

retry_budget::retry_budget(std::uint32_t max_redirects, std::chrono::milliseconds budget,
                           std::chrono::milliseconds min_delay, std::chrono::milliseconds max_delay,
                           clock::time_point start)
    : max_redirects_(max_redirects),
      budget_(budget),
      min_delay_(std::max(min_delay, std::chrono::milliseconds(1))),
      max_delay_(std::max(max_delay, min_delay_)),
      deadline_(start + budget) {}

bool retry_budget::take_redirect() noexcept {
  if (redirects_ >= max_redirects_) return false;
  ++redirects_;
  return true;
}

std::optional<std::chrono::milliseconds> retry_budget::next_delay(clock::time_point now,
                                                                  double jitter) noexcept {
  // min_delay * 2^retries, capped; the shift stops growing long before it
  // could overflow.
  const unsigned shift = std::min<std::uint32_t>(retries_, 20);
  auto backoff = std::min(max_delay_, min_delay_ * (std::int64_t{1} << shift));
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto delay = std::chrono::milliseconds(
      backoff.count() / 2 + static_cast<std::int64_t>(static_cast<double>(backoff.count()) / 2 * jitter));
  delay = std::max(delay, std::chrono::milliseconds(1));
  if (now + delay > deadline_) return std::nullopt;
  ++retries_;
  return delay;
}

std::chrono::milliseconds retry_budget::remaining(clock::time_point now) const noexcept {
  if (now >= deadline_) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now);
}

// --- refresh schedule ---------------------------------------------------------

std::chrono::steady_clock::time_point next_refresh_at(
    std::chrono::steady_clock::time_point last_refresh, bool requested,
    std::chrono::milliseconds min_interval, std::chrono::milliseconds periodic) noexcept {
  using time_point = std::chrono::steady_clock::time_point;
  // Adds without overflowing past time_point::max().
  auto after = [&](std::chrono::milliseconds interval) {
    if (last_refresh == time_point::min()) return time_point::min();
    if (time_point::max() - last_refresh <= interval) return time_point::max();
    return last_refresh + interval;
  };
  if (requested) return after(min_interval);
  if (periodic.count() <= 0) return time_point::max();
  return after(periodic);
}

// --- split_commands -------------------------------------------------------------

std::optional<std::vector<std::vector<std::string_view>>> split_commands(std::string_view payload) {
  std::vector<std::vector<std::string_view>> commands;
  std::size_t pos = 0;

  // Reads "<marker><number>\r\n" at pos.
  auto read_header = [&](char marker) -> std::optional<std::size_t> {
    if (pos >= payload.size() || payload[pos] != marker) return std::nullopt;
    const auto end = payload.find("\r\n", pos);
    if (end == std::string_view::npos) return std::nullopt;
    auto number = parse_number<std::size_t>(payload.substr(pos + 1, end - pos - 1));
    pos = end + 2;
    return number;
  };

  while (pos < payload.size()) {
    auto argc = read_header('*');
    if (!argc || *argc == 0) return std::nullopt;
    std::vector<std::string_view> args;
    args.reserve(*argc);
    for (std::size_t i = 0; i < *argc; ++i) {
      auto length = read_header('$');
      if (!length || *length > payload.size() - pos || payload.size() - pos - *length < 2) {
        return std::nullopt;
      }
      args.push_back(payload.substr(pos, *length));
      pos += *length;
      if (payload.substr(pos, 2) != "\r\n") return std::nullopt;
      pos += 2;
    }
    commands.push_back(std::move(args));
  }
  return commands;
}

}  // namespace tracewatch::redis::detail
