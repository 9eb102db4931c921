#include <kpihub/admin.hpp>

#include <boost/json.hpp>

#include <cstdio>
#include <string_view>

namespace kpihub {
namespace {

const char* const kStaffColumns[] = {"staff_code",
                                     "agency_code",
                                     "leader",
                                     "working_days",
                                     "leave_days",
                                     "capacity_minutes",
                                     "declared_minutes",
                                     "credited_minutes",
                                     "points",
                                     "capped_points",
                                     "kpi_score",
                                     "provisional_score",
                                     "assessment_points",
                                     "class"};

std::string cell(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  if (!v || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_double()) {
    // Boost.JSON writes doubles as 1.95E0; people read 1.95.
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.15g", v->as_double());
    return buf;
  }
  return boost::json::serialize(*v);
}

// One cell of the CSV report (RFC 4180): quoted when it holds a comma, a quote or a line break
// (a carriage return alone ends a row in some spreadsheet programs). Text from the sources
// (agency codes from E-Office's staff list) that a spreadsheet would run as a formula, starting
// with = + - @, a tab or a carriage return, gets a single quote first, as OWASP recommends
// against CSV injection; numbers are left as they are (a negative one is not a formula).
std::string csv_cell(const boost::json::object& o, const char* key) {
  std::string s = cell(o, key);
  const auto* v = o.if_contains(key);
  if (v && v->is_string() && !s.empty() &&
      std::string_view("=+-@\t\r").find(s.front()) != std::string_view::npos) {
    s.insert(0, 1, '\'');
  }
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string report_json(ScoringState& scoring, const Month& month, const std::string& agency) {
  boost::json::array staff, agencies;
  for (const auto& r : scoring.month_rows(OutboxKind::staff_month, month.str())) {
    if (agency.empty() || r.agency_code == agency) staff.push_back(boost::json::parse(r.json));
  }
  for (const auto& r : scoring.month_rows(OutboxKind::agency_month, month.str())) {
    if (agency.empty() || r.agency_code == agency) agencies.push_back(boost::json::parse(r.json));
  }
  boost::json::object out;
  out["month"] = month.str();
  out["staff_months"] = std::move(staff);
  out["agency_months"] = std::move(agencies);
  return boost::json::serialize(out);
}

std::string report_csv(ScoringState& scoring, const Month& month, const std::string& agency) {
  // A BOM makes spreadsheet programs read the Vietnamese text as UTF-8.
  std::string out = "\xEF\xBB\xBF";
  std::string header;
  for (const char* c : kStaffColumns) header += std::string(header.empty() ? "" : ",") + c;
  out += header + "\n";
  for (const auto& r : scoring.month_rows(OutboxKind::staff_month, month.str())) {
    if (!agency.empty() && r.agency_code != agency) continue;
    const auto o = boost::json::parse(r.json).as_object();
    std::string line;
    for (const char* c : kStaffColumns)
      line += std::string(line.empty() ? "" : ",") + csv_cell(o, c);
    out += line + "\n";
  }
  return out;
}

}  // namespace kpihub
