#include <kpihub/text.hpp>
#include <kpihub/validate.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <map>
#include <vector>

using namespace kpihub;

namespace {

// Builds a kpihub_record from a map of field -> text, as an adapter would.
class RecordText {
 public:
  explicit RecordText(std::map<std::string, std::string> fields) : f_(std::move(fields)) {}
  RecordText& set(const std::string& k, const std::string& v) {
    f_[k] = v;
    return *this;
  }
  RecordText& erase(const std::string& k) {
    f_.erase(k);
    return *this;
  }
  kpihub_record c() const {
    kpihub_record r{};
    r.struct_size = sizeof(r);
    auto s = [&](const char* k) {
      auto it = f_.find(k);
      return it == f_.end() ? kpihub_str{nullptr, 0}
                            : kpihub_str{it->second.data(), it->second.size()};
    };
    r.source_id = s("source_id");
    r.revision = s("revision");
    r.retracted = s("retracted");
    r.staff_code = s("staff_code");
    r.source_staff_id = s("source_staff_id");
    r.agency_code = s("agency_code");
    r.task_code = s("task_code");
    r.work_date = s("work_date");
    r.declared_minutes = s("declared_minutes");
    r.quantity = s("quantity");
    r.title = s("title");
    r.deadline = s("deadline");
    r.completed_at = s("completed_at");
    r.approval_status = s("approval.status");
    r.approval_rating = s("approval.rating");
    r.changed_at = s("changed_at");
    return r;
  }

 private:
  std::map<std::string, std::string> f_;
};

RecordText good() {
  return RecordText({{"source_id", "WD-1"},
                     {"revision", "3"},
                     {"staff_code", "KH-000123"},
                     {"task_code", "B.03.2"},
                     {"work_date", "2025-04-08"},
                     {"declared_minutes", "150"},
                     {"quantity", "4"},
                     {"title", "Xử lý văn bản đến"},
                     {"deadline", "2025-04-10"},
                     {"completed_at", "2025-04-09T15:00:00+07:00"},
                     {"approval.status", "approved"},
                     {"approval.rating", "good"}});
}

const ValidationContext kCtx{"eoffice", *Date::parse("2025-04-20"), 400};

QuarantineEntry rejected(const RecordText& t) {
  const auto c = t.c();
  auto n = normalize(c, kCtx);
  EXPECT_TRUE(std::holds_alternative<QuarantineEntry>(n));
  return std::holds_alternative<QuarantineEntry>(n) ? std::get<QuarantineEntry>(n)
                                                    : QuarantineEntry{};
}

}  // namespace

TEST(Normalize, AcceptsTheSpecExample) {
  const RecordText text = good();
  const auto c = text.c();
  auto n = normalize(c, kCtx);
  ASSERT_TRUE(std::holds_alternative<WorkRecord>(n)) << std::get<QuarantineEntry>(n).message;
  const auto& r = std::get<WorkRecord>(n);
  EXPECT_EQ(r.record_id, "eoffice:WD-1");
  EXPECT_EQ(r.revision, 3);
  EXPECT_EQ(r.declared_minutes, 150);
  EXPECT_DOUBLE_EQ(r.quantity, 4);
  EXPECT_EQ(r.approval->status, ApprovalStatus::approved);
  EXPECT_EQ(*r.approval->rating, Rating::good);
  EXPECT_EQ(r.deadline->date->str(), "2025-04-10");
}

TEST(Normalize, MissingRequiredFieldsNameTheField) {
  for (const char* f :
       {"source_id", "revision", "task_code", "work_date", "declared_minutes", "quantity"}) {
    const auto q = rejected(good().erase(f));
    EXPECT_EQ(q.reason, Reason::missing_field) << f;
    EXPECT_EQ(q.field, f);
    EXPECT_NE(q.message.find(f), std::string::npos) << q.message;
  }
  const auto q = rejected(good().erase("staff_code"));
  EXPECT_EQ(q.reason, Reason::missing_field);
  EXPECT_NE(q.message.find("source_staff_id"), std::string::npos);
}

TEST(Normalize, BadValuesNameFieldAndValue) {
  struct Case {
    const char* field;
    const char* value;
  };
  for (const Case& c :
       {Case{"declared_minutes", "-5"}, Case{"declared_minutes", "150.5"},
        Case{"declared_minutes", "1441"}, Case{"declared_minutes", "abc"}, Case{"quantity", "-1"},
        Case{"quantity", "inf"}, Case{"quantity", "nan"}, Case{"work_date", "2025-02-30"},
        Case{"completed_at", "2025-04-09 15:00"}, Case{"approval.status", "maybe"},
        Case{"approval.rating", "superb"}, Case{"revision", "x"}, Case{"retracted", "perhaps"}}) {
    const auto q = rejected(good().set(c.field, c.value));
    EXPECT_EQ(q.reason, Reason::bad_value) << c.field << "=" << c.value;
    EXPECT_EQ(q.field, c.field);
    EXPECT_NE(q.message.find(c.value), std::string::npos) << q.message;
  }
}

