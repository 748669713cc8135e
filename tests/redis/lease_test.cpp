// The leader lease against a real redis-server. Every lease instance runs on
// its own io_context and thread, like one watchdog process each. A paused
// thread plays the part of a process stopped with SIGSTOP.
//
// Leases are short (500 ms) to keep the suite fast. The tests wait for
// states and check their order, never elapsed time.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "support/test_support.hpp"
#include "tracewatch/lease.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using tracewatch::testing::RedisTest;

// Generous: only a hung test waits this long.
constexpr auto kHangGuard = 60s;

// Events of every lease in one test, in the order they happened.
class event_log {
 public:
  void add(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> all() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  // Position of `event`, or -1.
  int index_of(const std::string& event) const {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < events_.size(); ++i) {
      if (events_[i] == event) return static_cast<int>(i);
    }
    return -1;
  }
  bool contains(const std::string& event) const { return index_of(event) >= 0; }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
};

// Polls `done` until it returns true. Returns false after kHangGuard.
bool wait_for(const std::function<bool()>& done) {
  const auto limit = std::chrono::steady_clock::now() + kHangGuard;
  while (!done()) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

lease_options short_lease(const std::string& prefix = "sg") {
  lease_options options;
  options.prefix = prefix;
  options.lease = 500ms;
  return options;
}

// One lease with its own connection, io_context and thread.
class lease_node {
 public:
  lease_node(std::string name, const std::string& url, event_log& events,
             lease_options options = short_lease(), lease_callbacks extra = {},
             std::chrono::milliseconds request_timeout = 2000ms)
      : name_(std::move(name)),
        events_(events),
        extra_(std::move(extra)),
        work_(asio::make_work_guard(io_)),
        conn_(io_.get_executor(), make_config(url, request_timeout)),
        lease_(conn_, std::move(options), make_logger(),
               lease_callbacks{[this] { on_elected(); },
                               [this](lease_loss_reason reason) { on_lost(reason); }}) {
    conn_.start();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~lease_node() {
    resume();
    stop();
    asio::post(io_, [this] {
      conn_.close();
      work_.reset();
    });
    // The connection may keep timers for a moment after close(); do not
    // wait for them.
    asio::post(io_, [this] { io_.stop(); });
    thread_.join();
  }

  lease_node(const lease_node&) = delete;
  lease_node& operator=(const lease_node&) = delete;

  void start() {
    finished_ = false;
    asio::post(io_, [this] {
      asio::co_spawn(io_, lease_.async_run(),
                     asio::bind_cancellation_slot(stop_signal_.slot(),
                                                  [this](std::exception_ptr e) {
                                                    run_failure_ = e;
                                                    finished_ = true;
                                                  }));
    });
    started_ = true;
  }

  // Ends async_run() through its cancellation slot and waits until it returned.
  void stop() {
    if (!started_) return;
    asio::post(io_, [this] { stop_signal_.emit(asio::cancellation_type::terminal); });
    EXPECT_TRUE(wait_for([this] { return finished_.load(); })) << name_ << " did not stop";
    started_ = false;
    if (run_failure_) {
      try {
        std::rethrow_exception(run_failure_);
      } catch (const std::exception& e) {
        ADD_FAILURE() << name_ << ": async_run() threw: " << e.what();
      }
    }
  }

  result<bool> release() {
    return asio::co_spawn(io_, lease_.async_release(), asio::use_future).get();
  }

  // Blocks the node's thread, so that nothing of this lease runs: the lease
  // is neither renewed nor checked, as in a process stopped by SIGSTOP.
  void pause() {
    auto paused = std::make_shared<std::promise<void>>();
    auto paused_future = paused->get_future();
    resume_ = std::make_unique<std::promise<void>>();
    asio::post(io_, [paused, released = resume_->get_future()]() mutable {
      paused->set_value();
      released.wait();
    });
    paused_future.wait();
  }

  void resume() {
    if (resume_) {
      resume_->set_value();
      resume_.reset();
    }
  }

  // Log lines of this lease as `event key=value …`, in order.
  std::vector<std::string> log_lines() const {
    std::lock_guard lock(log_mutex_);
    return log_lines_;
  }
  bool logged(std::string_view event) const {
    for (const auto& line : log_lines()) {
      if (line.substr(0, line.find(' ')) == event) return true;
    }
    return false;
  }

  bool is_leader() const { return lease_.is_leader(); }
  lease_stats stats() const { return lease_.stats(); }
  const std::string& key() const { return lease_.key(); }
  const std::string& name() const { return name_; }

 private:
  static redis::config make_config(const std::string& url,
                                   std::chrono::milliseconds request_timeout) {
    redis::config cfg = redis::parse_url(url).value();
    cfg.request_timeout = request_timeout;
    return cfg;
  }

  logger make_logger() {
    return logger(
        [this](const log_record& record) {
          std::string line(record.event);
          for (const auto& field : record.fields) {
            line += ' ';
            line += field.key;
            line += '=';
            line += field.value;
          }
          std::lock_guard lock(log_mutex_);
          log_lines_.push_back(std::move(line));
        },
        log_level::debug);
  }

  void on_elected() {
    events_.add(name_ + ":elected");
    if (extra_.on_elected) extra_.on_elected();
  }
  void on_lost(lease_loss_reason reason) {
    events_.add(name_ + ":lost:" + std::string(to_string(reason)));
    if (extra_.on_lost) extra_.on_lost(reason);
  }

  std::string name_;
  event_log& events_;
  mutable std::mutex log_mutex_;
  std::vector<std::string> log_lines_;
  lease_callbacks extra_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  redis::connection conn_;
  leader_lease lease_;
  asio::cancellation_signal stop_signal_;
  std::atomic<bool> finished_{true};
  bool started_ = false;
  std::exception_ptr run_failure_;
  std::unique_ptr<std::promise<void>> resume_;
  std::thread thread_;
};

class LeaderLease : public RedisTest {
 protected:
  std::string url() { return server().unix_url(); }
  std::string stored_token() { return raw().str({"GET", lease_key("sg")}); }
  event_log events_;
};

TEST_F(LeaderLease, AcquiresFreeKey) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));

  EXPECT_EQ(a.key(), "sg:watchdog:leader");
  const std::string token = stored_token();
  EXPECT_EQ(token.size(), 32u);
  const long long ttl = raw().integer({"PTTL", a.key()});
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 500);
  EXPECT_EQ(events_.all(), std::vector<std::string>{"a:elected"});
  EXPECT_EQ(a.stats().acquired, 1u);

  // The log names the term by a prefix of its token, never the whole token.
  EXPECT_TRUE(a.logged("lease_acquired"));
  bool prefix_logged = false;
  for (const auto& line : a.log_lines()) {
    EXPECT_EQ(line.find(token), std::string::npos) << line;
    if (line.find("token_prefix=" + token.substr(0, 8)) != std::string::npos) prefix_logged = true;
  }
  EXPECT_TRUE(prefix_logged);
}

