#include "tracewatch/validation.hpp"

#include <algorithm>
#include <unordered_set>

#include <fmt/format.h>

namespace tracewatch {
namespace {

bool is_printable_token(std::string_view text) noexcept {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c <= '~'; });
}

// Shows a value in a message without flooding the terminal.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kMaxShown = 40;
  if (text.size() <= kMaxShown) return std::string(text);
  return fmt::format("{}…", text.substr(0, kMaxShown));
}

}  // namespace

bool is_terminal_state(std::string_view state) noexcept {
  return state == kStateCompleted || state == kStateErrored;
}

bool is_reserved_field(std::string_view name) noexcept {
  return std::find(std::begin(kReservedFields), std::end(kReservedFields), name) !=
         std::end(kReservedFields);
}

result<void> validate_state(std::string_view state) {
  if (state.empty() || state.size() > kMaxStateBytes || !is_printable_token(state)) {
    return error(errc::invalid_argument,
                 fmt::format("invalid state '{}': use 1 to {} printable ASCII characters "
                             "without spaces, such as RECEIVED",
                             excerpt(state), kMaxStateBytes));
  }
  return {};
}

result<void> validate_intermediate_state(std::string_view state) {
  if (auto valid = validate_state(state); !valid) return valid;
  if (is_terminal_state(state)) {
    return error(errc::invalid_argument,
                 fmt::format("state '{}' is terminal: use complete or fail to finish a trace",
                             state));
  }
  return {};
}

result<void> validate_metadata(const metadata& fields) {
  if (fields.size() > kMaxMetadataFields) {
    return error(errc::limit_exceeded,
                 fmt::format("too many metadata fields: {} given, at most {} allowed",
                             fields.size(), kMaxMetadataFields));
  }
  std::unordered_set<std::string_view> seen;
  for (const auto& [name, value] : fields) {
    if (name.empty() || !is_printable_token(name)) {
      return error(errc::invalid_argument,
                   fmt::format("invalid metadata field name '{}': use printable ASCII "
                               "characters without spaces",
                               excerpt(name)));
    }
    if (name.size() > kMaxFieldNameBytes) {
      return error(errc::limit_exceeded,
                   fmt::format("metadata field name '{}' is {} bytes long: at most {} allowed",
                               excerpt(name), name.size(), kMaxFieldNameBytes));
    }
    if (is_reserved_field(name)) {
      return error(errc::reserved_field,
                   fmt::format("metadata field '{}' is reserved: the registry writes it "
                               "itself; rename the field",
                               name));
    }
    if (!seen.insert(name).second) {
      return error(errc::invalid_argument,
                   fmt::format("metadata field '{}' is given twice", name));
    }
    if (value.size() > kMaxFieldValueBytes) {
      return error(errc::limit_exceeded,
                   fmt::format("value of metadata field '{}' is {} bytes: at most {} allowed",
                               name, value.size(), kMaxFieldValueBytes));
    }
  }
  return {};
}

result<void> validate_reason(std::string_view reason) {
  if (reason.size() > kMaxReasonBytes) {
    return error(errc::limit_exceeded,
                 fmt::format("failure reason is {} bytes: at most {} allowed", reason.size(),
                             kMaxReasonBytes));
  }
  return {};
}

}  // namespace tracewatch
