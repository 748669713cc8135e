// redis::cluster_client: node connections, the slot map refresh loop, and
// the routing of calls with their redirections and retries. The decisions
// themselves (slot map, error classes, retry budget) are the pure code of
// cluster_routing.cpp.

#include "tracewatch/redis/cluster.hpp"

#include <algorithm>
#include <optional>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "tracewatch/redis/detail/cluster_routing.hpp"

namespace tracewatch::redis {
namespace {

using clock = std::chrono::steady_clock;
using detail::cluster_error;
using detail::node_address;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

std::string node_key(const config& cfg) {
  if (!cfg.unix_path.empty()) return "unix:" + cfg.unix_path;
  return fmt::format("{}:{}", cfg.host, cfg.port);
}

bool is_noscript(const reply& r) { return r.is_error() && r.str.starts_with("NOSCRIPT"); }

// Picks the error that decides the next attempt when several commands of one
// request were turned away: a MOVED first (the map is stale), then an ASK,
// then a retry.
const cluster_error* decisive(const std::vector<cluster_error>& errors) {
  for (auto kind : {cluster_error::kind::moved, cluster_error::kind::ask}) {
    for (const auto& e : errors) {
      if (e.type == kind) return &e;
    }
  }
  for (const auto& e : errors) {
    if (e.is_retry()) return &e;
  }
  return nullptr;
}

}  // namespace

result<void> validate(const cluster_options& o) {
  auto invalid = [](std::string_view name, std::chrono::milliseconds value, std::string_view rule) {
    return error(errc::invalid_argument,
                 fmt::format("invalid cluster option {} = {} ms: {}", name, value.count(), rule));
  };
  if (o.max_redirects < 1) {
    return error(errc::invalid_argument, "invalid cluster option max_redirects = 0: use at least 1");
  }
  if (o.retry_budget.count() < 1) return invalid("retry_budget", o.retry_budget, "use at least 1 ms");
  if (o.retry_min_delay.count() < 1) {
    return invalid("retry_min_delay", o.retry_min_delay, "use at least 1 ms");
  }
  if (o.retry_max_delay < o.retry_min_delay) {
    return invalid("retry_max_delay", o.retry_max_delay, "use at least retry_min_delay");
  }
  if (o.node_ready_wait.count() < 1) {
    return invalid("node_ready_wait", o.node_ready_wait, "use at least 1 ms");
  }
  if (o.refresh_min_interval.count() < 1) {
    return invalid("refresh_min_interval", o.refresh_min_interval, "use at least 1 ms");
  }
  if (o.refresh_interval.count() < 0) {
    return invalid("refresh_interval", o.refresh_interval, "use 0 (off) or more");
  }
  return {};
}

struct cluster_client::impl : std::enable_shared_from_this<impl> {
  // One node's connection and how many calls are using it.
  struct node {
    std::string key;
    config cfg;
    std::unique_ptr<connection> conn;
    std::size_t users = 0;
    bool retired = false;  // gone from the slot map: closed when the last user leaves
  };

  // Keeps a node's connection open while a call uses it.
  class node_lease {
   public:
    node_lease(std::shared_ptr<impl> owner, std::shared_ptr<node> n)
        : owner_(std::move(owner)), node_(std::move(n)) {
      ++node_->users;
    }
    node_lease(node_lease&& other) noexcept = default;
    node_lease& operator=(node_lease&& other) noexcept {
      release();
      owner_ = std::move(other.owner_);
      node_ = std::move(other.node_);
      return *this;
    }
    ~node_lease() { release(); }

    connection& conn() const { return *node_->conn; }
    const std::shared_ptr<node>& shared_node() const { return node_; }
    const config& cfg() const { return node_->cfg; }
    const std::string& key() const { return node_->key; }

   private:
    void release() {
      if (!node_) return;
      if (--node_->users == 0 && node_->retired) owner_->drop_node(node_);
      node_.reset();
      owner_.reset();
    }
    std::shared_ptr<impl> owner_;
    std::shared_ptr<node> node_;
  };

