// The trace_id value type: parsing, formatting, ordering, hashing and the
// fields read back from an id.

#include "tracewatch/trace_id.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <unordered_set>
#include <vector>

namespace tracewatch {
namespace {

using namespace std::chrono_literals;

// The UUIDv7 example of RFC 9562 appendix A.6: 2022-02-22T19:22:22Z.
constexpr std::string_view kRfcExampleV7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
constexpr std::int64_t kRfcExampleUnixMs = 1645557742000;

// A version-4 id as Python's str(uuid.uuid4()) writes it.
constexpr std::string_view kPythonUuid4 = "6f1e4a52-8c3d-4b7e-9f0a-21d4c5b6a7e8";

TEST(TraceId, RoundTripsCanonicalText) {
  auto id = trace_id::parse(kRfcExampleV7);
  ASSERT_TRUE(id) << id.error().what();
  EXPECT_EQ(id->to_string(), kRfcExampleV7);

  char text[trace_id::kTextSize];
  id->format_to(text);
  EXPECT_EQ(std::string_view(text, sizeof(text)), kRfcExampleV7);
}

TEST(TraceId, HeaderExampleHolds) {
  std::string text = generate_trace_id();
  result<trace_id> id = trace_id::parse(text);
  ASSERT_TRUE(id) << id.error().what();
  EXPECT_TRUE(id->is_v7());
  EXPECT_EQ(id->to_string(), text);
}

TEST(TraceId, AcceptsUppercaseAndFormatsLowercase) {
  auto id = trace_id::parse("017F22E2-79B0-7CC3-98C4-DC0C0C07398F");
  ASSERT_TRUE(id) << id.error().what();
  EXPECT_EQ(id->to_string(), kRfcExampleV7);

  auto mixed = trace_id::parse("017f22E2-79b0-7Cc3-98C4-dc0c0C07398f");
  ASSERT_TRUE(mixed) << mixed.error().what();
  EXPECT_EQ(*mixed, *id);
}

TEST(TraceId, ReadsFieldsOfRfcExample) {
  auto id = trace_id::parse(kRfcExampleV7);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->version(), 7);
  EXPECT_EQ(id->variant(), uuid_variant::rfc9562);
  EXPECT_TRUE(id->is_v7());
  EXPECT_FALSE(id->is_nil());
  EXPECT_EQ(id->timestamp().time_since_epoch().count(), kRfcExampleUnixMs);
}

TEST(TraceId, ParsesPythonUuid4) {
  auto id = trace_id::parse(kPythonUuid4);
  ASSERT_TRUE(id) << id.error().what();
  EXPECT_EQ(id->version(), 4);
  EXPECT_EQ(id->variant(), uuid_variant::rfc9562);
  EXPECT_FALSE(id->is_v7());
  EXPECT_EQ(id->to_string(), kPythonUuid4);
}

TEST(TraceId, ParsesNilAndMax) {
  auto nil = trace_id::parse("00000000-0000-0000-0000-000000000000");
  ASSERT_TRUE(nil);
  EXPECT_TRUE(nil->is_nil());
  EXPECT_EQ(*nil, trace_id());

  auto max = trace_id::parse("ffffffff-ffff-ffff-ffff-ffffffffffff");
  ASSERT_TRUE(max);
  EXPECT_EQ(max->high(), ~std::uint64_t{0});
  EXPECT_EQ(max->low(), ~std::uint64_t{0});
}

TEST(TraceId, ReadsEveryVariant) {
  struct variant_case {
    char octet8_digit;
    uuid_variant expected;
  };
  const variant_case cases[] = {
      {'0', uuid_variant::ncs},       {'7', uuid_variant::ncs},
      {'8', uuid_variant::rfc9562},   {'b', uuid_variant::rfc9562},
      {'c', uuid_variant::microsoft}, {'d', uuid_variant::microsoft},
      {'e', uuid_variant::future},    {'f', uuid_variant::future},
  };
  for (const auto& c : cases) {
    std::string text(kRfcExampleV7);
    text[19] = c.octet8_digit;
    auto id = trace_id::parse(text);
    ASSERT_TRUE(id) << text;
    EXPECT_EQ(id->variant(), c.expected) << text;
    EXPECT_EQ(id->is_v7(), c.expected == uuid_variant::rfc9562) << text;
  }
}

TEST(TraceId, ReadsEveryVersion) {
  for (int version = 0; version < 16; ++version) {
    std::string text(kRfcExampleV7);
    text[14] = "0123456789abcdef"[version];
    auto id = trace_id::parse(text);
    ASSERT_TRUE(id) << text;
    EXPECT_EQ(id->version(), version) << text;
  }
}

// The RFC example with byte `position` (0-based) replaced.
std::string with_byte(std::size_t position, char byte) {
  std::string text(kRfcExampleV7);
  text[position] = byte;
  return text;
}

TEST(TraceId, RejectsMalformedText) {
  struct invalid_case {
    std::string input;
    std::string problem;  // part of the expected message
  };
  const std::vector<invalid_case> cases = {
      {"", "it has 0 characters, but a UUID has 36"},
      {"017f22e2-79b0-7cc3-98c4-dc0c0c07398", "it has 35 characters"},
      {"017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", "it has 37 characters"},
      {"017f22e279b07cc398c4dc0c0c07398f", "it has 32 characters"},
      {"{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}", "it has 38 characters"},
      {"urn:uuid:017f22e2-79b0-7cc3-98c4-dc0c0c07398f", "it has 45 characters"},
      {" 017f22e2-79b0-7cc3-98c4-dc0c0c07398f", "it has 37 characters"},
      {"017f22e2-79b0-7cc3-98c4-dc0c0c07398g", "'g' at position 36 is not a hex digit"},
      {"017f22e2_79b0-7cc3-98c4-dc0c0c07398f", "expected '-' at position 9, found '_'"},
      {"017f22e2-79b0-7cc3-98c4-dc0c0c07398-", "'-' at position 36 is not a hex digit"},
      {"017f22e279b0-7cc3-98c4-dc0c0c07398f-", "expected '-' at position 9, found '7'"},
      {"017f22e2-79b0-7cc3-98c4-dc0c0c0739 f", "' ' at position 35 is not a hex digit"},
      {"017f22e2-79b0-7cc3-98c4-dc0c0c07398\n", "byte 0x0a at position 36 is not a hex digit"},
      {with_byte(31, '\0'), "byte 0x00 at position 32 is not a hex digit"},
      {"017f22e2-79b0-7cc3-98c4-dc0c0c07398\xc3", "byte 0xc3 at position 36 is not a hex digit"},
      {"017f22e2-79b0-7cc3-98c4+dc0c0c07398f", "expected '-' at position 24, found '+'"},
  };
  for (const auto& c : cases) {
    auto id = trace_id::parse(c.input);
    ASSERT_FALSE(id) << "accepted: " << c.input;
    EXPECT_EQ(id.error(), errc::invalid_trace_id) << c.input;
    const std::string message = id.error().what();
    EXPECT_NE(message.find(c.problem), std::string::npos) << message;
    EXPECT_NE(message.find("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"), std::string::npos) << message;
  }
}

TEST(TraceId, ErrorMessageQuotesInput) {
  auto id = trace_id::parse("not-a-uuid");
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().what(),
            "invalid trace id \"not-a-uuid\": it has 10 characters, but a UUID has 36. Expected "
            "a UUID in the canonical form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex digits in "
            "groups of 8-4-4-4-12, e.g. 0190a5c8-3b6e-7a41-9d2f-5c81e2b4a9f0)");
}

