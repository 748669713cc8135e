#include "tracewatch/registry.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "scripts.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch {
namespace {

// Script return codes shared by create, advance and finish.
constexpr std::int64_t kScriptNotFound = 0;
constexpr std::int64_t kScriptApplied = 1;
constexpr std::int64_t kScriptTerminal = 2;

// Checks an id and returns its canonical lowercase form.
result<std::string> canonical_id(std::string_view text) {
  auto id = trace_id::parse(text);
  if (!id) return id.error();
  return id->to_string();
}

std::string ttl_text(std::chrono::seconds ttl) { return std::to_string(ttl.count()); }

// The status code and optional text of a {code, text} script reply.
struct script_status {
  std::int64_t code = -1;
  std::string text;
};

result<script_status> read_status(const redis::reply& r) {
  if (!r.is_array() || r.elements.empty() || !r.elements[0].is_integer()) {
    return error(errc::protocol_error, "unexpected reply from a registry script");
  }
  script_status status{r.elements[0].integer, {}};
  if (r.elements.size() > 1) status.text = r.elements[1].str;
  return status;
}

}  // namespace

std::optional<double> parse_timestamp(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

result<std::pair<std::string, std::string>> parse_field_assignment(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos) {
    return error(errc::invalid_argument,
                 fmt::format("invalid metadata '{}': use KEY=VALUE", text));
  }
  return std::pair{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

registry::registry(redis::client& client, registry_options options)
    : client_(client), options_(std::move(options)) {
  if (auto valid = validate(options_); !valid) {
    throw std::invalid_argument(valid.error().what());
  }
  layout_ = make_layout(options_);
  index_kind_ = layout_->index() == index_kind::sorted_set ? "zset" : "set";
}

asio::awaitable<result<double>> registry::async_create(std::string id_text, std::string state,
                                                       metadata fields) {
  // Validate everything before anything is sent.
  auto id = canonical_id(id_text);
  if (!id) co_return id.error();
  // A trace starts unfinished: complete and fail set the terminal states,
  // with finished_at and the terminal TTL.
  if (auto valid = validate_intermediate_state(state); !valid) co_return valid.error();
  if (auto valid = validate_metadata(fields); !valid) co_return valid.error();

  std::string trace_key = layout_->trace_key(*id);
  std::string index_key = layout_->index_key_for(*id);
  std::string ttl = ttl_text(options_.failsafe_ttl);
  std::vector<std::string_view> keys = {trace_key, index_key};
  std::vector<std::string_view> args = {*id, state, ttl, index_kind_};
  args.reserve(args.size() + 2 * fields.size());
  for (const auto& [name, value] : fields) {
    args.push_back(name);
    args.push_back(value);
  }

  auto reply = co_await client_.async_eval(scripts::create(), keys, args);
  if (!reply) co_return reply.error();
  auto status = read_status(*reply);
  if (!status) co_return status.error();
  if (status->code != kScriptApplied) {
    co_return error(errc::trace_exists, fmt::format("trace {} already exists", *id));
  }
  auto created_at = parse_timestamp(status->text);
  if (!created_at) co_return error(errc::protocol_error, "create returned no timestamp");
  co_return *created_at;
}

asio::awaitable<result<std::string>> registry::async_advance(std::string id_text,
                                                             std::string state) {
  auto id = canonical_id(id_text);
  if (!id) co_return id.error();
  if (auto valid = validate_intermediate_state(state); !valid) co_return valid.error();

  std::string trace_key = layout_->trace_key(*id);
  std::vector<std::string_view> keys = {trace_key};
  std::vector<std::string_view> args = {state};
  auto reply = co_await client_.async_eval(scripts::advance(), keys, args);
  if (!reply) co_return reply.error();
  auto status = read_status(*reply);
  if (!status) co_return status.error();

  switch (status->code) {
    case kScriptApplied:
      co_return status->text;
    case kScriptNotFound:
      co_return error(errc::trace_not_found, fmt::format("trace {} not found", *id));
    case kScriptTerminal:
      co_return error(errc::already_terminal,
                      fmt::format("trace {} is already {}; not changed", *id, status->text));
    default:
      co_return error(errc::protocol_error, "unexpected status from the advance script");
  }
}

asio::awaitable<result<finish_outcome>> registry::async_complete(std::string id) {
  co_return co_await async_finish(std::move(id), std::string(kStateCompleted), {});
}

asio::awaitable<result<finish_outcome>> registry::async_fail(std::string id,
                                                             std::string reason) {
  if (auto valid = validate_reason(reason); !valid) co_return valid.error();
  if (reason.empty()) reason = "failed";
  co_return co_await async_finish(std::move(id), std::string(kStateErrored), std::move(reason));
}

asio::awaitable<result<finish_outcome>> registry::async_finish(std::string id_text,
                                                               std::string state,
                                                               std::string reason) {
  auto id = canonical_id(id_text);
  if (!id) co_return id.error();

  std::string trace_key = layout_->trace_key(*id);
  std::string index_key = layout_->index_key_for(*id);
  std::string ttl = ttl_text(options_.terminal_ttl);
  std::vector<std::string_view> keys = {trace_key, index_key};
  std::vector<std::string_view> args = {*id, state, ttl, index_kind_, reason};
  auto reply = co_await client_.async_eval(scripts::finish(), keys, args);
  if (!reply) co_return reply.error();
  auto status = read_status(*reply);
  if (!status) co_return status.error();

  switch (status->code) {
    case kScriptApplied:
      co_return finish_outcome{true, state, status->text};
    case kScriptTerminal:
      co_return finish_outcome{false, status->text, {}};
    case kScriptNotFound:
      co_return error(errc::trace_not_found, fmt::format("trace {} not found", *id));
    default:
      co_return error(errc::protocol_error, "unexpected status from the finish script");
  }
}

asio::awaitable<result<trace_info>> registry::async_get(std::string id_text) {
  auto id = canonical_id(id_text);
  if (!id) co_return id.error();

  std::string trace_key = layout_->trace_key(*id);
  redis::request req;
  req.push("HGETALL", trace_key);
  req.push("TTL", trace_key);
  auto replies = co_await client_.async_exec(req, trace_key);
  if (!replies) co_return replies.error();
  const auto& fields = (*replies)[0];
  const auto& ttl = (*replies)[1];
  if (fields.is_error() && fields.str.starts_with("WRONGTYPE")) {
    co_return error(errc::server_error,
                    fmt::format("trace key {} is not a hash: inspect it with redis-cli TYPE {}, "
                                "then repair or delete it",
                                trace_key, trace_key));
  }
  if (fields.is_error()) co_return error(errc::server_error, fields.str);
  if (fields.elements.empty()) {
    co_return error(errc::trace_not_found, fmt::format("trace {} not found", *id));
  }

  trace_info info;
  info.id = *id;
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    const std::string& name = fields.elements[i].str;
    const std::string& value = fields.elements[i + 1].str;
    if (name == "state") {
      info.state = value;
    } else if (name == "created_at") {
      info.created_at = parse_timestamp(value);
    } else if (name == "updated_at") {
      info.updated_at = parse_timestamp(value);
    } else if (name == "finished_at") {
      info.finished_at = parse_timestamp(value);
    } else if (name == "error") {
      info.error = value;
    } else {
      info.metadata.emplace(name, value);
    }
  }
  if (ttl.is_integer() && ttl.integer >= 0) info.ttl = std::chrono::seconds(ttl.integer);
  co_return info;
}

asio::awaitable<result<std::uint64_t>> registry::async_count_active() {
  std::uint64_t total = 0;
  const char* command = layout_->index() == index_kind::sorted_set ? "ZCARD" : "SCARD";
  for (std::uint32_t n = 0; n < layout_->index_count(); ++n) {
    std::string key = layout_->index_key(n);
    redis::request req;
    req.push(command, key);
    auto replies = co_await client_.async_exec(req, key);
    if (!replies) co_return replies.error();
    const auto& r = (*replies)[0];
    if (r.is_error()) co_return error(errc::server_error, r.str);
    total += static_cast<std::uint64_t>(std::max<std::int64_t>(r.integer, 0));
  }
  co_return total;
}

}  // namespace tracewatch