  // The routing state of one call.
  struct call_state {
    std::optional<std::uint16_t> slot;
    detail::retry_budget budget;
    std::optional<node_address> forced;  // the MOVED target, for the next attempt
    std::optional<node_address> ask;     // the ASK target, for the next attempt only
    std::string last_problem;            // for the message when the budget runs out
  };

  impl(asio::any_io_executor executor, config seed, cluster_options options, logger log)
      : executor_(std::move(executor)),
        seed_(std::move(seed)),
        options_(options),
        log_(log.with_component("redis_cluster")),
        node_log_(std::move(log)),
        seed_key_(node_key(seed_)),
        refresh_timer_(executor_),
        random_(std::random_device{}()) {}

  // --- Nodes -------------------------------------------------------------------

  config config_for(const node_address& address) const {
    config cfg = seed_;
    cfg.unix_path.clear();
    cfg.host = address.host;
    cfg.port = address.port;
    return cfg;
  }

  node_lease lease(const config& cfg) {
    std::string key = node_key(cfg);
    auto& slot = nodes_[key];
    if (!slot) {
      slot = std::make_shared<node>();
      slot->key = key;
      slot->cfg = cfg;
      slot->conn = std::make_unique<connection>(executor_, cfg, node_log_);
      slot->conn->start();
    }
    slot->retired = false;
    return node_lease(shared_from_this(), slot);
  }

  void drop_node(std::shared_ptr<node> n) {
    n->conn->close();
    std::replace(slot_nodes_.begin(), slot_nodes_.end(), n, std::shared_ptr<node>());
    auto it = nodes_.find(n->key);
    if (it != nodes_.end() && it->second == n) nodes_.erase(it);
  }

  // Closes the connections of nodes that left the slot map; a node still in
  // use is closed when its last call ends.
  void retire_unknown_nodes() {
    std::unordered_set<std::string> known;
    for (const auto& address : map_.nodes()) known.insert(address.to_string());
    std::vector<std::shared_ptr<node>> idle;
    for (auto& [key, n] : nodes_) {
      if (key == seed_key_ || known.contains(key)) continue;
      n->retired = true;
      if (n->users == 0) idle.push_back(n);
    }
    for (const auto& n : idle) drop_node(n);
  }

  // Any node for a keyless call: a master with a ready connection, else the
  // first master, else the seed.
  config any_node() const {
    if (has_map_) {
      auto masters = map_.masters();
      for (const auto& address : masters) {
        auto it = nodes_.find(address.to_string());
        if (it != nodes_.end() && it->second->conn->is_ready()) return it->second->cfg;
      }
      if (!masters.empty()) return config_for(masters.front());
    }
    return seed_;
  }

  // --- Slot map refresh ----------------------------------------------------------

  void start() {
    if (started_ || closed_) return;
    started_ = true;
    asio::co_spawn(executor_, refresh_loop(shared_from_this()), asio::detached);
  }

  void request_refresh() {
    refresh_requested_ = true;
    refresh_timer_.cancel();
  }

  // Sleeps until a refresh is due (requested and past the minimum interval,
  // or periodic), runs it, and wakes the calls waiting for it.
  // `self` keeps the state alive while the loop runs.
  asio::awaitable<void> refresh_loop([[maybe_unused]] std::shared_ptr<impl> self) {
    while (!closed_) {
      const auto due = detail::next_refresh_at(last_refresh_, refresh_requested_,
                                               options_.refresh_min_interval,
                                               options_.refresh_interval);
      if (due > clock::now()) {
        refresh_timer_.expires_at(due);
        co_await refresh_timer_.async_wait(use_nothrow);
        continue;  // woken early by a request or close(), or due now
      }
      refresh_requested_ = false;
      co_await refresh_once();
      last_refresh_ = clock::now();
      ++refresh_generation_;
      for (auto* waiter : refresh_waiters_) waiter->cancel();
    }
  }

