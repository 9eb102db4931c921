#include <kpihub/model.hpp>
#include <kpihub/model_json.hpp>

#include <gtest/gtest.h>

using namespace kpihub;

TEST(Date, ParsesRealDatesOnly) {
  EXPECT_EQ(Date::parse("2025-04-08")->str(), "2025-04-08");
  EXPECT_TRUE(Date::parse("2024-02-29"));
  EXPECT_FALSE(Date::parse("2025-02-29"));
  EXPECT_FALSE(Date::parse("2025-02-30"));
  EXPECT_FALSE(Date::parse("2025-13-01"));
  EXPECT_FALSE(Date::parse("2025-4-8"));
  EXPECT_FALSE(Date::parse("2025-04-08T00:00"));
  EXPECT_FALSE(Date::parse(""));
  EXPECT_FALSE(Date::parse("abcd-ef-gh"));
}

TEST(Date, WeekdayAndMonth) {
  const Date d = *Date::parse("2025-04-07");  // a Monday
  EXPECT_EQ(d.weekday(), 1u);
  EXPECT_EQ(d.month_str(), "2025-04");
  EXPECT_EQ(Month::parse("2025-04")->last_day().str(), "2025-04-30");
  EXPECT_EQ(Month::parse("2024-02")->last_day().str(), "2024-02-29");
  EXPECT_EQ(Month::parse("2025-12")->next().str(), "2026-01");
  EXPECT_FALSE(Month::parse("2025-13"));
}

TEST(Timestamp, RoundTripsWithItsOffset) {
  const auto t = Timestamp::parse("2025-04-09T15:00:00+07:00");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->str(), "2025-04-09T15:00:00+07:00");
  EXPECT_EQ(t->unix_seconds, Timestamp::parse("2025-04-09T08:00:00Z")->unix_seconds);
  EXPECT_EQ(t->local_date().str(), "2025-04-09");
  EXPECT_EQ(Timestamp::parse("2025-04-09T23:30:00-02:00")->local_date().str(), "2025-04-09");
  EXPECT_TRUE(Timestamp::parse("2025-04-09T15:00:00.123+07:00"));
}

TEST(Timestamp, RefusesAmbiguousOrBrokenText) {
  EXPECT_FALSE(Timestamp::parse("2025-04-09T15:00:00"));  // no offset: which zone?
  EXPECT_FALSE(Timestamp::parse("2025-04-09 15:00"));
  EXPECT_FALSE(Timestamp::parse("2025-02-30T15:00:00+07:00"));
  EXPECT_FALSE(Timestamp::parse("2025-04-09T25:00:00+07:00"));
  EXPECT_FALSE(Timestamp::parse("2025-04-09T15:00:00+07:00junk"));
}

TEST(Deadline, DateMeansEndOfLocalDay) {
  Deadline d;
  d.date = Date::parse("2025-04-08");
  const auto end = Timestamp::parse("2025-04-08T23:59:59+07:00");
  EXPECT_EQ(d.unix_seconds(420), end->unix_seconds);
}

TEST(WorkRecordJson, RoundTripsEveryField) {
  WorkRecord r;
  r.record_id = "eoffice:WD-2025-000001";
  r.source_system = "eoffice";
  r.source_id = "WD-2025-000001";
  r.revision = 3;
  r.staff_code = "KH-000123";
  r.agency_code = "000.00.12.H34";
  r.task_code = "B.03.2";
  r.work_date = *Date::parse("2025-04-08");
  r.declared_minutes = 150;
  r.quantity = 4;
  r.product_unit = "văn bản";
  r.title = "Xử lý văn bản đến số 1234/UBND-VP";
  r.evidence_ref = "1234/UBND-VP";
  r.deadline = Deadline{Date::parse("2025-04-10"), std::nullopt};
  r.completed_at = Timestamp::parse("2025-04-09T15:00:00+07:00");
  r.approval = Approval{ApprovalStatus::approved, Rating::good, "KH-000010",
                        Timestamp::parse("2025-04-09T16:00:00+07:00")};
  r.changed_at = Timestamp::parse("2025-04-09T16:00:00+07:00");
  r.attributes = {{"document_type", "incoming"}};
  const auto text = to_json_text(r);
  EXPECT_NE(text.find("\"title\":\"Xử lý văn bản đến số 1234/UBND-VP\""), std::string::npos) << text;
  const WorkRecord back = work_record_from_json(boost::json::parse(text));
  EXPECT_EQ(back, r);
}
