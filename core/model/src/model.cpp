#include <kpihub/model.hpp>

#include <array>
#include <charconv>
#include <cstdio>

namespace kpihub {
namespace {

using namespace std::chrono;

// Parses exactly `n` ASCII digits.
bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

std::string two(unsigned v) {
  std::array<char, 3> b{};
  std::snprintf(b.data(), b.size(), "%02u", v % 100);
  return std::string(b.data(), 2);
}

}  // namespace

// ------------------------------------------------------------------ Date --

std::optional<Date> Date::parse(std::string_view s) {
  int y = 0, m = 0, d = 0;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  if (!digits(s, 0, 4, y) || !digits(s, 5, 2, m) || !digits(s, 8, 2, d)) return std::nullopt;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(m)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return Date{static_cast<int32_t>(sys_days(ymd).time_since_epoch().count())};
}

Date Date::from_ymd(int y, unsigned m, unsigned d) {
  return Date{static_cast<int32_t>(sys_days(year_month_day{year{y}, month{m}, day{d}}).time_since_epoch().count())};
}

year_month_day Date::ymd() const { return year_month_day{sys_days{std::chrono::days{days}}}; }

std::string Date::str() const {
  const auto v = ymd();
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(v.year()), static_cast<unsigned>(v.month()),
                static_cast<unsigned>(v.day()));
  return buf;
}

std::string Date::month_str() const { return Month::of(*this).str(); }

unsigned Date::weekday() const { return std::chrono::weekday{sys_days{std::chrono::days{days}}}.c_encoding(); }

// ------------------------------------------------------------- Timestamp --

std::optional<Timestamp> Timestamp::parse(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  if (s.size() < 20) return std::nullopt;
  const auto date = Date::parse(s.substr(0, 10));
  if (!date || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) return std::nullopt;
  int hh = 0, mm = 0, ss = 0;
  if (!digits(s, 11, 2, hh) || s[13] != ':' || !digits(s, 14, 2, mm) || s[16] != ':' ||
      !digits(s, 17, 2, ss)) {
    return std::nullopt;
  }
  if (hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;  // an offset is required
  int32_t offset = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = 0, om = 0;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om)) {
      return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const int64_t local = static_cast<int64_t>(date->days) * 86400 + hh * 3600 + mm * 60 + std::min(ss, 59);
  return Timestamp{local - static_cast<int64_t>(offset) * 60, offset};
}

std::string Timestamp::str() const {
  const int64_t local = unix_seconds + static_cast<int64_t>(offset_minutes) * 60;
  int64_t day = local / 86400;
  int64_t sec = local % 86400;
  if (sec < 0) {
    sec += 86400;
    day -= 1;
  }
  std::string out = Date{static_cast<int32_t>(day)}.str();
  out += 'T';
  out += two(static_cast<unsigned>(sec / 3600));
  out += ':';
  out += two(static_cast<unsigned>((sec / 60) % 60));
  out += ':';
  out += two(static_cast<unsigned>(sec % 60));
  if (offset_minutes == 0) {
    out += "Z";
  } else {
    const int32_t a = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    out += offset_minutes < 0 ? '-' : '+';
    out += two(static_cast<unsigned>(a / 60));
    out += ':';
    out += two(static_cast<unsigned>(a % 60));
  }
  return out;
}

Date Timestamp::local_date() const {
  const int64_t local = unix_seconds + static_cast<int64_t>(offset_minutes) * 60;
  int64_t day = local / 86400;
  if (local % 86400 < 0) day -= 1;
  return Date{static_cast<int32_t>(day)};
}

// ----------------------------------------------------------------- Month --

std::optional<Month> Month::parse(std::string_view s) {
  int y = 0, m = 0;
  if (s.size() != 7 || s[4] != '-' || !digits(s, 0, 4, y) || !digits(s, 5, 2, m) || m < 1 || m > 12) {
    return std::nullopt;
  }
  return Month{y, static_cast<unsigned>(m)};
}

Month Month::of(Date d) {
  const auto v = d.ymd();
  return Month{static_cast<int>(v.year()), static_cast<unsigned>(v.month())};
}

std::string Month::str() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u", year, month);
  return buf;
}

Date Month::first_day() const { return Date::from_ymd(year, month, 1); }

Date Month::last_day() const {
  const year_month_day_last l{std::chrono::year{year}, month_day_last{std::chrono::month{month}}};
  return Date{static_cast<int32_t>(sys_days(l).time_since_epoch().count())};
}

Month Month::next() const { return month == 12 ? Month{year + 1, 1} : Month{year, month + 1}; }

// ------------------------------------------------------------- Deadline --

int64_t Deadline::unix_seconds(int32_t local_offset_minutes) const {
  if (at) return at->unix_seconds;
  // A date deadline means the end of that local day (23:59:59).
  return static_cast<int64_t>(date->days) * 86400 + 86399 - static_cast<int64_t>(local_offset_minutes) * 60;
}

std::string Deadline::str() const { return at ? at->str() : date->str(); }

// ----------------------------------------------------------------- enums --

std::string_view to_string(ApprovalStatus s) {
  switch (s) {
    case ApprovalStatus::approved: return "approved";
    case ApprovalStatus::pending: return "pending";
    case ApprovalStatus::returned: return "returned";
    case ApprovalStatus::rejected: return "rejected";
  }
  return "pending";
}

std::string_view to_string(Rating r) {
  switch (r) {
    case Rating::excellent: return "excellent";
    case Rating::good: return "good";
    case Rating::fair: return "fair";
    case Rating::poor: return "poor";
  }
  return "good";
}

std::optional<ApprovalStatus> parse_approval_status(std::string_view s) {
  if (s == "approved") return ApprovalStatus::approved;
  if (s == "pending") return ApprovalStatus::pending;
  if (s == "returned") return ApprovalStatus::returned;
  if (s == "rejected") return ApprovalStatus::rejected;
  return std::nullopt;
}

std::optional<Rating> parse_rating(std::string_view s) {
  if (s == "excellent") return Rating::excellent;
  if (s == "good") return Rating::good;
  if (s == "fair") return Rating::fair;
  if (s == "poor") return Rating::poor;
  return std::nullopt;
}

std::string_view to_string(Reason r) {
  switch (r) {
    case Reason::parse_error: return "parse_error";
    case Reason::missing_field: return "missing_field";
    case Reason::bad_value: return "bad_value";
    case Reason::bad_encoding: return "bad_encoding";
    case Reason::unknown_task: return "unknown_task";
    case Reason::unknown_staff: return "unknown_staff";
    case Reason::future_date: return "future_date";
    case Reason::too_old: return "too_old";
    case Reason::source_error: return "source_error";
  }
  return "parse_error";
}

std::optional<Reason> parse_reason(std::string_view s) {
  for (Reason r : {Reason::parse_error, Reason::missing_field, Reason::bad_value, Reason::bad_encoding,
                   Reason::unknown_task, Reason::unknown_staff, Reason::future_date, Reason::too_old,
                   Reason::source_error}) {
    if (to_string(r) == s) return r;
  }
  return std::nullopt;
}

WorkRecord bare_withdrawal(const WorkRecord& r) {
  WorkRecord w;
  w.record_id = r.record_id;
  w.source_system = r.source_system;
  w.source_id = r.source_id;
  w.revision = r.revision;
  w.retracted = true;
  w.changed_at = r.changed_at;
  return w;
}

}  // namespace kpihub
