// A private Redis Cluster on this host: redis-server processes in cluster
// mode on free loopback ports, joined by `redis-cli --cluster create`, and
// stopped and removed by the destructor. The cluster tests and the cluster
// benchmark run on one.
//
// Each node is a local_redis (its own temporary directory, a unix socket
// and a TCP port) started with persistence off. Node i < masters is a
// master when the cluster is created; redis-cli picks which master each
// replica follows.
//
// Example:
//   auto cluster = local_redis_cluster::start({.masters = 3, .replicas = 1}).value();
//   auto seed = redis::parse_url(cluster.seed_url()).value();
//   // … use a redis::cluster_client on `seed` …
//   cluster.node(0).kill_hard();  // a master crashes
//   cluster.wait_healthy(std::chrono::seconds(30));  // its replica took over

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tracewatch/error.hpp"
#include "tracewatch/local_redis.hpp"
#include "tracewatch/redis/reply.hpp"

namespace tracewatch {

class local_redis_cluster {
 public:
  struct options {
    int masters = 3;
    int replicas = 1;  // replicas per master
    // cluster-node-timeout: how long a node may be unreachable before it
    // is marked failed; a replica is promoted a little after that.
    std::chrono::milliseconds node_timeout{2000};
    // Time for the nodes to start and the cluster to reach cluster_state:ok.
    std::chrono::milliseconds start_timeout{60000};
  };

  // Starts masters * (1 + replicas) nodes, creates the cluster and waits
  // until every node reports cluster_state:ok and every replica is in sync.
  // Errors name the cause: redis-server or redis-cli missing (with the
  // package to install), a node that exited (with its log), redis-cli's
  // output, or errc::timeout.
  static result<local_redis_cluster> start(options opts);
  static result<local_redis_cluster> start() { return start(options{}); }

  local_redis_cluster(local_redis_cluster&&) noexcept = default;
  local_redis_cluster& operator=(local_redis_cluster&&) noexcept = default;
  ~local_redis_cluster() = default;  // each local_redis stops its server

  std::size_t size() const noexcept { return nodes_.size(); }
  local_redis& node(std::size_t index) { return nodes_.at(index); }
  bool is_alive(std::size_t index) const { return nodes_.at(index).pid() > 0; }

  // redis://127.0.0.1:<port> of the first live node.
  std::string seed_url() const;

  // Runs one command on node `index` over its unix socket, blocking.
  // Returns errc::not_connected when the node does not answer.
  result<redis::reply> command(std::size_t index, const std::vector<std::string>& args) const;

  // The node's cluster id (CLUSTER MYID).
  result<std::string> node_id(std::size_t index) const;

  // The index of the live node that every live node names as the master of
  // `slot`; errc::cluster_down while they disagree.
  result<std::size_t> master_of_slot(std::uint16_t slot) const;

  // Indexes of the live nodes that are masters now.
  std::vector<std::size_t> masters() const;

  // Waits until every live node reports cluster_state:ok, all live nodes
  // agree on the master of every slot, and every live replica's link to its
  // master is up. errc::timeout otherwise.
  result<void> wait_healthy(std::chrono::milliseconds timeout) const;

  // Moves `slots` slots from master `from` to master `to` with
  // `redis-cli --cluster reshard`, blocking until it is done. Returns
  // redis-cli's output, or an error with it.
  result<std::string> reshard(std::size_t from, std::size_t to, int slots) const;

 private:
  local_redis_cluster() = default;

  options opts_;
  std::vector<local_redis> nodes_;
};

}  // namespace tracewatch
