// Normalization of E-Office diary pages (spec/sources.md, section 1), no HTTP.
#include <kpihub/eoffice/normalizer.hpp>
#include <kpihub/eoffice/source.hpp>
#include <kpihub/text.hpp>

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using kpihub::eoffice::FeedKey;
using kpihub::eoffice::FieldMap;
using kpihub::eoffice::Normalizer;
using kpihub::eoffice::PageParseError;
using kpihub::sdk::Page;

// The item of the spec, verbatim.
const std::string kSpecItem = R"({
    "id": "WD-2025-000001", "revision": 3, "updated_at": "2025-04-09T16:00:00+07:00",
    "deleted": false,
    "staff_code": "KH-000123", "agency_code": "000.00.12.H34",
    "task_code": "B.03.2", "work_date": "2025-04-08",
    "start_time": "08:00", "end_time": "10:30", "minutes": 150,
    "quantity": 4, "product_unit": "văn bản",
    "title": "Xử lý văn bản đến số 1234/UBND-VP", "document_ref": "1234/UBND-VP",
    "assigned_by": "KH-000010", "assigned_at": "2025-04-07T09:00:00+07:00",
    "deadline": "2025-04-10", "completed_at": "2025-04-09T15:00:00+07:00",
    "approval": { "status": "approved", "rating": "good", "by": "KH-000010",
                  "at": "2025-04-09T16:00:00+07:00" } })";

std::string page_of(const std::string& items, const std::string& token = "null") {
  return R"({"items": [)" + items + R"(], "next_page_token": )" + token +
         R"(, "server_time": "2025-04-09T16:05:00+07:00"})";
}

std::string attribute(const kpihub::sdk::Record& r, const std::string& key) {
  for (const auto& [k, v] : r.attributes) {
    if (k == key) return v;
  }
  return "<absent>";
}

TEST(EOfficeNormalizer, SpecExampleMapsFieldByField) {
  Page page;
  const auto summary = Normalizer().normalize_page(page_of(kSpecItem), std::nullopt, page);
  ASSERT_EQ(page.records().size(), 1u);
  ASSERT_TRUE(page.rejected().empty());
  const auto& r = page.records()[0];
  EXPECT_EQ(r.source_id, "WD-2025-000001");
  EXPECT_EQ(r.revision, "3");
  EXPECT_EQ(r.retracted, "false");
  EXPECT_EQ(r.staff_code, "KH-000123");
  EXPECT_EQ(r.source_staff_id, "KH-000123");
  EXPECT_EQ(r.agency_code, "000.00.12.H34");
  EXPECT_EQ(r.task_code, "B.03.2");
  EXPECT_EQ(r.work_date, "2025-04-08");
  EXPECT_EQ(r.declared_minutes, "150");
  EXPECT_EQ(r.quantity, "4");
  EXPECT_EQ(r.product_unit, "văn bản");
  EXPECT_EQ(r.title, "Xử lý văn bản đến số 1234/UBND-VP");
  EXPECT_EQ(r.evidence_ref, "1234/UBND-VP");
  EXPECT_EQ(r.deadline, "2025-04-10");
  EXPECT_EQ(r.completed_at, "2025-04-09T15:00:00+07:00");
  EXPECT_EQ(r.approval_status, "approved");
  EXPECT_EQ(r.approval_rating, "good");
  EXPECT_EQ(r.approval_by, "KH-000010");
  EXPECT_EQ(r.approval_at, "2025-04-09T16:00:00+07:00");
  EXPECT_EQ(r.changed_at, "2025-04-09T16:00:00+07:00");
  EXPECT_EQ(r.attributes.size(), 4u);
  EXPECT_EQ(attribute(r, "start_time"), "08:00");
  EXPECT_EQ(attribute(r, "end_time"), "10:30");
  EXPECT_EQ(attribute(r, "assigned_by"), "KH-000010");
  EXPECT_EQ(attribute(r, "assigned_at"), "2025-04-07T09:00:00+07:00");
  EXPECT_EQ(r.location, "item 1");
  ASSERT_TRUE(r.raw);
  EXPECT_NE(r.raw->find("WD-2025-000001"), std::string::npos);
  EXPECT_EQ(summary.items, 1u);
  ASSERT_TRUE(summary.last_key);
  EXPECT_EQ(summary.last_key->id, "WD-2025-000001");
  EXPECT_FALSE(summary.next_page_token);
  EXPECT_EQ(summary.server_time, "2025-04-09T16:05:00+07:00");
}

