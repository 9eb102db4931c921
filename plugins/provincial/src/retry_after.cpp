#include "retry_after.hpp"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <string>

namespace kpihub::provincial {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> parse_http_date_unix_ms(const std::string& text) {
  // Poco's parser is lenient (it reads "soon" as a date), so the shape is
  // checked first; then the one form RFC 9110 names for that shape is parsed.
  static const std::regex kImfFixdate(
      R"(^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$)");
  static const std::regex kRfc850(
      R"(^[A-Z][a-z]+day, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$)");
  static const std::regex kAsctime(
      R"(^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$)");
  const std::string* format = nullptr;
  if (std::regex_match(text, kImfFixdate)) {
    format = &Poco::DateTimeFormat::HTTP_FORMAT;
  } else if (std::regex_match(text, kRfc850)) {
    format = &Poco::DateTimeFormat::RFC850_FORMAT;
  } else if (std::regex_match(text, kAsctime)) {
    format = &Poco::DateTimeFormat::ASCTIME_FORMAT;
  } else {
    return std::nullopt;
  }
  Poco::DateTime parsed;
  int zone_offset_seconds = 0;
  if (!Poco::DateTimeParser::tryParse(*format, text, parsed, zone_offset_seconds)) {
    return std::nullopt;
  }
  parsed.makeUTC(zone_offset_seconds);
  return parsed.timestamp().epochMicroseconds() / 1000;
}

}  // namespace

std::optional<uint32_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_ms,
                                             uint32_t cap_ms) {
  const std::string_view text = trim(value);
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    // More digits than any sane delay: treat as the cap rather than overflow.
    if (text.size() > 9) return cap_ms;
    const uint64_t seconds = std::stoull(std::string(text));
    return static_cast<uint32_t>(std::min<uint64_t>(seconds * 1000, cap_ms));
  }
  const std::optional<int64_t> at = parse_http_date_unix_ms(std::string(text));
  if (!at) return std::nullopt;
  const int64_t wait = *at - now_unix_ms;
  if (wait <= 0) return 0;
  return static_cast<uint32_t>(std::min<int64_t>(wait, cap_ms));
}

}  // namespace kpihub::provincial
