#include "tracewatch/redis/detail/resp_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

#include <fmt/format.h>
#include <hiredis/read.h>

namespace tracewatch::redis::detail {
namespace {

// An array header only reserves this many elements up front; the vector
// grows as elements really arrive, so a header alone allocates little.
constexpr std::size_t kMaxReservedElements = 1024;

// Maximum size of a valid bulk length line: '-1' or up to 20 digits, then CRLF.
constexpr std::size_t kMaxLengthLineBytes = 24;

void clear_reply(reply& r) noexcept {
  r.type = reply::kind::nil;
  r.integer = 0;
  r.str.clear();
  r.elements.clear();
}

}  // namespace

// The hiredis reply-object functions. Each returns the reply object for the
// task, or NULL to reject the input: hiredis then fails with "Out of
// memory", which next() replaces by the message in limit_error_.
//
// A root object is the reader's root_. Any other object is appended to its
// parent array, because elements arrive in order. An open array is always
// the last element of its own parent, so the pointers that hiredis keeps on
// its task stack stay valid while later siblings are appended.
struct resp_reader::callbacks {
  static resp_reader& owner(const redisReadTask* task) {
    return *static_cast<resp_reader*>(task->privdata);
  }

  // Adds `bytes` to the estimated size of the reply being built.
  static bool charge(resp_reader& self, std::size_t bytes) {
    self.reply_bytes_ += bytes;
    if (self.reply_bytes_ <= self.limits_.max_reply_bytes) return true;
    self.limit_error_ = fmt::format(
        "reply larger than {} bytes (parser_limits::max_reply_bytes); raise the limit or "
        "fetch the data in smaller parts",
        self.limits_.max_reply_bytes);
    return false;
  }

  static reply* place(const redisReadTask* task, reply::kind kind, std::size_t bytes) {
    resp_reader& self = owner(task);
    if (task->parent == nullptr) self.reply_bytes_ = 0;
    if (!charge(self, sizeof(reply) + bytes)) return nullptr;

    reply* target = nullptr;
    if (task->parent == nullptr) {
      target = &self.root_;
    } else {
      auto* parent = static_cast<reply*>(task->parent->obj);
      target = &parent->elements.emplace_back();
    }
    target->type = kind;
    return target;
  }

  static void* create_string(const redisReadTask* task, char* data, size_t length) {
    resp_reader& self = owner(task);
    reply::kind kind = reply::kind::string;
    if (task->type == REDIS_REPLY_STATUS) kind = reply::kind::status;
    if (task->type == REDIS_REPLY_ERROR) kind = reply::kind::error;

    if (kind == reply::kind::string && length > self.limits_.max_bulk_bytes) {
      self.limit_error_ = bulk_too_long(self, length);
      return nullptr;
    }
    // hiredis 0.14 skips the two bytes after a bulk body without checking
    // them. They are in its buffer, so a body longer than declared is caught
    // here instead of being returned cut short.
    if (kind == reply::kind::string && (data[length] != '\r' || data[length + 1] != '\n')) {
      self.limit_error_ = fmt::format("bulk string of {} bytes is not followed by CRLF", length);
      return nullptr;
    }
    if (kind != reply::kind::string && length > self.limits_.max_line_bytes) {
      self.limit_error_ = line_too_long(self);
      return nullptr;
    }

    reply* target = place(task, kind, length);
    if (target == nullptr) return nullptr;
    target->str.assign(data, length);
    return target;
  }

  static void* create_array(const redisReadTask* task, int elements) {
    resp_reader& self = owner(task);
    if (elements < 0 || static_cast<std::size_t>(elements) > self.limits_.max_array_elements) {
      self.limit_error_ = fmt::format(
          "array header of {} elements is over the limit of {} "
          "(parser_limits::max_array_elements)",
          elements, self.limits_.max_array_elements);
      return nullptr;
    }
    reply* target = place(task, reply::kind::array, 0);
    if (target == nullptr) return nullptr;
    target->elements.reserve(std::min(static_cast<std::size_t>(elements), kMaxReservedElements));
    return target;
  }

  static void* create_integer(const redisReadTask* task, long long value) {
    reply* target = place(task, reply::kind::integer, 0);
    if (target != nullptr) target->integer = value;
    return target;
  }

  static void* create_nil(const redisReadTask* task) { return place(task, reply::kind::nil, 0); }

  // hiredis 0.14 frees only root objects (on an error, or when the reader is
  // freed mid-reply), and every root object is some reader's root_.
  static void free_object(void* object) { clear_reply(*static_cast<reply*>(object)); }

