// young_by_id_time(): which ids a compat sweep may leave unread.

#include <gtest/gtest.h>

#include "tracewatch/id_generator.hpp"
#include "tracewatch/sweeper.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using ms_time = std::chrono::sys_time<std::chrono::milliseconds>;

const ms_time kNow{std::chrono::milliseconds(1'764'876'000'000)};

std::string minted_at(ms_time when) {
  id_generator::options pinned;
  pinned.clock = [when] { return std::chrono::system_clock::time_point(when); };
  return id_generator(pinned).next().to_string();
}

TEST(YoungByIdTime, IdInsideTheThresholdIsYoung) {
  EXPECT_TRUE(young_by_id_time(minted_at(kNow - 10s), kNow, 60s));
}

TEST(YoungByIdTime, IdMintedNowIsYoung) {
  EXPECT_TRUE(young_by_id_time(minted_at(kNow), kNow, 60s));
}

TEST(YoungByIdTime, IdExactlyAtTheThresholdIsRead) {
  EXPECT_FALSE(young_by_id_time(minted_at(kNow - 60s), kNow, 60s));
}

TEST(YoungByIdTime, IdOlderThanTheThresholdIsRead) {
  EXPECT_FALSE(young_by_id_time(minted_at(kNow - 1h), kNow, 60s));
}

TEST(YoungByIdTime, IdAheadOfTheClockIsRead) {
  EXPECT_FALSE(young_by_id_time(minted_at(kNow + 1ms), kNow, 60s));
}

TEST(YoungByIdTime, VersionFourIdIsRead) {
  EXPECT_FALSE(young_by_id_time("3b241101-e2bb-4255-8caf-4136c566a962", kNow, 60s));
}

TEST(YoungByIdTime, TextThatIsNotAnIdIsRead) {
  EXPECT_FALSE(young_by_id_time("not-an-id", kNow, 60s));
  EXPECT_FALSE(young_by_id_time("", kNow, 60s));
  EXPECT_FALSE(young_by_id_time("zzzzzzzz-zzzz-7zzz-8zzz-zzzzzzzzzzzz", kNow, 60s));
}

}  // namespace
}  // namespace tracewatch
