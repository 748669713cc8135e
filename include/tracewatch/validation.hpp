// Input rules for state names and metadata. Every registry call checks its
// input with these before it sends anything, so a rejected call writes
// nothing.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tracewatch/error.hpp"

namespace tracewatch {

// The terminal states. Other state names belong to the caller.
inline constexpr std::string_view kStateCompleted = "COMPLETED";
inline constexpr std::string_view kStateErrored = "ERRORED";

// Limits on caller input. A trace hash stays small, so that a sweep batch
// and an HGETALL stay cheap.
inline constexpr std::size_t kMaxStateBytes = 64;
inline constexpr std::size_t kMaxMetadataFields = 64;
inline constexpr std::size_t kMaxFieldNameBytes = 128;
inline constexpr std::size_t kMaxFieldValueBytes = 16 * 1024;
inline constexpr std::size_t kMaxReasonBytes = 1024;

// Field names the registry writes itself; metadata may not use them.
inline constexpr std::string_view kReservedFields[] = {
    "state", "created_at", "updated_at", "finished_at", "error", "trace_id",
};

// Caller metadata: field name and value pairs, in the order given.
using metadata = std::vector<std::pair<std::string, std::string>>;

bool is_terminal_state(std::string_view state) noexcept;
bool is_reserved_field(std::string_view name) noexcept;

// A state name: 1 to kMaxStateBytes printable ASCII characters without
// spaces. Returns errc::invalid_argument naming the value otherwise.
result<void> validate_state(std::string_view state);

// A state that advance() may set: a valid name that is not terminal.
result<void> validate_intermediate_state(std::string_view state);

// Metadata: at most kMaxMetadataFields fields; names of 1 to
// kMaxFieldNameBytes printable ASCII characters without spaces, not
// reserved and not repeated; values of at most kMaxFieldValueBytes bytes
// (any bytes). Returns errc::reserved_field, errc::limit_exceeded or
// errc::invalid_argument with a message naming the field.
result<void> validate_metadata(const metadata& fields);

// A failure reason: at most kMaxReasonBytes bytes.
result<void> validate_reason(std::string_view reason);

}  // namespace tracewatch