  // Sends CLUSTER SLOTS to the known nodes until one replies: nodes with a
  // ready connection first, then the seed, then the rest of the map.
  asio::awaitable<void> refresh_once() {
    std::vector<config> candidates;
    std::unordered_set<std::string> seen;
    auto add = [&](const config& cfg) {
      if (seen.insert(node_key(cfg)).second) candidates.push_back(cfg);
    };
    const auto known = map_.nodes();
    for (const auto& address : known) {
      auto it = nodes_.find(address.to_string());
      if (it != nodes_.end() && it->second->conn->is_ready()) add(it->second->cfg);
    }
    add(seed_);
    for (const auto& address : known) add(config_for(address));

    error last(errc::not_connected, "no cluster node to ask for the slot map");
    for (const auto& cfg : candidates) {
      if (closed_) co_return;
      auto outcome = co_await refresh_from(cfg);
      if (outcome) co_return;
      last = outcome.error();
      if (fatal_) break;
    }

    ++stats_.refresh_failures;
    last_refresh_error_ = last;
    has_refresh_error_ = true;
    if (!refresh_failing_) {
      refresh_failing_ = true;
      log_.warn("cluster_refresh_failed",
                {{"error", last.what()},
                 {"remedy", "check that the cluster nodes are up; calls retry within their "
                            "retry budget and the client keeps asking"}});
    }
  }

  asio::awaitable<result<void>> refresh_from(const config& cfg) {
    auto n = lease(cfg);
    if (!n.conn().is_ready()) {
      // Before the first map, the seed gets its full connect timeout.
      const auto wait = has_map_ ? options_.node_ready_wait : seed_.connect_timeout;
      auto ready = co_await n.conn().async_wait_ready(wait);
      if (!ready) co_return ready.error();
    }
    request req;
    req.push("CLUSTER", "SLOTS");
    auto replies = co_await n.conn().async_exec(req);
    if (!replies) co_return replies.error();
    const reply& r = replies->front();
    if (r.is_error()) {
      if (r.str.find("cluster support disabled") != std::string::npos) {
        fatal_ = error(errc::unsupported,
                       fmt::format("Redis at {} runs without cluster support; use a plain "
                                   "connection, or start the nodes with cluster-enabled yes",
                                   cfg.display_address()));
        co_return *fatal_;
      }
      co_return error(errc::server_error,
                      fmt::format("CLUSTER SLOTS on {} failed: {}", cfg.display_address(), r.str));
    }
    auto map = detail::slot_map::from_cluster_slots(r, cfg.host);
    if (!map) co_return map.error();
    if (map->empty()) {
      co_return error(errc::cluster_down,
                      fmt::format("node {} has no slots assigned; create the cluster first",
                                  cfg.display_address()));
    }
    install(std::move(*map), cfg);
    co_return result<void>{};
  }

  void install(detail::slot_map map, const config& source) {
    const bool changed = !has_map_ || !(map == map_);
    map_ = std::move(map);
    has_map_ = true;
    std::fill(slot_nodes_.begin(), slot_nodes_.end(), nullptr);
    ++stats_.refreshes;
    if (refresh_failing_) {
      refresh_failing_ = false;
      log_.info("cluster_refresh_recovered", {{"source", source.display_address()}});
    }
    if (changed) {
      log_.info("cluster_slots_updated", {{"source", source.display_address()},
                                          {"masters", map_.masters().size()},
                                          {"nodes", map_.nodes().size()},
                                          {"covered_slots", map_.covered_slots()}});
    }
    retire_unknown_nodes();
  }

  // Waits until a refresh that finished after `generation` (or `deadline`).
  asio::awaitable<void> wait_refresh_after(std::uint64_t generation, clock::time_point deadline) {
    while (refresh_generation_ <= generation && !closed_ && clock::now() < deadline) {
      asio::steady_timer timer(executor_, deadline);
      refresh_waiters_.push_back(&timer);
      co_await timer.async_wait(use_nothrow);
      std::erase(refresh_waiters_, &timer);
    }
  }

