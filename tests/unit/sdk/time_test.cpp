// The SDK's RFC 3339 reading (kpihub/time.hpp): the host's rule, shared by every plugin (the
// E-Office adapter had its own, which read a leap second as the next minute).
#include <kpihub/time.hpp>

#include <gtest/gtest.h>

namespace {

using kpihub::sdk::parse_rfc3339;

TEST(Rfc3339, ReadsTheHostsFormWithItsOffsetAndTheFractionsMilliseconds) {
  const auto t = parse_rfc3339("2025-04-09T16:00:00.1239+07:00", std::nullopt);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->unix_seconds, 1744189200);  // 2025-04-09T09:00:00Z
  EXPECT_EQ(t->offset_minutes, 420);
  EXPECT_EQ(t->millis, 123);
  EXPECT_EQ(t->rfc3339(), "2025-04-09T16:00:00+07:00");
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z", std::nullopt)->unix_seconds, 0);
  EXPECT_EQ(parse_rfc3339("1970-01-01 07:00:00.5+07:00", std::nullopt)->millis, 500);
  // A leap second is the last second of its minute, as the host reads it, and its fraction the
  // last millisecond: times keep their order (found in review).
  EXPECT_EQ(parse_rfc3339("2016-12-31T23:59:60Z", std::nullopt)->unix_seconds, 1483228799);
  const auto leap = parse_rfc3339("2016-12-31T23:59:60.2Z", std::nullopt);
  const auto before = parse_rfc3339("2016-12-31T23:59:59.9Z", std::nullopt);
  EXPECT_GT(leap->unix_seconds * 1000 + leap->millis, before->unix_seconds * 1000 + before->millis);
  // Without an offset: only when the caller names the local one.
  EXPECT_FALSE(parse_rfc3339("2025-04-09T16:00:00", std::nullopt));
  EXPECT_EQ(parse_rfc3339("2025-04-09T16:00:00", 420)->unix_seconds, 1744189200);
  for (const char* bad : {"2025-02-30T00:00:00+07:00", "2025-04-09 16:00", "2025-04-09T24:00:00Z",
                          "2025-04-09T16:00:00.+07:00", "2025-04-09T16:00:00+7:00", ""}) {
    EXPECT_FALSE(parse_rfc3339(bad, std::nullopt)) << bad;
  }
}

}  // namespace