  static std::string bulk_too_long(const resp_reader& self, std::size_t length) {
    return fmt::format(
        "bulk string of {} bytes is over the limit of {} (parser_limits::max_bulk_bytes); "
        "raise the limit or store smaller values",
        length, self.limits_.max_bulk_bytes);
  }

  static std::string line_too_long(const resp_reader& self) {
    return fmt::format("reply line longer than {} bytes (parser_limits::max_line_bytes)",
                       self.limits_.max_line_bytes);
  }
};

namespace {

redisReplyObjectFunctions reply_functions = {
    resp_reader::callbacks::create_string, resp_reader::callbacks::create_array,
    resp_reader::callbacks::create_integer, resp_reader::callbacks::create_nil,
    resp_reader::callbacks::free_object};

redisReader* make_reader(resp_reader* owner) {
  redisReader* reader = redisReaderCreateWithFunctions(&reply_functions);
  if (reader == nullptr) throw std::bad_alloc();
  reader->privdata = owner;
  return reader;
}

}  // namespace

resp_reader::resp_reader(const parser_limits& limits)
    : limits_(limits), reader_(make_reader(this)) {}

resp_reader::~resp_reader() { redisReaderFree(reader_); }

void resp_reader::reset() {
  redisReaderFree(reader_);
  reader_ = nullptr;
  clear_reply(root_);
  reader_ = make_reader(this);
  reply_bytes_ = 0;
  limit_error_.clear();
  failed_ = false;
  failure_.clear();
}

std::size_t resp_reader::buffered_bytes() const noexcept {
  if (reader_->buf == nullptr) return 0;
  return reader_->len - reader_->pos;
}

error resp_reader::fail(std::string message) {
  if (!failed_) {
    failed_ = true;
    failure_ = "invalid reply from Redis: " + std::move(message);
  }
  return error(errc::protocol_error, failure_);
}

result<void> resp_reader::feed(std::string_view bytes) {
  if (failed_) return fail({});
  if (bytes.empty()) return {};
  if (buffered_bytes() + bytes.size() > limits_.max_buffered_bytes) {
    return fail(fmt::format(
        "more than {} bytes of unparsed reply data (parser_limits::max_buffered_bytes)",
        limits_.max_buffered_bytes));
  }
  if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK) {
    return fail(reader_->errstr);
  }
  return {};
}

result<bool> resp_reader::next(reply& out) {
  if (failed_) return fail({});

  void* object = nullptr;
  if (redisReaderGetReply(reader_, &object) != REDIS_OK) {
    // A callback that rejected the input left its reason; hiredis only
    // reports "Out of memory" for it.
    if (!limit_error_.empty()) return fail(limit_error_);
    return fail(reader_->errstr);
  }
  if (object == nullptr) {
    auto checked = check_incomplete();
    if (!checked) return checked.error();
    return false;
  }

  out = std::move(root_);
  clear_reply(root_);
  return true;
}

// hiredis waits for a complete line or bulk before it calls a callback, so
// an endless line or a huge bulk would be buffered without bound. This
// inspects the task hiredis is waiting on and rejects what can no longer
// become a valid reply within the limits.
result<void> resp_reader::check_incomplete() {
  if (reader_->ridx < 0 || reader_->buf == nullptr) return {};
  const redisReadTask& task = reader_->rstack[reader_->ridx];
  const char* begin = reader_->buf + reader_->pos;
  const std::size_t available = reader_->len - reader_->pos;

  switch (task.type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_ARRAY:
      // Waiting for the end of a line (an array task on the stack top has
      // not read its header yet).
      if (available > limits_.max_line_bytes) return fail(callbacks::line_too_long(*this));
      return {};

    case REDIS_REPLY_STRING: {
      // Waiting for the length line or for the body.
      const auto* line_end = static_cast<const char*>(
          std::memchr(begin, '\r', std::min(available, kMaxLengthLineBytes)));
      if (line_end == nullptr) {
        if (available >= kMaxLengthLineBytes) return fail("bulk length line is too long");
        return {};
      }
      long long length = 0;
      auto [end, ec] = std::from_chars(begin, line_end, length);
      if (ec != std::errc() || end != line_end) return {};  // hiredis reports it once complete
      if (length > 0 && static_cast<unsigned long long>(length) > limits_.max_bulk_bytes) {
        return fail(callbacks::bulk_too_long(*this, static_cast<std::size_t>(length)));
      }
      return {};
    }

    default:
      return {};
  }
}

}  // namespace tracewatch::redis::detail
