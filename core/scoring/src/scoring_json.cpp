// JSON forms of scored records, staff months and agency months (spec/kpi-model.md).
#include <kpihub/scoring.hpp>

#include <cmath>

namespace kpihub {
namespace {

namespace json = boost::json;

// Whole numbers go out as JSON integers (9600, not 9.6E3) so that receivers and
// readers see the figures the way the spec prints them.
json::value number(double v) {
  if (std::isfinite(v) && std::fabs(v) < 9e15 && v == std::trunc(v)) {
    return json::value(static_cast<int64_t>(v));
  }
  return json::value(v);
}

json::value reported(double v) {
  return number(round_report(v));
}

json::value reported(const std::optional<double>& v) {
  return v ? reported(*v) : json::value(nullptr);
}

std::string_view measure_name(Measure m) {
  return m == Measure::product ? "product" : "time";
}

json::object flag_counts(const FlagCounts& f) {
  return {{"over_standard_day", f.over_standard_day},
          {"implausible_day", f.implausible_day},
          {"over_declared", f.over_declared},
          {"overdue", f.overdue},
          {"late_submission", f.late_submission}};
}

}  // namespace

json::object to_json(const RecordScoring& s, std::optional<int64_t> sequence) {
  json::object o;
  o.reserve(16);  // every key below: no rehash as it grows (the scorer builds one per record)
  o["rules_version"] = s.rules_version;
  o["catalog_version"] = s.catalog_version;
  o["group"] = s.group;
  o["measure"] = measure_name(s.measure);
  o["standard_minutes"] = number(s.standard_minutes);
  o["coefficient"] = number(s.coefficient);
  o["credited_minutes"] = reported(s.credited_minutes);
  o["quality_factor"] = number(s.quality_factor);
  o["timeliness_factor"] = number(s.timeliness_factor);
  o["late_days"] = s.late_days;
  o["points"] = reported(s.points);
  o["counts"] = to_string(s.counts);
  if (sequence) o["sequence"] = *sequence;
  json::array flags;
  for (RecordFlag f : kAllRecordFlags) {
    if (s.flags.has(f)) flags.emplace_back(to_string(f));
  }
  o["flags"] = std::move(flags);
  o["duplicate_of"] = s.duplicate_of ? json::value(*s.duplicate_of) : json::value(nullptr);
  return o;
}

json::object to_json(const StaffMonthResult& m, int64_t revision) {
  json::object o;
  o["month"] = m.month.str();
  o["staff_code"] = m.staff_code;
  o["agency_code"] = m.agency_code;
  o["leader"] = m.leader;
  o["working_days"] = m.working_days;
  o["leave_days"] = number(m.leave_days);
  o["capacity_minutes"] = number(m.capacity_minutes);
  o["declared_minutes"] = m.declared_minutes;
  o["credited_minutes"] = reported(m.credited_minutes);
  o["points"] = reported(m.points);
  o["capped_points"] = reported(m.capped_points);
  o["kpi_score"] = reported(m.kpi_score);
  o["provisional_score"] = reported(m.provisional_score);
  o["assessment_points"] = reported(m.assessment_points);
  o["class"] = to_string(m.assessment_class);
  o["records"] = {{"counted", m.records.counted},
                  {"pending", m.records.pending},
                  {"rejected", m.records.rejected},
                  {"duplicates", m.records.duplicates}};
  o["flags"] = flag_counts(m.flags);
  o["rules_version"] = m.rules_version;
  o["revision"] = revision;
  return o;
}

json::object to_json(const AgencyMonthResult& a, int64_t revision) {
  json::object o;
  o["month"] = a.month.str();
  o["agency_code"] = a.agency_code;
  o["status"] = to_string(a.status);
  o["staff_counted"] = a.staff_counted;
  o["avg_declared_hours_per_staff_day"] = reported(a.avg_declared_hours_per_staff_day);
  o["mean_kpi_score"] = reported(a.mean_kpi_score);
  o["median_kpi_score"] = reported(a.median_kpi_score);
  o["classes"] = {{"excellent", a.classes.excellent},
                  {"good", a.classes.good},
                  {"complete", a.classes.complete},
                  {"not_complete", a.classes.not_complete},
                  {"not_assessed", a.classes.not_assessed}};
  o["flags"] = flag_counts(a.flags);
  o["high_average_hours"] = a.high_average_hours;
  o["rules_version"] = a.rules_version;
  o["revision"] = revision;
  return o;
}

}  // namespace kpihub
