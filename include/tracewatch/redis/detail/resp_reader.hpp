// An incremental RESP2 reply parser with limits on what a server may send.
//
// It wraps hiredis 0.14's redisReader with reply-object callbacks that build
// `reply` values directly. hiredis trusts the server: it allocates for any
// array header and buffers any bulk string until it is complete. The
// callbacks and the checks between steps reject, before anything is
// allocated for them:
//   - an array header over `max_array_elements`;
//   - a bulk length over `max_bulk_bytes` (checked as soon as the length
//     line is in, so an endless bulk is not buffered);
//   - a status, error or integer line over `max_line_bytes`;
//   - unparsed input over `max_buffered_bytes`;
//   - a reply whose estimated memory is over `max_reply_bytes`.
// hiredis 0.14 has a fixed stack of nine read tasks, so arrays nested deeper
// than seven levels are a parse error ("No support for nested multi bulk
// replies with depth > 7"); that is reported like any other protocol error.
//
// Every error is fatal: the reader keeps failing until reset(), because the
// byte stream cannot be resynchronised. The connection then drops the socket.
//
// Example:
//   resp_reader reader(parser_limits{});
//   reader.feed(":42\r\n+OK\r\n");
//   reply r;
//   reader.next(r);  // true, r.integer == 42
//   reader.next(r);  // true, r.str == "OK"
//   reader.next(r);  // false: more input needed
//
// Thread safety: none; one reader belongs to one connection.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "tracewatch/error.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/redis/reply.hpp"

struct redisReader;  // <hiredis/read.h>

namespace tracewatch::redis::detail {

class resp_reader {
 public:
  explicit resp_reader(const parser_limits& limits);
  ~resp_reader();
  resp_reader(const resp_reader&) = delete;
  resp_reader& operator=(const resp_reader&) = delete;

  // Appends `bytes` to the unparsed input. Returns errc::protocol_error when
  // the unparsed input would exceed max_buffered_bytes or the reader has
  // already failed.
  result<void> feed(std::string_view bytes);

  // Parses the next complete reply into `out`. Returns true when a reply was
  // parsed, false when more input is needed, and errc::protocol_error (with
  // hiredis's or the limit's message) when the input is invalid.
  result<bool> next(reply& out);

  // Drops all input and any error, ready for a new connection.
  void reset();

  // Bytes fed but not yet consumed by a complete reply.
  std::size_t buffered_bytes() const noexcept;

  // Called by the hiredis callbacks (public only for them).
  struct callbacks;

 private:
  result<void> check_incomplete();
  error fail(std::string message);

  parser_limits limits_;
  redisReader* reader_ = nullptr;
  reply root_;                   // the reply being built; children live inside it
  std::size_t reply_bytes_ = 0;  // estimated memory of root_ so far
  std::string limit_error_;      // why a callback rejected the input
  bool failed_ = false;
  std::string failure_;          // message of the first error, repeated until reset()
};

}  // namespace tracewatch::redis::detail
