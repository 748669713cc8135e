// Runs the built `tracewatch` program in a test. Only the Redis suites'
// build defines TRACEWATCH_CLI_PATH, so this header is for them.

#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace tracewatch::testing {

struct cli_result {
  int exit_code = -1;  // -1 when the program did not exit normally
  std::string out;
  std::string err;
};

// Runs `tracewatch <arguments>` through the shell and collects its output.
inline cli_result run_cli(const std::string& arguments) {
  const std::string err_path =
      ::testing::TempDir() + "cli_stderr_" + std::to_string(::getpid());
  const std::string command =
      std::string(TRACEWATCH_CLI_PATH) + " " + arguments + " 2>'" + err_path + "'";

  cli_result result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::vector<char> chunk(1 << 16);
  while (const std::size_t n = std::fread(chunk.data(), 1, chunk.size(), pipe)) {
    result.out.append(chunk.data(), n);
  }
  const int status = ::pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);

  std::ifstream err_file(err_path);
  std::stringstream err;
  err << err_file.rdbuf();
  result.err = err.str();
  std::remove(err_path.c_str());
  return result;
}

}  // namespace tracewatch::testing
