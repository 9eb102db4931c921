// The scoring engine: spec/scoring.md (rules `kpi-rules/1`) as pure computation.
// Records in, record scores, staff months and agency months out; no I/O, no clock.
#pragma once

#include <kpihub/model.hpp>
#include <kpihub/reference.hpp>

#include <boost/json.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub {

// ------------------------------------------------------------- rounding --

// Rounds a reported figure the way scoring.md 5.3 says: first to 6 decimals
// (absorbing binary floating-point error), then half away from zero to 2
// decimals, in integer arithmetic. 1.365 -> 1.37, 0.975 -> 0.98, -1.365 -> -1.37.
// Values too large for micro-units in 64 bits (|x| >= 9e12), NaN and infinities
// are returned unchanged: a double that large has no meaningful hundredths.
double round_report(double x);

// ----------------------------------------------------------- one record --

// Whether a record counts in the final score, only in the provisional one, or in
// neither (scoring.md section 2).
enum class Counts : uint8_t { final, provisional, none };
std::string_view to_string(Counts c);

enum class RecordFlag : uint8_t {
  over_standard_day,
  implausible_day,
  over_declared,
  overdue,
  late_submission,
};
inline constexpr std::array<RecordFlag, 5> kAllRecordFlags = {
    RecordFlag::over_standard_day, RecordFlag::implausible_day, RecordFlag::over_declared,
    RecordFlag::overdue, RecordFlag::late_submission};
std::string_view to_string(RecordFlag f);

class RecordFlags {
 public:
  bool has(RecordFlag f) const { return (bits_ & bit(f)) != 0; }
  void set(RecordFlag f) { bits_ = static_cast<uint8_t>(bits_ | bit(f)); }
  bool empty() const { return bits_ == 0; }
  bool operator==(const RecordFlags&) const = default;

 private:
  static uint8_t bit(RecordFlag f) { return static_cast<uint8_t>(1u << static_cast<unsigned>(f)); }
  uint8_t bits_ = 0;
};

// Why a record does not count in the final score (for `explain` and audits).
enum class NotCountedReason : uint8_t {
  none,          // it counts in the final score
  pending,       // counts in the provisional score only
  returned,      // sent back by the supervisor
  rejected,      // rejected by the supervisor
  retracted,     // deleted at the source
  duplicate,     // the same work recorded by a system of record (4.3)
  unknown_task,  // task code not in the catalog (should have been quarantined)
  other_month,   // work date outside the month being scored (caller error, kept visible)
};
std::string_view to_string(NotCountedReason r);

struct RecordScoring {
  std::string group;
  Measure measure = Measure::time;
  double standard_minutes = 0;
  double coefficient = 1.0;
  double credited_minutes = 0;
  double quality_factor = 1.0;
  double timeliness_factor = 1.0;
  int late_days = 0;
  // Unrounded; 0 for leave records and for records that count nowhere.
  double points = 0;
  Counts counts = Counts::none;
  NotCountedReason why_not_counted = NotCountedReason::none;
  bool leave = false;
  RecordFlags flags;
  std::optional<std::string> duplicate_of;
  std::string rules_version;
  std::string catalog_version;
};

// The `scoring` object of spec/kpi-model.md. `sequence` belongs to the outbox
// (it increases per version sent), so it is written only when given.
boost::json::object to_json(const RecordScoring& s, std::optional<int64_t> sequence = std::nullopt,
                            boost::json::storage_ptr sp = {});

// The texts the scorer writes for each record it scores: the `scoring` object whose digest the
// store keeps (what tells a changed score from one already sent), and the receiver's scored
// record (spec/kpi-model.md: the record's fields, its `scoring` with `sequence`, `hub_id` and
// `scored_at`). Each is built in one buffer reused from record to record: built the plain way,
// a record's two texts cost about sixty allocations, a tenth of the scorer's CPU at province
// size (issue 20). Not thread-safe: one per scorer.
class ScoredRecordWriter {
 public:
  ScoredRecordWriter();
  // serialize(to_json(s)): without `sequence`. Valid until the next call.
  std::string_view scoring_text(const RecordScoring& s);
  // The receiver's scored record, as one JSON object's text.
  std::string payload(const WorkRecord& record, const RecordScoring& s, int64_t sequence,
                      std::string_view hub_id, std::string_view scored_at);

