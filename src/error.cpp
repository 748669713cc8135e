#include "tracewatch/error.hpp"

namespace tracewatch {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tracewatch"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::not_connected: return "not connected to Redis";
      case errc::connection_lost: return "connection to Redis lost before the reply arrived";
      case errc::timeout: return "Redis request timed out";
      case errc::cluster_down: return "Redis Cluster is down or resharding";
      case errc::invalid_argument: return "invalid argument";
      case errc::invalid_trace_id: return "invalid trace id";
      case errc::reserved_field: return "reserved field name";
      case errc::limit_exceeded: return "limit exceeded";
      case errc::invalid_url: return "invalid Redis URL";
      case errc::cross_slot: return "keys of one request hash to different cluster slots";
      case errc::closed: return "connection closed";
      case errc::protocol_error: return "Redis protocol error";
      case errc::server_error: return "Redis replied with an error";
      case errc::auth_failed: return "Redis authentication failed";
      case errc::tls_unsupported: return "TLS (rediss://) is not supported by this build";
      case errc::trace_exists: return "trace already exists";
      case errc::trace_not_found: return "trace not found";
      case errc::already_terminal: return "trace already finished";
      case errc::layout_mismatch: return "stored layout settings differ";
      case errc::unsupported: return "operation not supported";
    }
    return "unknown tracewatch error";
  }
};

}  // namespace

const std::error_category& tracewatch_category() noexcept {
  static const category instance;
  return instance;
}

bool is_retryable(std::error_code ec) noexcept {
  if (ec.category() != tracewatch_category()) return false;
  switch (static_cast<errc>(ec.value())) {
    case errc::not_connected:
    case errc::connection_lost:
    case errc::timeout:
    case errc::cluster_down:
      return true;
    default:
      return false;
  }
}

void throw_exception_from_error(const error& e, const boost::source_location&) {
  throw std::system_error(e.code, e.what());
}

}  // namespace tracewatch
