// Listing and tallying the active traces: cursors over one index (compat) or
// over every shard's index (sharded).

#include <charconv>

#include <fmt/format.h>

#include "tracewatch/registry.hpp"

namespace tracewatch {
namespace {

// A listing position: the index number and the SSCAN/ZSCAN cursor inside it.
// In text form it is the bare scan cursor for a single index, and
// "<index>:<cursor>" when there are several; "0" is both the start and the end.
struct scan_position {
  std::uint32_t index = 0;
  std::string cursor = "0";
};

result<scan_position> parse_cursor(std::string_view text, std::uint32_t index_count) {
  auto invalid = [&] {
    return error(errc::invalid_argument,
                 fmt::format("invalid cursor '{}': pass back the cursor a previous page "
                             "returned, or 0 to start",
                             text));
  };
  scan_position pos;
  std::string_view cursor = text;
  if (auto colon = text.find(':'); colon != std::string_view::npos) {
    auto head = text.substr(0, colon);
    auto [end, ec] = std::from_chars(head.data(), head.data() + head.size(), pos.index);
    if (ec != std::errc() || end != head.data() + head.size() || pos.index >= index_count) {
      return invalid();
    }
    cursor = text.substr(colon + 1);
  }
  std::uint64_t number = 0;
  auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), number);
  if (cursor.empty() || ec != std::errc() || end != cursor.data() + cursor.size()) return invalid();
  pos.cursor = std::string(cursor);
  return pos;
}

std::string format_cursor(const scan_position& pos, std::uint32_t index_count) {
  if (index_count == 1) return pos.cursor;
  return fmt::format("{}:{}", pos.index, pos.cursor);
}

}  // namespace

asio::awaitable<result<trace_page>> registry::async_list_active(std::string cursor_text,
                                                                std::uint32_t count) {
  const std::uint32_t indexes = layout_->index_count();
  auto pos = parse_cursor(cursor_text, indexes);
  if (!pos) co_return pos.error();
  if (count == 0) count = 1;
  const bool sorted = layout_->index() == index_kind::sorted_set;

  // Walk forward until the page has ids or every index is done: empty shards
  // are skipped here so that callers never see an empty page mid-listing.
  trace_page page;
  while (true) {
    std::string key = layout_->index_key(pos->index);
    redis::request req;
    req.push(sorted ? "ZSCAN" : "SSCAN", key, pos->cursor, "COUNT", count);
    auto replies = co_await client_.async_exec(req, key);
    if (!replies) co_return replies.error();
    const auto& r = (*replies)[0];
    if (r.is_error()) co_return error(errc::server_error, r.str);
    if (!r.is_array() || r.elements.size() != 2) {
      co_return error(errc::protocol_error, "unexpected reply to a scan of the index");
    }

    const auto& members = r.elements[1].elements;
    // ZSCAN returns member and score pairs; SSCAN only members.
    const std::size_t step = sorted ? 2 : 1;
    for (std::size_t i = 0; i < members.size(); i += step) page.ids.push_back(members[i].str);

    pos->cursor = r.elements[0].str;
    if (pos->cursor == "0") {
      if (pos->index + 1 >= indexes) {
        page.cursor = "0";
        co_return page;
      }
      ++pos->index;
    }
    if (!page.ids.empty()) {
      page.cursor = format_cursor(*pos, indexes);
      co_return page;
    }
  }
}

asio::awaitable<result<registry_stats>> registry::async_stats() {
  registry_stats stats;
  std::optional<double> oldest_created;

  // One TIME for the whole pass: ages are relative to the server's clock.
  redis::request time_req;
  time_req.push("TIME");
  auto time_reply = co_await client_.async_exec(time_req);
  if (!time_reply) co_return time_reply.error();
  const auto& t = (*time_reply)[0];
  if (!t.is_array() || t.elements.size() != 2) {
    co_return error(errc::protocol_error, "unexpected reply to TIME");
  }
  const double now = std::stod(t.elements[0].str) + std::stod(t.elements[1].str) / 1e6;

  constexpr std::uint32_t kPageSize = 1000;
  std::string cursor = "0";
  do {
    auto page = co_await async_list_active(cursor, kPageSize);
    if (!page) co_return page.error();
    cursor = page->cursor;
    if (page->ids.empty()) continue;

    // One pipelined request per page. All ids of a page come from one index,
    // so in the sharded layout they share a hash tag and a slot.
    redis::request req;
    for (const auto& id : page->ids) req.push("HMGET", layout_->trace_key(id), "state", "created_at");
    auto replies = co_await client_.async_exec(req, layout_->trace_key(page->ids.front()));
    if (!replies) co_return replies.error();
    for (const auto& r : *replies) {
      if (!r.is_array() || r.elements.size() != 2) {
        // A key of another type answers HMGET with WRONGTYPE.
        ++stats.by_state["(wrong type)"];
        ++stats.active;
        continue;
      }
      const auto& state = r.elements[0];
      const auto& created = r.elements[1];
      if (state.is_nil() && created.is_nil()) {
        ++stats.missing;
        continue;
      }
      ++stats.active;
      ++stats.by_state[state.is_nil() ? std::string() : state.str];
      if (auto created_at = parse_timestamp(created.str)) {
        if (!oldest_created || *created_at < *oldest_created) oldest_created = created_at;
      }
    }
  } while (cursor != "0");

  if (oldest_created) stats.oldest_age_s = now - *oldest_created;
  co_return stats;
}

}  // namespace tracewatch
