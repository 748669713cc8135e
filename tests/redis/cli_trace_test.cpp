// The trace commands of the `tracewatch` program against a real
// redis-server: what they print, their JSON, and exit codes 0, 1 and 2.

#include <boost/json.hpp>

#include "support/cli.hpp"
#include "support/test_support.hpp"

namespace tracewatch {
namespace {

using testing::cli_result;

class CliTrace : public testing::RedisTest {
 protected:
  cli_result tw(const std::string& arguments) {
    return testing::run_cli("--redis '" + server().unix_url() + "' " + arguments);
  }

  // Creates a trace through the program and returns its id.
  std::string create(const std::string& arguments = "") {
    cli_result created = tw("create " + arguments);
    EXPECT_EQ(created.exit_code, 0) << created.err;
    std::string id = created.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }
};

TEST_F(CliTrace, LifecycleThroughTheProgram) {
  const std::string id = create("--state RECEIVED --meta platform=web");
  ASSERT_EQ(id.size(), 36u);

  cli_result got = tw("get " + id + " --json");
  ASSERT_EQ(got.exit_code, 0) << got.err;
  boost::json::object trace = boost::json::parse(got.out).as_object();
  EXPECT_EQ(trace.at("state").as_string(), "RECEIVED");
  EXPECT_EQ(trace.at("metadata").as_object().at("platform").as_string(), "web");

  EXPECT_EQ(tw("advance " + id + " INFERENCE").exit_code, 0);
  EXPECT_EQ(raw().str({"HGET", "sg:trace:" + id, "state"}), "INFERENCE");
  EXPECT_EQ(tw("complete " + id).exit_code, 0);
  EXPECT_EQ(raw().str({"HGET", "sg:trace:" + id, "state"}), "COMPLETED");
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 0);
}

TEST_F(CliTrace, FailStoresTheReason) {
  const std::string id = create();
  cli_result failed = tw("fail " + id + " --reason 'gpu lost'");
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  EXPECT_EQ(raw().str({"HGET", "sg:trace:" + id, "state"}), "ERRORED");
  EXPECT_EQ(raw().str({"HGET", "sg:trace:" + id, "error"}), "gpu lost");
}

TEST_F(CliTrace, SecondTerminalStateExitsOne) {
  const std::string id = create();
  ASSERT_EQ(tw("complete " + id).exit_code, 0);
  cli_result late = tw("fail " + id);
  EXPECT_EQ(late.exit_code, 1);
  EXPECT_NE(late.err.find("already COMPLETED"), std::string::npos) << late.err;
  EXPECT_EQ(raw().str({"HGET", "sg:trace:" + id, "state"}), "COMPLETED");
}

TEST_F(CliTrace, UnknownTraceExitsOne) {
  cli_result missing = tw("get 0190a1b2-c3d4-7e5f-8a9b-000000000001");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
}

TEST_F(CliTrace, StatsJsonCountsActiveTraces) {
  create();
  create("--state INFERENCE");
  cli_result stats = tw("stats --json");
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  boost::json::object counts = boost::json::parse(stats.out).as_object();
  EXPECT_EQ(counts.at("active").as_int64(), 2);
}

TEST_F(CliTrace, BadInputExitsTwoAndWritesNothing) {
  struct bad_case {
    std::string arguments;
    std::string named;  // text the error message must contain
  };
  const std::vector<bad_case> cases = {
      {"create --id not-a-uuid", "not-a-uuid"},
      {"create --state COMPLETED", "COMPLETED"},
      {"create --meta state=x", "state"},
      {"create --meta =x", "name"},
      {"advance 0190a1b2-c3d4-7e5f-8a9b-000000000001 ERRORED", "ERRORED"},
      {"sweep --threshold-s 1e17", "--threshold-s"},
      {"--layout nested stats", "nested"},
  };
  for (const auto& c : cases) {
    cli_result result = tw(c.arguments);
    EXPECT_EQ(result.exit_code, 2) << c.arguments << ": " << result.err;
    EXPECT_NE(result.err.find(c.named), std::string::npos) << c.arguments << ": " << result.err;
  }
  EXPECT_EQ(raw().integer({"DBSIZE"}), 0);
}

TEST_F(CliTrace, TlsUrlExitsTwoWithoutPassword) {
  cli_result result = testing::run_cli("--redis rediss://user:s3cret@127.0.0.1:1 stats");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("rediss://"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("s3cret"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace tracewatch
