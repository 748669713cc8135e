// A RESP2 reply value and a request builder.

#pragma once

#include <charconv>
#include <concepts>
#include <cstring>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tracewatch::redis {

// One RESP2 reply. Error replies are values too: a command in a pipeline that
// fails does not fail the other commands of the same request.
struct reply {
  enum class kind : std::uint8_t { nil, status, error, integer, string, array };

  kind type = kind::nil;
  std::int64_t integer = 0;     // for kind::integer
  std::string str;              // for status, error and string
  std::vector<reply> elements;  // for kind::array

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
  bool is_array() const noexcept { return type == kind::array; }
  bool is_integer() const noexcept { return type == kind::integer; }
  bool is_string() const noexcept { return type == kind::string || type == kind::status; }
};

// One or more commands sent together. Arguments are binary-safe.
//
// Example:
//   request req;
//   req.push("HSET", "k", "f", "v");
//   req.push("EXPIRE", "k", 60);
//   // co_await conn.async_exec(req) returns two replies, in order.
class request {
 public:
  // Appends one command. Each argument is a string-like value or an integer.
  template <class... Args>
  request& push(std::string_view command, const Args&... args) {
    begin_command(1 + sizeof...(Args));
    append_arg(command);
    (append_arg(args), ...);
    return *this;
  }

  // Appends one command whose arguments are `head...` followed by every
  // element of `range`.
  template <class Range, class... Head>
  request& push_range(std::string_view command, const Range& range, const Head&... head) {
    std::size_t count = 0;
    for (const auto& item : range) {
      (void)item;
      ++count;
    }
    begin_command(1 + sizeof...(Head) + count);
    append_arg(command);
    (append_arg(head), ...);
    for (const auto& item : range) append_arg(item);
    return *this;
  }

  std::size_t size() const noexcept { return commands_; }
  bool empty() const noexcept { return commands_ == 0; }
  std::string_view payload() const noexcept { return payload_; }
  void clear() noexcept {
    payload_.clear();
    commands_ = 0;
  }

 private:
  void begin_command(std::size_t argc) {
    ++commands_;
    append_header('*', argc);
  }
  // Appends "<marker><count>\r\n" in one resize. Writing through data()
  // instead of chained += also keeps GCC 12 from false -Wrestrict warnings.
  void append_header(char marker, std::size_t count) {
    char buf[24];
    buf[0] = marker;
    auto [end, ec] = std::to_chars(buf + 1, buf + sizeof buf - 2, count);
    (void)ec;
    *end++ = '\r';
    *end++ = '\n';
    const auto length = static_cast<std::size_t>(end - buf);
    const std::size_t old_size = payload_.size();
    payload_.resize(old_size + length);
    std::memcpy(payload_.data() + old_size, buf, length);
  }
  void append_arg(std::string_view arg) {
    append_header('$', arg.size());
    const std::size_t old_size = payload_.size();
    payload_.resize(old_size + arg.size() + 2);
    char* out = payload_.data() + old_size;
    if (!arg.empty()) std::memcpy(out, arg.data(), arg.size());
    out[arg.size()] = '\r';
    out[arg.size() + 1] = '\n';
  }
  void append_arg(const std::string& arg) { append_arg(std::string_view(arg)); }
  void append_arg(const char* arg) { append_arg(std::string_view(arg)); }
  template <std::integral T>
  void append_arg(T value) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    (void)ec;
    append_arg(std::string_view(buf, static_cast<std::size_t>(end - buf)));
  }

  std::string payload_;
  std::size_t commands_ = 0;
};

}  // namespace tracewatch::redis