// Numbers pass as their text, and every value says what JSON type it had, so that the host
// can refuse "minutes": "195" (issue 18: it was stored and scored as 195 minutes).
TEST(EOfficeNormalizer, ValuesKeepTheirJsonType) {
  Page page;
  Normalizer().normalize_page(
      page_of(R"({"id": 42, "revision": "2", "updated_at": "2025-04-09T16:00:00+07:00",
                  "minutes": 150.5, "quantity": "4", "deleted": false, "title": "x"})"),
      std::nullopt, page);
  ASSERT_EQ(page.records().size(), 1u);
  const auto& r = page.records()[0];
  EXPECT_EQ(r.source_id, "42");
  EXPECT_EQ(r.revision, "2");
  EXPECT_EQ(r.declared_minutes, "150.5");
  EXPECT_EQ(r.quantity, "4");
  EXPECT_FALSE(r.task_code);  // absent stays absent
  const auto kind = [&](kpihub_field f) { return r.value_kinds[f]; };
  EXPECT_EQ(kind(KPIHUB_FIELD_SOURCE_ID), KPIHUB_VALUE_NUMBER);
  EXPECT_EQ(kind(KPIHUB_FIELD_REVISION), KPIHUB_VALUE_STRING);
  EXPECT_EQ(kind(KPIHUB_FIELD_DECLARED_MINUTES), KPIHUB_VALUE_NUMBER);
  EXPECT_EQ(kind(KPIHUB_FIELD_QUANTITY), KPIHUB_VALUE_STRING);
  EXPECT_EQ(kind(KPIHUB_FIELD_RETRACTED), KPIHUB_VALUE_BOOLEAN);
  EXPECT_EQ(kind(KPIHUB_FIELD_TITLE), KPIHUB_VALUE_STRING);
  EXPECT_EQ(kind(KPIHUB_FIELD_CHANGED_AT), KPIHUB_VALUE_STRING);
  EXPECT_EQ(kind(KPIHUB_FIELD_TASK_CODE), KPIHUB_VALUE_TEXT);
  // ... and the kinds cross the ABI with the record.
  const kpihub_page view = page.c_view();
  ASSERT_EQ(view.records[0].value_kind_count, static_cast<std::size_t>(KPIHUB_FIELD_COUNT));
  EXPECT_EQ(view.records[0].value_kinds[KPIHUB_FIELD_QUANTITY], KPIHUB_VALUE_STRING);
}

// Issue 18: with a key twice, Boost.JSON kept the last value silently. The item is refused,
// naming the key; its neighbours are kept.
TEST(EOfficeNormalizer, AnItemWithARepeatedKeyIsRefusedNamingTheKey) {
  Page page;
  const std::string base = R"("updated_at": "2025-04-09T16:00:00+07:00", "revision": 1)";
  Normalizer().normalize_page(
      page_of(R"({"id": "A", )" + base + R"(, "minutes": 30, "minutes": 480},)" +
              R"({"id": "B", )" + base + R"(, "staff_code": "KH-1", "staff_code": "KH-2"},)" +
              R"({"id": "C", )" + base +
              R"(, "approval": {"status": "approved", "status": "rejected"}},)" +
              R"({"id": "D", )" + base + R"(, "minutes": 30, "approval": {"status": "approved"}})"),
      std::nullopt, page);
  ASSERT_EQ(page.records().size(), 1u);
  EXPECT_EQ(page.records()[0].source_id, "D");
  ASSERT_EQ(page.rejected().size(), 3u);
  const auto& a = page.rejected()[0];
  EXPECT_EQ(a.source_id, "A");
  EXPECT_EQ(a.reason, "parse_error");
  EXPECT_EQ(a.field, "declared_minutes");
  EXPECT_NE(a.message.find("\"minutes\" appears more than once"), std::string::npos) << a.message;
  EXPECT_EQ(a.location, "item 1");
  EXPECT_EQ(page.rejected()[1].field, "staff_code");
  EXPECT_EQ(page.rejected()[2].field, "approval_status");
  EXPECT_NE(page.rejected()[2].message.find("\"approval.status\""), std::string::npos)
      << page.rejected()[2].message;
}

TEST(EOfficeNormalizer, APageWithARepeatedKeyIsNotRead) {
  Page page;
  try {
    Normalizer().normalize_page(R"({"items": [], "next_page_token": "a", "next_page_token": "b"})",
                                std::nullopt, page);
    FAIL() << "a page with two next_page_tokens was read";
  } catch (const PageParseError& e) {
    EXPECT_NE(std::string(e.what()).find("\"next_page_token\" more than once"), std::string::npos)
        << e.what();
  }
}

