// Parsing and formatting of trace ids.

#include "tracewatch/trace_id.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tracewatch {
namespace {

constexpr std::string_view kCanonicalForm = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
// Offsets of the hyphens in the canonical text.
constexpr std::array<std::size_t, 4> kHyphenOffsets = {8, 13, 18, 23};
// Inputs longer than this are shortened in error messages.
constexpr std::size_t kMaxQuotedInput = 64;

// Value of each byte as a hex digit, or -1. `lowercase_only` leaves A-F out.
constexpr std::array<std::int8_t, 256> make_hex_table(bool lowercase_only) {
  std::array<std::int8_t, 256> table{};
  for (auto& value : table) value = -1;
  for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[c] = static_cast<std::int8_t>(c - 'a' + 10);
  if (!lowercase_only) {
    for (int c = 'A'; c <= 'F'; ++c) table[c] = static_cast<std::int8_t>(c - 'A' + 10);
  }
  return table;
}
constexpr auto kHexValue = make_hex_table(false);
constexpr auto kLowerHexValue = make_hex_table(true);

// The two lowercase hex digits of every byte value, so formatting copies
// two characters per byte.
constexpr std::array<char, 512> make_hex_pairs() {
  constexpr std::string_view digits = "0123456789abcdef";
  std::array<char, 512> pairs{};
  for (std::size_t i = 0; i < 256; ++i) {
    pairs[2 * i] = digits[i >> 4];
    pairs[2 * i + 1] = digits[i & 0xF];
  }
  return pairs;
}
constexpr auto kHexPairs = make_hex_pairs();

// Writes the 16 hex digits of `value`, most significant first.
inline void write_hex64(std::uint64_t value, char* out) noexcept {
  for (int shift = 56, i = 0; shift >= 0; shift -= 8, i += 2) {
    std::memcpy(out + i, &kHexPairs[2 * ((value >> shift) & 0xFF)], 2);
  }
}

// Writes the 32 hex digits of `high` then `low`.
inline void write_hex128(std::uint64_t high, std::uint64_t low, char* out) noexcept {
#if defined(__SSE2__)
  // All 32 digits at once: split each byte into its two nibbles, interleave
  // them in text order, and map 0-9 to '0'-'9' and 10-15 to 'a'-'f'.
  const __m128i bytes = _mm_set_epi64x(static_cast<long long>(__builtin_bswap64(low)),
                                       static_cast<long long>(__builtin_bswap64(high)));
  const __m128i low_nibble_mask = _mm_set1_epi8(0x0F);
  const __m128i high_nibbles = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_nibble_mask);
  const __m128i low_nibbles = _mm_and_si128(bytes, low_nibble_mask);
  auto to_ascii = [](__m128i nibbles) {
    const __m128i above_nine = _mm_cmpgt_epi8(nibbles, _mm_set1_epi8(9));
    const __m128i digits = _mm_add_epi8(nibbles, _mm_set1_epi8('0'));
    return _mm_add_epi8(digits, _mm_and_si128(above_nine, _mm_set1_epi8('a' - '0' - 10)));
  };
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   to_ascii(_mm_unpacklo_epi8(high_nibbles, low_nibbles)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16),
                   to_ascii(_mm_unpackhi_epi8(high_nibbles, low_nibbles)));
#else
  write_hex64(high, out);
  write_hex64(low, out + 16);
#endif
}

// Returns `text` quoted for an error message: printable ASCII as is, other
// bytes as \xNN, shortened after kMaxQuotedInput bytes.
std::string quote_input(std::string_view text) {
  std::string quoted = "\"";
  const std::size_t quoted_size = std::min(text.size(), kMaxQuotedInput);
  for (std::size_t i = 0; i < quoted_size; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7F) {
      quoted += static_cast<char>(c);
    } else {
      quoted += fmt::format("\\x{:02x}", c);
    }
  }
  quoted += '"';
  if (quoted_size < text.size()) quoted += fmt::format(" (shortened, {} bytes in all)", text.size());
  return quoted;
}

// Describes character `c` for an error message.
std::string describe_char(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7F) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", byte);
}

error canonical_error(std::string_view text, std::string_view problem) {
  return error(errc::invalid_trace_id,
               fmt::format("invalid trace id {}: {}. Expected a UUID in the canonical form {} "
                           "(hex digits in groups of 8-4-4-4-12, e.g. "
                           "0190a5c8-3b6e-7a41-9d2f-5c81e2b4a9f0)",
                           quote_input(text), problem, kCanonicalForm));
}

error w3c_error(std::string_view text, std::string_view problem) {
  return error(errc::invalid_trace_id,
               fmt::format("invalid W3C trace-id {}: {}. Expected 32 lowercase hex digits, "
                           "not all zero (e.g. 0190a5c83b6e7a419d2f5c81e2b4a9f0)",
                           quote_input(text), problem));
}

// Returns why the canonical text `text` is malformed, or an empty string.
// The length was already checked.
std::string find_canonical_problem(std::string_view text) {
  std::size_t next_hyphen = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (next_hyphen < kHyphenOffsets.size() && i == kHyphenOffsets[next_hyphen]) {
      ++next_hyphen;
      if (text[i] != '-') {
        return fmt::format("expected '-' at position {}, found {}", i + 1, describe_char(text[i]));
      }
      continue;
    }
    if (kHexValue[static_cast<unsigned char>(text[i])] < 0) {
      return fmt::format("{} at position {} is not a hex digit", describe_char(text[i]), i + 1);
    }
  }
  return {};
}

