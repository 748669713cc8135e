#include "tracewatch/local_redis.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

namespace tracewatch {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Asks the kernel for a free loopback port. Another process could take it
// before redis-server binds it; launch() then fails and start() retries.
std::uint16_t pick_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Sends PING over the unix socket with a blocking client; true on +PONG, or
// on -NOAUTH from a server started with --requirepass (it is up, and only
// the caller knows the password).
bool answers_ping(const std::string& socket_path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    static constexpr char kPing[] = "PING\r\n";
    if (::write(fd, kPing, sizeof kPing - 1) == static_cast<ssize_t>(sizeof kPing - 1)) {
      char buf[16] = {};
      ssize_t n = ::read(fd, buf, sizeof buf - 1);
      const std::string_view answer(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
      ok = answer.starts_with("+PONG") || answer.starts_with("-NOAUTH");
    }
  }
  ::close(fd);
  return ok;
}

bool found_on_path(const std::string& executable) {
  if (executable.find('/') != std::string::npos) return ::access(executable.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && ::access((dir + "/" + executable).c_str(), X_OK) == 0) return true;
  }
  return false;
}

std::string read_tail(const std::string& file, std::size_t max_bytes) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  return text;
}

}  // namespace

result<local_redis> local_redis::start(options opts) {
  if (!found_on_path(opts.executable)) {
    return error(errc::unsupported,
                 fmt::format("{} not found on PATH; install it with "
                             "'sudo apt-get install redis-server' or pass --redis URL",
                             opts.executable));
  }

  local_redis server;
  server.opts_ = std::move(opts);
  std::string pattern = (fs::temp_directory_path() / "tracewatch-redis-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return error(std::error_code(errno, std::generic_category()),
                 fmt::format("cannot create a temporary directory from {}: {}", pattern,
                             std::strerror(errno)));
  }
  server.dir_ = pattern;
  server.socket_path_ = server.dir_ + "/redis.sock";

  // A TCP port picked here can be taken by someone else before the server
  // binds it, so a failed launch is retried with a new port.
  constexpr int kAttempts = 5;
  error last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (server.opts_.tcp) server.port_ = pick_free_port();
    auto launched = server.launch();
    if (launched) return server;
    last = launched.error();
    server.stop();
  }
  return last;
}

result<void> local_redis::launch() {
  std::vector<std::string> args = {
      opts_.executable, "--port", std::to_string(port_), "--bind", "127.0.0.1",
      "--unixsocket", socket_path_, "--unixsocketperm", "700", "--dir", dir_,
      "--save", "", "--appendonly", "no", "--daemonize", "no",
      "--logfile", dir_ + "/redis.log", "--protected-mode", "no"};
  args.insert(args.end(), opts_.extra_args.begin(), opts_.extra_args.end());

  // Built before fork: in the child of a multi-threaded parent only
  // async-signal-safe calls are allowed, and malloc is not one of them.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  [[maybe_unused]] const pid_t parent = ::getpid();

  pid_t child = ::fork();
  if (child < 0) {
    return error(std::error_code(errno, std::generic_category()), "fork failed");
  }
  if (child == 0) {
    // Child: own process group so that a Ctrl-C aimed at the parent's
    // terminal group does not kill the server before the parent cleans up.
    ::setpgid(0, 0);
#if defined(__linux__)
    // Die with the thread that forked, so that a crashed parent leaves no
    // server behind. A parent that died before prctl() ran would go
    // unnoticed, hence the check of getppid() after it.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
#endif
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
    }
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = child;

  auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (answers_ping(socket_path_)) return {};
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return error(errc::unsupported,
                   fmt::format("redis-server exited during start-up; its log ends with:\n{}",
                               read_tail(dir_ + "/redis.log", 2000)));
    }
    std::this_thread::sleep_for(10ms);
  }
  return error(errc::timeout, fmt::format("redis-server did not answer PING within {} ms",
                                          opts_.start_timeout.count()));
}

local_redis::local_redis(local_redis&& other) noexcept
    : opts_(std::move(other.opts_)),
      dir_(std::move(other.dir_)),
      socket_path_(std::move(other.socket_path_)),
      port_(other.port_),
      pid_(other.pid_) {
  other.pid_ = -1;
  other.dir_.clear();
}

local_redis& local_redis::operator=(local_redis&& other) noexcept {
  if (this != &other) {
    this->~local_redis();
    new (this) local_redis(std::move(other));
  }
  return *this;
}

local_redis::~local_redis() {
  stop();
  if (!dir_.empty()) {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
}

std::string local_redis::url() const {
  if (port_ != 0) return fmt::format("redis://127.0.0.1:{}", port_);
  return unix_url();
}

std::string local_redis::unix_url() const { return "unix://" + socket_path_; }

void local_redis::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void local_redis::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void local_redis::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

void local_redis::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(5ms);
  }
  kill_hard();
}

result<void> local_redis::restart() {
  stop();
  std::error_code ignored;
  fs::remove(socket_path_, ignored);
  return launch();
}

}  // namespace tracewatch