TEST(EOfficeNormalizer, TombstoneIsRetractedAndCarriesLastContent) {
  std::string item = kSpecItem;
  item.replace(item.find("\"deleted\": false"), 16, "\"deleted\": true");
  item.replace(item.find("\"revision\": 3"), 13, "\"revision\": 4");
  Page page;
  Normalizer().normalize_page(page_of(item), std::nullopt, page);
  ASSERT_EQ(page.records().size(), 1u);
  const auto& r = page.records()[0];
  EXPECT_EQ(r.retracted, "true");
  EXPECT_EQ(r.revision, "4");
  EXPECT_EQ(r.task_code, "B.03.2");
  EXPECT_EQ(r.declared_minutes, "150");
}

TEST(EOfficeNormalizer, FieldMapOverrideReadsAnotherEOffice) {
  FieldMap map = FieldMap::defaults();
  map.set("source_id", "diary_id");
  map.set("changed_at", "modified");
  map.set("declared_minutes", "duration_min");
  map.set("approval_status", "review.state");
  map.set("source_staff_id", "");  // unmapped
  map.set("attributes.room", "room");
  EXPECT_THROW(map.set("minutes", "x"), std::invalid_argument);

  Page page;
  Normalizer(map).normalize_page(
      page_of(R"({"diary_id": "X-1", "revision": 1, "modified": "2025-04-09T16:00:00+07:00",
                  "staff_code": "KH-000001", "duration_min": 45, "minutes": 999,
                  "review": {"state": "pending"}, "room": "P.203"})"),
      std::nullopt, page);
  ASSERT_EQ(page.records().size(), 1u)
      << (page.rejected().empty() ? "" : page.rejected()[0].message);
  const auto& r = page.records()[0];
  EXPECT_EQ(r.source_id, "X-1");
  EXPECT_EQ(r.changed_at, "2025-04-09T16:00:00+07:00");
  EXPECT_EQ(r.declared_minutes, "45");
  EXPECT_EQ(r.approval_status, "pending");
  EXPECT_FALSE(r.source_staff_id);
  EXPECT_EQ(attribute(r, "room"), "P.203");
}

TEST(EOfficeNormalizer, MalformedItemsAreRejectedWithReasonAndNeighboursKept) {
  const std::string good1 =
      R"({"id": "G-1", "revision": 1, "updated_at": "2025-04-09T16:00:00+07:00"})";
  const std::string good2 =
      R"({"id": "G-2", "revision": 1, "updated_at": "2025-04-09T16:00:01+07:00"})";
  const std::string items = good1 + ",\n" +
                            R"(42,
      {"revision": 1, "updated_at": "2025-04-09T16:00:00+07:00"},
      {"id": {"n": 7}, "revision": 1},
      {"id": "", "revision": 1},
      {"id": "B-1", "revision": 1, "minutes": {"value": 150}},
      {"id": "B-2", "revision": 1, "approval": "approved"},
      {"id": "B-3", "revision": 1, "start_time": ["08:00"]},
      {"id": "B-4", "revision": [1]},)" +
                            good2;
  Page page;
  Normalizer().normalize_page(page_of(items), std::nullopt, page);
  ASSERT_EQ(page.records().size(), 2u);
  EXPECT_EQ(page.records()[0].source_id, "G-1");
  EXPECT_EQ(page.records()[1].source_id, "G-2");
  EXPECT_EQ(page.records()[1].location, "item 10");

  struct Expected {
    std::optional<std::string> id, reason, field, in_message;
  };
  const std::vector<Expected> expected = {
      {std::nullopt, "parse_error", std::nullopt, "expected a JSON object, got a number: 42"},
      {std::nullopt, "missing_field", "source_id", "source \"id\") is missing"},
      {std::nullopt, "bad_value", "source_id", "{\"n\":7}"},
      {std::nullopt, "missing_field", "source_id", "non-empty"},
      {"B-1", "bad_value", "declared_minutes", "(source \"minutes\") has an object"},
      {"B-2", "bad_value", "approval_status", "(source \"approval\") has a string"},
      {"B-3", "bad_value", "attributes.start_time", "[\"08:00\"]"},
      {"B-4", "bad_value", "revision", "an array"},
  };
  ASSERT_EQ(page.rejected().size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& got = page.rejected()[i];
    SCOPED_TRACE("rejected #" + std::to_string(i) + ": " + got.message);
    EXPECT_EQ(got.source_id, expected[i].id);
    EXPECT_EQ(got.reason, expected[i].reason);
    EXPECT_EQ(got.field, expected[i].field);
    EXPECT_NE(got.message.find(*expected[i].in_message), std::string::npos);
    EXPECT_EQ(got.location, "item " + std::to_string(i + 2));
    EXPECT_TRUE(got.raw && !got.raw->empty());
  }
}

