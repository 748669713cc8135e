// `tracewatch demo`: runs the built program as a child process with its
// output captured (so not on a terminal), in a short mode of a few seconds.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "support/test_support.hpp"

extern char** environ;

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using testing::RedisTest;

// Guards against a demo that hangs; no timing is asserted with it.
constexpr auto kHangGuard = 120s;

// Arguments of a short run: `duration_s` of ingress, orphans after 1 s, a
// sweep every 0.2 s. The crash share is high so that every run abandons
// traces.
std::vector<std::string> demo_args(const std::string& duration_s,
                                   std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"demo",
                                   "--duration-s=" + duration_s,
                                   "--rate=100",
                                   "--workers=8",
                                   "--crash-share=0.2",
                                   "--max-stage-ms=20",
                                   "--threshold-s=1",
                                   "--interval-s=0.2",
                                   "--lease-s=1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

struct exit_status {
  int code = -1;   // the exit code, -1 when a signal ended the process
  int signal = 0;  // the signal that ended it, 0 when it exited
};

// `tracewatch` started with fork and exec, its stdout and stderr on pipes.
class cli_process {
 public:
  // Starts `tracewatch args...` with the test's environment minus
  // TRACEWATCH_REDIS_URL, plus `extra_env` ("NAME=value" entries).
  cli_process(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      throw std::runtime_error(std::string("pipe2 failed: ") + std::strerror(errno));
    }
    std::vector<std::string> argv_text = {TRACEWATCH_CLI_PATH};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("TRACEWATCH_REDIS_URL=")) continue;
      env_text.emplace_back(*e);
    }
    env_text.insert(env_text.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
  }

  ~cli_process() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }

  cli_process(const cli_process&) = delete;
  cli_process& operator=(const cli_process&) = delete;

  // Reads output until stdout contains `needle`. Returns false when the
  // process closed its output or the hang guard passed first.
  bool read_until(std::string_view needle) {
    const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
    while (out_.find(needle) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline || !read_some()) return false;
    }
    return true;
  }

  void send_signal(int number) { ::kill(pid_, number); }

  // Reads both pipes to the end and reaps the process. Kills it when the
  // hang guard passes first.
  exit_status wait() {
    const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
    while (read_some()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        break;
      }
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    exit_status result;
    if (WIFEXITED(status)) result.code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    return result;
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  // Waits up to 100 ms for output and appends it. Returns false once both
  // pipes reached end of file.
  bool read_some() {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, 100);
    if (ready < 0 && errno != EINTR) return false;
    bool open = false;
    for (auto [fd, text] : {std::pair{&out_fd_, &out_}, std::pair{&err_fd_, &err_}}) {
      if (*fd < 0) continue;
      const auto& entry = fd == &out_fd_ ? fds[0] : fds[1];
      if ((entry.revents & (POLLIN | POLLHUP)) != 0) {
        char buffer[4096];
        const ssize_t n = ::read(*fd, buffer, sizeof buffer);
        if (n > 0) {
          text->append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0) {
          ::close(*fd);
          *fd = -1;
          continue;
        }
      }
      open = true;
    }
    return open;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

// The last non-empty line of `text`.
std::string last_line(const std::string& text) {
  std::string_view rest = text;
  while (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  const auto start = rest.rfind('\n');
  return std::string(start == std::string_view::npos ? rest : rest.substr(start + 1));
}

bool is_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

class DemoTest : public RedisTest {};

TEST_F(DemoTest, PrivateRunPassesEveryCheck) {
  // TRACEWATCH_REDIS_URL names the fixture's server: the demo must ignore
  // it and run on a private one.
  cli_process demo(demo_args("2"), {"TRACEWATCH_REDIS_URL=" + server().unix_url()});
  const exit_status status = demo.wait();

  ASSERT_EQ(status.code, 0) << demo.out() << demo.err();
  EXPECT_NE(demo.out().find("PASS  every abandoned trace was reaped"), std::string::npos)
      << demo.out();
  EXPECT_NE(demo.out().find("PASS  no completed trace was marked ERRORED"), std::string::npos)
      << demo.out();
  EXPECT_NE(demo.out().find("PASS  no finished trace is left in the index"), std::string::npos)
      << demo.out();
  EXPECT_NE(demo.out().find("PASS  the counts add up"), std::string::npos) << demo.out();
  EXPECT_EQ(demo.out().find("FAIL"), std::string::npos) << demo.out();
  EXPECT_EQ(last_line(demo.out()), "All 4 checks passed.");
  // Output that is not a terminal gets plain lines, never a carriage return.
  EXPECT_EQ(demo.out().find('\r'), std::string::npos);
  EXPECT_EQ(raw().integer({"DBSIZE"}), 0);
}

TEST_F(DemoTest, SharedRunCleansUpOnlyItsKeys) {
  // Data of another application, including keys of the default prefix.
  raw().command({"SET", "app:config", "keep me"});
  raw().command({"HSET", "sg:trace:0190a5c8-3b6e-7a41-9d2f-5c81e2b4a9f0", "state", "RECEIVED"});
  raw().command({"SADD", "sg:traces:active", "0190a5c8-3b6e-7a41-9d2f-5c81e2b4a9f0"});

  cli_process demo(demo_args("2", {"--redis", server().unix_url(), "--json"}), {});
  const exit_status status = demo.wait();

  ASSERT_EQ(status.code, 0) << demo.out() << demo.err();
  const boost::json::value report = boost::json::parse(last_line(demo.out()));
  EXPECT_TRUE(report.at("passed").as_bool()) << demo.out();
  EXPECT_GT(report.at("counts").at("abandoned").to_number<std::int64_t>(), 0) << demo.out();
  const std::string prefix(report.at("prefix").as_string());
  EXPECT_TRUE(prefix.starts_with("twdemo-")) << prefix;

  EXPECT_EQ(raw().strings({"KEYS", prefix + "*"}), std::vector<std::string>{});
  EXPECT_EQ(raw().integer({"DBSIZE"}), 3);
  EXPECT_EQ(raw().str({"GET", "app:config"}), "keep me");
  EXPECT_EQ(raw().str({"HGET", "sg:trace:0190a5c8-3b6e-7a41-9d2f-5c81e2b4a9f0", "state"}),
            "RECEIVED");
  EXPECT_EQ(raw().integer({"SCARD", "sg:traces:active"}), 1);
}

TEST_F(DemoTest, SigintLeavesNoServerOrDirectory) {
  // A long run, interrupted once it is creating traces.
  cli_process demo(demo_args("60"), {});
  ASSERT_TRUE(demo.read_until(" ingress ")) << demo.out() << demo.err();

  std::smatch found;
  const std::regex intro(R"(pid (\d+), socket (\S+)/redis\.sock)");
  ASSERT_TRUE(std::regex_search(demo.out(), found, intro)) << demo.out();
  const pid_t server_pid = std::stoi(found[1].str());
  const std::filesystem::path directory = found[2].str();
  ASSERT_TRUE(is_alive(server_pid));
  ASSERT_TRUE(std::filesystem::exists(directory));

  demo.send_signal(SIGINT);
  const exit_status status = demo.wait();

  EXPECT_EQ(status.code, 128 + SIGINT) << demo.err();
  EXPECT_NE(demo.err().find("stopped by SIGINT"), std::string::npos) << demo.err();
  EXPECT_FALSE(is_alive(server_pid)) << "redis-server pid " << server_pid;
  EXPECT_FALSE(std::filesystem::exists(directory)) << directory;
}

TEST_F(DemoTest, RejectsInvalidCrashShare) {
  cli_process demo({"demo", "--crash-share", "1.5"}, {});
  const exit_status status = demo.wait();

  EXPECT_EQ(status.code, 2);
  EXPECT_NE(demo.err().find("invalid --crash-share 1.5"), std::string::npos) << demo.err();
  EXPECT_EQ(demo.out(), "");
}

}  // namespace
}  // namespace tracewatch