 private:
  void serialize(const boost::json::object& o, std::string& out);

  std::vector<unsigned char> buffer_;
  boost::json::serializer serializer_;
  std::string text_;
};

// ---------------------------------------------------------- staff month --

struct StaffMonthInput {
  StaffInfo staff;
  Month month;
  // Every current record of the staff member in the month, retracted ones
  // included, from any number of sources, in any order.
  std::span<const WorkRecord> records;
  // When each record reached the hub (unix ms), parallel to `records`; empty
  // when unknown (then no record is flagged late_submission).
  std::span<const int64_t> received_at_ms;
  // Must not be null.
  const Catalog* catalog = nullptr;
  const HolidayCalendar* calendar = nullptr;
  const Rules* rules = nullptr;
  // Decides whether the month is closed (its due date has passed, 5.4).
  Timestamp now;
};

// One scored record, with the facts `explain` prints beside its score.
struct ScoredRecord {
  std::string record_id;
  std::string source_system;
  std::string task_code;
  Date work_date;
  double quantity = 0;
  int32_t declared_minutes = 0;
  bool retracted = false;
  std::optional<ApprovalStatus> status;  // absent: no approval object (taken as pending)
  std::optional<Rating> rating;
  std::optional<Deadline> deadline;
  std::optional<Timestamp> completed_at;
  std::optional<int64_t> received_at_ms;
  // When the revision was submitted (5.4): its changed_at unless that is later than
  // received_at_ms, otherwise received_at_ms; absent when received_at_ms is.
  std::optional<int64_t> submitted_at_ms;
  RecordScoring scoring;
};

// Sums of one work date (4.1). Leave records are in none of them.
struct DaySummary {
  Date date;
  int records_provisional = 0;    // records of the provisional set on the day
  int64_t declared_minutes = 0;   // provisional set: decides the day flags
  int64_t declared_final = 0;     // final set
  double points_final = 0;        // before the cap
  double points_provisional = 0;  // before the cap
  double counted_final = 0;       // min(points_final, cap)
  double counted_provisional = 0;
  bool over_standard_day = false;
  bool implausible_day = false;
  bool cap_applied_final() const { return points_final > counted_final; }
};

struct FlagCounts {
  int over_standard_day = 0;  // days
  int implausible_day = 0;    // days
  int over_declared = 0;      // records
  int overdue = 0;            // records
  int late_submission = 0;    // records
  FlagCounts& operator+=(const FlagCounts& o);
  bool operator==(const FlagCounts&) const = default;
};

struct RecordCounts {
  int counted = 0;     // count in the final score (leave records included)
  int pending = 0;     // count in the provisional score only
  int rejected = 0;    // returned or rejected
  int duplicates = 0;  // lost to a record of a system of record
  bool operator==(const RecordCounts&) const = default;
};

// What one work date adds to its staff month: every sum the month (5.2, 5.3, 5.6) takes over
// records, kept per day. A month is the fold of its days, so a changed record rescores its own
// day and folds the others' stored totals (issue 8, part 3) to the same figures, bit for bit, as
// scoring the whole month: the full path folds the same totals in the same order.
struct DayTotals {
  Date date;
  // Non-leave records of the provisional set: the DaySummary of the day.
  int records_provisional = 0;
  int64_t declared_provisional = 0;
  int64_t declared_final = 0;
  double points_final = 0;  // before the cap
  double points_provisional = 0;
  // Final set, leave excluded.
  double credited_final = 0;
  // Approved leave (5.2), in days.
  double leave_days = 0;
  RecordCounts records;
  FlagCounts record_flags;  // over_declared, overdue, late_submission: the record flags
  std::optional<int64_t> first_counting_submitted_at_ms;
  bool operator==(const DayTotals&) const = default;
};