  asio::awaitable<result<void>> async_wait_ready(std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (true) {
      if (closed_) co_return error(errc::closed, "cluster client is closed");
      if (fatal_) co_return *fatal_;
      if (has_map_) co_return result<void>{};
      if (clock::now() >= deadline) {
        if (has_refresh_error_) co_return last_refresh_error_;
        co_return error(errc::timeout,
                        fmt::format("no slot map from the cluster at {} within {} ms",
                                    seed_.display_address(), timeout.count()));
      }
      const auto generation = refresh_generation_;
      request_refresh();
      co_await wait_refresh_after(generation, deadline);
    }
  }

  asio::awaitable<result<void>> async_refresh() {
    if (closed_) co_return error(errc::closed, "cluster client is closed");
    const auto generation = refresh_generation_;
    request_refresh();
    co_await wait_refresh_after(generation, clock::time_point::max());
    if (closed_) co_return error(errc::closed, "cluster client is closed");
    if (fatal_) co_return *fatal_;
    if (has_refresh_error_ && refresh_failing_) co_return last_refresh_error_;
    co_return result<void>{};
  }

  // --- Calls -----------------------------------------------------------------

  call_state new_call(std::optional<std::uint16_t> slot) {
    return call_state{slot,
                      detail::retry_budget(options_.max_redirects, options_.retry_budget,
                                           options_.retry_min_delay, options_.retry_max_delay,
                                           clock::now()),
                      std::nullopt, std::nullopt, {}};
  }

  std::string slot_text(const call_state& call) const {
    return call.slot ? fmt::format("slot {}", *call.slot) : std::string("a keyless call");
  }

  // Waits out one backoff step; false when the retry budget is spent or the
  // client closed meanwhile.
  asio::awaitable<bool> backoff(call_state& call) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    auto delay = call.budget.next_delay(clock::now(), unit(random_));
    if (!delay) co_return false;
    ++stats_.retries;
    asio::steady_timer timer(executor_, *delay);
    co_await timer.async_wait(use_nothrow);
    co_return !closed_;
  }

  error budget_spent(const call_state& call) const {
    return error(errc::cluster_down,
                 fmt::format("Redis Cluster did not serve {} within the retry budget of {} ms "
                             "({} retries): {}; check CLUSTER INFO on the nodes",
                             slot_text(call), call.budget.budget().count(), call.budget.retries(),
                             call.last_problem));
  }

  // Returns a lease on the node for the next attempt, waiting for the slot
  // map and for the node's connection as needed.
  asio::awaitable<result<node_lease>> pick(call_state& call) {
    while (true) {
      if (closed_) co_return error(errc::closed, "cluster client is closed");
      if (fatal_) co_return *fatal_;

      // The common case: the slot's master, with its connection up, from
      // the cache (cleared whenever the map changes).
      if (!call.ask && !call.forced && call.slot) {
        const auto& cached = slot_nodes_[*call.slot];
        if (cached && !cached->retired && cached->conn->is_ready()) {
          co_return node_lease(shared_from_this(), cached);
        }
      }

      // 1. The target: an ASK or MOVED target, the slot's master, or any node.
      std::optional<config> target;
      if (call.ask) {
        target = config_for(*call.ask);
      } else if (call.forced) {
        target = config_for(*call.forced);
      } else if (!call.slot) {
        target = any_node();
      } else if (const node_address* master = has_map_ ? map_.master_of(*call.slot) : nullptr) {
        target = config_for(*master);
      }

      // 2. No owner: wait for a refresh, then back off if it did not help.
      if (!target) {
        call.last_problem = has_map_ ? fmt::format("no master serves slot {}", *call.slot)
                                     : std::string("no slot map yet");
        const auto now = clock::now();
        const auto generation = refresh_generation_;
        request_refresh();
        co_await wait_refresh_after(generation, now + call.budget.remaining(now));
        if (has_map_ && map_.master_of(*call.slot) != nullptr) continue;
        if (has_refresh_error_) call.last_problem += "; " + last_refresh_error_.what();
        const bool waited = co_await backoff(call);
        if (!waited) co_return budget_spent(call);
        continue;
      }

      // 3. A node whose connection is down may have failed over: wait a
      // little, then re-read the map and try again.
      auto n = lease(*target);
      if (!call.ask && !call.forced && call.slot) slot_nodes_[*call.slot] = n.shared_node();
      if (n.conn().is_ready()) co_return n;
      const auto now = clock::now();
      const auto wait = std::max(std::chrono::milliseconds(1),
                                 std::min(options_.node_ready_wait, call.budget.remaining(now)));
      auto ready = co_await n.conn().async_wait_ready(wait);
      if (ready) co_return n;
      if (!is_retryable(ready.error().code)) co_return ready.error();
      call.last_problem = ready.error().what();
      call.ask.reset();
      call.forced.reset();
      request_refresh();
      const bool waited = co_await backoff(call);
      if (!waited) {
        co_return error(ready.error().code,
                        fmt::format("{} (retried for {} ms)", ready.error().what(),
                                    call.budget.budget().count()));
      }
    }
  }

