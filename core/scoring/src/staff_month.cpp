// Record points and the staff month: spec/scoring.md sections 2 to 5.3 and 5.6.
#include <kpihub/scoring.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace kpihub {

// ------------------------------------------------------------- rounding --

double round_report(double x) {
  // Beyond 9e12 the micro-units below would overflow int64, and a double that
  // large cannot hold hundredths anyway.
  if (!std::isfinite(x) || std::fabs(x) >= 9e12) return x;
  // Step 1: to 6 decimals. The nearest integer of x * 1e6 absorbs binary error
  // (1.365 is 1.36499999... as a double, but 1365000 in micro-units).
  const int64_t micro = std::llround(x * 1e6);
  // Step 2: half away from zero to 2 decimals, exactly, on the integer.
  int64_t hundredths = micro / 10000;
  const int64_t rest = micro % 10000;  // carries the sign of micro
  if (rest >= 5000) {
    ++hundredths;
  } else if (rest <= -5000) {
    --hundredths;
  }
  return static_cast<double>(hundredths) / 100.0;
}

// ---------------------------------------------------------------- names --

std::string_view to_string(Counts c) {
  switch (c) {
    case Counts::final:
      return "final";
    case Counts::provisional:
      return "provisional";
    case Counts::none:
      return "none";
  }
  return "none";
}

std::string_view to_string(RecordFlag f) {
  switch (f) {
    case RecordFlag::over_standard_day:
      return "over_standard_day";
    case RecordFlag::implausible_day:
      return "implausible_day";
    case RecordFlag::over_declared:
      return "over_declared";
    case RecordFlag::overdue:
      return "overdue";
    case RecordFlag::late_submission:
      return "late_submission";
  }
  return "";
}

std::string_view to_string(NotCountedReason r) {
  switch (r) {
    case NotCountedReason::none:
      return "";
    case NotCountedReason::pending:
      return "pending";
    case NotCountedReason::returned:
      return "returned";
    case NotCountedReason::rejected:
      return "rejected";
    case NotCountedReason::retracted:
      return "retracted";
    case NotCountedReason::duplicate:
      return "duplicate";
    case NotCountedReason::unknown_task:
      return "unknown_task";
    case NotCountedReason::other_month:
      return "other_month";
  }
  return "";
}

std::string_view to_string(AssessmentClass c) {
  switch (c) {
    case AssessmentClass::excellent:
      return "excellent";
    case AssessmentClass::good:
      return "good";
    case AssessmentClass::complete:
      return "complete";
    case AssessmentClass::not_complete:
      return "not_complete";
    case AssessmentClass::not_assessed:
      return "not_assessed";
  }
  return "not_assessed";
}

AssessmentClass class_of(std::optional<double> rounded_kpi_score, const Rules& rules) {
  if (!rounded_kpi_score) return AssessmentClass::not_assessed;
  const double s = *rounded_kpi_score;
  if (s >= rules.class_excellent) return AssessmentClass::excellent;
  if (s >= rules.class_good) return AssessmentClass::good;
  if (s >= rules.class_complete) return AssessmentClass::complete;
  return AssessmentClass::not_complete;
}

FlagCounts& FlagCounts::operator+=(const FlagCounts& o) {
  over_standard_day += o.over_standard_day;
  implausible_day += o.implausible_day;
  over_declared += o.over_declared;
  overdue += o.overdue;
  late_submission += o.late_submission;
  return *this;
}

const ScoredRecord* StaffMonthResult::find(std::string_view record_id) const {
  auto it = std::lower_bound(scored.begin(), scored.end(), record_id,
                             [](const ScoredRecord& r, std::string_view id) {
                               return std::string_view(r.record_id) < id;
                             });
  return it != scored.end() && it->record_id == record_id ? &*it : nullptr;
}

// ------------------------------------------------------------ calendar --

int64_t due_unix_seconds(const Month& m, const Rules& rules) {
  Month due_month = m;
  for (int i = 0; i < rules.due_month_offset; ++i) due_month = due_month.next();
  const Date due_date =
      Date::from_ymd(due_month.year, due_month.month, static_cast<unsigned>(rules.due_day));
  return static_cast<int64_t>(due_date.days) * 86400 -
         static_cast<int64_t>(rules.utc_offset_minutes) * 60;
}

