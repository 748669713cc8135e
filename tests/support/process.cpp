#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string_view>
#include <thread>

extern char** environ;

namespace tracewatch::testing {
namespace {

std::runtime_error system_error(std::string_view call) {
  return std::runtime_error(std::string(call) + " failed: " + std::strerror(errno));
}

child_process::exit_status decode(int status) {
  child_process::exit_status result;
  if (WIFEXITED(status)) result.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

// Reads what `fd` has now into `text`. Closes it and sets it to -1 at end
// of file or on an error other than EAGAIN or EINTR.
void drain(int& fd, std::string& text) {
  if (fd < 0) return;
  char buffer[8192];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      text.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    ::close(fd);
    fd = -1;
    return;
  }
}

}  // namespace

child_process::child_process(std::vector<std::string> argv, std::vector<std::string> extra_env) {
  if (argv.empty()) throw std::invalid_argument("child_process: argv is empty");

  // Everything the child needs is prepared before fork: between fork and
  // exec a child of a multi-threaded process may only make
  // async-signal-safe calls.
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) env_text.emplace_back(*e);
  env_text.insert(env_text.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> argv_ptrs;
  for (auto& a : argv) argv_ptrs.push_back(a.data());
  argv_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  for (auto& e : env_text) env_ptrs.push_back(e.data());
  env_ptrs.push_back(nullptr);

  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw system_error("pipe2");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw system_error("pipe2");
  }
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ == 0) {
#if defined(__linux__)
    // Die with the test. A test that died before prctl() ran would go
    // unnoticed, hence the check of getppid() after it.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
#else
    (void)parent;
#endif
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execve(argv_ptrs[0], argv_ptrs.data(), env_ptrs.data());
    ::_exit(127);
  }

  const int fork_errno = errno;
  if (devnull >= 0) ::close(devnull);
  ::close(out[1]);
  ::close(err[1]);
  if (pid_ < 0) {
    ::close(out[0]);
    ::close(err[0]);
    errno = fork_errno;
    throw system_error("fork");
  }
  // Non-blocking, so that read_available() never waits.
  ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, ::fcntl(err[0], F_GETFL) | O_NONBLOCK);
  out_fd_ = out[0];
  err_fd_ = err[0];
}

child_process::~child_process() {
  kill_hard();
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void child_process::send_signal(int number) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, number);
}

child_process::exit_status child_process::kill_hard() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    status_ = decode(status);
  }
  return status_;
}

bool child_process::running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == 0 || (reaped < 0 && errno == EINTR)) return true;
  // Any other failure (ECHILD) means there is no such child to wait for.
  reaped_ = true;
  if (reaped == pid_) status_ = decode(status);
  return false;
}

bool child_process::read_available() {
  drain(out_fd_, out_);
  drain(err_fd_, err_);
  return out_fd_ >= 0 || err_fd_ >= 0;
}

child_process::exit_status child_process::wait(std::chrono::milliseconds hang_guard) {
  child_process* self = this;
  const bool exited = wait_for(
      std::span<child_process* const>(&self, 1), [this] { return !running(); }, hang_guard);
  if (!exited) return kill_hard();
  // What it wrote before it exited is still in the pipes.
  read_available();
  return status_;
}

std::vector<int> child_process::open_fds() const {
  std::vector<int> fds;
  if (out_fd_ >= 0) fds.push_back(out_fd_);
  if (err_fd_ >= 0) fds.push_back(err_fd_);
  return fds;
}

bool wait_for(std::span<child_process* const> processes, const std::function<bool()>& done,
              std::chrono::milliseconds hang_guard) {
  const auto deadline = std::chrono::steady_clock::now() + hang_guard;
  while (true) {
    for (child_process* p : processes) p->read_available();
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;

    std::vector<pollfd> fds;
    for (child_process* p : processes) {
      for (int fd : p->open_fds()) fds.push_back({fd, POLLIN, 0});
    }
    constexpr int kPollMs = 20;
    if (fds.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    } else {
      ::poll(fds.data(), fds.size(), kPollMs);
    }
  }
}

bool process_exists(pid_t pid) {
  // The third field of /proc/<pid>/stat is the state: Z is a zombie and X
  // a process being removed. The second field, the command name in
  // brackets, may contain spaces, so the state is read after its last ')'.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto name_end = text.rfind(')');
  if (name_end == std::string::npos || name_end + 2 >= text.size()) return false;
  const char state = text[name_end + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace tracewatch::testing
