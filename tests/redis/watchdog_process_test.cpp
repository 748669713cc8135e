// `tracewatch watchdog` as a fleet of real processes on one redis-server:
// leader election, failover after kill -9, a leader paused past its lease,
// and a Redis restart under the daemon.
//
// Each daemon logs JSON lines to stderr, which the test reads through a pipe,
// so every line is known to come from one process. A daemon leads when it
// logs `lease_acquired`, and the lease key contains the token whose first
// eight hex digits that line names. A daemon sweeps when it logs
// `sweep_started` (a debug line) and `sweep_done`, and it reaps an orphan
// when it logs `trace_orphaned` with the orphan's id.
//
// The leases are a few seconds long so that each test takes seconds. Waits
// poll for a condition under a generous hang guard; no test asserts a
// duration.

#include <signal.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include "support/process.hpp"
#include "support/test_support.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using testing::child_process;
using testing::raw_redis;

// Guards every wait against a hang. No timing is asserted with it.
constexpr auto kHangGuard = 60s;

// The daemon's flags, in seconds as the command line takes them. The
// threshold is far below the age of the test's orphans, an hour.
struct daemon_timing {
  std::string lease_s;
  std::string interval_s = "0.1";
  std::string threshold_s = "60";
};

// One line of a daemon's log. Every field of the JSON encoding is a string.
struct log_line {
  std::string text;   // the line as written
  std::string event;  // the field "msg", empty when the line is not JSON
  boost::json::object fields;

  std::string field(std::string_view key) const {
    const auto* value = fields.if_contains(key);
    return value != nullptr && value->is_string() ? std::string(value->as_string()) : "";
  }
};

// A running `tracewatch watchdog` and its parsed log.
class watchdog_process {
 public:
  watchdog_process(const std::string& redis_url, const daemon_timing& timing)
      : process_({TRACEWATCH_CLI_PATH, "--redis", redis_url, "--log-format", "json",
                  "--log-level", "debug", "watchdog", "--lease-s", timing.lease_s,
                  "--interval-s", timing.interval_s, "--threshold-s", timing.threshold_s,
                  "--metrics-addr", "off"}) {}

  child_process& process() { return process_; }

  // The lines logged so far. Parses the complete lines read since the last
  // call first.
  const std::vector<log_line>& lines() {
    const std::string& err = process_.err();
    while (true) {
      const auto end = err.find('\n', parsed_);
      if (end == std::string::npos) break;
      log_line line;
      line.text = err.substr(parsed_, end - parsed_);
      parsed_ = end + 1;
      boost::system::error_code ec;
      const boost::json::value value = boost::json::parse(line.text, ec);
      if (!ec && value.is_object()) {
        line.fields = value.as_object();
        line.event = line.field("msg");
      }
      lines_.push_back(std::move(line));
    }
    return lines_;
  }

  // The lines with event `event` from line index `from` on.
  std::vector<log_line> find(std::string_view event, std::size_t from = 0) {
    std::vector<log_line> found;
    const auto& all = lines();
    for (std::size_t i = from; i < all.size(); ++i) {
      if (all[i].event == event) found.push_back(all[i]);
    }
    return found;
  }

  std::size_t count(std::string_view event, std::size_t from = 0) {
    return find(event, from).size();
  }

  // How many times this daemon reported orphan `id` from line `from` on.
  std::size_t count_orphan(const std::string& id, std::size_t from = 0) {
    std::size_t n = 0;
    for (const auto& line : find("trace_orphaned", from)) n += line.field("trace_id") == id ? 1 : 0;
    return n;
  }

  // Returns the index of the first line from `from` on with event `event`
  // (and trace id `trace_id`, unless empty), or nullopt when there is none.
  std::optional<std::size_t> position(std::string_view event, std::size_t from = 0,
                                      const std::string& trace_id = "") {
    const auto& all = lines();
    for (std::size_t i = from; i < all.size(); ++i) {
      if (all[i].event != event) continue;
      if (trace_id.empty() || all[i].field("trace_id") == trace_id) return i;
    }
    return std::nullopt;
  }

  bool is_leader_once() { return count("lease_acquired") > 0; }