  // After a connection error: retries when nothing was sent, else returns
  // the error (the command may have run). Both ask for a map refresh.
  asio::awaitable<result<void>> after_transport_error(call_state& call, const error& e) {
    if (e == errc::closed && closed_) co_return e;
    if (is_retryable(e.code)) request_refresh();
    if (!(e == errc::not_connected)) co_return e;
    call.last_problem = e.what();
    call.ask.reset();
    call.forced.reset();
    const bool waited = co_await backoff(call);
    if (!waited) co_return e;
    co_return result<void>{};
  }

  // After a MOVED or ASK reply from the node on `replying_host`: sets up
  // the next attempt, or fails the call when it has used its redirections.
  result<void> follow_redirect(call_state& call, const cluster_error& e, std::string_view text,
                               std::string_view replying_host) {
    node_address target = e.target;
    if (target.host.empty()) target.host = std::string(replying_host);
    if (!call.budget.take_redirect()) {
      return error(errc::cluster_down,
                   fmt::format("{} was redirected {} times, last by '{}'; the nodes disagree "
                               "about the slot map",
                               slot_text(call), call.budget.redirects(), text));
    }
    if (e.type == cluster_error::kind::moved) {
      ++stats_.moved;
      map_.assign(e.slot, target);
      slot_nodes_[e.slot] = nullptr;
      call.forced = std::move(target);
      request_refresh();
    } else {
      ++stats_.ask;
      call.ask = std::move(target);
    }
    return {};
  }

  // After any reply in cluster_error: follows a redirection, or waits out a
  // TRYAGAIN, CLUSTERDOWN or LOADING. Fails the call when its budget is spent.
  // NOTE: with `e` taken by value, a GCC 12 build crashed here after a
  // MOVED (a finished coroutine frame was resumed), so it stays a reference.
  asio::awaitable<result<void>> after_cluster_error(call_state& call, const cluster_error& e,
                                                    std::string text, std::string replying_host) {
    if (e.is_redirect()) co_return follow_redirect(call, e, text, replying_host);
    call.last_problem = std::move(text);
    const bool waited = co_await backoff(call);
    if (!waited) co_return budget_spent(call);
    co_return result<void>{};
  }

