// JSON forms of scored records, staff months and agency months (spec/kpi-model.md).
#include <kpihub/model_json.hpp>
#include <kpihub/scoring.hpp>

#include <cmath>
#include <string>

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

json::object to_json(const RecordScoring& s, std::optional<int64_t> sequence,
                     json::storage_ptr sp) {
  json::object o(std::move(sp));
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
  json::array flags(o.storage());
  for (RecordFlag f : kAllRecordFlags) {
    if (s.flags.has(f)) flags.emplace_back(to_string(f));
  }
  o["flags"] = std::move(flags);
  o["duplicate_of"] =
      s.duplicate_of ? json::value(*s.duplicate_of, o.storage()) : json::value(nullptr);
  return o;
}

namespace {
// Holds a scored record's object tree (about 4 KB) without reaching the upstream allocator.
constexpr std::size_t kWriterBufferBytes = 16 * 1024;
}  // namespace

ScoredRecordWriter::ScoredRecordWriter() : buffer_(kWriterBufferBytes) {}

void ScoredRecordWriter::serialize(const json::object& o, std::string& out) {
  serializer_.reset(&o);
  out.clear();
  char chunk[4096];
  while (!serializer_.done()) out.append(serializer_.read(chunk, sizeof chunk));
}

std::string_view ScoredRecordWriter::scoring_text(const RecordScoring& s) {
  json::monotonic_resource arena(buffer_.data(), buffer_.size());
  serialize(to_json(s, std::nullopt, &arena), text_);
  return text_;
}

std::string ScoredRecordWriter::payload(const WorkRecord& record, const RecordScoring& s,
                                        int64_t sequence, std::string_view hub_id,
                                        std::string_view scored_at) {
  json::monotonic_resource arena(buffer_.data(), buffer_.size());
  json::object o = to_json(record, &arena);
  o["scoring"] = to_json(s, sequence, &arena);
  o["hub_id"] = hub_id;
  o["scored_at"] = scored_at;
  std::string out;
  serialize(o, out);
  return out;
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