// Accumulates 16 hex digits from `digits` into a 64-bit integer. Returns
// false if one of them is not in `table`.
inline bool read_hex64(const char* digits, const std::array<std::int8_t, 256>& table,
                       std::uint64_t& value) noexcept {
  std::uint64_t result = 0;
  int invalid = 0;
  for (int i = 0; i < 16; ++i) {
    const int digit = table[static_cast<unsigned char>(digits[i])];
    invalid |= digit;  // a -1 sets the sign bit
    result = (result << 4) | static_cast<std::uint64_t>(digit & 0xF);
  }
  value = result;
  return invalid >= 0;
}

}  // namespace

trace_id trace_id::from_bytes(std::span<const std::uint8_t, kSize> bytes) noexcept {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    high = (high << 8) | bytes[i];
    low = (low << 8) | bytes[8 + i];
  }
  return trace_id(high, low);
}

std::array<std::uint8_t, trace_id::kSize> trace_id::bytes() const noexcept {
  std::array<std::uint8_t, kSize> out{};
  for (std::size_t i = 0; i < 8; ++i) {
    out[i] = static_cast<std::uint8_t>(high_ >> (56 - 8 * i));
    out[8 + i] = static_cast<std::uint8_t>(low_ >> (56 - 8 * i));
  }
  return out;
}

uuid_variant trace_id::variant() const noexcept {
  const auto octet8 = static_cast<unsigned>(low_ >> 56);
  if ((octet8 & 0x80) == 0) return uuid_variant::ncs;
  if ((octet8 & 0x40) == 0) return uuid_variant::rfc9562;
  if ((octet8 & 0x20) == 0) return uuid_variant::microsoft;
  return uuid_variant::future;
}

result<trace_id> trace_id::parse(std::string_view text) {
  if (text.size() != kTextSize) {
    return canonical_error(text, fmt::format("it has {} characters, but a UUID has {}",
                                             text.size(), kTextSize));
  }

  // Fast path: gather the 32 digits without the hyphens and decode them.
  // On any failure, find_canonical_problem() names the first bad character.
  char digits[32];
  std::memcpy(digits, text.data(), 8);
  std::memcpy(digits + 8, text.data() + 9, 4);
  std::memcpy(digits + 12, text.data() + 14, 4);
  std::memcpy(digits + 16, text.data() + 19, 4);
  std::memcpy(digits + 20, text.data() + 24, 12);
  const bool hyphens_ok = text[8] == '-' && text[13] == '-' && text[18] == '-' && text[23] == '-';
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  const bool high_ok = read_hex64(digits, kHexValue, high);
  const bool low_ok = read_hex64(digits + 16, kHexValue, low);
  if (!hyphens_ok || !high_ok || !low_ok) return canonical_error(text, find_canonical_problem(text));
  return trace_id(high, low);
}

result<trace_id> trace_id::parse_w3c_trace_id(std::string_view text) {
  if (text.size() != kW3cTraceIdSize) {
    return w3c_error(text, fmt::format("it has {} characters, but a trace-id has {}", text.size(),
                                       kW3cTraceIdSize));
  }
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  if (!read_hex64(text.data(), kLowerHexValue, high) ||
      !read_hex64(text.data() + 16, kLowerHexValue, low)) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (kLowerHexValue[static_cast<unsigned char>(text[i])] >= 0) continue;
      const bool uppercase = kHexValue[static_cast<unsigned char>(text[i])] >= 0;
      return w3c_error(text, fmt::format("{} at position {} is not a lowercase hex digit{}",
                                         describe_char(text[i]), i + 1,
                                         uppercase ? " (W3C Trace Context forbids uppercase)" : ""));
    }
  }
  if (high == 0 && low == 0) return w3c_error(text, "the all-zero trace-id is invalid");
  return trace_id(high, low);
}

void trace_id::format_to(std::span<char, kTextSize> out) const noexcept {
  char hex[32];
  write_hex128(high_, low_, hex);
  char* dst = out.data();
  std::memcpy(dst, hex, 8);
  dst[8] = '-';
  std::memcpy(dst + 9, hex + 8, 4);
  dst[13] = '-';
  std::memcpy(dst + 14, hex + 12, 4);
  dst[18] = '-';
  std::memcpy(dst + 19, hex + 16, 4);
  dst[23] = '-';
  std::memcpy(dst + 24, hex + 20, 12);
}

std::string trace_id::to_string() const {
  std::string text(kTextSize, '\0');
  format_to(std::span<char, kTextSize>(text.data(), kTextSize));
  return text;
}

void trace_id::format_w3c_trace_id_to(std::span<char, kW3cTraceIdSize> out) const noexcept {
  write_hex128(high_, low_, out.data());
}

std::string trace_id::to_w3c_trace_id() const {
  std::string text(kW3cTraceIdSize, '\0');
  format_w3c_trace_id_to(std::span<char, kW3cTraceIdSize>(text.data(), kW3cTraceIdSize));
  return text;
}

}  // namespace tracewatch

std::size_t std::hash<tracewatch::trace_id>::operator()(
    const tracewatch::trace_id& id) const noexcept {
  // The splitmix64 finalizer over both halves: version-7 ids differ mostly in
  // their low bits within one millisecond and in their high bits across them.
  std::uint64_t x = id.high() ^ (id.low() * 0x9E3779B97F4A7C15ULL);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return static_cast<std::size_t>(x);
}
