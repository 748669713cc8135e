// A fixture with a private Redis Cluster per test suite (3 masters with one
// replica each, started once in SetUpTestSuite), and a started
// redis::cluster_client on an io_context owned by each test.

#pragma once

#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "test_support.hpp"
#include "tracewatch/local_redis_cluster.hpp"
#include "tracewatch/redis/cluster.hpp"

namespace tracewatch::testing {

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // Empties every master, then starts the client.
  void SetUp() override;
  void TearDown() override;

  static local_redis_cluster& cluster() { return *cluster_; }

  // Options of the client that SetUp() starts; tests may override it.
  virtual redis::cluster_options client_options() const { return {}; }

  redis::cluster_client& client() { return *client_; }
  asio::io_context& io() { return io_; }

  template <class Make>
  auto run(Make make) {
    return run_coro(io_, std::move(make));
  }

  // Runs one command on every live master, blocking; fails the test on an
  // error.
  void on_every_master(const std::vector<std::string>& args);

 private:
  static inline std::optional<local_redis_cluster> cluster_;
  asio::io_context io_;
  std::unique_ptr<redis::cluster_client> client_;
};

}  // namespace tracewatch::testing