// A compact binary form of a staff month's day totals, for the store (a cache of derived
// figures: decode gives nullopt for anything it does not recognise, and the caller then
// scores the whole month again). `basis` names what the points were computed with (the
// scorer passes the rules and catalog versions): totals of another basis are not decoded,
// so days scored under old rules are never folded with days scored under new ones.
std::string encode_day_totals(std::span<const DayTotals> days, std::string_view basis);
std::optional<std::vector<DayTotals>> decode_day_totals(std::string_view bytes,
                                                        std::string_view basis);

enum class AssessmentClass : uint8_t { excellent, good, complete, not_complete, not_assessed };
std::string_view to_string(AssessmentClass c);
// The suggested class of a rounded score (5.3); nullopt (capacity 0) gives not_assessed.
AssessmentClass class_of(std::optional<double> rounded_kpi_score, const Rules& rules);

struct StaffMonthResult {
  std::string staff_code;
  std::string agency_code;
  bool leader = false;
  Month month;
  std::string rules_version;
  std::string catalog_version;
  // The rule values the month was computed with, so `explain` can show them.
  int standard_day_minutes = 0;
  double daily_cap_points = 0;
  double assessment_share = 0;

  int working_days = 0;
  double leave_days = 0;  // approved leave only
  double capacity_minutes = 0;
  // Final set, leave excluded.
  int64_t declared_minutes = 0;
  double credited_minutes = 0;
  double points = 0;         // Σ counted daily points (after the cap), unrounded
  double capped_points = 0;  // what the cap took off, unrounded
  // Provisional set (approved and pending), leave excluded.
  double provisional_points = 0;  // after the cap
  double provisional_capped_points = 0;
  int64_t provisional_declared_minutes = 0;
  int provisional_staff_days = 0;  // days with at least one provisional-set record

  // Unrounded; nullopt when capacity is 0.
  std::optional<double> kpi_score;
  std::optional<double> provisional_score;
  std::optional<double> assessment_points;
  AssessmentClass assessment_class = AssessmentClass::not_assessed;

  RecordCounts records;
  FlagCounts flags;
  // The earliest received_at of a record counting in the final score (5.4).
  std::optional<int64_t> first_counting_submitted_at_ms;

  std::vector<ScoredRecord> scored;  // one per record_id, sorted by record_id
  std::vector<DaySummary> days;      // days with any non-leave record, sorted by date
  // Every day of the month with a record that adds anything, sorted by date: what the
  // figures above are folded from.
  std::vector<DayTotals> day_totals;

  bool has_counting_record() const { return records.counted > 0; }
  const ScoredRecord* find(std::string_view record_id) const;
};

// Scores one staff member's month. Deterministic: the result does not depend on
// the order of the input records. Throws std::invalid_argument when a reference
// pointer is null or received_at_ms has the wrong size.
StaffMonthResult score_staff_month(const StaffMonthInput& input);

// Recomputes every month figure of `m` (days, sums, counts, scores and class) from
// m.day_totals, which must be sorted by date and hold only dates of m.month. Reads the staff
// and rule fields score_staff_month sets (leader, assessment_share); leaves `scored` alone.
// score_staff_month ends with it; the hub's scorer calls it after replacing the totals of the
// days it rescored.
void fold_day_totals(StaffMonthResult& m, const HolidayCalendar& calendar, const Rules& rules);

// The staff month of spec/kpi-model.md; report figures rounded per 5.3.
boost::json::object to_json(const StaffMonthResult& m, int64_t revision);

// A human-readable table that lets a reader recompute every figure: one line per
// record, the per-day sums and the month formula with its numbers.
std::string explain(const StaffMonthResult& m);

// -------------------------------------------------------------- due date --

// The instant month M closes (5.4): 00:00 local on rules.due_day of month
// M + rules.due_month_offset, as unix seconds.
int64_t due_unix_seconds(const Month& m, const Rules& rules);
bool month_closed(const Month& m, Timestamp now, const Rules& rules);
// Working days of the month (5.1): Monday-Friday dates that are not holidays.
int working_days(const Month& m, const HolidayCalendar& calendar);