TEST_F(LeaderLease, SecondStaysFollowerWhileFirstRenews) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));
  const std::string token = stored_token();

  lease_node b("b", url(), events_);
  b.start();
  // Three renewals span a whole lease, so the key would have expired
  // without them; b campaigns meanwhile.
  ASSERT_TRUE(wait_for([&] { return a.stats().renewals >= 3; }));
  ASSERT_TRUE(wait_for([&] { return b.stats().campaigns >= 2; }));

  EXPECT_TRUE(a.is_leader());
  EXPECT_FALSE(b.is_leader());
  EXPECT_EQ(b.stats().acquired, 0u);
  EXPECT_EQ(stored_token(), token);
  EXPECT_EQ(events_.all(), std::vector<std::string>{"a:elected"});
}

TEST_F(LeaderLease, ReleaseLetsSecondAcquire) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));
  lease_node b("b", url(), events_);
  b.start();
  ASSERT_TRUE(wait_for([&] { return b.stats().campaigns >= 1; }));

  a.stop();
  auto released = a.release();
  ASSERT_TRUE(released.has_value()) << released.error().what();
  EXPECT_TRUE(*released);
  EXPECT_FALSE(a.is_leader());

  ASSERT_TRUE(wait_for([&] { return b.is_leader(); }));
  const auto order = events_.all();
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0], "a:elected");
  EXPECT_EQ(order[1], "a:lost:released");
  EXPECT_EQ(order[2], "b:elected");
  EXPECT_EQ(a.stats().released, 1u);
}