  asio::awaitable<result<std::vector<reply>>> exec(const request& req,
                                                   std::string_view routing_key) {
    if (closed_) co_return error(errc::closed, "cluster client is closed");
    if (req.empty()) co_return std::vector<reply>{};
    std::optional<std::uint16_t> slot;
    if (!routing_key.empty()) slot = key_slot(routing_key);
    call_state call = new_call(slot);

    // The first attempt sends `req` as it is. When some of its commands are
    // turned away, the request is split and only those are sent again.
    std::optional<std::vector<std::vector<std::string_view>>> commands;
    std::vector<reply> out;
    std::vector<std::size_t> pending;

    while (true) {
      auto n = co_await pick(call);
      if (!n) co_return n.error();
      const bool asking = call.ask.has_value();
      call.ask.reset();
      call.forced.reset();

      request retry_req;
      if (commands) {
        for (std::size_t index : pending) {
          if (asking) retry_req.push("ASKING");
          const auto& args = (*commands)[index];
          retry_req.push_range(args.front(), std::span(args).subspan(1));
        }
      }
      auto replies = co_await n->conn().async_exec(commands ? retry_req : req);
      if (!replies) {
        auto handled = co_await after_transport_error(call, replies.error());
        if (!handled) co_return handled.error();
        continue;
      }

      // Sort the replies: final ones are kept, cluster errors stay pending.
      std::vector<cluster_error> turned_away;
      std::string first_text;
      if (!commands) {
        for (std::size_t i = 0; i < replies->size(); ++i) {
          const reply& r = (*replies)[i];
          if (!r.is_error()) continue;
          auto e = detail::classify_error(r.str);
          if (e.type == cluster_error::kind::none) continue;
          if (turned_away.empty()) first_text = r.str;
          pending.push_back(i);
          turned_away.push_back(std::move(e));
        }
        if (pending.empty()) co_return std::move(*replies);
        commands = detail::split_commands(req.payload());
        if (!commands || commands->size() != replies->size()) {
          co_return error(errc::protocol_error, "cannot split a request to resend it");
        }
        out = std::move(*replies);
      } else {
        const std::size_t stride = asking ? 2 : 1;
        if (replies->size() != pending.size() * stride) {
          co_return error(errc::protocol_error, "reply count does not match the resent request");
        }
        std::vector<std::size_t> still_pending;
        for (std::size_t k = 0; k < pending.size(); ++k) {
          reply& r = (*replies)[k * stride + stride - 1];
          cluster_error e;
          if (r.is_error()) e = detail::classify_error(r.str);
          if (e.type == cluster_error::kind::none) {
            out[pending[k]] = std::move(r);
            continue;
          }
          if (turned_away.empty()) first_text = r.str;
          still_pending.push_back(pending[k]);
          turned_away.push_back(std::move(e));
        }
        pending = std::move(still_pending);
        if (pending.empty()) co_return std::move(out);
      }

      const cluster_error* next = decisive(turned_away);
      auto handled = co_await after_cluster_error(call, *next, first_text, n->cfg().host);
      if (!handled) co_return handled.error();
    }
  }

  asio::awaitable<result<reply>> eval(const script& s, std::span<const std::string_view> keys,
                                      std::span<const std::string_view> args) {
    if (closed_) co_return error(errc::closed, "cluster client is closed");
    auto slot = detail::common_slot(keys);
    if (!slot) co_return slot.error();
    std::vector<std::string_view> operands;
    operands.reserve(keys.size() + args.size());
    operands.insert(operands.end(), keys.begin(), keys.end());
    operands.insert(operands.end(), args.begin(), args.end());
    call_state call = new_call(*slot);

    while (true) {
      auto n = co_await pick(call);
      if (!n) co_return n.error();
      const bool asking = call.ask.has_value();
      call.ask.reset();
      call.forced.reset();

      // EVALSHA, then EVAL on the same node when it does not have the script.
      request req;
      if (asking) req.push("ASKING");
      req.push_range("EVALSHA", operands, s.sha1(), keys.size());
      auto replies = co_await n->conn().async_exec(req);
      if (replies && is_noscript(replies->back())) {
        request full;
        if (asking) full.push("ASKING");
        full.push_range("EVAL", operands, s.source(), keys.size());
        replies = co_await n->conn().async_exec(full);
      }
      if (!replies) {
        auto handled = co_await after_transport_error(call, replies.error());
        if (!handled) co_return handled.error();
        continue;
      }

      reply& outcome = replies->back();
      if (!outcome.is_error()) co_return std::move(outcome);
      auto e = detail::classify_error(outcome.str);
      if (e.type == cluster_error::kind::none) {
        co_return error(errc::server_error, std::move(outcome.str));
      }
      auto handled = co_await after_cluster_error(call, e, outcome.str, n->cfg().host);
      if (!handled) co_return handled.error();
    }
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    refresh_timer_.cancel();
    for (auto* waiter : refresh_waiters_) waiter->cancel();
    auto nodes = std::move(nodes_);
    nodes_.clear();
    std::fill(slot_nodes_.begin(), slot_nodes_.end(), nullptr);
    for (auto& [key, n] : nodes) n->conn->close();
  }

