// Error codes of every tracewatch operation, in one std::error_code category.
//
// The values are grouped by what the caller should do about them:
//   - retry: the same call may succeed later, once Redis is reachable again;
//   - fix the input: the call was rejected before anything was written;
//   - give up or inspect: retrying the same call returns the same error.
// is_retryable() tells the first group apart.

#pragma once

#include <string>
#include <system_error>

#include <boost/system/result.hpp>

namespace tracewatch {

enum class errc {
  // --- Retry -------------------------------------------------------------
  not_connected = 1,  // no connection to Redis now; the request was never sent
  connection_lost,    // the connection broke after the request was sent; it may have run
  timeout,            // no reply within the time limit; the request may have run
  cluster_down,       // the cluster reported CLUSTERDOWN or TRYAGAIN past the retry budget

  // --- Fix the input -----------------------------------------------------
  invalid_argument,   // a value is malformed or out of range; nothing was written
  invalid_trace_id,   // the text is not a canonical UUID
  reserved_field,     // a metadata field uses a name the registry writes itself
  limit_exceeded,     // a field count, name length or value size is over its limit
  invalid_url,        // the Redis URL cannot be parsed or uses an unsupported scheme
  cross_slot,         // the keys of one request hash to different cluster slots

  // --- Give up or inspect ------------------------------------------------
  closed,             // the connection was closed by its owner
  protocol_error,     // the server sent bytes that are not valid RESP2, or over a parser limit
  server_error,       // Redis replied with an error; the message keeps the server's text
  auth_failed,        // AUTH was rejected: wrong user name or password
  tls_unsupported,    // rediss:// was requested but this build has no TLS transport
  trace_exists,       // create: a trace with this id is already registered
  trace_not_found,    // the trace hash does not exist (never created, or expired)
  already_terminal,   // the trace already reached COMPLETED or ERRORED
  layout_mismatch,    // stored layout settings (such as the shard count) differ from ours
  unsupported,        // the operation is not available in this layout or deployment
};

const std::error_category& tracewatch_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), tracewatch_category()};
}

// True for the errors in the "retry" group above.
bool is_retryable(std::error_code ec) noexcept;

// An error code with a message that names the offending value and, where
// the caller can act, the remedy. The message never contains a password.
struct error {
  std::error_code code;
  std::string message;  // may be empty; what() then falls back to code.message()

  error() = default;
  error(errc e) : code(make_error_code(e)) {}  // NOLINT: implicit on purpose
  error(std::error_code c) : code(c) {}        // NOLINT: implicit on purpose
  error(std::error_code c, std::string m) : code(c), message(std::move(m)) {}
  error(errc e, std::string m) : code(make_error_code(e)), message(std::move(m)) {}

  std::string what() const { return message.empty() ? code.message() : message; }
  friend bool operator==(const error& e, errc value) { return e.code == make_error_code(value); }
};

// Throws std::system_error; called by result<T>::value() on an error.
[[noreturn]] void throw_exception_from_error(const error& e,
                                             const boost::source_location& location);

// The result of an operation that may fail: a T, or an error.
template <class T>
using result = boost::system::result<T, error>;

}  // namespace tracewatch

template <>
struct std::is_error_code_enum<tracewatch::errc> : std::true_type {};
