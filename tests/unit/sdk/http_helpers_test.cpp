// The SDK's HTTP helpers (kpihub/http_helpers.hpp), tested once for every plugin that uses them.
#include <kpihub/http_helpers.hpp>

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace {

using kpihub::sdk::percent_encode;
using kpihub::sdk::retry_after_ms;

TEST(PercentEncode, KeepsTheUnreservedCharactersAndEncodesEveryOtherByte) {
  EXPECT_EQ(percent_encode("2025-04-01T00:00:00+07:00"), "2025-04-01T00%3A00%3A00%2B07%3A00");
  EXPECT_EQ(percent_encode("a b/~_.-Z9"), "a%20b%2F~_.-Z9");
  EXPECT_EQ(percent_encode("Bình&x=1"), "B%C3%ACnh%26x%3D1");
  EXPECT_EQ(percent_encode(""), "");
}

TEST(RetryAfter, SecondsAndTheThreeHttpDateForms) {
  const int64_t now = 784'111'777'000;  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(retry_after_ms("120", now), 120'000);
  EXPECT_EQ(retry_after_ms(" 0 ", now), 0);
  EXPECT_EQ(retry_after_ms("Sun, 06 Nov 1994 08:49:47 GMT", now), 10'000);
  EXPECT_EQ(retry_after_ms("Sunday, 06-Nov-94 08:50:37 GMT", now), 60'000);
  EXPECT_EQ(retry_after_ms("Sun Nov  6 08:49:40 1994", now), 3'000);
  EXPECT_EQ(retry_after_ms("Sun Nov 16 08:49:37 1994", now), 10LL * 86'400'000);
  EXPECT_EQ(retry_after_ms("Sat, 05 Nov 1994 08:49:37 GMT", now), 0);  // in the past
  // Longer than any sane wait: the caller's cap decides.
  EXPECT_EQ(retry_after_ms("99999999999", now), std::numeric_limits<int64_t>::max());
  // A header as long as the HTTP client takes (64 KB) shaped like an RFC 850 day name: refused
  // by its length, never handed to std::regex, whose recursion would overflow the stack.
  EXPECT_FALSE(retry_after_ms("A" + std::string(65'000, 'a'), now));
  for (const char* bad : {"soon", "-5", "", "  ", "1.5", "Sun, 06 Nov 1994 08:49:47 UTC",
                          "Sun, 6 Nov 1994 08:49:47 GMT", "06 Nov 1994 08:49:47 GMT"}) {
    EXPECT_FALSE(retry_after_ms(bad, now)) << bad;
  }
}

}  // namespace

namespace {

using kpihub::sdk::read_token_answer;

// The E-Office adapter and the provincial sink renewed their tokens with different margins and
// read `expires_in` differently (one refused 299.5); one reading now.
TEST(TokenAnswer, TheTokenAndARenewalATenthOfItsLifeEarlyAtMostAMinute) {
  const int64_t now = 1'000'000;
  auto t =
      read_token_answer(R"({"access_token":"abc","token_type":"Bearer","expires_in":300})", now);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->value, "abc");
  EXPECT_EQ(t->expires_in_s, 300);
  EXPECT_EQ(t->renew_at_unix_ms, now + 300'000 - 30'000);
  t = read_token_answer(R"({"access_token":"abc","expires_in":7200})", now);
  EXPECT_EQ(t->renew_at_unix_ms, now + 7'200'000 - 60'000);
  t = read_token_answer(R"({"access_token":"abc","expires_in":299.5})", now);
  EXPECT_EQ(t->expires_in_s, 299);
  for (const char* no_expiry :
       {R"({"access_token":"abc"})", R"({"access_token":"abc","expires_in":"300"})",
        R"({"access_token":"abc","expires_in":-5})"}) {
    t = read_token_answer(no_expiry, now);
    ASSERT_TRUE(t) << no_expiry;
    EXPECT_EQ(t->expires_in_s, 3600) << no_expiry;
  }
  for (const char* bad : {"", "not json", "[]", R"({"token":"abc"})", R"({"access_token":""})",
                          R"({"access_token":7})"}) {
    EXPECT_FALSE(read_token_answer(bad, now)) << bad;
  }
}

}  // namespace
