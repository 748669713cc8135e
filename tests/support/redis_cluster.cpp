#include "redis_cluster.hpp"

#include <stdexcept>

namespace tracewatch::testing {

void RedisClusterTest::SetUpTestSuite() {
  auto started = local_redis_cluster::start();
  if (!started) throw std::runtime_error("cannot start a Redis Cluster: " + started.error().what());
  cluster_.emplace(std::move(*started));
}

void RedisClusterTest::TearDownTestSuite() { cluster_.reset(); }

void RedisClusterTest::on_every_master(const std::vector<std::string>& args) {
  for (std::size_t index : cluster_->masters()) {
    auto reply = cluster_->command(index, args);
    ASSERT_TRUE(reply) << reply.error().what();
    ASSERT_FALSE(reply->is_error()) << reply->str;
  }
}

void RedisClusterTest::SetUp() {
  ASSERT_TRUE(cluster_) << "the cluster did not start";
  on_every_master({"FLUSHALL"});
  auto seed = redis::parse_url(cluster_->seed_url());
  ASSERT_TRUE(seed) << seed.error().what();
  client_ = std::make_unique<redis::cluster_client>(io_.get_executor(), *seed, client_options());
  client_->start();
  auto ready = run([this]() { return client_->async_wait_ready(std::chrono::seconds(10)); });
  ASSERT_TRUE(ready) << ready.error().what();
}

void RedisClusterTest::TearDown() {
  if (client_) client_->close();
  io_.run_for(std::chrono::milliseconds(10));
  client_.reset();
}

}  // namespace tracewatch::testing