// Issue 18: "minutes": "195" was stored, scored and forwarded as 195 minutes. A typed source
// says what type each value had; the wrong type is bad_value, naming field and value.
TEST(Normalize, AValueOfTheWrongTypeIsBadValue) {
  struct Case {
    kpihub_field field;
    const char* name;
    const char* value;
    kpihub_value_kind kind;
    const char* says;
  };
  for (const Case& c :
       {Case{KPIHUB_FIELD_DECLARED_MINUTES, "declared_minutes", "195", KPIHUB_VALUE_STRING,
             "declared_minutes: \"195\" is a string in the source, where a number belongs"},
        Case{KPIHUB_FIELD_QUANTITY, "quantity", "4", KPIHUB_VALUE_STRING, "\"4\" is a string"},
        Case{KPIHUB_FIELD_REVISION, "revision", "true", KPIHUB_VALUE_BOOLEAN, "true is a boolean"},
        Case{KPIHUB_FIELD_RETRACTED, "retracted", "true", KPIHUB_VALUE_STRING,
             "where a boolean belongs"},
        Case{KPIHUB_FIELD_STAFF_CODE, "staff_code", "123", KPIHUB_VALUE_NUMBER,
             "123 is a number in the source, where a string belongs"},
        Case{KPIHUB_FIELD_WORK_DATE, "work_date", "20250408", KPIHUB_VALUE_NUMBER, "a number"}}) {
    RecordText text = good().set(c.name, c.value);
    kpihub_record r = text.c();
    std::array<uint8_t, KPIHUB_FIELD_COUNT> kinds{};
    kinds[c.field] = c.kind;
    r.value_kinds = kinds.data();
    r.value_kind_count = kinds.size();
    auto n = normalize(r, kCtx);
    ASSERT_TRUE(std::holds_alternative<QuarantineEntry>(n)) << c.name;
    const auto& q = std::get<QuarantineEntry>(n);
    EXPECT_EQ(q.reason, Reason::bad_value) << c.name;
    EXPECT_EQ(q.field, c.name);
    EXPECT_NE(q.message.find(c.says), std::string::npos) << q.message;
    // A replay of the quarantined fields refuses it again.
    const auto replay = RecordFields::parse(q.fields);
    ASSERT_TRUE(replay) << q.fields;
    EXPECT_TRUE(std::holds_alternative<QuarantineEntry>(normalize(replay->view(), kCtx)))
        << q.fields;
  }
  // The right types pass, and so does an id given as a number.
  const RecordText right = good();
  kpihub_record r = right.c();
  std::array<uint8_t, KPIHUB_FIELD_COUNT> kinds{};
  kinds.fill(KPIHUB_VALUE_STRING);
  kinds[KPIHUB_FIELD_SOURCE_ID] = kinds[KPIHUB_FIELD_REVISION] =
      kinds[KPIHUB_FIELD_DECLARED_MINUTES] = kinds[KPIHUB_FIELD_QUANTITY] = KPIHUB_VALUE_NUMBER;
  kinds[KPIHUB_FIELD_RETRACTED] = KPIHUB_VALUE_BOOLEAN;
  r.value_kinds = kinds.data();
  r.value_kind_count = kinds.size();
  auto n = normalize(r, kCtx);
  EXPECT_TRUE(std::holds_alternative<WorkRecord>(n)) << std::get<QuarantineEntry>(n).message;
}

// Issue 18: the largest finite double as a quantity became Infinity in scoring, and invalid
// JSON in the store, at the receiver and in reports.
TEST(Normalize, AnAbsurdQuantityIsBadValue) {
  for (const char* v : {"1.7976931348623157e308", "1e300", "1000000.5"}) {
    const auto q = rejected(good().set("quantity", v));
    EXPECT_EQ(q.reason, Reason::bad_value) << v;
    EXPECT_EQ(q.field, "quantity");
    EXPECT_NE(q.message.find("more than 1000000"), std::string::npos) << q.message;
  }
  RecordText largest = good();
  const auto c = largest.set("quantity", "1000000").c();
  EXPECT_TRUE(std::holds_alternative<WorkRecord>(normalize(c, kCtx)));
}

// A plugin built for ABI 1.0 has shorter records, and the host reads them a record apart.
TEST(RecordAt, ReadsRecordsOfAnOlderMinorAtTheirOwnStride) {
  constexpr std::size_t kOld = offsetof(kpihub_record, value_kinds);
  const RecordText first = good();
  const RecordText second = good().set("source_id", "WD-2");
  std::vector<unsigned char> bytes(2 * kOld);
  for (std::size_t i = 0; i < 2; ++i) {
    kpihub_record r = (i == 0 ? first : second).c();
    r.struct_size = kOld;
    std::memcpy(bytes.data() + i * kOld, &r, kOld);
  }
  kpihub_page page{};
  page.struct_size = sizeof page;
  page.records = reinterpret_cast<const kpihub_record*>(bytes.data());
  page.record_count = 2;
  const kpihub_record two = record_at(page, 1);
  EXPECT_EQ(std::string(two.source_id.data, two.source_id.size), "WD-2");
  EXPECT_EQ(two.value_kinds, nullptr);
  EXPECT_EQ(two.value_kind_count, 0u);
  EXPECT_TRUE(std::holds_alternative<WorkRecord>(normalize(two, kCtx)));
  kpihub_record tiny = first.c();
  tiny.struct_size = 8;
  page.records = &tiny;
  page.record_count = 1;
  EXPECT_THROW(record_at(page, 0), std::runtime_error);
}

