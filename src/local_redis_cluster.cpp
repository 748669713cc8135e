#include "tracewatch/local_redis_cluster.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <hiredis/hiredis.h>
#include <memory>
#include <optional>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// A port for the cluster bus. redis-server's default, the data port plus
// 10000, is past 65535 for ephemeral ports above 55535, so each node gets a
// bus port of its own.
std::uint16_t pick_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

redis::reply convert(const redisReply* r) {
  redis::reply out;
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      out.type = redis::reply::kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = redis::reply::kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = redis::reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = redis::reply::kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = redis::reply::kind::array;
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

// Runs a shell command; returns its exit status and combined output.
std::pair<int, std::string> run_shell(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

// The master port of each slot range in a CLUSTER SLOTS reply, as a sorted,
// comma-separated list of "first-last:port", for comparing two nodes' views.
std::string describe_slots(const redis::reply& slots) {
  std::vector<std::string> ranges;
  for (const auto& range : slots.elements) {
    if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) continue;
    ranges.push_back(fmt::format("{}-{}:{}", range.elements[0].integer, range.elements[1].integer,
                                 range.elements[2].elements[1].integer));
  }
  std::sort(ranges.begin(), ranges.end());
  return fmt::format("{}", fmt::join(ranges, ","));
}

}  // namespace

result<local_redis_cluster> local_redis_cluster::start(options opts) {
  if (opts.masters < 1 || opts.replicas < 0) {
    return error(errc::invalid_argument,
                 fmt::format("invalid cluster shape: {} masters, {} replicas each; use at least "
                             "1 master and 0 or more replicas",
                             opts.masters, opts.replicas));
  }
  if (run_shell("redis-cli --version").first != 0) {
    return error(errc::unsupported,
                 "redis-cli not found on PATH; install it with 'sudo apt-get install redis-tools'");
  }

  local_redis_cluster cluster;
  cluster.opts_ = opts;
  const int count = opts.masters * (1 + opts.replicas);

  // 1. Start the nodes. A bus port taken between picking and binding makes
  // the start fail; it is retried with another port.
  for (int i = 0; i < count; ++i) {
    error last;
    bool started = false;
    for (int attempt = 0; attempt < 3 && !started; ++attempt) {
      local_redis::options node_opts;
      node_opts.tcp = true;
      node_opts.extra_args = {"--cluster-enabled", "yes",
                              "--cluster-config-file", "nodes.conf",
                              "--cluster-node-timeout", std::to_string(opts.node_timeout.count()),
                              "--cluster-port", std::to_string(pick_free_port())};
      auto node = local_redis::start(node_opts);
      if (node) {
        cluster.nodes_.push_back(std::move(*node));
        started = true;
      } else {
        last = node.error();
      }
    }
    if (!started) return last;
  }

  // 2. Assign slots and replicas, and join the nodes into one cluster.
  std::string addresses;
  for (const auto& node : cluster.nodes_) addresses += fmt::format(" 127.0.0.1:{}", node.port());
  auto [status, output] = run_shell(fmt::format(
      "redis-cli --cluster create{} --cluster-replicas {} --cluster-yes", addresses, opts.replicas));
  if (status != 0) {
    return error(errc::unsupported,
                 fmt::format("redis-cli --cluster create failed (exit {}):\n{}", status, output));
  }

  // 3. Wait until every node reports the same full slot map and every
  // replica is in sync.
  if (auto healthy = cluster.wait_healthy(opts.start_timeout); !healthy) return healthy.error();
  return cluster;
}

std::string local_redis_cluster::seed_url() const {
  for (const auto& node : nodes_) {
    if (node.pid() > 0) return node.url();
  }
  return {};
}

result<redis::reply> local_redis_cluster::command(std::size_t index,
                                                  const std::vector<std::string>& args) const {
  const local_redis& node = nodes_.at(index);
  timeval timeout{2, 0};
  redisContext* c = redisConnectUnixWithTimeout(node.socket_path().c_str(), timeout);
  if (c == nullptr || c->err != 0) {
    std::string reason = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return error(errc::not_connected,
                 fmt::format("cannot connect to cluster node {} at {}: {}", index,
                             node.socket_path(), reason));
  }
  redisSetTimeout(c, timeout);
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lengths.data()));
  if (r == nullptr) {
    std::string reason = c->errstr;
    redisFree(c);
    return error(errc::connection_lost,
                 fmt::format("cluster node {} did not reply: {}", index, reason));
  }
  redis::reply out = convert(r);
  freeReplyObject(r);
  redisFree(c);
  return out;
}

