// Child processes for tests that run the built program: started with fork
// and exec, their stdout and stderr on pipes the test reads, and killed and
// reaped by the destructor, also when an assertion ends the test early.

#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace tracewatch::testing {

class child_process {
 public:
  struct exit_status {
    int code = -1;   // the exit code, -1 when a signal ended the process
    int signal = 0;  // the signal that ended it, 0 when it exited
  };

  // Starts `argv[0]` (a path, not searched on PATH) with the test's
  // environment plus `extra_env` ("NAME=value" entries) and stdin on
  // /dev/null. Throws std::runtime_error when pipe2 or fork fails. A
  // failed exec shows as exit code 127.
  //
  // On Linux the child gets SIGKILL when the thread that constructed this
  // object ends (PR_SET_PDEATHSIG), so a crashed test leaves no process
  // behind. Construct it on the test's main thread.
  explicit child_process(std::vector<std::string> argv, std::vector<std::string> extra_env = {});

  // Kills the process with SIGKILL (a stopped one too) and reaps it,
  // unless it was reaped already.
  ~child_process();

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }

  // Sends signal `number`. Does nothing once the process was reaped.
  void send_signal(int number);

  // Kills the process with SIGKILL and reaps it.
  exit_status kill_hard();

  // Reaps the process if it has exited. Returns true while it runs or is
  // stopped, false once it has exited.
  bool running();

  // Appends the output that is available now to out() and err(), without
  // waiting. Returns false once both pipes are closed.
  bool read_available();

  // Waits until the process exits, reading its output meanwhile, and
  // reaps it. Kills it with SIGKILL when `hang_guard` passes first.
  exit_status wait(std::chrono::milliseconds hang_guard);

  // The output read so far.
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }

  // The read ends of the pipes that are still open, for poll().
  std::vector<int> open_fds() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  exit_status status_;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

// Waits until `done()` returns true, reading the output of `processes` in
// the meantime so that none of them blocks on a full pipe. Calls `done()`
// at least every 20 ms and whenever output arrived. Returns false when
// `hang_guard` passed first, which only guards against hangs.
bool wait_for(std::span<child_process* const> processes, const std::function<bool()>& done,
              std::chrono::milliseconds hang_guard);

// True while process `pid` exists and is no zombie. Reads /proc, so it also
// works for processes that are not children of the caller.
bool process_exists(pid_t pid);

}  // namespace tracewatch::testing