  // The token prefix of the last term this daemon won, empty if none.
  std::string token_prefix() {
    const auto acquired = find("lease_acquired");
    return acquired.empty() ? "" : acquired.back().field("token_prefix");
  }

  // The last `max_lines` lines of stderr, for failure messages.
  std::string tail(std::size_t max_lines = 30) {
    const auto& all = lines();
    std::string text;
    const std::size_t first = all.size() > max_lines ? all.size() - max_lines : 0;
    for (std::size_t i = first; i < all.size(); ++i) text += all[i].text + "\n";
    return text;
  }

 private:
  child_process process_;
  std::size_t parsed_ = 0;  // bytes of stderr already split into lines
  std::vector<log_line> lines_;
};

// A redis-server of its own per test, because one test restarts it, and the
// daemons the test starts. TearDown kills and reaps every daemon, also after
// a failed assertion.
class WatchdogProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = local_redis::start();
    ASSERT_TRUE(started) << started.error().what();
    server_.emplace(std::move(*started));
    raw_ = std::make_unique<raw_redis>(server_->socket_path());
  }

  void TearDown() override {
    daemons_.clear();
    raw_.reset();
    server_.reset();
  }

  watchdog_process& start_daemon(const daemon_timing& timing) {
    daemons_.push_back(std::make_unique<watchdog_process>(server_->unix_url(), timing));
    return *daemons_.back();
  }

  // Waits until `done()` returns true while reading every daemon's output.
  bool wait_for(const std::function<bool()>& done) {
    std::vector<child_process*> processes;
    for (auto& d : daemons_) processes.push_back(&d->process());
    return testing::wait_for(processes, done, kHangGuard);
  }

  // Writes an orphan as the reference module does, with a random
  // (version 4) id, which every sweep reads, created an hour ago by the
  // server's clock. Returns its id.
  std::string create_orphan() {
    std::array<std::uint8_t, trace_id::kSize> bytes{};
    for (auto& b : bytes) b = static_cast<std::uint8_t>(random_());
    bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0F) | 0x40);  // version 4
    bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3F) | 0x80);  // RFC 9562 variant
    const std::string id = trace_id::from_bytes(bytes).to_string();

    const auto now = raw_->strings({"TIME"});
    const std::string created_at = fmt::format("{}.{:06}", std::stoll(now.at(0)) - 3600,
                                               std::stoll(now.at(1)));
    const std::string key = "sg:trace:" + id;
    raw_->command({"HSET", key, "state", "RECEIVED", "created_at", created_at});
    raw_->command({"EXPIRE", key, "86400"});
    raw_->command({"SADD", "sg:traces:active", id});
    return id;
  }

  // True once a sweep marked `id` ERRORED and dropped it from the index.
  bool reaped(const std::string& id) {
    return raw_->str({"HGET", "sg:trace:" + id, "state"}) == "ERRORED" &&
           raw_->integer({"SISMEMBER", "sg:traces:active", id}) == 0;
  }

  // The first eight hex digits of the token in the lease key, empty when
  // the key is absent.
  std::string lease_holder() {
    return raw_->str({"GET", "sg:watchdog:leader"}).substr(0, 8);
  }

  // The daemons that won a term so far.
  std::vector<watchdog_process*> leaders() {
    std::vector<watchdog_process*> found;
    for (auto& d : daemons_) {
      if (d->is_leader_once()) found.push_back(d.get());
    }
    return found;
  }

  // Every daemon's recent log, for failure messages.
  std::string logs() {
    std::string text;
    for (std::size_t i = 0; i < daemons_.size(); ++i) {
      text += fmt::format("--- daemon {} (pid {}):\n{}", i, daemons_[i]->process().pid(),
                          daemons_[i]->tail());
    }
    return text;
  }

  // Starts `count` daemons and checks that exactly one leads and sweeps
  // while the others find the lease held.
  void expect_one_leader(std::size_t count);

  std::optional<local_redis> server_;
  std::unique_ptr<raw_redis> raw_;
  std::vector<std::unique_ptr<watchdog_process>> daemons_;
  std::mt19937_64 random_{std::random_device{}()};
};