  asio::any_io_executor executor_;
  config seed_;
  cluster_options options_;
  logger log_;       // component redis_cluster
  logger node_log_;  // handed to node connections, which tag their own component
  std::string seed_key_;

  std::unordered_map<std::string, std::shared_ptr<node>> nodes_;
  detail::slot_map map_;
  // The node of each slot's master, filled as calls use them.
  std::vector<std::shared_ptr<node>> slot_nodes_ = std::vector<std::shared_ptr<node>>(kClusterSlots);
  bool has_map_ = false;
  bool started_ = false;
  bool closed_ = false;
  std::optional<error> fatal_;  // the seed has no cluster support

  asio::steady_timer refresh_timer_;
  bool refresh_requested_ = true;  // the first refresh runs at start()
  clock::time_point last_refresh_ = clock::time_point::min();
  std::uint64_t refresh_generation_ = 0;
  std::vector<asio::steady_timer*> refresh_waiters_;
  bool refresh_failing_ = false;  // only the first failure of a streak is logged
  bool has_refresh_error_ = false;
  error last_refresh_error_;

  cluster_stats stats_;
  std::mt19937_64 random_;
};

// --- cluster_client ----------------------------------------------------------------

cluster_client::cluster_client(asio::any_io_executor executor, config seed,
                               cluster_options options, logger log) {
  if (auto valid = validate(options); !valid) throw std::invalid_argument(valid.error().what());
  impl_ = std::make_shared<impl>(std::move(executor), std::move(seed), options, std::move(log));
}

cluster_client::~cluster_client() {
  if (impl_) impl_->close();
}

void cluster_client::start() { impl_->start(); }

void cluster_client::close() { impl_->close(); }

// Each call keeps the state alive while it waits, as connection does.
asio::awaitable<result<void>> cluster_client::async_wait_ready(std::chrono::milliseconds timeout) {
  auto self = impl_;
  co_return co_await self->async_wait_ready(timeout);
}

asio::awaitable<result<void>> cluster_client::async_refresh() {
  auto self = impl_;
  co_return co_await self->async_refresh();
}

asio::awaitable<result<std::vector<reply>>> cluster_client::async_exec(const request& req,
                                                                       std::string_view routing_key) {
  auto self = impl_;
  co_return co_await self->exec(req, routing_key);
}

asio::awaitable<result<reply>> cluster_client::async_eval(const script& s,
                                                          std::span<const std::string_view> keys,
                                                          std::span<const std::string_view> args) {
  auto self = impl_;
  co_return co_await self->eval(s, keys, args);
}

cluster_stats cluster_client::stats() const noexcept {
  cluster_stats out = impl_->stats_;
  out.nodes = impl_->nodes_.size();
  return out;
}

std::string cluster_client::master_for(std::string_view key) const {
  if (!impl_->has_map_) return {};
  const auto* master = impl_->map_.master_of(key_slot(key));
  return master != nullptr ? master->to_string() : std::string();
}

asio::awaitable<result<bool>> async_is_cluster(client& c) {
  request req;
  req.push("INFO", "cluster");
  auto replies = co_await c.async_exec(req);
  if (!replies) co_return replies.error();
  const reply& r = replies->front();
  if (r.is_error()) {
    co_return error(errc::server_error, fmt::format("INFO cluster failed: {}", r.str));
  }
  co_return r.str.find("cluster_enabled:1") != std::string::npos;
}

}  // namespace tracewatch::redis
