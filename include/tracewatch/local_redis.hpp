// A private redis-server process: started from PATH on a unix socket in a
// fresh temporary directory (or on a free loopback TCP port), stopped and
// cleaned up by the destructor. `tracewatch demo` runs on one, and so does
// every test that needs Redis.
//
// On Linux the server gets SIGKILL when its parent dies, also by a crash or
// SIGKILL, so no server outlives the process that started it.
// NOTE: the kernel (PR_SET_PDEATHSIG) watches the *thread* that called
// start() or restart(), not the process. Call them from a thread that lives
// as long as the server, such as the main thread: a server started from a
// short-lived worker thread is killed when that thread ends.

#pragma once

#include <chrono>
#include <string>
#include <sys/types.h>
#include <vector>

#include "tracewatch/error.hpp"

namespace tracewatch {

class local_redis {
 public:
  struct options {
    bool tcp = false;                     // also listen on a free 127.0.0.1 port
    std::vector<std::string> extra_args;  // appended to the command line, e.g. {"--requirepass", "pw"}
    std::chrono::milliseconds start_timeout{10000};
    std::string executable = "redis-server";
  };

  // Starts the server and waits until it answers PING. Returns an error
  // naming the cause (redis-server missing from PATH, with the command that
  // installs it; or the server exiting early, with its log).
  static result<local_redis> start(options opts);
  static result<local_redis> start() { return start(options{}); }

  local_redis(local_redis&& other) noexcept;
  local_redis& operator=(local_redis&& other) noexcept;
  ~local_redis();  // stop() and remove the temporary directory

  const std::string& socket_path() const noexcept { return socket_path_; }
  std::uint16_t port() const noexcept { return port_; }  // 0 without options::tcp
  // `unix:///…/redis.sock`, or `redis://127.0.0.1:<port>` with options::tcp.
  std::string url() const;
  std::string unix_url() const;
  pid_t pid() const noexcept { return pid_; }
  const std::string& directory() const noexcept { return dir_; }

  // Signals: SIGKILL (crash), SIGSTOP (pause), SIGCONT (resume).
  void kill_hard();
  void pause();
  void resume();
  // Stops the server (SIGTERM, then SIGKILL after 5 s) and reaps it.
  void stop();
  // Starts the server again on the same socket and port; the data is lost
  // unless the extra arguments enable persistence. The new server dies with
  // the calling thread (see the note at the top).
  result<void> restart();

 private:
  local_redis() = default;
  result<void> launch();

  options opts_;
  std::string dir_;
  std::string socket_path_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tracewatch
