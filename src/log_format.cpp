#include "tracewatch/log_format.hpp"

#include <array>

#include <fmt/format.h>

namespace tracewatch {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8
constexpr std::array<std::string_view, 4> kFixedKeys = {"ts", "level", "component", "msg"};

// Returns the length of the well-formed UTF-8 sequence that starts at
// text[i] (no overlong forms, no surrogates, nothing above U+10FFFF), or 0
// if the bytes there are not one.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;

  // The lead byte fixes the length and narrows the range of the second byte.
  std::size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3;
    second_min = 0xA0;  // below is an overlong form
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    length = 3;
  } else if (lead == 0xED) {
    length = 3;
    second_max = 0x9F;  // above are the UTF-16 surrogates
  } else if (lead == 0xF0) {
    length = 4;
    second_min = 0x90;  // below is an overlong form
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4;
    second_max = 0x8F;  // above is past U+10FFFF
  } else {
    return 0;
  }

  if (i + length > text.size()) return 0;
  if (byte(i + 1) < second_min || byte(i + 1) > second_max) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

bool is_fixed_key(std::string_view key) {
  for (std::string_view fixed : kFixedKeys) {
    if (key == fixed) return true;
  }
  return false;
}

void append_unicode_escape(std::string& out, unsigned char c) {
  out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
}

// --- logfmt ------------------------------------------------------------------

bool logfmt_needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7F || c == '=' || c == '"') return true;
  }
  return false;
}

void append_logfmt_key(std::string& out, std::string_view key) {
  if (key.empty()) {
    out += '_';
    return;
  }
  if (is_fixed_key(key)) out += "field_";
  for (std::size_t i = 0; i < key.size();) {
    const std::size_t length = utf8_sequence_length(key, i);
    if (length == 0) {
      out += kReplacementCharacter;
      ++i;
      continue;
    }
    auto c = static_cast<unsigned char>(key[i]);
    const bool breaks_syntax = length == 1 && (c <= 0x20 || c == 0x7F || c == '=' || c == '"');
    if (breaks_syntax) {
      out += '_';
    } else {
      out.append(key.substr(i, length));
    }
    i += length;
  }
}

void append_logfmt_value(std::string& out, std::string_view value) {
  const bool quoted = logfmt_needs_quotes(value);
  if (quoted) out += '"';
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t length = utf8_sequence_length(value, i);
    if (length == 0) {
      out += kReplacementCharacter;
      ++i;
      continue;
    }
    if (length > 1) {
      out.append(value.substr(i, length));
      i += length;
      continue;
    }

    // One ASCII byte. Bare values contain no quote, space or control
    // character (logfmt_needs_quotes), so escaping only matters when quoted.
    const char c = value[i++];
    if (!quoted) {
      out += c;
      continue;
    }
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          append_unicode_escape(out, static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  if (quoted) out += '"';
}

void append_logfmt_pair(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ' ';
  out += key;
  out += '=';
  append_logfmt_value(out, value);
}

// --- JSON --------------------------------------------------------------------

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      out += kReplacementCharacter;
      ++i;
      continue;
    }
    if (length > 1) {
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    const char c = text[i++];
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          append_unicode_escape(out, static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void append_json_member(std::string& out, std::string_view key, std::string_view value) {
  if (out.size() > 1) out += ',';
  append_json_string(out, key);
  out += ':';
  append_json_string(out, value);
}

}  // namespace

std::optional<log_encoding> parse_log_encoding(std::string_view text) noexcept {
  if (text == "logfmt") return log_encoding::logfmt;
  if (text == "json") return log_encoding::json;
  return std::nullopt;
}

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
  if (text == "debug") return log_level::debug;
  if (text == "info") return log_level::info;
  if (text == "warn") return log_level::warn;
  if (text == "error") return log_level::error;
  return std::nullopt;
}

std::string format_log_timestamp(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto since_epoch = floor<milliseconds>(time);
  const auto day = floor<days>(since_epoch);
  const year_month_day date{day};
  const hh_mm_ss clock{since_epoch - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(date.year()),
                     static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                     clock.hours().count(), clock.minutes().count(), clock.seconds().count(),
                     clock.subseconds().count());
}

std::string format_logfmt(const log_record& record, std::chrono::system_clock::time_point time) {
  std::string out;
  out.reserve(128);
  append_logfmt_pair(out, "ts", format_log_timestamp(time));
  append_logfmt_pair(out, "level", to_string(record.level));
  if (!record.component.empty()) append_logfmt_pair(out, "component", record.component);
  append_logfmt_pair(out, "msg", record.event);
  for (const log_field& field : record.fields) {
    out += ' ';
    append_logfmt_key(out, field.key);
    out += '=';
    append_logfmt_value(out, field.value);
  }
  return out;
}

std::string format_json(const log_record& record, std::chrono::system_clock::time_point time) {
  std::string out;
  out.reserve(160);
  out += '{';
  append_json_member(out, "ts", format_log_timestamp(time));
  append_json_member(out, "level", to_string(record.level));
  if (!record.component.empty()) append_json_member(out, "component", record.component);
  append_json_member(out, "msg", record.event);
  for (const log_field& field : record.fields) {
    if (is_fixed_key(field.key)) {
      append_json_member(out, fmt::format("field_{}", field.key), field.value);
    } else {
      append_json_member(out, field.key, field.value);
    }
  }
  out += '}';
  return out;
}

std::string format_log_line(log_encoding encoding, const log_record& record,
                            std::chrono::system_clock::time_point time) {
  return encoding == log_encoding::json ? format_json(record, time) : format_logfmt(record, time);
}

}  // namespace tracewatch
