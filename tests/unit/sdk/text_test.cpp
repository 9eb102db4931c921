// UTF-8 as the host checks it (kpihub/text.hpp): the one check of the host and of every plugin.
#include <kpihub/text.hpp>

#include <gtest/gtest.h>

namespace {

using kpihub::sdk::replace_invalid_utf8;
using kpihub::sdk::valid_utf8;

TEST(Utf8, ValidTextPassesAndTheFirstBadByteIsNamed) {
  EXPECT_TRUE(valid_utf8("Nguyễn Thị Lan, Khánh Hòa"));
  EXPECT_TRUE(valid_utf8(""));
  std::size_t at = 99;
  // Past eight ASCII characters, where the fast path stops.
  EXPECT_FALSE(valid_utf8("Bệnh viện \xC0\xAF", &at));
  EXPECT_EQ(at, 14u);  // "Bệnh viện " is 14 bytes
  for (const char* bad : {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "abc\xE2\x82", "\xFF"}) {
    EXPECT_FALSE(valid_utf8(bad)) << bad;
  }
}

TEST(Utf8, EachInvalidByteBecomesOneReplacementCharacter) {
  EXPECT_EQ(replace_invalid_utf8("Lan"), "Lan");
  EXPECT_EQ(replace_invalid_utf8("a\xC0\xAF"
                                 "b"),
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(replace_invalid_utf8("Hòa\xE2\x82"), "Hòa\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(valid_utf8(replace_invalid_utf8("\xFF\xFE ok \xED\xA0\x80")));
}

}  // namespace
