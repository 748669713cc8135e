// Trace ids: 16-byte UUIDs (RFC 9562), their text forms, and the functions
// that generate new UUIDv7 ids.
//
// Example:
//
//   std::string text = tracewatch::generate_trace_id();
//   // "0190a5c8-3b6e-7a41-9d2f-5c81e2b4a9f0"
//   tracewatch::result<tracewatch::trace_id> id = tracewatch::trace_id::parse(text);
//   assert(id && id->is_v7() && id->to_string() == text);
//
// The generator behind new_trace_id() and generate_trace_id(), with its
// counter, clock and fork rules, is described in tracewatch/id_generator.hpp.

#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "tracewatch/error.hpp"

namespace tracewatch {

// The variant field of a UUID (RFC 9562 section 4.1): the top bits of octet 8.
enum class uuid_variant {
  ncs,        // 0xxx: reserved, Apollo NCS backward compatibility
  rfc9562,    // 10xx: the variant of every RFC 9562 (and RFC 4122) UUID
  microsoft,  // 110x: reserved, Microsoft backward compatibility
  future,     // 111x: reserved for future definition
};

// A UUID used as a trace id. Any version parses, because the reference
// Python module writes version-4 ids on Python 3.11 and older, and those
// traces must stay readable. tracewatch itself only generates version 7.
//
// The value is 16 bytes in network order. Comparison is byte by byte, which
// for version-7 ids is creation order (the timestamp comes first) and is also
// the order of the canonical text. A default-constructed trace_id is the nil
// UUID 00000000-0000-0000-0000-000000000000.
//
// Thread safety: a plain value. Distinct objects may be used concurrently.
class trace_id {
 public:
  static constexpr std::size_t kSize = 16;             // bytes
  static constexpr std::size_t kTextSize = 36;         // canonical text, 8-4-4-4-12
  static constexpr std::size_t kW3cTraceIdSize = 32;   // W3C traceparent trace-id

  constexpr trace_id() noexcept = default;

  // Builds the id whose first 8 bytes are `high` and last 8 bytes are `low`,
  // each as a big-endian integer. No bit is checked or changed.
  constexpr trace_id(std::uint64_t high, std::uint64_t low) noexcept : high_(high), low_(low) {}

  // Builds the id from its 16 bytes in network order.
  static trace_id from_bytes(std::span<const std::uint8_t, kSize> bytes) noexcept;

  // Parses the canonical text form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx:
  // exactly 36 characters, hex digits in groups of 8-4-4-4-12 joined by '-'.
  // Uppercase hex digits are accepted because RFC 9562 section 4 makes the
  // text case-insensitive on input. to_string() always writes lowercase, so
  // callers that key storage by id must key it by to_string(), never by the
  // input text. Any version and variant parses (see version()).
  //
  // Returns errc::invalid_trace_id for anything else: other lengths, braces,
  // a "urn:uuid:" prefix, the 32-digit form without hyphens, whitespace or
  // a non-hex character. The message quotes the input (escaped, shortened
  // past 64 characters), states what is wrong, and shows the expected form.
  static result<trace_id> parse(std::string_view text);

  // Parses the trace-id field of a W3C Trace Context `traceparent` header:
  // exactly 32 lowercase hex digits, not all zero. Uppercase is rejected and
  // so is the all-zero id, because the W3C Trace Context specification makes
  // both invalid. Returns errc::invalid_trace_id otherwise, with a message
  // like parse().
  static result<trace_id> parse_w3c_trace_id(std::string_view text);

  // The 16 bytes in network order.
  std::array<std::uint8_t, kSize> bytes() const noexcept;
  constexpr std::uint64_t high() const noexcept { return high_; }
  constexpr std::uint64_t low() const noexcept { return low_; }

  // The version field: the high nibble of octet 6, 0 to 15 (7 for UUIDv7,
  // 4 for random UUIDs). Meaningful only when variant() is rfc9562.
  constexpr int version() const noexcept { return static_cast<int>((high_ >> 12) & 0xF); }
  uuid_variant variant() const noexcept;
  // True for a version-7 id of the RFC 9562 variant.
  bool is_v7() const noexcept { return version() == 7 && variant() == uuid_variant::rfc9562; }
  constexpr bool is_nil() const noexcept { return high_ == 0 && low_ == 0; }

  // The creation time stored in the first 48 bits (Unix milliseconds).
  // Meaningful only when is_v7(), because other versions keep no time there.
  constexpr std::chrono::sys_time<std::chrono::milliseconds> timestamp() const noexcept {
    return std::chrono::sys_time<std::chrono::milliseconds>(
        std::chrono::milliseconds(static_cast<std::int64_t>(high_ >> 16)));
  }

  // Writes the canonical lowercase text (36 characters, no terminating NUL)
  // into `out`. Never allocates.
  void format_to(std::span<char, kTextSize> out) const noexcept;
  // Returns the canonical lowercase text.
  std::string to_string() const;

  // Writes the 32 lowercase hex digits of a W3C `traceparent` trace-id
  // (no hyphens, no NUL) into `out`. Never allocates. A nil id formats as
  // all zeros, which W3C readers reject.
  void format_w3c_trace_id_to(std::span<char, kW3cTraceIdSize> out) const noexcept;
  std::string to_w3c_trace_id() const;

  friend constexpr bool operator==(const trace_id&, const trace_id&) noexcept = default;
  // Byte order: high() first, then low().
  friend constexpr std::strong_ordering operator<=>(const trace_id&, const trace_id&) noexcept =
      default;

 private:
  // Declaration order matters: the defaulted <=> compares high_ first.
  std::uint64_t high_ = 0;
  std::uint64_t low_ = 0;
};

// Returns a new UUIDv7 from this thread's generator. Ids from one thread
// are strictly increasing. Ids from different threads and processes are
// unique with overwhelming probability (see id_generator.hpp).
//
// Thread safety: any thread, no lock. Each thread owns its generator state,
// created on the thread's first call and freed when the thread exits.
// Throws std::runtime_error only if the operating system random source fails.
trace_id new_trace_id();

// Returns new_trace_id() in canonical text form. Allocates the string.
std::string generate_trace_id();

// Writes new_trace_id() in canonical text form into `out` (36 characters,
// no NUL). Never allocates. Example:
//
//   char line[tracewatch::trace_id::kTextSize + 1];
//   tracewatch::generate_trace_id(std::span<char, 36>(line, 36));
//   line[36] = '\n';
void generate_trace_id(std::span<char, trace_id::kTextSize> out);

}  // namespace tracewatch

template <>
struct std::hash<tracewatch::trace_id> {
  std::size_t operator()(const tracewatch::trace_id& id) const noexcept;
};