bool month_closed(const Month& m, Timestamp now, const Rules& rules) {
  return now.unix_seconds >= due_unix_seconds(m, rules);
}

int working_days(const Month& m, const HolidayCalendar& calendar) {
  int count = 0;
  const Date last = m.last_day();
  for (Date d = m.first_day(); d <= last; ++d.days) {
    const unsigned wd = d.weekday();
    if (wd != 0 && wd != 6 && !calendar.is_holiday(d)) ++count;
  }
  return count;
}

// --------------------------------------------------------- staff month --

namespace {

double quality_factor(const std::optional<Approval>& approval, const Rules& rules) {
  if (!approval || !approval->rating) return rules.quality_none;
  switch (*approval->rating) {
    case Rating::excellent:
      return rules.quality_excellent;
    case Rating::good:
      return rules.quality_good;
    case Rating::fair:
      return rules.quality_fair;
    case Rating::poor:
      return rules.quality_poor;
  }
  return rules.quality_none;
}

double timeliness_factor(int late_days, const Rules& rules) {
  for (const Rules::LateBand& band : rules.timeliness) {
    if (late_days <= band.max_late_days) return band.factor;
  }
  return rules.timeliness.empty() ? 1.0 : rules.timeliness.back().factor;
}

bool has_deadline(const std::optional<Deadline>& d) {
  return d && (d->date || d->at);
}

// The local month a deadline falls in (a date deadline is its own date).
Month deadline_month(const Deadline& d, int32_t utc_offset_minutes) {
  if (d.date) return Month::of(*d.date);
  Timestamp local = *d.at;
  local.offset_minutes = utc_offset_minutes;
  return Month::of(local.local_date());
}

// Rank of a source in the duplicate precedence; unlisted sources rank after all listed.
std::size_t precedence_rank(const std::string& source, const Rules& rules) {
  const auto& p = rules.duplicate_precedence;
  return static_cast<std::size_t>(std::find(p.begin(), p.end(), source) - p.begin());
}

// Reused between calls on the same thread so that scoring many staff months
// allocates little beyond the result itself.
struct Scratch {
  std::vector<uint32_t> order;       // input indices sorted by (record_id, revision desc)
  std::vector<uint32_t> source_of;   // per scored record: its input index
  std::vector<uint32_t> candidates;  // scored indices eligible for duplicate detection
  std::vector<std::size_t> rank;     // per scored record: duplicate precedence rank
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

StaffMonthResult score_staff_month(const StaffMonthInput& in) {
  if (in.catalog == nullptr || in.calendar == nullptr || in.rules == nullptr) {
    throw std::invalid_argument("score_staff_month: catalog, calendar and rules must be given");
  }
  if (!in.received_at_ms.empty() && in.received_at_ms.size() != in.records.size()) {
    throw std::invalid_argument(
        "score_staff_month: received_at_ms must be empty or parallel to records");
  }
  const Rules& rules = *in.rules;
  const Catalog& catalog = *in.catalog;
  const auto& records = in.records;

  StaffMonthResult out;
  out.staff_code = in.staff.staff_code;
  out.agency_code = in.staff.agency_code;
  out.leader = in.staff.leader;
  out.month = in.month;
  out.rules_version = rules.version;
  out.catalog_version = catalog.version;
  out.standard_day_minutes = rules.standard_day_minutes;
  out.daily_cap_points = rules.daily_cap_points;
  out.assessment_share = in.staff.leader ? rules.share_leader : rules.share_non_leader;

  const int64_t due_seconds = due_unix_seconds(in.month, rules);
  const int64_t due_ms = due_seconds * 1000;
  const bool closed = in.now.unix_seconds >= due_seconds;
  const Date first_day = in.month.first_day();
  const Date last_day = in.month.last_day();

  // Sort by record id so that every sum below runs in one order whatever the
  // input order; a record id seen twice keeps its highest revision (4.3).
  Scratch& tmp = scratch();
  tmp.order.resize(records.size());
  std::iota(tmp.order.begin(), tmp.order.end(), 0u);
  std::sort(tmp.order.begin(), tmp.order.end(), [&](uint32_t a, uint32_t b) {
    const int c = records[a].record_id.compare(records[b].record_id);
    if (c != 0) return c < 0;
    return records[a].revision > records[b].revision;
  });
  tmp.source_of.clear();
  for (std::size_t i = 0; i < tmp.order.size(); ++i) {
    if (i > 0 && records[tmp.order[i]].record_id == records[tmp.order[i - 1]].record_id) continue;
    tmp.source_of.push_back(tmp.order[i]);
  }
  const std::size_t n = tmp.source_of.size();

  // Points of each record on its own (section 3) and its first reason not to count.
  out.scored.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t idx = tmp.source_of[i];
    const WorkRecord& r = records[idx];
    ScoredRecord& sr = out.scored[i];
    sr.record_id = r.record_id;
    sr.source_system = r.source_system;
    sr.task_code = r.task_code;
    sr.work_date = r.work_date;
    sr.quantity = r.quantity;
    sr.declared_minutes = r.declared_minutes;
    sr.retracted = r.retracted;
    if (r.approval) {
      sr.status = r.approval->status;
      sr.rating = r.approval->rating;
    }
    sr.deadline = r.deadline;
    sr.completed_at = r.completed_at;
    if (!in.received_at_ms.empty()) {
      sr.received_at_ms = in.received_at_ms[idx];
      sr.submitted_at_ms = sr.received_at_ms;
      if (r.changed_at) {
        const int64_t changed_ms = r.changed_at->unix_seconds * 1000;
        if (changed_ms < *sr.received_at_ms) sr.submitted_at_ms = changed_ms;
      }
    }

    RecordScoring& s = sr.scoring;
    s.rules_version = rules.version;
    s.catalog_version = catalog.version;
    const CatalogItem* item = catalog.find(r.task_code);
    if (item != nullptr) {
      s.group = item->group;
      s.measure = item->measure;
      s.standard_minutes = item->standard_minutes;
      s.coefficient = item->coefficient;
      s.leave = item->leave;
      s.credited_minutes = item->measure == Measure::product
                               ? r.quantity * item->standard_minutes
                               : static_cast<double>(r.declared_minutes);
      if (item->measure == Measure::product &&
          r.declared_minutes > rules.over_declared_ratio * s.credited_minutes) {
        s.flags.set(RecordFlag::over_declared);
      }
    }
    s.quality_factor = quality_factor(r.approval, rules);
    bool overdue = false;
    if (has_deadline(r.deadline)) {
      if (r.completed_at) {
        const int64_t late_seconds =
            r.completed_at->unix_seconds - r.deadline->unix_seconds(rules.utc_offset_minutes);
        if (late_seconds > 0) s.late_days = static_cast<int>((late_seconds + 86399) / 86400);
      } else if (closed && deadline_month(*r.deadline, rules.utc_offset_minutes) == in.month) {
        overdue = true;
        s.flags.set(RecordFlag::overdue);
      }
    }
    s.timeliness_factor = timeliness_factor(s.late_days, rules);
    if (sr.submitted_at_ms && *sr.submitted_at_ms >= due_ms) {
      s.flags.set(RecordFlag::late_submission);
    }
    if (item != nullptr && !item->leave && !overdue) {
      s.points = s.credited_minutes * s.coefficient * s.quality_factor * s.timeliness_factor;
    }

    if (r.retracted) {
      s.why_not_counted = NotCountedReason::retracted;
    } else if (item == nullptr) {
      s.why_not_counted = NotCountedReason::unknown_task;
    } else if (r.work_date < first_day || r.work_date > last_day) {
      s.why_not_counted = NotCountedReason::other_month;
    }
  }

