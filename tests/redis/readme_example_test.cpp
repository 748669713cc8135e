// The README's library example is examples/quickstart.cpp verbatim, and it
// runs against a real Redis.

#include <fstream>
#include <sstream>

#include "support/test_support.hpp"

namespace tracewatch {
namespace {

using testing::RedisTest;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ReadmeExample, MatchesExampleSource) {
  const std::string readme = read_file(std::string(TRACEWATCH_SOURCE_DIR) + "/README.md");
  const std::string example = read_file(std::string(TRACEWATCH_SOURCE_DIR) + "/examples/quickstart.cpp");
  ASSERT_FALSE(example.empty());
  EXPECT_NE(readme.find(example), std::string::npos)
      << "README.md must contain examples/quickstart.cpp verbatim";
}

TEST_F(RedisTest, ReadmeExampleCompletesTrace) {
  const std::string command =
      std::string(TRACEWATCH_QUICKSTART_PATH) + " " + server().unix_url() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buf[256] = {};
  std::string out;
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << out;
  ASSERT_GE(out.size(), 37u) << out;
  const std::string id = out.substr(0, 36);
  EXPECT_NE(out.find("COMPLETED"), std::string::npos) << out;
  EXPECT_EQ(raw().str({"HGET", "sg:trace:" + id, "state"}), "COMPLETED");
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 0);
}

}  // namespace
}  // namespace tracewatch
