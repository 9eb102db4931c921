// The common KPI model (spec/kpi-model.md), as the host holds it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpihub {

// A local calendar date (Asia/Ho_Chi_Minh), as days since 1970-01-01.
struct Date {
  int32_t days = 0;

  static std::optional<Date> parse(
      std::string_view yyyy_mm_dd);  // strict YYYY-MM-DD, real dates only
  static Date from_ymd(int y, unsigned m, unsigned d);
  std::chrono::year_month_day ymd() const;
  std::string str() const;        // YYYY-MM-DD
  std::string month_str() const;  // YYYY-MM
  unsigned weekday() const;       // 0 = Sunday ... 6 = Saturday
  auto operator<=>(const Date&) const = default;
};

// An instant with the UTC offset it was written with, so it prints back the same.
struct Timestamp {
  int64_t unix_seconds = 0;
  int32_t offset_minutes = 0;

  // RFC 3339 with offset ("2025-04-09T15:00:00+07:00", "...Z"); no offset is refused.
  static std::optional<Timestamp> parse(std::string_view rfc3339);
  std::string str() const;
  Date local_date() const;  // the calendar date at its own offset
  auto operator<=>(const Timestamp& o) const { return unix_seconds <=> o.unix_seconds; }
  bool operator==(const Timestamp& o) const { return unix_seconds == o.unix_seconds; }
};

// A month "YYYY-MM".
struct Month {
  int year = 0;
  unsigned month = 0;  // 1..12

  static std::optional<Month> parse(std::string_view yyyy_mm);
  static Month of(Date d);
  std::string str() const;
  Date first_day() const;
  Date last_day() const;
  Month next() const;
  auto operator<=>(const Month&) const = default;
};

enum class ApprovalStatus { approved, pending, returned, rejected };
enum class Rating { excellent, good, fair, poor };

std::string_view to_string(ApprovalStatus s);
std::string_view to_string(Rating r);
std::optional<ApprovalStatus> parse_approval_status(std::string_view s);
std::optional<Rating> parse_rating(std::string_view s);

struct Approval {
  ApprovalStatus status = ApprovalStatus::pending;
  std::optional<Rating> rating;
  std::string by;
  std::optional<Timestamp> at;
  bool operator==(const Approval&) const = default;
};

// A deadline is a date (meaning the end of that local day) or a timestamp.
struct Deadline {
  std::optional<Date> date;
  std::optional<Timestamp> at;
  // The instant the deadline falls at, given the local offset for dates.
  int64_t unix_seconds(int32_t local_offset_minutes) const;
  std::string str() const;
  bool operator==(const Deadline&) const = default;
};

struct WorkRecord {
  std::string record_id;  // "<source_system>:<source_id>"
  std::string source_system;
  std::string source_id;
  int64_t revision = 0;
  bool retracted = false;
  std::string staff_code;
  std::string source_staff_id;
  std::string agency_code;
  std::string task_code;
  Date work_date;
  int32_t declared_minutes = 0;
  double quantity = 0;
  std::string product_unit;
  std::string title;
  std::string evidence_ref;
  std::optional<Deadline> deadline;
  std::optional<Timestamp> completed_at;
  std::optional<Approval> approval;
  std::optional<Timestamp> changed_at;
  std::vector<std::pair<std::string, std::string>> attributes;

  bool operator==(const WorkRecord&) const = default;
};

// A withdrawal that names only its record (source_id and revision; kpi-model.md: nothing
// else is needed to withdraw a record): it withdraws the stored record, whose content stays.
// Its staff, task and date are empty.
inline bool is_bare_withdrawal(const WorkRecord& r) {
  return r.retracted && r.staff_code.empty() && r.source_staff_id.empty();
}
// The withdrawal of `r` by its id alone (identity, revision and changed_at kept).
WorkRecord bare_withdrawal(const WorkRecord& r);

// Reason codes of spec/kpi-model.md, "Validation and quarantine".
enum class Reason {
  parse_error,
  missing_field,
  bad_value,
  bad_encoding,
  unknown_task,
  unknown_staff,
  future_date,
  too_old,
  // The adapter itself failed on the page (kept distinct from item reasons).
  source_error,
};
std::string_view to_string(Reason r);
std::optional<Reason> parse_reason(std::string_view s);

struct QuarantineEntry {
  std::string source_system;
  std::string source_id;  // may be empty when the item had no readable id
  std::string record_id;  // may be empty
  Reason reason = Reason::parse_error;
  std::string field;
  std::string message;  // names the field and the value
  std::string payload;  // the original item (or its normalized text fields)
  std::string location;
  // The record's text fields as the adapter gave them (record_fields_json),
  // when it gave a record: what a replay validates again after a fix.
  std::string fields;
};

}  // namespace kpihub