TEST(Normalize, MinutesWrittenWithZeroFractionAreWhole) {
  RecordText text = good();
  const auto c = text.set("declared_minutes", "150.0").c();
  auto n = normalize(c, kCtx);
  ASSERT_TRUE(std::holds_alternative<WorkRecord>(n));
  EXPECT_EQ(std::get<WorkRecord>(n).declared_minutes, 150);
}

TEST(Normalize, InvalidUtf8IsBadEncodingAndKeepsThePayloadReadable) {
  const auto q = rejected(good().set("title", std::string("X\xC3\x28y")));
  EXPECT_EQ(q.reason, Reason::bad_encoding);
  EXPECT_EQ(q.field, "title");
  EXPECT_TRUE(sdk::valid_utf8(q.payload)) << q.payload;
  EXPECT_TRUE(sdk::valid_utf8(q.message));
}

TEST(Normalize, DatesOutsideTheWindow) {
  EXPECT_EQ(rejected(good().set("work_date", "2025-04-21")).reason, Reason::future_date);
  EXPECT_EQ(rejected(good().set("work_date", "2024-01-01")).reason, Reason::too_old);
}

TEST(Normalize, RejectedItemsKeepTheAdapterReason) {
  kpihub_rejected_item item{};
  item.struct_size = sizeof(item);
  item.reason = {"bad_value", 9};
  item.message = {"minutes: \"x\" is not a number", 29};
  item.source_id = {"WD-9", 4};
  auto q = quarantine_from_rejected(item, "eoffice");
  EXPECT_EQ(q.reason, Reason::bad_value);
  EXPECT_EQ(q.record_id, "eoffice:WD-9");
  item.reason = {"weird", 5};
  q = quarantine_from_rejected(item, "eoffice");
  EXPECT_EQ(q.reason, Reason::parse_error);
  EXPECT_NE(q.message.find("weird"), std::string::npos);
}

TEST(Utf8, RejectsOverlongsAndSurrogates) {
  EXPECT_TRUE(sdk::valid_utf8("Nguyễn Thị Lan"));
  EXPECT_FALSE(sdk::valid_utf8("\xC0\xAF"));
  EXPECT_FALSE(sdk::valid_utf8("\xED\xA0\x80"));
  EXPECT_FALSE(sdk::valid_utf8("\xF4\x90\x80\x80"));
  EXPECT_FALSE(sdk::valid_utf8("abc\xE2\x82"));
}

TEST(Normalize, AWithdrawalNeedsOnlyItsIdAndRevision) {
  // kpi-model.md: source_id and revision identify the record; retracted withdraws it.
  const RecordText bare({{"source_id", "WD-1"},
                         {"revision", "4"},
                         {"retracted", "true"},
                         {"changed_at", "2025-04-12T08:00:00+07:00"}});
  const auto c = bare.c();
  auto n = normalize(c, kCtx);
  ASSERT_TRUE(std::holds_alternative<WorkRecord>(n)) << std::get<QuarantineEntry>(n).message;
  const auto& r = std::get<WorkRecord>(n);
  EXPECT_TRUE(is_bare_withdrawal(r));
  EXPECT_EQ(r.record_id, "eoffice:WD-1");
  EXPECT_EQ(r.revision, 4);
  ASSERT_TRUE(r.changed_at.has_value());
  EXPECT_EQ(r.changed_at->str(), "2025-04-12T08:00:00+07:00");

  // A tombstone with valid content keeps it; with invalid content it withdraws by its id.
  RecordText tombstone = good();
  tombstone.set("retracted", "true");
  const auto full_c = tombstone.c();
  const auto full = normalize(full_c, kCtx);
  ASSERT_TRUE(std::holds_alternative<WorkRecord>(full));
  EXPECT_FALSE(is_bare_withdrawal(std::get<WorkRecord>(full)));
  EXPECT_EQ(std::get<WorkRecord>(full).declared_minutes, 150);
  tombstone.set("declared_minutes", "2000");
  const auto invalid_c = tombstone.c();
  const auto invalid = normalize(invalid_c, kCtx);
  ASSERT_TRUE(std::holds_alternative<WorkRecord>(invalid));
  EXPECT_TRUE(is_bare_withdrawal(std::get<WorkRecord>(invalid)));

  // The id and the revision stay required, and a record that is not withdrawn is whole.
  EXPECT_EQ(rejected(RecordText({{"source_id", "WD-1"}, {"retracted", "true"}})).reason,
            Reason::missing_field);
  EXPECT_EQ(rejected(RecordText({{"revision", "4"}, {"retracted", "true"}})).field, "source_id");
  EXPECT_EQ(rejected(RecordText({{"source_id", "WD-1"}, {"revision", "4"}})).reason,
            Reason::missing_field);
}