TEST(EOfficeNormalizer, InvalidUtf8QuarantinesOnlyItsItem) {
  // Not raw strings: the invalid bytes must be real bytes.
  const std::string items =
      "{\"id\": \"U-1\", \"revision\": 1, \"updated_at\": \"2025-04-09T16:00:00+07:00\", "
      "\"title\": \"Họp giao ban\"},"
      "{\"id\": \"U-2\", \"revision\": 1, \"updated_at\": \"2025-04-09T16:00:01+07:00\", "
      "\"title\": \"B\xC3\x28o c\xE1o\"},"
      "{\"id\": \"U-3\", \"revision\": 1, \"updated_at\": \"2025-04-09T16:00:02+07:00\", "
      "\"approval\": {\"by\": \"\xFF\"}},"
      "{\"id\": \"U-4\", \"revision\": 1, \"updated_at\": \"2025-04-09T16:00:03+07:00\", "
      "\"title\": \"Tổng hợp\"}";
  Page page;
  const auto summary = Normalizer().normalize_page(page_of(items), std::nullopt, page);
  ASSERT_EQ(page.records().size(), 2u);
  EXPECT_EQ(page.records()[0].title, "Họp giao ban");
  EXPECT_EQ(page.records()[1].title, "Tổng hợp");
  ASSERT_EQ(page.rejected().size(), 2u);
  const auto& bad = page.rejected()[0];
  EXPECT_EQ(bad.reason, "bad_encoding");
  EXPECT_EQ(bad.field, "title");
  EXPECT_EQ(bad.source_id, "U-2");
  ASSERT_TRUE(bad.raw);
  EXPECT_TRUE(kpihub::sdk::valid_utf8(*bad.raw)) << "raw must be storable as UTF-8";
  EXPECT_NE(bad.raw->find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_EQ(page.rejected()[1].field, "approval_by");
  // The cursor still moves past the bad items.
  EXPECT_EQ(summary.last_key->id, "U-4");
}

TEST(EOfficeNormalizer, InclusiveBoundaryIsNotEmittedTwice) {
  const std::string items =
      R"({"id": "WD-9", "revision": 1, "updated_at": "2025-04-09T15:59:59+07:00"},
         {"id": "WD-10", "revision": 1, "updated_at": "2025-04-09T16:00:00+07:00"},
         {"id": "WD-11", "revision": 1, "updated_at": "2025-04-09T09:00:00Z"},
         {"id": "WD-12", "revision": 2, "updated_at": "2025-04-09T16:00:00+07:00"},
         {"id": "WD-13", "revision": 1, "updated_at": "2025-04-09T16:00:01+07:00"})";
  Page page;
  const std::optional<FeedKey> cursor = FeedKey{"2025-04-09T16:00:00+07:00", "WD-11"};
  const auto summary = Normalizer().normalize_page(page_of(items), cursor, page);
  ASSERT_EQ(page.records().size(), 2u);
  EXPECT_EQ(page.records()[0].source_id, "WD-12");
  EXPECT_EQ(page.records()[1].source_id, "WD-13");
  EXPECT_EQ(summary.skipped, 3u);
  EXPECT_EQ(summary.last_key->id, "WD-13");
}

TEST(EOfficeNormalizer, KeysOrderLikeTheFeed) {
  using kpihub::eoffice::compare_keys;
  EXPECT_LT(compare_keys({"2025-04-09T16:00:00+07:00", "9"}, {"2025-04-09T16:00:00+07:00", "10"}),
            0);
  EXPECT_LT(
      compare_keys({"2025-04-09T16:00:00+07:00", "WD-9"}, {"2025-04-09T16:00:00+07:00", "WD-A"}),
      0);
  EXPECT_EQ(compare_keys({"2025-04-09T16:00:00+07:00", "A"}, {"2025-04-09T09:00:00Z", "A"}), 0);
  EXPECT_GT(compare_keys({"2025-04-09T16:00:00.5+07:00", "A"}, {"2025-04-09T16:00:00+07:00", "B"}),
            0);
  EXPECT_FALSE(kpihub::eoffice::parse_rfc3339_ms("2025-02-30T00:00:00+07:00"));
  EXPECT_FALSE(kpihub::eoffice::parse_rfc3339_ms("2025-04-09 16:00"));
  EXPECT_EQ(kpihub::eoffice::parse_rfc3339_ms("1970-01-01T07:00:00+07:00"), 0);
}