void WatchdogProcess::expect_one_leader(std::size_t count) {
  const std::string orphan = create_orphan();
  // A lease far longer than the test's wait: a failover would need a
  // process stalled for seconds.
  const daemon_timing timing{.lease_s = "4"};
  for (std::size_t i = 0; i < count; ++i) start_daemon(timing);

  // Done when one daemon has swept three times and every other one has
  // campaigned twice and found the lease held.
  ASSERT_TRUE(wait_for([&] {
    std::size_t sweeping = 0;
    std::size_t waiting = 0;
    for (auto& d : daemons_) {
      if (d->count("sweep_done") >= 3) {
        ++sweeping;
      } else if (d->count("lease_held_elsewhere") >= 2) {
        ++waiting;
      }
    }
    return sweeping >= 1 && sweeping + waiting == count;
  })) << logs();

  const auto elected = leaders();
  ASSERT_EQ(elected.size(), 1u) << logs();
  watchdog_process& leader = *elected.front();
  EXPECT_EQ(lease_holder(), leader.token_prefix()) << logs();
  EXPECT_EQ(leader.count_orphan(orphan), 1u) << logs();
  EXPECT_TRUE(reaped(orphan));
  for (auto& d : daemons_) {
    if (d.get() == &leader) continue;
    EXPECT_EQ(d->count("sweep_started"), 0u) << logs();
    EXPECT_EQ(d->count("sweep_done"), 0u) << logs();
    EXPECT_EQ(d->count("trace_orphaned"), 0u) << logs();
    EXPECT_TRUE(d->process().running());
  }
}

TEST_F(WatchdogProcess, TwoDaemonsElectOneLeader) { expect_one_leader(2); }

TEST_F(WatchdogProcess, ThreeDaemonsElectOneLeader) { expect_one_leader(3); }

TEST_F(WatchdogProcess, KilledLeaderIsReplaced) {
  const daemon_timing timing{.lease_s = "2"};
  for (int i = 0; i < 3; ++i) start_daemon(timing);
  ASSERT_TRUE(wait_for([&] {
    const auto elected = leaders();
    return elected.size() == 1 && elected.front()->count("sweep_done") >= 1;
  })) << logs();
  watchdog_process* old_leader = leaders().front();
  const std::string old_token = old_leader->token_prefix();

  const auto killed_at = std::chrono::steady_clock::now();
  old_leader->process().kill_hard();
  // Only a new leader can reap an orphan created after the kill.
  const std::string orphan = create_orphan();

  watchdog_process* new_leader = nullptr;
  ASSERT_TRUE(wait_for([&] {
    for (auto& d : daemons_) {
      if (d.get() != old_leader && d->count_orphan(orphan) > 0) new_leader = d.get();
    }
    return new_leader != nullptr && reaped(orphan);
  })) << logs();
  // Recorded, not asserted: the lease bounds the time to the takeover, and
  // the machine's load adds to it.
  const auto reaped_after = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed_at);
  RecordProperty("reaped_after_kill_ms", static_cast<int>(reaped_after.count()));

  const auto acquired = new_leader->position("lease_acquired");
  ASSERT_TRUE(acquired.has_value()) << logs();
  EXPECT_LT(*acquired, new_leader->position("trace_orphaned", 0, orphan).value()) << logs();
  EXPECT_EQ(new_leader->count("lease_acquired"), 1u) << logs();
  EXPECT_NE(new_leader->token_prefix(), old_token);
  EXPECT_EQ(lease_holder(), new_leader->token_prefix()) << logs();
  for (auto& d : daemons_) {
    if (d.get() == old_leader || d.get() == new_leader) continue;
    EXPECT_EQ(d->count("lease_acquired"), 0u) << logs();
    EXPECT_EQ(d->count("sweep_done"), 0u) << logs();
  }
}

