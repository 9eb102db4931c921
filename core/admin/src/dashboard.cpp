// The dashboard: one HTML page with SVG charts drawn here, so it works on a
// server with no internet (no CDN, no script).
#include <kpihub/admin.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <sstream>

namespace kpihub {
namespace json = boost::json;

namespace {

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v, int decimals = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string duration(int64_t seconds) {
  if (seconds < 120) return std::to_string(seconds) + " s";
  if (seconds < 7200) return std::to_string(seconds / 60) + " min";
  return std::to_string(seconds / 3600) + " h";
}

struct Bar {
  std::string label;
  double value = 0;
  bool highlight = false;
};

struct Line {
  std::string label;
  double value = 0;
};

// Horizontal bars with optional vertical reference lines. Each bar carries
// its value in data-value so a test can read the chart.
std::string bar_chart(const std::string& id, const std::vector<Bar>& bars, const std::string& unit,
                      const std::vector<Line>& lines = {}) {
  if (bars.empty()) return "<p class=\"empty\" id=\"" + id + "\">No data yet.</p>";
  const int label_w = 170, chart_w = 440, row_h = 20;
  double max = 0;
  for (const auto& b : bars) max = std::max(max, b.value);
  for (const auto& l : lines) max = std::max(max, l.value);
  if (max <= 0) max = 1;
  const int height = static_cast<int>(bars.size()) * row_h + 24;
  std::ostringstream s;
  s << "<svg id=\"" << id << "\" class=\"chart\" role=\"img\" width=\"" << label_w + chart_w + 70
    << "\" height=\"" << height << "\" viewBox=\"0 0 " << label_w + chart_w + 70 << " " << height
    << "\">";
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const auto& b = bars[i];
    const int y = static_cast<int>(i) * row_h + 4;
    const double w = b.value / max * chart_w;
    s << "<text x=\"" << label_w - 6 << "\" y=\"" << y + 13 << "\" text-anchor=\"end\">"
      << esc(b.label) << "</text><rect class=\"bar" << (b.highlight ? " flagged" : "")
      << "\" data-label=\"" << esc(b.label) << "\" data-value=\"" << b.value << "\" x=\"" << label_w
      << "\" y=\"" << y << "\" width=\"" << num(std::max(w, 1.0)) << "\" height=\"" << row_h - 6
      << "\"><title>" << esc(b.label) << ": " << num(b.value, 2) << " " << esc(unit)
      << "</title></rect><text x=\"" << label_w + w + 4 << "\" y=\"" << y + 13 << "\">"
      << num(b.value, b.value == std::floor(b.value) ? 0 : 2) << "</text>";
  }
  for (const auto& l : lines) {
    const double x = label_w + l.value / max * chart_w;
    s << "<line class=\"threshold\" data-value=\"" << l.value << "\" x1=\"" << num(x) << "\" x2=\""
      << num(x) << "\" y1=\"0\" y2=\"" << height - 18 << "\"/><text class=\"threshold-label\" x=\""
      << num(x) << "\" y=\"" << height - 4 << "\" text-anchor=\"middle\">" << esc(l.label) << " "
      << num(l.value, 2) << "</text>";
  }
  s << "</svg>";
  return s.str();
}

// Vertical bars over time (records stored per hour).
std::string column_chart(const std::string& id, const std::vector<HourCount>& hours,
                         int64_t from_ms, int slots, int utc_offset_minutes) {
  std::vector<int64_t> counts(static_cast<std::size_t>(slots), 0);
  for (const auto& h : hours) {
    const int64_t slot = (h.hour_start_unix_ms - from_ms) / 3600000;
    if (slot >= 0 && slot < slots) counts[static_cast<std::size_t>(slot)] += h.count;
  }
  const int64_t max = std::max<int64_t>(1, *std::max_element(counts.begin(), counts.end()));
  const int w = 24, chart_h = 120;
  std::ostringstream s;
  s << "<svg id=\"" << id << "\" class=\"chart\" role=\"img\" width=\"" << slots * w + 50
    << "\" height=\"" << chart_h + 30 << "\">";
  for (int i = 0; i < slots; ++i) {
    const double h = static_cast<double>(counts[static_cast<std::size_t>(i)]) /
                     static_cast<double>(max) * chart_h;
    const int64_t local = (from_ms / 1000 + i * 3600 + utc_offset_minutes * 60) % 86400 / 3600;
    s << "<rect class=\"bar\" data-value=\"" << counts[static_cast<std::size_t>(i)] << "\" x=\""
      << 40 + i * w << "\" y=\"" << num(chart_h - h + 4) << "\" width=\"" << w - 4 << "\" height=\""
      << num(std::max(h, counts[static_cast<std::size_t>(i)] > 0 ? 1.0 : 0.0)) << "\"><title>"
      << local << ":00 — " << counts[static_cast<std::size_t>(i)] << " records</title></rect>";
    if (i % 3 == 0) {
      s << "<text x=\"" << 40 + i * w << "\" y=\"" << chart_h + 20 << "\">" << local << "h</text>";
    }
  }
  s << "<text x=\"0\" y=\"14\">" << max << "</text><text x=\"0\" y=\"" << chart_h + 4
    << "\">0</text></svg>";
  return s.str();
}

const char* const kStyle = R"(
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1d2430;background:#fafbfc}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #d8dde4}
table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #e3e7ec;text-align:left}
.state-failing,.state-waiting_for_staff_list{color:#b3261e;font-weight:bold}.state-caught_up{color:#1e7b34}
.chart text{font-size:11px;fill:#333}.bar{fill:#3a6ea5}.bar.flagged{fill:#c0392b}
.threshold{stroke:#c0392b;stroke-dasharray:4 3}.threshold-label{fill:#c0392b}
.empty{color:#777}.kpi{display:inline-block;margin-right:2em}.kpi b{font-size:1.4em;display:block}
)";

}  // namespace

net::Reply AdminApi::dashboard(const net::Request& request) {
  const int64_t now = clock_.now_unix_ms();
  const int offset = reference_.rules.utc_offset_minutes;
  std::string month_text = request.query.count("month") ? request.query.at("month") : "";
  std::optional<Month> month = Month::parse(month_text);
  if (!month_text.empty() && !month)
    throw std::invalid_argument("month: \"" + month_text + "\" is not YYYY-MM");
  if (!month) {
    // This month if it has results yet, else the month before.
    // The hub's date: the configured one when set (backfills, tests).
    Date today{static_cast<int32_t>((now / 1000 + offset * 60) / 86400)};
    if (config_.today) {
      if (const auto d = Date::parse(*config_.today)) today = *d;
    }
    month = Month::of(today);
    if (storage_.scoring().month_rows(OutboxKind::agency_month, month->str()).empty()) {
      month = Month::of(Date{month->first_day().days - 1});
    }
  }

  std::ostringstream h;
  h << "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>kpihub — "
    << esc(config_.hub_id) << "</title><style>" << kStyle << "</style></head><body>";
  h << "<h1>kpihub " << esc(config_.hub_id) << "</h1>";

  const auto counts = storage_.views().counts();
  h << "<div id=\"totals\"><span class=\"kpi\"><b>" << counts.records << "</b>records</span>"
    << "<span class=\"kpi\"><b>" << counts.quarantined << "</b>quarantined</span>"
    << "<span class=\"kpi\"><b>" << counts.dead_letters << "</b>dead letters</span>";
  for (const auto& s : config_.sinks) {
    h << "<span class=\"kpi\"><b>" << storage_.outbox().depth(s.name) << "</b>waiting for "
      << esc(s.name) << "</span>";
  }
  h << "</div>";

  h << "<h2>Sources</h2><table id=\"sources\"><tr><th>source</th><th>state</th><th>lag</th>"
       "<th>records this run</th><th>last error</th></tr>";
  for (const auto& s : hub_.source_status()) {
    h << "<tr><td>" << esc(s.name) << "</td><td class=\"state-" << esc(s.state) << "\">"
      << esc(s.state) << "</td><td>"
      << (s.last_caught_up_ms ? duration((now - s.last_caught_up_ms) / 1000) : "—") << "</td><td>"
      << s.records << "</td><td>" << esc(s.last_error) << "</td></tr>";
  }
  h << "</table>";

  // Stored records carry the records' clock (hub.json's `today` when set).
  const int64_t records_now = RecordClock(config_, clock_, offset).now_unix_ms();
  const int64_t from = (records_now / 3600000 - 23) * 3600000;
  h << "<h2>Records stored per hour (last 24 h)</h2>"
    << column_chart("records-per-hour", storage_.records().stored_per_hour(from), from, 24, offset);

  std::map<std::string, double> by_reason;
  for (const auto& q : storage_.views().quarantine_counts())
    by_reason[q.reason] += static_cast<double>(q.count);
  std::vector<Bar> reasons;
  reasons.reserve(by_reason.size());
  for (const auto& [reason, n] : by_reason) reasons.push_back({reason, n, false});
  h << "<h2>Quarantine by reason</h2>" << bar_chart("quarantine-by-reason", reasons, "entries");

  std::map<std::string, double> dead_by_code;
  for (const auto& d : storage_.outbox().dead_letters("", 1000, 0)) {
    if (!d.replayed) dead_by_code[d.code.empty() ? "(no code)" : d.code] += 1;
  }
  std::vector<Bar> dead;
  dead.reserve(dead_by_code.size());
  for (const auto& [code, n] : dead_by_code) dead.push_back({code, n, false});
  h << "<h2>Dead letters by reason</h2>" << bar_chart("dead-letters-by-reason", dead, "items");

  // The month.
  h << "<h2>Month " << month->str()
    << "</h2><form method=\"get\"><label>Month <input name=\"month\" value=\"" << month->str()
    << "\" pattern=\"[0-9]{4}-[0-9]{2}\"></label> <button>Show</button></form>";
  std::vector<Bar> hours;
  std::vector<double> averages;
  std::map<std::string, double> classes;
  std::vector<std::string> not_implemented;
  for (const auto& row : storage_.scoring().month_rows(OutboxKind::agency_month, month->str())) {
    const auto o = json::parse(row.json).as_object();
    const auto* avg = o.if_contains("avg_declared_hours_per_staff_day");
    if (avg && avg->is_number()) {
      const double v = avg->to_number<double>();
      const auto* flag = o.if_contains("high_average_hours");
      hours.push_back({row.code, v, flag && flag->is_bool() && flag->as_bool()});
      averages.push_back(v);
    }
    if (const auto* c = o.if_contains("classes"); c && c->is_object()) {
      for (const auto& kv : c->as_object()) {
        if (kv.value().is_number())
          classes[std::string(kv.key())] += kv.value().to_number<double>();
      }
    }
    if (const auto* st = o.if_contains("status");
        st && st->is_string() && st->as_string() == "not_implemented") {
      not_implemented.push_back(row.code);
    }
  }
  std::sort(hours.begin(), hours.end(),
            [](const Bar& a, const Bar& b) { return a.value > b.value; });
  std::vector<Line> lines{{"absolute", reference_.rules.high_hours_absolute}};
  if (const auto median = median_of(averages)) {
    lines.push_back({"median×" + num(reference_.rules.high_hours_median_ratio, 2),
                     *median * reference_.rules.high_hours_median_ratio});
  }
  h << "<h3>Agencies by average declared hours per staff-day</h3>"
    << bar_chart("agency-hours", hours, "h/day", hours.empty() ? std::vector<Line>{} : lines);
  std::vector<Bar> class_bars;
  for (const char* c : {"excellent", "good", "complete", "not_complete", "not_assessed"}) {
    if (classes.count(c)) class_bars.push_back({c, classes[c], false});
  }
  h << "<h3>Class distribution</h3>" << bar_chart("class-distribution", class_bars, "staff");
  h << "<h3>Agencies not_implemented</h3><ul id=\"not-implemented\">";
  for (const auto& a : not_implemented) h << "<li>" << esc(a) << "</li>";
  if (not_implemented.empty()) h << "<li class=\"empty\">none</li>";
  h << "</ul><p class=\"empty\">Drawn by the hub at " << now / 1000
    << " (unix s). JSON: <a href=\"/api/status\">/api/status</a>, <a "
       "href=\"/metrics\">/metrics</a>.</p>";
  h << "</body></html>";

  net::Reply r;
  r.headers = {{"Content-Type", "text/html; charset=utf-8"},
               {"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"}};
  r.body = h.str();
  return r;
}

}  // namespace kpihub