TEST(EOfficeNormalizer, UnreadablePagesNameTheByteOffset) {
  Page page;
  const Normalizer n;
  const auto offset_of = [&](const std::string& body) -> std::size_t {
    try {
      n.normalize_page(body, std::nullopt, page);
    } catch (const PageParseError& e) {
      return e.offset();
    }
    ADD_FAILURE() << "no error for " << body;
    return 0;
  };
  EXPECT_EQ(offset_of("<html>502 Bad Gateway</html>"), 0u);
  const std::string truncated = page_of(kSpecItem).substr(0, 300);
  EXPECT_EQ(offset_of(truncated), truncated.size());
  EXPECT_EQ(offset_of(R"({"items": [1,,2]})"), 13u);
  EXPECT_EQ(offset_of(R"({"items": []} garbage)"), 14u);
  EXPECT_THROW(n.normalize_page(R"({"rows": []})", std::nullopt, page), PageParseError);
  EXPECT_THROW(n.normalize_page(R"({"items": [], "next_page_token": 5})", std::nullopt, page),
               PageParseError);
  EXPECT_EQ(page.size(), 0u) << "nothing is emitted from an unreadable page";
}

TEST(EOfficeNormalizer, PageIsViewableThroughTheAbi) {
  Page page;
  Normalizer().normalize_page(page_of(kSpecItem + ", 7"), std::nullopt, page);
  const kpihub_page view = page.c_view();
  ASSERT_EQ(view.record_count, 1u);
  ASSERT_EQ(view.rejected_count, 1u);
  EXPECT_EQ(
      std::string(view.records[0].declared_minutes.data, view.records[0].declared_minutes.size),
      "150");
  EXPECT_EQ(view.records[0].attribute_count, 4u);
  EXPECT_EQ(view.records[0].quantity.size, 1u);
  EXPECT_EQ(view.records[0].source_staff_id.data != nullptr, true);
}

TEST(EOfficeHelpers, CursorRoundTripsAndRefusesGarbage) {
  using kpihub::eoffice::Cursor;
  const Cursor c{{"2025-04-09T16:00:00+07:00", "WD-1"}, std::string("tok")};
  const Cursor back = Cursor::decode(c.encode());
  EXPECT_EQ(back.key.updated_at, c.key.updated_at);
  EXPECT_EQ(back.key.id, "WD-1");
  EXPECT_EQ(back.page_token, "tok");
  EXPECT_FALSE(Cursor::decode(R"({"updated_at":"2025-04-09T16:00:00+07:00","id":"x"})").page_token);
  try {
    Cursor::decode("2025-04-09|x");
    FAIL() << "garbage cursor accepted";
  } catch (const kpihub::sdk::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("2025-04-09|x"), std::string::npos) << e.what();
  }
}

TEST(EOfficeSettings, ReadsDefaultsAndRefusesBadValues) {
  using kpihub::eoffice::SourceSettings;
  kpihub::sdk::Settings ok(
      R"({"base_url": "https://e.example/", "client_id": "hub", "client_secret_env": "S",
          "fields": {"declared_minutes": "duration", "attributes.room": "room"}})",
      "sources.eoffice.settings");
  const auto s = SourceSettings::read(ok);
  ok.reject_unknown();
  EXPECT_EQ(s.base_url, "https://e.example");
  EXPECT_EQ(s.client_secret_ref, "env:S");
  EXPECT_EQ(s.page_size, 500);
  EXPECT_EQ(s.diary_path, "/api/v1/work-diary");
  EXPECT_EQ(s.fields.source_of("declared_minutes"), "duration");
  EXPECT_EQ(s.fields.source_of("attributes.room"), "room");

  const auto error_of = [](const std::string& text) -> std::string {
    kpihub::sdk::Settings settings(text, "sources.eoffice.settings");
    try {
      SourceSettings::read(settings);
      settings.reject_unknown();
    } catch (const kpihub::sdk::ConfigError& e) {
      return e.what();
    }
    return "<accepted>";
  };
  const std::string base = R"("base_url": "https://e.example", "client_id": "hub")";
  EXPECT_NE(error_of("{" + base + "}").find("client_secret_file"), std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "client_secret_env": "S", "page_sise": 5})")
                .find("sources.eoffice.settings.page_sise: unknown setting"),
            std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "client_secret_env": "S", "fields": {"minutes": "m"}})")
                .find("fields.minutes"),
            std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "client_secret_env": "S", "page_size": 0})")
                .find("page_size: 0 is outside"),
            std::string::npos);
  EXPECT_NE(error_of("{" + base + R"(, "client_secret_env": "S", "updated_since": "yesterday"})")
                .find("updated_since"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"base_url": "ftp://x", "client_id": "hub", "client_secret_env": "S"})")
                .find("base_url"),
            std::string::npos);
}

