// kpihub SDK: RFC 3339 times as the host reads them (spec/kpi-model.md), for every plugin: what a
// source's timestamps are parsed with, and how a time is written as a record's changed_at.
#ifndef KPIHUB_TIME_HPP
#define KPIHUB_TIME_HPP

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace kpihub::sdk {

// `unix_seconds` as RFC 3339 local time at `utc_offset_minutes`
// ("2025-04-14T07:00:00+07:00"), as a record's changed_at.
inline std::string rfc3339_local(std::int64_t unix_seconds, int utc_offset_minutes) {
  using namespace std::chrono;
  const std::int64_t local = unix_seconds + std::int64_t{utc_offset_minutes} * 60;
  const auto day = floor<days>(sys_seconds{seconds{local}});
  const year_month_day ymd{day};
  const std::int64_t sec = local - std::int64_t{day.time_since_epoch().count()} * 86400;
  const int off = utc_offset_minutes < 0 ? -utc_offset_minutes : utc_offset_minutes;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d%c%02d:%02d",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(sec / 3600),
                static_cast<int>(sec / 60 % 60), static_cast<int>(sec % 60),
                utc_offset_minutes < 0 ? '-' : '+', off / 60, off % 60);
  return buf;
}

// A time a source gives (a teaching log's `generated`, an E-Office item's `updated_at`), read
// by the rule the host reads a record's changed_at with (spec/kpi-model.md; the host's
// Timestamp::parse): YYYY-MM-DD (a real date, four-digit year), 'T' (or 't'
// or ' '), hh:mm:ss (hh up to 23, ss up to 60, a leap second read as :59), an
// optional fraction (its first three digits kept as `millis`), then 'Z' or +hh:mm / -hh:mm. A time
// without an offset is local time at `local_offset_minutes` when that is given. What it refuses
// (xs:dateTime's "24:00:00", years of five digits or below zero) the host would refuse too; nullopt
// then.
struct FileTime {
  std::int64_t unix_seconds = 0;
  int offset_minutes = 0;
  int millis = 0;  // of the fraction; not in rfc3339(), as the host keeps whole seconds
  // As a record's changed_at, e.g. "2025-04-14T07:00:00+07:00".
  std::string rfc3339() const { return rfc3339_local(unix_seconds, offset_minutes); }
};
inline std::optional<FileTime> parse_rfc3339(std::string_view s,
                                             std::optional<int> local_offset_minutes) {
  using namespace std::chrono;
  auto num = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) {
    return std::nullopt;
  }
  const auto y = num(0, 4), mo = num(5, 2), d = num(8, 2);
  const auto hh = num(11, 2), mm = num(14, 2), ss = num(17, 2);
  if (!y || !mo || !d || !hh || !mm || !ss || *hh > 23 || *mm > 59 || *ss > 60) return std::nullopt;
  const year_month_day ymd{year{*y}, month{static_cast<unsigned>(*mo)},
                           day{static_cast<unsigned>(*d)}};
  if (!ymd.ok()) return std::nullopt;
  std::size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    const std::size_t start = ++pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int offset = 0;
  if (pos == s.size()) {
    if (!local_offset_minutes) return std::nullopt;
    offset = *local_offset_minutes;
  } else if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const auto oh = num(pos + 1, 2), om = num(pos + 4, 2);
    if (!oh || !om || s[pos + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset = (*oh * 60 + *om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const std::int64_t local = std::int64_t{sys_days{ymd}.time_since_epoch().count()} * 86400 +
                             *hh * 3600 + *mm * 60 + std::min(*ss, 59);
  // A leap second is read as the minute's last second; its fraction as the last millisecond of
  // it, so that times keep their order (23:59:60.2 after 23:59:59.9: found in review).
  if (*ss == 60) millis = 999;
  return FileTime{local - std::int64_t{offset} * 60, offset, millis};
}

}  // namespace kpihub::sdk

#endif  // KPIHUB_TIME_HPP
