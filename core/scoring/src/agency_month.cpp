// Agency summaries and the due-date status: spec/scoring.md 5.4 and 5.5.
#include <kpihub/scoring.hpp>

#include <algorithm>

namespace kpihub {

std::string_view to_string(AgencyStatus s) {
  switch (s) {
    case AgencyStatus::open:
      return "open";
    case AgencyStatus::on_time:
      return "on_time";
    case AgencyStatus::not_implemented:
      return "not_implemented";
  }
  return "open";
}

std::optional<double> median_of(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  const std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  const double upper = values[mid];
  if (values.size() % 2 == 1) return upper;
  const double lower =
      *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid));
  return (lower + upper) / 2;
}

AgencyStatus agency_status(const Month& m, const AgencyStatusInput& in, const Rules& rules) {
  const int64_t due_seconds = due_unix_seconds(m, rules);
  if (in.now.unix_seconds < due_seconds) return AgencyStatus::open;
  if (in.first_counting_submitted_at_ms &&
      *in.first_counting_submitted_at_ms < due_seconds * 1000) {
    return AgencyStatus::on_time;
  }
  return AgencyStatus::not_implemented;
}

namespace {

void add_class(ClassCounts& c, AssessmentClass k) {
  switch (k) {
    case AssessmentClass::excellent:
      ++c.excellent;
      break;
    case AssessmentClass::good:
      ++c.good;
      break;
    case AssessmentClass::complete:
      ++c.complete;
      break;
    case AssessmentClass::not_complete:
      ++c.not_complete;
      break;
    case AssessmentClass::not_assessed:
      ++c.not_assessed;
      break;
  }
}

bool high_hours(const AgencyMonthResult& a, const Rules& rules) {
  if (!a.avg_declared_hours_per_staff_day) return false;
  const double avg = *a.avg_declared_hours_per_staff_day;
  if (avg > rules.high_hours_absolute) return true;
  return a.median_of_sector && avg > rules.high_hours_median_ratio * *a.median_of_sector;
}

}  // namespace

StaffMonthSummary summary_of(const StaffMonthResult& m) {
  return StaffMonthSummary{m.agency_code,
                           m.flags,
                           m.provisional_declared_minutes,
                           m.provisional_staff_days,
                           m.has_counting_record(),
                           m.assessment_class,
                           m.kpi_score,
                           m.first_counting_submitted_at_ms};
}

AgencyMonthResult score_agency_month(const std::string& agency_code, const Month& month,
                                     std::span<const StaffMonthSummary* const> staff_months,
                                     const AgencyStatusInput& status_input,
                                     std::optional<double> median_of_sector, const Rules& rules) {
  AgencyMonthResult a;
  a.agency_code = agency_code;
  a.month = month;
  a.rules_version = rules.version;
  a.status = agency_status(month, status_input, rules);
  std::vector<double> scores;
  for (const StaffMonthSummary* m : staff_months) {
    if (m == nullptr) continue;
    // Flags and hours are over the provisional set, so every staff month adds
    // to them, counted or not.
    a.flags += m->flags;
    a.provisional_declared_minutes += m->provisional_declared_minutes;
    a.staff_days += m->provisional_staff_days;
    if (!m->has_counting_record) continue;
    ++a.staff_counted;
    add_class(a.classes, m->assessment_class);
    if (m->kpi_score) scores.push_back(*m->kpi_score);
  }
  if (a.staff_days > 0) {
    a.avg_declared_hours_per_staff_day =
        static_cast<double>(a.provisional_declared_minutes) / 60.0 / a.staff_days;
  }
  if (!scores.empty()) {
    // Summing in sorted order keeps the mean independent of the staff order.
    std::sort(scores.begin(), scores.end());
    double total = 0;
    for (double s : scores) total += s;
    a.mean_kpi_score = total / static_cast<double>(scores.size());
    a.median_kpi_score = median_of(scores);
  }
  a.median_of_sector = median_of_sector;
  a.high_average_hours = high_hours(a, rules);
  return a;
}