  // Duplicates across sources (4.3): group by (work date, evidence reference);
  // the best-ranked record of a group wins, records of other sources lose to it.
  tmp.rank.resize(n);
  tmp.candidates.clear();
  for (std::size_t i = 0; i < n; ++i) {
    const WorkRecord& r = records[tmp.source_of[i]];
    if (out.scored[i].scoring.why_not_counted != NotCountedReason::none || r.evidence_ref.empty()) {
      continue;
    }
    tmp.rank[i] = precedence_rank(r.source_system, rules);
    tmp.candidates.push_back(static_cast<uint32_t>(i));
  }
  std::sort(tmp.candidates.begin(), tmp.candidates.end(), [&](uint32_t a, uint32_t b) {
    const WorkRecord& ra = records[tmp.source_of[a]];
    const WorkRecord& rb = records[tmp.source_of[b]];
    if (ra.work_date != rb.work_date) return ra.work_date < rb.work_date;
    const int c = ra.evidence_ref.compare(rb.evidence_ref);
    if (c != 0) return c < 0;
    if (tmp.rank[a] != tmp.rank[b]) return tmp.rank[a] < tmp.rank[b];
    return a < b;  // scored indices follow record ids
  });
  for (std::size_t g = 0; g < tmp.candidates.size();) {
    const uint32_t winner = tmp.candidates[g];
    const WorkRecord& w = records[tmp.source_of[winner]];
    std::size_t e = g + 1;
    for (; e < tmp.candidates.size(); ++e) {
      const WorkRecord& r = records[tmp.source_of[tmp.candidates[e]]];
      if (r.work_date != w.work_date || r.evidence_ref != w.evidence_ref) break;
      if (r.source_system != w.source_system) {
        RecordScoring& s = out.scored[tmp.candidates[e]].scoring;
        s.why_not_counted = NotCountedReason::duplicate;
        s.duplicate_of = w.record_id;
      }
    }
    g = e;
  }

