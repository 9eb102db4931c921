// `kpihub explain`: the staff month as a table a reader can recompute by hand.
#include <kpihub/scoring.hpp>

#include <algorithm>
#include <cstdarg>
#include <cstdio>

namespace kpihub {
namespace {

__attribute__((format(printf, 2, 3))) void appendf(std::string& out, const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n > 0) out.append(buf, std::min(static_cast<std::size_t>(n), sizeof buf - 1));
}

// Figures as the reports show them (rounded per 5.3), always with 2 decimals.
std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", round_report(v));
  return buf;
}

// Quantities and factors: as short as they are exact enough to read.
std::string plain(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string status_text(const ScoredRecord& r) {
  std::string s = r.status ? std::string(to_string(*r.status)) : std::string("pending(none)");
  s += '/';
  s += r.rating ? to_string(*r.rating) : "none";
  if (r.retracted) s = "retracted";
  return s;
}

std::string deadline_text(const ScoredRecord& r) {
  std::string s = r.deadline && (r.deadline->date || r.deadline->at) ? r.deadline->str() : "-";
  s += " -> ";
  s += r.completed_at ? r.completed_at->str() : "-";
  return s;
}

std::string notes(const ScoredRecord& r) {
  std::string s;
  const RecordScoring& sc = r.scoring;
  for (RecordFlag f : kAllRecordFlags) {
    if (!sc.flags.has(f)) continue;
    if (!s.empty()) s += ',';
    s += to_string(f);
  }
  auto add = [&s](std::string_view text) {
    if (!s.empty()) s += "; ";
    s += text;
  };
  if (sc.leave) add("leave (no points)");
  switch (sc.why_not_counted) {
    case NotCountedReason::none:
      break;
    case NotCountedReason::pending:
      add("pending: provisional only");
      break;
    case NotCountedReason::duplicate:
      add("duplicate of " + sc.duplicate_of.value_or("?"));
      break;
    default:
      add(std::string("not counted: ") + std::string(to_string(sc.why_not_counted)));
  }
  if (sc.flags.has(RecordFlag::overdue))
    add("no completion by a deadline in a closed month: 0 points");
  return s;
}

// Padded columns leave spaces at line ends; readers diffing two outputs do not want them.
std::string without_trailing_spaces(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n') {
      while (!out.empty() && out.back() == ' ') out.pop_back();
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string explain(const StaffMonthResult& m) {
  std::string out;
  appendf(out, "Staff %s, agency %s, %s, month %s (rules %s, catalog %s)\n", m.staff_code.c_str(),
          m.agency_code.c_str(), m.leader ? "leader" : "non-leader", m.month.str().c_str(),
          m.rules_version.c_str(), m.catalog_version.c_str());

  // Records.
  int id_width = 6;
  for (const ScoredRecord& r : m.scored) {
    id_width = std::max(id_width, static_cast<int>(r.record_id.size()));
  }
  int task_width = 4;
  for (const ScoredRecord& r : m.scored) {
    task_width = std::max(task_width, static_cast<int>(r.task_code.size()));
  }
  out += "\nRecords (points = credited x coefficient x quality x timeliness):\n";
  appendf(out,
          "%-*s  %-10s  %-*s  %6s  %8s  %-18s  %-50s  %8s  %5s  %4s  %4s  %4s  %8s  %-11s  %s\n",
          id_width, "record", "date", task_width, "task", "qty", "declared", "status/rating",
          "deadline -> completed", "credited", "coef", "Q", "T", "late", "points", "counts",
          "flags / why not counted");
  for (const ScoredRecord& r : m.scored) {
    const RecordScoring& s = r.scoring;
    appendf(
        out, "%-*s  %-10s  %-*s  %6s  %8d  %-18s  %-50s  %8s  %5s  %4s  %4s  %4d  %8s  %-11s  %s\n",
        id_width, r.record_id.c_str(), r.work_date.str().c_str(), task_width, r.task_code.c_str(),
        plain(r.quantity).c_str(), r.declared_minutes, status_text(r).c_str(),
        deadline_text(r).c_str(), fixed2(s.credited_minutes).c_str(), plain(s.coefficient).c_str(),
        plain(s.quality_factor).c_str(), plain(s.timeliness_factor).c_str(), s.late_days,
        fixed2(s.points).c_str(), std::string(to_string(s.counts)).c_str(), notes(r).c_str());
  }

  // Days.
  appendf(out,
          "\nDays (declared and flags over approved+pending; daily cap %s points; standard day %d "
          "min):\n",
          plain(m.daily_cap_points).c_str(), m.standard_day_minutes);
  appendf(out, "%-10s  %7s  %8s  %12s  %13s  %12s  %13s  %s\n", "date", "records", "declared",
          "points final", "counted final", "points prov.", "counted prov.", "flags");
  for (const DaySummary& d : m.days) {
    std::string flags;
    if (d.over_standard_day) flags += "over_standard_day ";
    if (d.implausible_day) flags += "implausible_day ";
    if (d.cap_applied_final())
      flags += "cap applied (" + fixed2(d.points_final - d.counted_final) + " off)";
    appendf(out, "%-10s  %7d  %8lld  %12s  %13s  %12s  %13s  %s\n", d.date.str().c_str(),
            d.records_provisional, static_cast<long long>(d.declared_minutes),
            fixed2(d.points_final).c_str(), fixed2(d.counted_final).c_str(),
            fixed2(d.points_provisional).c_str(), fixed2(d.counted_provisional).c_str(),
            flags.c_str());
  }

  // Month.
  out += "\nMonth:\n";
  appendf(out, "  capacity = (working days %d - leave days %s) x %d = %s minutes\n", m.working_days,
          plain(m.leave_days).c_str(), m.standard_day_minutes, plain(m.capacity_minutes).c_str());
  appendf(out,
          "  final: declared %lld min, credited %s min, points %s after the cap (%s capped off)\n",
          static_cast<long long>(m.declared_minutes), fixed2(m.credited_minutes).c_str(),
          fixed2(m.points).c_str(), fixed2(m.capped_points).c_str());
  if (m.kpi_score) {
    appendf(out, "  kpi_score = min(100, 100 x %s / %s) = %s\n", fixed2(m.points).c_str(),
            plain(m.capacity_minutes).c_str(), fixed2(*m.kpi_score).c_str());
    // Six decimals show the value the half-away-from-zero rounding starts from.
    appendf(out, "  assessment_points = kpi_score %.6f x %s (%s) = %.6f -> %s\n", *m.kpi_score,
            plain(m.assessment_share).c_str(), m.leader ? "leader" : "non-leader",
            *m.assessment_points, fixed2(*m.assessment_points).c_str());
    appendf(out, "  provisional_score = min(100, 100 x %s / %s) = %s\n",
            fixed2(m.provisional_points).c_str(), plain(m.capacity_minutes).c_str(),
            fixed2(*m.provisional_score).c_str());
  } else {
    out += "  capacity is 0: no score\n";
  }
  appendf(out, "  class: %s\n", std::string(to_string(m.assessment_class)).c_str());
  appendf(out, "  records: counted %d, pending %d, rejected %d, duplicates %d\n", m.records.counted,
          m.records.pending, m.records.rejected, m.records.duplicates);
  appendf(out,
          "  flags: over_standard_day %d (days), implausible_day %d (days), over_declared %d, "
          "overdue %d, late_submission %d\n",
          m.flags.over_standard_day, m.flags.implausible_day, m.flags.over_declared,
          m.flags.overdue, m.flags.late_submission);
  return without_trailing_spaces(out);
}

}  // namespace kpihub