// What a page gives, everything a user of the records, rejections and summary can see, or the
// error a page is refused with.
std::string outcome(const Normalizer& n, const std::string& body,
                    const std::optional<FeedKey>& after, std::size_t max_items, bool values) {
  Page page;
  kpihub::eoffice::PageSummary s;
  try {
    s = values ? n.normalize_page_values(body, after, page, max_items)
               : n.normalize_page(body, after, page, max_items);
  } catch (const PageParseError& e) {
    return "error at " + std::to_string(e.offset()) + ": " + e.what();
  }
  std::string o;
  const auto opt = [&](const std::optional<std::string>& v) {
    o += (v ? "[" + *v + "]" : "-") + "|";
  };
  for (const auto& r : page.records()) {
    o += "record " + r.source_id + "|" + r.revision + "|";
    for (const auto* f : {&r.retracted,
                          &r.staff_code,
                          &r.source_staff_id,
                          &r.agency_code,
                          &r.task_code,
                          &r.work_date,
                          &r.declared_minutes,
                          &r.quantity,
                          &r.product_unit,
                          &r.title,
                          &r.evidence_ref,
                          &r.deadline,
                          &r.completed_at,
                          &r.approval_status,
                          &r.approval_rating,
                          &r.approval_by,
                          &r.approval_at,
                          &r.changed_at,
                          &r.raw,
                          &r.location}) {
      opt(*f);
    }
    for (const auto& [k, v] : r.attributes) o += k + "=" + v + ";";
    for (const auto k : r.value_kinds) o += std::to_string(k);
    o += "\n";
  }
  for (const auto& r : page.rejected()) {
    o += "rejected " + r.reason + "|" + r.message + "|";
    opt(r.source_id);
    opt(r.field);
    opt(r.raw);
    opt(r.location);
    o += "\n";
  }
  o += "items " + std::to_string(s.items) + ", skipped " + std::to_string(s.skipped) + ", last ";
  o += s.last_key ? s.last_key->updated_at + " " + s.last_key->id : "-";
  o += ", ";
  opt(s.next_page_token);
  opt(s.server_time);
  return o;
}