  // Which score each record counts in (section 2), and what it adds to its day. A record
  // dated outside the month (other_month) counts nowhere and adds to no day.
  std::array<DayTotals, 32> days{};
  const auto day_of = [&](Date d) -> DayTotals& {
    return days[static_cast<std::size_t>(d.days - first_day.days) + 1];
  };
  for (std::size_t i = 0; i < n; ++i) {
    ScoredRecord& sr = out.scored[i];
    RecordScoring& s = sr.scoring;
    if (s.why_not_counted == NotCountedReason::none) {
      const ApprovalStatus status = sr.status.value_or(ApprovalStatus::pending);
      switch (status) {
        case ApprovalStatus::approved:
          s.counts = Counts::final;
          break;
        case ApprovalStatus::pending:
          s.counts = Counts::provisional;
          s.why_not_counted = NotCountedReason::pending;
          break;
        case ApprovalStatus::returned:
          s.why_not_counted = NotCountedReason::returned;
          break;
        case ApprovalStatus::rejected:
          s.why_not_counted = NotCountedReason::rejected;
          break;
      }
    }
    if (s.why_not_counted == NotCountedReason::other_month) {
      s.points = 0;
      continue;
    }
    DayTotals& day = day_of(sr.work_date);
    switch (s.why_not_counted) {
      case NotCountedReason::none:
        ++day.records.counted;
        break;
      case NotCountedReason::pending:
        ++day.records.pending;
        break;
      case NotCountedReason::returned:
      case NotCountedReason::rejected:
        ++day.records.rejected;
        break;
      case NotCountedReason::duplicate:
        ++day.records.duplicates;
        break;
      default:
        break;
    }
    if (s.counts == Counts::none) {
      s.points = 0;
      continue;
    }
    // From here on: the provisional set (approved and pending).
    if (s.flags.has(RecordFlag::over_declared)) ++day.record_flags.over_declared;
    if (s.flags.has(RecordFlag::overdue)) ++day.record_flags.overdue;
    if (s.flags.has(RecordFlag::late_submission)) ++day.record_flags.late_submission;
    if (s.counts == Counts::final && sr.submitted_at_ms &&
        (!day.first_counting_submitted_at_ms ||
         *sr.submitted_at_ms < *day.first_counting_submitted_at_ms)) {
      day.first_counting_submitted_at_ms = sr.submitted_at_ms;
    }
    if (s.leave) {
      if (s.counts == Counts::final) day.leave_days += sr.quantity;
      continue;
    }
    ++day.records_provisional;
    day.declared_provisional += sr.declared_minutes;
    day.points_provisional += s.points;
    if (s.counts == Counts::final) {
      day.declared_final += sr.declared_minutes;
      day.points_final += s.points;
      day.credited_final += s.credited_minutes;
    }
  }
  // A day flag (4.1) marks the records that made up the day.
  for (ScoredRecord& sr : out.scored) {
    RecordScoring& s = sr.scoring;
    if (s.counts == Counts::none || s.leave) continue;
    const DayTotals& day = day_of(sr.work_date);
    if (day.declared_provisional > rules.standard_day_minutes) {
      s.flags.set(RecordFlag::over_standard_day);
    }
    if (day.declared_provisional > rules.implausible_day_minutes) {
      s.flags.set(RecordFlag::implausible_day);
    }
  }

