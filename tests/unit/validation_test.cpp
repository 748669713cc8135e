#include <gtest/gtest.h>

#include "tracewatch/registry.hpp"
#include "tracewatch/validation.hpp"

namespace tracewatch {
namespace {

TEST(Validation, AcceptsOrdinaryState) {
  EXPECT_TRUE(validate_state("RECEIVED"));
  EXPECT_TRUE(validate_intermediate_state("INFERENCE"));
}

TEST(Validation, RejectsBadStates) {
  for (std::string state : {std::string(), std::string("has space"), std::string("tab\t"),
                            std::string(kMaxStateBytes + 1, 'A'), std::string("\x01")}) {
    auto valid = validate_state(state);
    ASSERT_FALSE(valid) << state;
    EXPECT_EQ(valid.error(), errc::invalid_argument) << state;
  }
}

TEST(Validation, AdvanceRejectsTerminalStates) {
  EXPECT_FALSE(validate_intermediate_state("COMPLETED"));
  EXPECT_FALSE(validate_intermediate_state("ERRORED"));
}

TEST(Validation, RejectsEveryReservedField) {
  for (auto name : kReservedFields) {
    auto valid = validate_metadata({{std::string(name), "x"}});
    ASSERT_FALSE(valid) << name;
    EXPECT_EQ(valid.error(), errc::reserved_field) << name;
    EXPECT_NE(valid.error().message.find(std::string(name)), std::string::npos) << name;
  }
}

TEST(Validation, RejectsBadMetadata) {
  struct bad_case {
    std::string name;
    metadata fields;
    errc expected;
  };
  metadata too_many;
  for (std::size_t i = 0; i <= kMaxMetadataFields; ++i) {
    too_many.emplace_back("f" + std::to_string(i), "v");
  }
  const std::vector<bad_case> cases = {
      {"empty name", {{"", "v"}}, errc::invalid_argument},
      {"space in name", {{"a b", "v"}}, errc::invalid_argument},
      {"control character", {{"a\nb", "v"}}, errc::invalid_argument},
      {"long name", {{std::string(kMaxFieldNameBytes + 1, 'n'), "v"}}, errc::limit_exceeded},
      {"large value", {{"n", std::string(kMaxFieldValueBytes + 1, 'v')}}, errc::limit_exceeded},
      {"repeated name", {{"n", "1"}, {"n", "2"}}, errc::invalid_argument},
      {"too many fields", too_many, errc::limit_exceeded},
  };
  for (const auto& c : cases) {
    auto valid = validate_metadata(c.fields);
    ASSERT_FALSE(valid) << c.name;
    EXPECT_EQ(valid.error(), c.expected) << c.name;
  }
}

TEST(Validation, AcceptsMetadataAtLimits) {
  metadata fields;
  for (std::size_t i = 0; i < kMaxMetadataFields; ++i) fields.emplace_back("f" + std::to_string(i), "v");
  fields[0].first = std::string(kMaxFieldNameBytes, 'n');
  fields[1].second = std::string(kMaxFieldValueBytes, '\0');
  EXPECT_TRUE(validate_metadata(fields));
}

TEST(Timestamp, ParsesReferenceFormat) {
  EXPECT_DOUBLE_EQ(parse_timestamp("1764876000.123456").value(), 1764876000.123456);
  EXPECT_DOUBLE_EQ(parse_timestamp("1764876000").value(), 1764876000.0);
}

TEST(Timestamp, RejectsNonNumbers) {
  for (std::string text : {"", "abc", "12x", "nan", "inf", " 12", "1e999"}) {
    EXPECT_FALSE(parse_timestamp(text)) << text;
  }
}

TEST(FieldAssignment, SplitsAtFirstEquals) {
  auto field = parse_field_assignment("url=a=b");
  ASSERT_TRUE(field);
  EXPECT_EQ(field->first, "url");
  EXPECT_EQ(field->second, "a=b");
}

TEST(FieldAssignment, RejectsMissingEquals) {
  auto field = parse_field_assignment("platform");
  ASSERT_FALSE(field);
  EXPECT_EQ(field.error(), errc::invalid_argument);
}

}  // namespace
}  // namespace tracewatch