result<std::string> local_redis_cluster::node_id(std::size_t index) const {
  auto id = command(index, {"CLUSTER", "MYID"});
  if (!id) return id.error();
  if (id->is_error()) return error(errc::server_error, id->str);
  return id->str;
}

std::vector<std::size_t> local_redis_cluster::masters() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (!is_alive(i)) continue;
    auto info = command(i, {"INFO", "replication"});
    if (info && contains(info->str, "role:master")) out.push_back(i);
  }
  return out;
}

result<std::size_t> local_redis_cluster::master_of_slot(std::uint16_t slot) const {
  std::optional<std::int64_t> port;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (!is_alive(i)) continue;
    auto slots = command(i, {"CLUSTER", "SLOTS"});
    if (!slots) return slots.error();
    std::optional<std::int64_t> seen;
    for (const auto& range : slots->elements) {
      if (range.elements.size() < 3) continue;
      if (range.elements[0].integer <= slot && slot <= range.elements[1].integer) {
        seen = range.elements[2].elements.at(1).integer;
      }
    }
    if (!seen || (port && *port != *seen)) {
      return error(errc::cluster_down, fmt::format("the nodes disagree about slot {}", slot));
    }
    port = seen;
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (is_alive(i) && port && nodes_[i].port() == *port) return i;
  }
  return error(errc::cluster_down, fmt::format("slot {} has no live master", slot));
}

result<void> local_redis_cluster::wait_healthy(std::chrono::milliseconds timeout) const {
  const auto deadline = clock::now() + timeout;
  std::string problem = "not checked yet";
  while (clock::now() < deadline) {
    problem.clear();
    std::string first_view;
    for (std::size_t i = 0; i < nodes_.size() && problem.empty(); ++i) {
      if (!is_alive(i)) continue;
      auto info = command(i, {"CLUSTER", "INFO"});
      if (!info || !contains(info->str, "cluster_state:ok")) {
        problem = fmt::format("node {} does not report cluster_state:ok", i);
        break;
      }
      auto slots = command(i, {"CLUSTER", "SLOTS"});
      if (!slots) {
        problem = slots.error().what();
        break;
      }
      std::string view = describe_slots(*slots);
      if (first_view.empty()) first_view = view;
      if (view != first_view) problem = fmt::format("node {} has another slot map", i);
      for (const auto& range : slots->elements) {
        const auto port = range.elements.size() >= 3 ? range.elements[2].elements.at(1).integer : 0;
        bool live = false;
        for (std::size_t j = 0; j < nodes_.size(); ++j) live |= is_alive(j) && nodes_[j].port() == port;
        if (!live) problem = fmt::format("node {} names a dead master on port {}", i, port);
      }
      auto replication = command(i, {"INFO", "replication"});
      if (replication && contains(replication->str, "role:slave") &&
          !contains(replication->str, "master_link_status:up")) {
        problem = fmt::format("replica {} is not in sync with its master", i);
      }
    }
    if (problem.empty()) return {};
    std::this_thread::sleep_for(50ms);
  }
  return error(errc::timeout, fmt::format("cluster not healthy within {} ms: {}", timeout.count(),
                                          problem));
}

result<std::string> local_redis_cluster::reshard(std::size_t from, std::size_t to, int slots) const {
  auto from_id = node_id(from);
  if (!from_id) return from_id.error();
  auto to_id = node_id(to);
  if (!to_id) return to_id.error();
  auto [status, output] = run_shell(fmt::format(
      "redis-cli --cluster reshard 127.0.0.1:{} --cluster-from {} --cluster-to {} "
      "--cluster-slots {} --cluster-yes",
      nodes_.at(from).port(), *from_id, *to_id, slots));
  if (status != 0) {
    return error(errc::server_error,
                 fmt::format("redis-cli --cluster reshard failed (exit {}):\n{}", status, output));
  }
  return output;
}

}  // namespace tracewatch