  out.day_totals.reserve(static_cast<std::size_t>(last_day.days - first_day.days) + 1);
  for (std::size_t d = 1; d < days.size(); ++d) {
    DayTotals& day = days[d];
    day.date = Date{first_day.days + static_cast<int32_t>(d) - 1};
    DayTotals nothing;
    nothing.date = day.date;
    if (day == nothing) continue;  // no record, or none that adds anything
    out.day_totals.push_back(day);
  }
  fold_day_totals(out, *in.calendar, rules);
  return out;
}

void fold_day_totals(StaffMonthResult& out, const HolidayCalendar& calendar, const Rules& rules) {
  out.days.clear();
  out.leave_days = 0;
  out.declared_minutes = 0;
  out.credited_minutes = 0;
  out.points = out.capped_points = 0;
  out.provisional_points = out.provisional_capped_points = 0;
  out.provisional_declared_minutes = 0;
  out.provisional_staff_days = 0;
  out.records = {};
  out.flags = {};
  out.first_counting_submitted_at_ms.reset();
  out.kpi_score.reset();
  out.provisional_score.reset();
  out.assessment_points.reset();

  // In date order, whatever the days were scored in: the sums are of doubles.
  out.days.reserve(out.day_totals.size());
  for (const DayTotals& day : out.day_totals) {
    out.records.counted += day.records.counted;
    out.records.pending += day.records.pending;
    out.records.rejected += day.records.rejected;
    out.records.duplicates += day.records.duplicates;
    out.flags += day.record_flags;
    if (day.first_counting_submitted_at_ms &&
        (!out.first_counting_submitted_at_ms ||
         *day.first_counting_submitted_at_ms < *out.first_counting_submitted_at_ms)) {
      out.first_counting_submitted_at_ms = day.first_counting_submitted_at_ms;
    }
    out.leave_days += day.leave_days;
    out.declared_minutes += day.declared_final;
    out.credited_minutes += day.credited_final;
    if (day.records_provisional == 0) continue;
    // Daily cap and day flags (4.1).
    DaySummary sum;
    sum.date = day.date;
    sum.records_provisional = day.records_provisional;
    sum.declared_minutes = day.declared_provisional;
    sum.declared_final = day.declared_final;
    sum.points_final = day.points_final;
    sum.points_provisional = day.points_provisional;
    sum.counted_final = std::min(day.points_final, rules.daily_cap_points);
    sum.counted_provisional = std::min(day.points_provisional, rules.daily_cap_points);
    sum.over_standard_day = day.declared_provisional > rules.standard_day_minutes;
    sum.implausible_day = day.declared_provisional > rules.implausible_day_minutes;
    out.points += sum.counted_final;
    out.capped_points += sum.points_final - sum.counted_final;
    out.provisional_points += sum.counted_provisional;
    out.provisional_capped_points += sum.points_provisional - sum.counted_provisional;
    out.provisional_declared_minutes += sum.declared_minutes;
    ++out.provisional_staff_days;
    if (sum.over_standard_day) ++out.flags.over_standard_day;
    if (sum.implausible_day) ++out.flags.implausible_day;
    out.days.push_back(sum);
  }

  // The month (5.1-5.3).
  out.working_days = working_days(out.month, calendar);
  out.capacity_minutes =
      std::max(0.0, (out.working_days - out.leave_days) * rules.standard_day_minutes);
  if (out.capacity_minutes > 0) {
    out.kpi_score = std::min(100.0, 100.0 * out.points / out.capacity_minutes);
    out.provisional_score = std::min(100.0, 100.0 * out.provisional_points / out.capacity_minutes);
    out.assessment_points = *out.kpi_score * out.assessment_share;
    out.assessment_class = class_of(round_report(*out.kpi_score), rules);
  } else {
    out.assessment_class = AssessmentClass::not_assessed;
  }
}

// ------------------------------------------------------ day totals bytes --

namespace {

// Format 1: a version byte, the basis (its length as 8 bytes, then its bytes), then per day 18
// fixed little-endian 8-byte fields in the order below (doubles as their IEEE bits, so they come
// back bit for bit). Fixed width keeps the reader trivial; a province month is ~22 days x 144 bytes
// per staff member.
constexpr uint8_t kDayTotalsFormat = 1;
constexpr std::size_t kDayTotalsFields = 18;
constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();  // no counting record

// Little-endian on every machine the hub is built for (x86-64, arm64); a big-endian build
// fails here rather than writing totals another build would misread.
static_assert(std::endian::native == std::endian::little);
void put_u64(std::string& out, uint64_t v) {
  char bytes[8];
  std::memcpy(bytes, &v, sizeof v);
  out.append(bytes, sizeof bytes);
}
uint64_t get_u64(std::string_view bytes, std::size_t at) {
  uint64_t v;
  std::memcpy(&v, bytes.data() + at, sizeof v);
  return v;
}
uint64_t bits_of(double d) {
  uint64_t v;
  std::memcpy(&v, &d, sizeof v);
  return v;
}
double double_of(uint64_t v) {
  double d;
  std::memcpy(&d, &v, sizeof d);
  return d;
}

}  // namespace

std::string encode_day_totals(std::span<const DayTotals> days, std::string_view basis) {
  std::string out;
  out.reserve(1 + 8 + basis.size() + days.size() * kDayTotalsFields * 8);
  out.push_back(static_cast<char>(kDayTotalsFormat));
  put_u64(out, basis.size());
  out.append(basis);
  for (const DayTotals& d : days) {
    const auto i64 = [&](int64_t v) { put_u64(out, static_cast<uint64_t>(v)); };
    i64(d.date.days);
    i64(d.records_provisional);
    i64(d.declared_provisional);
    i64(d.declared_final);
    put_u64(out, bits_of(d.points_final));
    put_u64(out, bits_of(d.points_provisional));
    put_u64(out, bits_of(d.credited_final));
    put_u64(out, bits_of(d.leave_days));
    i64(d.records.counted);
    i64(d.records.pending);
    i64(d.records.rejected);
    i64(d.records.duplicates);
    i64(d.record_flags.over_declared);
    i64(d.record_flags.overdue);
    i64(d.record_flags.late_submission);
    i64(d.record_flags.over_standard_day);
    i64(d.record_flags.implausible_day);
    i64(d.first_counting_submitted_at_ms.value_or(kNoTime));
  }
  return out;
}

std::optional<std::vector<DayTotals>> decode_day_totals(std::string_view bytes,
                                                        std::string_view basis) {
  constexpr std::size_t kDayBytes = kDayTotalsFields * 8;
  if (bytes.size() < 9 || static_cast<uint8_t>(bytes[0]) != kDayTotalsFormat) return std::nullopt;
  const uint64_t basis_size = get_u64(bytes, 1);
  if (basis_size > bytes.size() - 9 || bytes.substr(9, basis_size) != basis) return std::nullopt;
  const std::size_t first_day = 9 + static_cast<std::size_t>(basis_size);
  if ((bytes.size() - first_day) % kDayBytes != 0) return std::nullopt;
  std::vector<DayTotals> out((bytes.size() - first_day) / kDayBytes);
  std::size_t at = first_day;
  const auto next = [&] {
    const uint64_t v = get_u64(bytes, at);
    at += 8;
    return v;
  };
  const auto i64 = [&] { return static_cast<int64_t>(next()); };
  const auto i32 = [&] { return static_cast<int>(static_cast<int64_t>(next())); };
  for (DayTotals& d : out) {
    d.date = Date{static_cast<int32_t>(i64())};
    d.records_provisional = i32();
    d.declared_provisional = i64();
    d.declared_final = i64();
    d.points_final = double_of(next());
    d.points_provisional = double_of(next());
    d.credited_final = double_of(next());
    d.leave_days = double_of(next());
    d.records.counted = i32();
    d.records.pending = i32();
    d.records.rejected = i32();
    d.records.duplicates = i32();
    d.record_flags.over_declared = i32();
    d.record_flags.overdue = i32();
    d.record_flags.late_submission = i32();
    d.record_flags.over_standard_day = i32();
    d.record_flags.implausible_day = i32();
    const int64_t first = i64();
    if (first != kNoTime) d.first_counting_submitted_at_ms = first;
  }
  // Dates must be strictly increasing, as fold_day_totals needs them.
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i].date <= out[i - 1].date) return std::nullopt;
  }
  return out;
}

}  // namespace kpihub