// --------------------------------------------------------- agency month --

enum class AgencyStatus : uint8_t { open, on_time, not_implemented };
std::string_view to_string(AgencyStatus s);

struct AgencyStatusInput {
  Timestamp now;
  // When the agency's first record counting for the month reached the hub.
  std::optional<int64_t> first_counting_submitted_at_ms;
};

// 5.4: open before the due date, then on_time when a counting record arrived
// before it, otherwise not_implemented.
AgencyStatus agency_status(const Month& m, const AgencyStatusInput& in, const Rules& rules);

struct ClassCounts {
  int excellent = 0, good = 0, complete = 0, not_complete = 0, not_assessed = 0;
  bool operator==(const ClassCounts&) const = default;
};

struct AgencyMonthResult {
  std::string agency_code;
  Month month;
  std::string rules_version;
  AgencyStatus status = AgencyStatus::open;
  int staff_counted = 0;
  // Provisional set over staff-days with records; nullopt when there are none.
  std::optional<double> avg_declared_hours_per_staff_day;
  int64_t provisional_declared_minutes = 0;
  int staff_days = 0;
  // Over the staff counted whose score is not null; unrounded.
  std::optional<double> mean_kpi_score;
  std::optional<double> median_kpi_score;
  ClassCounts classes;
  FlagCounts flags;
  bool high_average_hours = false;
  // The median of the averages of the agencies of the same sector (5.5) that the flag was
  // judged against.
  std::optional<double> median_of_sector;
};

// What an agency summary (5.5) reads of one staff month: kept for every staff member of a
// month by the hub's scorer, so it is small (~100 bytes; a whole StaffMonthResult is 408
// bytes plus its strings, 18 MB at 35,000 staff).
struct StaffMonthSummary {
  std::string agency_code;
  FlagCounts flags;
  int64_t provisional_declared_minutes = 0;
  int provisional_staff_days = 0;
  bool has_counting_record = false;
  AssessmentClass assessment_class = AssessmentClass::not_assessed;
  std::optional<double> kpi_score;
  std::optional<int64_t> first_counting_submitted_at_ms;
};
StaffMonthSummary summary_of(const StaffMonthResult& m);

// One agency's summary (5.5) from the staff months of its staff in the month.
AgencyMonthResult score_agency_month(const std::string& agency_code, const Month& month,
                                     std::span<const StaffMonthSummary* const> staff_months,
                                     const AgencyStatusInput& status_input,
                                     std::optional<double> median_of_sector, const Rules& rules);
AgencyMonthResult score_agency_month(const std::string& agency_code, const Month& month,
                                     std::span<const StaffMonthResult* const> staff_months,
                                     const AgencyStatusInput& status_input,
                                     std::optional<double> median_of_sector, const Rules& rules);

// Every agency's summary for one month, sorted by agency code: the agencies
// known (even with no staff month) and any agency a staff month names.
// `agency_sectors` are the agencies known with their sector (Directory::agency_sectors); an
// agency missing from it is of the government sector (""). The median for
// high_average_hours is over the agencies of the same sector that have an average (5.5). An
// agency missing from `first_counting_submitted_at_ms` gets the earliest
// first_counting_submitted_at_ms of its staff months.
std::vector<AgencyMonthResult> agency_months(
    std::span<const StaffMonthResult> staff_months, const Month& month,
    const std::map<std::string, std::string>& agency_sectors, Timestamp now,
    const std::map<std::string, int64_t>& first_counting_submitted_at_ms, const Rules& rules);
std::vector<AgencyMonthResult> agency_months(
    std::span<const StaffMonthSummary> staff_months, const Month& month,
    const std::map<std::string, std::string>& agency_sectors, Timestamp now,
    const std::map<std::string, int64_t>& first_counting_submitted_at_ms, const Rules& rules);

boost::json::object to_json(const AgencyMonthResult& a, int64_t revision);

// The median of the values (mean of the two middle ones for an even count).
std::optional<double> median_of(std::vector<double> values);

}  // namespace kpihub