TEST_F(WatchdogProcess, PausedLeaderStepsDownOnResume) {
  // Sweeps 0.3 s apart leave a wide gap in which to pause the leader, so
  // that it is paused between two sweeps and not inside one.
  const daemon_timing timing{.lease_s = "1.5", .interval_s = "0.3"};
  start_daemon(timing);
  start_daemon(timing);
  ASSERT_TRUE(wait_for([&] {
    const auto elected = leaders();
    return elected.size() == 1 && elected.front()->count("sweep_done") >= 1;
  })) << logs();
  watchdog_process& old_leader = *leaders().front();
  watchdog_process& other = daemons_[0].get() == &old_leader ? *daemons_[1] : *daemons_[0];

  // Pause it right after a sweep ends.
  const std::size_t sweeps = old_leader.count("sweep_done");
  ASSERT_TRUE(wait_for([&] { return old_leader.count("sweep_done") > sweeps; })) << logs();
  old_leader.process().send_signal(SIGSTOP);

  // The other daemon wins the lease once the key expires, and sweeps.
  ASSERT_TRUE(wait_for([&] { return other.count("sweep_done") >= 1; })) << logs();
  ASSERT_EQ(other.count("lease_acquired"), 1u) << logs();
  const std::string orphan = create_orphan();

  // Everything the paused daemon wrote is in the pipe already, so the lines
  // from `mark` on were written after the resume.
  old_leader.process().read_available();
  const std::size_t mark = old_leader.lines().size();
  const std::size_t other_mark = other.lines().size();
  old_leader.process().send_signal(SIGCONT);

  // Done when the resumed daemon stepped down and campaigned in vain, and
  // the other one has swept three more times meanwhile, each time giving
  // the resumed daemon's sweep loop a chance to run.
  ASSERT_TRUE(wait_for([&] {
    return old_leader.count("lease_lost", mark) >= 1 &&
           old_leader.count("lease_held_elsewhere", mark) >= 1 &&
           other.count("sweep_done", other_mark) >= 3 && reaped(orphan);
  })) << logs();

  const auto lost = old_leader.find("lease_lost", mark);
  EXPECT_EQ(lost.front().field("reason"), "deadline_passed") << lost.front().text;
  EXPECT_EQ(old_leader.count("sweep_started", mark), 0u) << logs();
  EXPECT_EQ(old_leader.count("sweep_done", mark), 0u) << logs();
  EXPECT_EQ(old_leader.count("trace_orphaned", mark), 0u) << logs();
  EXPECT_EQ(old_leader.count("lease_acquired", mark), 0u) << logs();
  EXPECT_EQ(other.count_orphan(orphan), 1u) << logs();
  EXPECT_EQ(lease_holder(), other.token_prefix()) << logs();
}

TEST_F(WatchdogProcess, DaemonSurvivesRedisRestart) {
  watchdog_process& daemon = start_daemon({.lease_s = "1.5"});
  ASSERT_TRUE(wait_for([&] { return daemon.count("sweep_done") >= 1; })) << logs();

  // While Redis is down the daemon loses its connection and its lease.
  raw_.reset();
  server_->kill_hard();
  ASSERT_TRUE(wait_for([&] {
    return daemon.count("redis_disconnected") >= 1 && daemon.count("lease_lost") >= 1;
  })) << logs();
  ASSERT_TRUE(daemon.process().running()) << logs();
  const std::size_t mark = daemon.lines().size();

  // The restarted server is empty. The daemon wins the lease again and
  // reaps an orphan created after the restart. A sweep that began before
  // the outage must not write once the lease is lost, so the orphan is
  // reaped only after the new term began.
  auto restarted = server_->restart();
  ASSERT_TRUE(restarted) << restarted.error().what();
  raw_ = std::make_unique<raw_redis>(server_->socket_path());
  const std::string orphan = create_orphan();
  ASSERT_TRUE(wait_for([&] {
    return daemon.count("lease_acquired", mark) >= 1 && daemon.count_orphan(orphan, mark) >= 1 &&
           reaped(orphan);
  })) << logs();

  EXPECT_TRUE(daemon.process().running());
  EXPECT_GE(daemon.count("redis_connected", mark), 1u) << logs();
  EXPECT_EQ(daemon.count("lease_acquired", mark), 1u) << logs();
  EXPECT_LT(daemon.position("lease_acquired", mark).value(),
            daemon.position("trace_orphaned", mark, orphan).value())
      << logs();
  EXPECT_EQ(lease_holder(), daemon.token_prefix()) << logs();

  // It still shuts down cleanly.
  daemon.process().send_signal(SIGTERM);
  const auto status = daemon.process().wait(kHangGuard);
  EXPECT_EQ(status.code, 0) << logs();
  EXPECT_EQ(daemon.count("watchdog_stopped"), 1u) << logs();
}

}  // namespace
}  // namespace tracewatch