// Pages are read in one pass from the parser's events, items without being built into values
// (issue 20). Whatever the page holds, that gives exactly what reading its values gives:
// the same records (raw text included), rejections, messages, cursor and errors.
TEST(EOfficeNormalizer, ReadingAPageInOnePassGivesWhatItsValuesGive) {
  const Normalizer n;
  const std::string good = kSpecItem;
  const std::string at = R"("updated_at": "2025-04-09T16:00:00+07:00")";
  const std::vector<std::string> items = {
      good,
      R"({"id": "A1", "revision": 1, )" + at +
          R"(, "title": "a\nb\"c\\d\/e\u00e9\u0001\u001f", "minutes": 150.0, "quantity": 1.5})",
      R"({"id": 7, "revision": 1e2, )" + at + R"(, "quantity": -0.0, "minutes": -5})",
      R"({"id": 18446744073709551615, "revision": 18446744073709551615, )" + at + "}",
      R"({"id": 1.5, )" + at + "}",
      R"({"id": "", )" + at + "}",
      R"({"id": true, )" + at + "}",
      R"({"id": null, )" + at + "}",
      "{" + at + "}",
      R"({"id": "B", )" + at + R"(, "approval": null, "title": null})",
      R"({"id": "B", )" + at + R"(, "approval": "yes"})",
      R"({"id": "B", )" + at + R"(, "approval": [1, 2]})",
      R"({"id": "B", )" + at + R"(, "approval": {"status": {"x": 1}}})",
      R"({"id": "B", )" + at + R"(, "approval": {"status": "ok", "z": [{"a": [1, {"b": 2}]}]},
          "extra": {"x": [1, 2, {"y": null}]}, "more": [[], {}]})",
      R"({"id": "B", )" + at + R"(, "title": {"a": 1}})",
      R"({"id": "B", )" + at + R"(, "start_time": {"a": 1}})",
      R"({"id": "B", )" + at +
          R"(, "start_time": 1.25, "end_time": true, "assigned_by": 7, "assigned_at": null})",
      R"({"id": "B", "updated_at": 12345})",
      R"({"id": "B", "updated_at": "garbage"})",
      R"({"id": "B", )" + at + R"(, "id": "C"})",
      R"({"id": "B", )" + at + R"(, "x": {"q": 1, "q": 2}, "title": "t", "title": "u"})",
      "{\"id\": \"B\xff\", " + at + "}",
      "{\"id\": \"B\", " + at + ", \"k\xc3\": 1}",
      "{\"id\": \"B\", " + at + ", \"other\": [\"\xe0\x80\"]}",
      R"({"\u0069d": "escaped-key", )" + at + "}",
      "5",
      "\"text\"",
      "null",
      "[1, 2]",
      "{}"};
  const std::vector<std::optional<FeedKey>> cursors = {
      std::nullopt, FeedKey{"2025-04-09T16:00:00+07:00", "B"}, FeedKey{"not a time", "5"}};
  const auto same = [&](const std::string& body, std::size_t max_items = 1000) {
    for (const auto& after : cursors) {
      EXPECT_EQ(outcome(n, body, after, max_items, false), outcome(n, body, after, max_items, true))
          << body;
    }
  };
  for (const auto& item : items) {
    same(page_of(item));
    same(page_of(item + "," + good + "," + item, "\"next\""));
  }
  for (const std::string& page : std::vector<std::string>{
           R"([])", R"({})", R"({"items": {}})", R"({"items": [], "items": []})",
           R"({"items": [], "next_page_token": 5})", R"({"items": [], "next_page_token": ""})",
           R"({"items": [], "server_time": "a\u00e9"})", R"({"items": []} x)", R"({"items": [] )",
           R"({"items": [[1, 2, 3]]})", R"({"a": {"b": 1, "b": 2}, "items": []})",
           R"({"a": {"items": [1]}, "items": [)" + good + "]}"}) {
    same(page);
    same(page, 1);
  }
  // And pages of a good item and the spec's, each changed at a few random bytes.
  std::mt19937_64 random(20);
  const std::string alphabet = "{}[]\",:\\ 0123456789.eE-+tfnulxa\xff\xc3\xa9/";
  for (int round = 0; round < 3000; ++round) {
    std::string body = page_of(items[1] + "," + good, "\"t\"");
    for (int change = 1 + static_cast<int>(random() % 3); change > 0; --change) {
      const std::size_t pos = random() % body.size();
      const char c = alphabet[random() % alphabet.size()];
      switch (random() % 3) {
        case 0:
          body[pos] = c;
          break;
        case 1:
          body.insert(pos, 1, c);
          break;
        default:
          body.erase(pos, 1);
      }
    }
    EXPECT_EQ(outcome(n, body, std::nullopt, 1000, false),
              outcome(n, body, std::nullopt, 1000, true))
        << body;
  }
}