TEST(TraceId, ErrorMessageEscapesControlBytes) {
  auto id = trace_id::parse("a\"b\\c\x01\x7f");
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().what().find("\"a\\\"b\\\\c\\x01\\x7f\""), std::string::npos)
      << id.error().what();
}

TEST(TraceId, ErrorMessageShortensLongInput) {
  const std::string input(10000, 'a');
  auto id = trace_id::parse(input);
  ASSERT_FALSE(id);
  const std::string message = id.error().what();
  EXPECT_NE(message.find("\"" + std::string(64, 'a') + "\" (shortened, 10000 bytes in all)"),
            std::string::npos)
      << message;
  EXPECT_LT(message.size(), 400u);
}

TEST(TraceId, OrdersLikeItsText) {
  std::vector<std::string> texts = {
      std::string(kRfcExampleV7),
      std::string(kPythonUuid4),
      "00000000-0000-0000-0000-000000000000",
      "ffffffff-ffff-ffff-ffff-ffffffffffff",
      "017f22e2-79b0-7cc3-98c4-dc0c0c07398e",
      "017f22e2-79b0-7cc3-98c5-000000000000",
      "8000000-0000-0000-0000-000000000000f",  // invalid, filtered out below
      "80000000-0000-0000-0000-000000000000",
      "7fffffff-ffff-ffff-ffff-ffffffffffff",
  };
  std::vector<trace_id> ids;
  std::vector<std::string> valid;
  for (const auto& t : texts) {
    if (auto id = trace_id::parse(t)) {
      ids.push_back(*id);
      valid.push_back(t);
    }
  }
  ASSERT_EQ(ids.size(), texts.size() - 1);
  std::sort(ids.begin(), ids.end());
  std::sort(valid.begin(), valid.end());
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i].to_string(), valid[i]);
}