TEST_F(LeaderLease, StopKeepsKeyUntilRelease) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));
  const std::string token = stored_token();

  a.stop();
  // Stopping ends renewals only; the key stays until it expires or is released.
  EXPECT_EQ(stored_token(), token);
  auto released = a.release();
  ASSERT_TRUE(released.has_value()) << released.error().what();
  EXPECT_TRUE(*released);
  EXPECT_EQ(raw().integer({"EXISTS", a.key()}), 0);
}

TEST_F(LeaderLease, StepsDownWhenKeyOverwritten) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));

  raw().command({"SET", a.key(), "another-holder", "PX", "60000"});
  ASSERT_TRUE(wait_for([&] { return events_.contains("a:lost:renew_rejected"); }));
  EXPECT_FALSE(a.is_leader());

  // a campaigns again but cannot win, and leaves the other holder's key alone.
  const auto campaigns = a.stats().campaigns;
  ASSERT_TRUE(wait_for([&] { return a.stats().campaigns >= campaigns + 2; }));
  EXPECT_FALSE(a.is_leader());
  EXPECT_EQ(a.stats().acquired, 1u);
  EXPECT_EQ(stored_token(), "another-holder");
}

TEST_F(LeaderLease, WinsAgainAfterKeyDeleted) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));
  const std::string first_token = stored_token();

  raw().command({"DEL", a.key()});
  ASSERT_TRUE(wait_for([&] { return a.stats().acquired == 2; }));

  const auto order = events_.all();
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0], "a:elected");
  EXPECT_EQ(order[1], "a:lost:renew_rejected");
  EXPECT_EQ(order[2], "a:elected");
  // Every term has its own token.
  EXPECT_NE(stored_token(), first_token);
}

TEST_F(LeaderLease, PausedLeaderIsNoLeaderOnResume) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));

  a.pause();
  lease_node b("b", url(), events_);
  b.start();
  ASSERT_TRUE(wait_for([&] { return b.is_leader(); }));
  const std::string b_token = stored_token();
  // No code of a ran since b won, yet a reports that it lost.
  EXPECT_FALSE(a.is_leader());

  a.resume();
  EXPECT_FALSE(a.is_leader());
  ASSERT_TRUE(wait_for([&] { return events_.contains("a:lost:deadline_passed"); }));
  EXPECT_LT(events_.index_of("b:elected"), events_.index_of("a:lost:deadline_passed"));
  EXPECT_EQ(a.stats().deadline_expiries, 1u);

  // a's cleanup after the pause must not touch b's key.
  ASSERT_TRUE(wait_for([&] { return a.stats().campaigns >= 2; }));
  EXPECT_EQ(stored_token(), b_token);
  EXPECT_TRUE(b.is_leader());
  EXPECT_FALSE(a.is_leader());
}

TEST_F(LeaderLease, StepsDownWhileRenewalInFlight) {
  // The request timeout is far longer than the lease, so a renewal sent to
  // the stopped server stays in flight until the server runs again.
  lease_node a("a", url(), events_, short_lease(), {}, 60s);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));

  server().pause();
  const bool lost = wait_for([&] { return events_.contains("a:lost:deadline_passed"); });
  const bool leader_while_stopped = a.is_leader();
  const lease_stats stats_while_stopped = a.stats();
  server().resume();
  ASSERT_TRUE(lost);
  EXPECT_FALSE(leader_while_stopped);
  // The deadline ended the term before any renewal reply came.
  EXPECT_EQ(stats_while_stopped.renew_failures, 0u);

  // Once the server runs again, the late renewal gets its reply, and a
  // campaigns and wins a new term.
  ASSERT_TRUE(wait_for([&] { return a.stats().acquired == 2; }));
  EXPECT_TRUE(a.is_leader());
}

TEST_F(LeaderLease, StepsDownWhenRenewalTimesOut) {
  // A request timeout shorter than the lease: the renewal fails before the
  // deadline and ends the term as a failed renewal.
  lease_options options = short_lease();
  options.lease = 2000ms;
  lease_node a("a", url(), events_, options, {}, 200ms);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));

  server().pause();
  const bool lost = wait_for([&] { return events_.contains("a:lost:renew_failed"); });
  const bool leader_while_stopped = a.is_leader();
  server().resume();
  ASSERT_TRUE(lost);
  EXPECT_FALSE(leader_while_stopped);

  // The timed-out renewal may have run, so a deletes its own token before
  // campaigning again instead of waiting for the key to expire.
  ASSERT_TRUE(wait_for([&] { return a.stats().acquired == 2; }));
  EXPECT_TRUE(a.is_leader());
  EXPECT_TRUE(a.logged("lease_stale_token_deleted"));
  EXPECT_TRUE(a.logged("lease_lost"));
}