// The raw text of an item, record or rejection, is the item as the page holds it: its own
// spacing, escapes and number forms (1e2, -0, 150.0), every copy of a repeated key and
// nested values as sent, not the item written out again (issue 20, no hand-written JSON).
// Invalid UTF-8 is the only change: each invalid byte becomes U+FFFD.
TEST(EOfficeNormalizer, RawIsTheItemAsThePageHoldsIt) {
  const std::string at = R"("updated_at": "2025-04-09T16:00:00+07:00")";
  const std::vector<std::string> items = {
      kSpecItem,
      R"({"id":"A1","revision":1e2,)" + at +
          R"(,"title":"a\nb\"c\\d\/e\u00e9 Văn\u0001","minutes":150.0,"quantity":-0})",
      "{ \"id\" : 7 ,\t\"revision\" : 1.50 ,\r\n " + at +
          " , \"approval\" : { \"status\" : \"ok\" , \"z\" : [ 1 , { \"b\" : -0.0 } ] } }",
      R"({"\u0069d": "escaped-key", )" + at + R"(, "x": {"y": [[], {}]}})",
      R"({"id": "B", )" + at + R"(, "minutes": 30, "minutes": 480})",
      R"({"id": "C", )" + at + R"(, "minutes": {"value": 150}})",
      R"({"id": "", )" + at + "}",
      "5",
      "-0",
      "1E+2",
      "\"text\\u0020\"",
      "null",
      "[1 , 2]",
      "{}"};
  std::string list;
  for (std::size_t i = 0; i < items.size(); ++i) list += (i ? " ,\n  " : "\n  ") + items[i];
  list += "\n";
  for (const bool values : {false, true}) {
    SCOPED_TRACE(values ? "read into values" : "read in one pass");
    Page page;
    const Normalizer n;
    if (values) {
      n.normalize_page_values(page_of(list), std::nullopt, page);
    } else {
      n.normalize_page(page_of(list), std::nullopt, page);
    }
    std::vector<std::optional<std::string>> raw(items.size());
    for (const auto& r : page.records()) raw.at(std::stoul(r.location->substr(5)) - 1) = r.raw;
    for (const auto& r : page.rejected()) raw.at(std::stoul(r.location->substr(5)) - 1) = r.raw;
    for (std::size_t i = 0; i < items.size(); ++i) EXPECT_EQ(raw[i], items[i]) << "item " << i + 1;
  }

  // The list anywhere in the page, nested lists named "items" before it.
  {
    Page page;
    const auto summary = Normalizer().normalize_page(
        R"({"server_time": "2025-04-09T16:05:00+07:00", "x": {"items": [1, [2]]},
            "next_page_token": "t", "items" :[)" +
            items[1] + "  ,  " + items[2] + "] }",
        std::nullopt, page);
    EXPECT_EQ(summary.next_page_token, "t");
    ASSERT_EQ(page.records().size(), 2u);
    EXPECT_EQ(page.records()[0].raw, items[1]);
    EXPECT_EQ(page.records()[1].raw, items[2]);
  }

  // Whatever the page holds, a raw text is a piece of the page that Boost.JSON reads as the
  // value its items list holds at that place (pages changed at a few random bytes).
  std::mt19937_64 random(21);
  const std::string alphabet = "{}[]\",:\\ \t\n0123456789.eE-+tfnulxa/";
  int checked = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string body = page_of(items[1] + " ,\n " + items[2] + "," + items[4] + "," + items[3]);
    for (int change = 1 + static_cast<int>(random() % 3); change > 0; --change) {
      const std::size_t pos = random() % body.size();
      const char c = alphabet[random() % alphabet.size()];
      switch (random() % 3) {
        case 0:
          body[pos] = c;
          break;
        case 1:
          body.insert(pos, 1, c);
          break;
        default:
          body.erase(pos, 1);
      }
    }
    Page page;
    try {
      Normalizer().normalize_page(body, std::nullopt, page);
    } catch (const PageParseError&) {
      continue;
    }
    if (!kpihub::sdk::valid_utf8(body)) continue;  // a byte of "ă" taken out: see below
    const boost::json::value parsed = boost::json::parse(body);
    const boost::json::array& list = parsed.at("items").as_array();
    const auto check = [&](const std::optional<std::string>& raw,
                           const std::optional<std::string>& location) {
      ASSERT_TRUE(raw && location) << body;
      EXPECT_NE(body.find(*raw), std::string::npos) << *raw;
      EXPECT_EQ(boost::json::parse(*raw), list.at(std::stoul(location->substr(5)) - 1)) << body;
      ++checked;
    };
    for (const auto& r : page.records()) check(r.raw, r.location);
    for (const auto& r : page.rejected()) check(r.raw, r.location);
  }
  EXPECT_GT(checked, 1000);

  // Invalid bytes, in a page that is otherwise the same, are replaced one by one.
  const std::string bad = "{\"id\": \"U\xC3\x28\", " + at + ", \"title\":  \"x\xFF\"}";
  Page page;
  Normalizer().normalize_page(page_of(kSpecItem + ",\n" + bad), std::nullopt, page);
  ASSERT_EQ(page.rejected().size(), 1u);
  EXPECT_EQ(page.records().at(0).raw, kSpecItem);
  EXPECT_EQ(page.rejected()[0].raw,
            "{\"id\": \"U\xEF\xBF\xBD(\", " + at + ", \"title\":  \"x\xEF\xBF\xBD\"}");
}

}  // namespace