AgencyMonthResult score_agency_month(const std::string& agency_code, const Month& month,
                                     std::span<const StaffMonthResult* const> staff_months,
                                     const AgencyStatusInput& status_input,
                                     std::optional<double> median_of_sector, const Rules& rules) {
  std::vector<StaffMonthSummary> summaries;
  summaries.reserve(staff_months.size());
  std::vector<const StaffMonthSummary*> members;
  members.reserve(staff_months.size());
  for (const StaffMonthResult* m : staff_months) {
    if (m != nullptr) summaries.push_back(summary_of(*m));
  }
  for (const StaffMonthSummary& m : summaries) members.push_back(&m);
  return score_agency_month(agency_code, month, members, status_input, median_of_sector, rules);
}

std::vector<AgencyMonthResult> agency_months(
    std::span<const StaffMonthResult> staff_months, const Month& month,
    const std::map<std::string, std::string>& agency_sectors, Timestamp now,
    const std::map<std::string, int64_t>& first_counting_submitted_at_ms, const Rules& rules) {
  std::vector<StaffMonthSummary> summaries;
  summaries.reserve(staff_months.size());
  for (const StaffMonthResult& m : staff_months) summaries.push_back(summary_of(m));
  return agency_months(summaries, month, agency_sectors, now, first_counting_submitted_at_ms,
                       rules);
}

std::vector<AgencyMonthResult> agency_months(
    std::span<const StaffMonthSummary> staff_months, const Month& month,
    const std::map<std::string, std::string>& agency_sectors, Timestamp now,
    const std::map<std::string, int64_t>& first_counting_submitted_at_ms, const Rules& rules) {
  std::map<std::string, std::vector<const StaffMonthSummary*>> by_agency;
  for (const auto& [code, sector] : agency_sectors) by_agency[code];
  for (const StaffMonthSummary& m : staff_months) by_agency[m.agency_code].push_back(&m);

  std::vector<AgencyMonthResult> out;
  out.reserve(by_agency.size());
  std::map<std::string, std::vector<double>, std::less<>> averages_by_sector;
  const auto sector_of = [&](const std::string& code) -> std::string_view {
    const auto it = agency_sectors.find(code);
    return it == agency_sectors.end() ? std::string_view() : std::string_view(it->second);
  };
  for (const auto& [code, members] : by_agency) {
    AgencyStatusInput status{now, std::nullopt};
    if (auto it = first_counting_submitted_at_ms.find(code);
        it != first_counting_submitted_at_ms.end()) {
      status.first_counting_submitted_at_ms = it->second;
    } else {
      for (const StaffMonthSummary* m : members) {
        const auto& first = m->first_counting_submitted_at_ms;
        if (first && (!status.first_counting_submitted_at_ms ||
                      *first < *status.first_counting_submitted_at_ms)) {
          status.first_counting_submitted_at_ms = first;
        }
      }
    }
    out.push_back(score_agency_month(code, month, members, status, std::nullopt, rules));
    if (out.back().avg_declared_hours_per_staff_day) {
      averages_by_sector[std::string(sector_of(code))].push_back(
          *out.back().avg_declared_hours_per_staff_day);
    }
  }
  // The median needs every average of the sector, so the flag is decided afterwards.
  std::map<std::string, std::optional<double>, std::less<>> median_by_sector;
  for (auto& [sector, averages] : averages_by_sector) {
    median_by_sector[sector] = median_of(std::move(averages));
  }
  for (AgencyMonthResult& a : out) {
    const auto it = median_by_sector.find(sector_of(a.agency_code));
    a.median_of_sector = it == median_by_sector.end() ? std::nullopt : it->second;
    a.high_average_hours = high_hours(a, rules);
  }
  return out;
}

}  // namespace kpihub
