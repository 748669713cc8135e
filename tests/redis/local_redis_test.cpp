// local_redis: a server it starts does not outlive its parent.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "support/process.hpp"
#include "tracewatch/local_redis.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;

// Guards the waits against a hang. No timing is asserted with it.
constexpr auto kHangGuard = 30s;

// Polls until process `pid` is gone or the hang guard passed.
bool wait_until_gone(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (testing::process_exists(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST(LocalRedis, ServerDiesWithCrashedParent) {
  int report[2];
  // Close-on-exec, so that redis-server does not keep the write end open.
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);

  // The parent starts a server, reports its pid and directory, and exits
  // without stopping it, as a crashed test would.
  const pid_t parent = ::fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    ::close(report[0]);
    auto started = local_redis::start();
    std::string text = started ? std::to_string(started->pid()) + " " + started->directory()
                               : "-1 " + started.error().what();
    text += "\n";
    const ssize_t written = ::write(report[1], text.data(), text.size());
    ::_exit(written == static_cast<ssize_t>(text.size()) ? 0 : 1);
  }
  ::close(report[1]);
  std::string text;
  char buffer[512];
  for (ssize_t n; (n = ::read(report[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  ::close(report[0]);
  ::waitpid(parent, nullptr, 0);

  std::istringstream fields(text);
  pid_t server = -1;
  std::string directory;
  fields >> server;
  std::getline(fields >> std::ws, directory);
  ASSERT_GT(server, 0) << text;
  EXPECT_TRUE(wait_until_gone(server)) << "redis-server pid " << server;

  // The parent skipped the clean-up, so the test does it.
  std::error_code ignored;
  std::filesystem::remove_all(directory, ignored);
}

TEST(LocalRedis, ServerDiesWithStartingThread) {
  // PR_SET_PDEATHSIG watches the thread that forked, as the header warns.
  std::optional<local_redis> server;
  std::thread starter([&] {
    auto started = local_redis::start();
    if (started) server.emplace(std::move(*started));
  });
  starter.join();
  ASSERT_TRUE(server.has_value());
  EXPECT_TRUE(wait_until_gone(server->pid())) << "redis-server pid " << server->pid();
}

}  // namespace
}  // namespace tracewatch