TEST(TraceId, ComparesHighHalfFirst) {
  const trace_id small(1, ~std::uint64_t{0});
  const trace_id large(2, 0);
  EXPECT_LT(small, large);
  EXPECT_GT(large, small);
  EXPECT_NE(small, large);
  EXPECT_EQ(small <=> trace_id(1, ~std::uint64_t{0}), std::strong_ordering::equal);
}

TEST(TraceId, HashesIntoUnorderedSet) {
  std::unordered_set<trace_id> set;
  for (int i = 0; i < 1000; ++i) set.insert(new_trace_id());
  EXPECT_EQ(set.size(), 1000u);
  auto id = trace_id::parse(kRfcExampleV7);
  ASSERT_TRUE(id);
  set.insert(*id);
  EXPECT_EQ(set.count(*trace_id::parse(kRfcExampleV7)), 1u);
  EXPECT_NE(std::hash<trace_id>{}(trace_id(0, 1)), std::hash<trace_id>{}(trace_id(1, 0)));
}

TEST(TraceId, RoundTripsBytes) {
  auto id = trace_id::parse(kRfcExampleV7);
  ASSERT_TRUE(id);
  const auto bytes = id->bytes();
  EXPECT_EQ(bytes[0], 0x01);
  EXPECT_EQ(bytes[6], 0x7c);
  EXPECT_EQ(bytes[8], 0x98);
  EXPECT_EQ(bytes[15], 0x8f);
  EXPECT_EQ(trace_id::from_bytes(bytes), *id);
}

TEST(TraceId, FormatsW3cTraceId) {
  auto id = trace_id::parse(kRfcExampleV7);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->to_w3c_trace_id(), "017f22e279b07cc398c4dc0c0c07398f");

  auto back = trace_id::parse_w3c_trace_id(id->to_w3c_trace_id());
  ASSERT_TRUE(back) << back.error().what();
  EXPECT_EQ(*back, *id);
}

TEST(TraceId, RejectsInvalidW3cTraceId) {
  struct invalid_case {
    std::string input;
    std::string problem;
  };
  const std::vector<invalid_case> cases = {
      {"", "it has 0 characters, but a trace-id has 32"},
      {std::string(kRfcExampleV7), "it has 36 characters"},
      {"017F22E279B07CC398C4DC0C0C07398F",
       "'F' at position 4 is not a lowercase hex digit (W3C Trace Context forbids uppercase)"},
      {"017f22e279b07cc398c4dc0c0c07398z", "'z' at position 32 is not a lowercase hex digit"},
      {std::string(32, '0'), "the all-zero trace-id is invalid"},
  };
  for (const auto& c : cases) {
    auto id = trace_id::parse_w3c_trace_id(c.input);
    ASSERT_FALSE(id) << "accepted: " << c.input;
    EXPECT_EQ(id.error(), errc::invalid_trace_id) << c.input;
    EXPECT_NE(id.error().what().find(c.problem), std::string::npos) << id.error().what();
  }
}

TEST(TraceId, GeneratesIntoCallerBuffer) {
  char line[trace_id::kTextSize + 1];
  generate_trace_id(std::span<char, trace_id::kTextSize>(line, trace_id::kTextSize));
  line[trace_id::kTextSize] = '\n';
  auto id = trace_id::parse(std::string_view(line, trace_id::kTextSize));
  ASSERT_TRUE(id) << id.error().what();
  EXPECT_TRUE(id->is_v7());
}

}  // namespace
}  // namespace tracewatch