TEST_F(LeaderLease, ReleaseKeepsAnotherHoldersKey) {
  lease_node a("a", url(), events_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));
  a.stop();

  raw().command({"SET", a.key(), "another-holder", "PX", "60000"});
  auto released = a.release();
  ASSERT_TRUE(released.has_value()) << released.error().what();
  EXPECT_FALSE(*released);
  EXPECT_EQ(stored_token(), "another-holder");
  EXPECT_FALSE(a.is_leader());
}

TEST_F(LeaderLease, ReleaseWithoutTermDeletesNothing) {
  raw().command({"SET", lease_key("sg"), "another-holder", "PX", "60000"});
  lease_node a("a", url(), events_);
  auto released = a.release();
  ASSERT_TRUE(released.has_value()) << released.error().what();
  EXPECT_FALSE(*released);
  EXPECT_EQ(stored_token(), "another-holder");
  EXPECT_TRUE(events_.all().empty());
}

TEST_F(LeaderLease, PrefixNamesKey) {
  lease_node a("a", url(), events_, short_lease("other"));
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }));
  EXPECT_EQ(raw().str({"GET", "other:watchdog:leader"}).size(), 32u);
  EXPECT_EQ(raw().integer({"EXISTS", "sg:watchdog:leader"}), 0);
}

// ---------------------------------------------------------------------------
// Several leases competing, each on its own thread.

class LeaderLeaseConcurrency : public LeaderLease {};

TEST_F(LeaderLeaseConcurrency, OneWinnerAmongSimultaneousCampaigns) {
  // A longer lease and a short retry interval: the followers campaign many
  // times while the winner's term lasts.
  lease_options options = short_lease();
  options.lease = 2000ms;
  options.retry_interval = 100ms;

  constexpr int kNodes = 6;
  std::vector<std::unique_ptr<lease_node>> nodes;
  for (int i = 0; i < kNodes; ++i) {
    nodes.push_back(
        std::make_unique<lease_node>("n" + std::to_string(i), url(), events_, options));
  }
  for (auto& node : nodes) node->start();

  // Wait until one node won and every other one lost at least three campaigns.
  ASSERT_TRUE(wait_for([&] {
    int leaders = 0;
    int patient_followers = 0;
    for (auto& node : nodes) {
      const lease_stats stats = node->stats();
      if (stats.acquired > 0) ++leaders;
      if (stats.acquired == 0 && stats.campaigns >= 3) ++patient_followers;
    }
    return leaders >= 1 && leaders + patient_followers == kNodes;
  }));

  int winners = 0;
  for (auto& node : nodes) winners += static_cast<int>(node->stats().acquired);
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(events_.all().size(), 1u);
}

TEST_F(LeaderLeaseConcurrency, NoOverlapAcrossHandovers) {
  // Each new leader stalls its own thread for longer than the lease before
  // returning from on_elected, so the lease changes hands again and again.
  // At every election no other node may consider itself leader.
  constexpr int kNodes = 4;
  constexpr int kElections = 6;
  std::atomic<int> elections{0};
  std::atomic<int> overlaps{0};
  std::vector<std::unique_ptr<lease_node>> nodes(kNodes);
  // The callbacks read `nodes`: stop every run before the vector goes away.
  struct stop_all {
    std::vector<std::unique_ptr<lease_node>>& nodes;
    ~stop_all() {
      for (auto& node : nodes) {
        if (node) node->stop();
      }
    }
  } stopper{nodes};

  for (int i = 0; i < kNodes; ++i) {
    lease_callbacks extra;
    extra.on_elected = [&, i] {
      for (int j = 0; j < kNodes; ++j) {
        if (j != i && nodes[j]->is_leader()) ++overlaps;
      }
      if (++elections <= kElections) std::this_thread::sleep_for(800ms);
    };
    nodes[i] = std::make_unique<lease_node>("n" + std::to_string(i), url(), events_,
                                            short_lease(), extra);
  }
  for (auto& node : nodes) node->start();

  ASSERT_TRUE(wait_for([&] { return elections.load() > kElections; }));
  EXPECT_EQ(overlaps.load(), 0);
}

}  // namespace
}  // namespace tracewatch
