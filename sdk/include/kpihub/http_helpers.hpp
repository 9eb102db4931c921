// kpihub SDK: what an adapter or sink that speaks HTTP needs beside the host's HTTP client, in
// one place for every plugin (issue 22: each bundled plugin had its own percent-encoder and
// Retry-After parser, and they did not agree on what they accepted).
//
//   sdk::percent_encode("2025-04-01T00:00:00+07:00")  ->  "2025-04-01T00%3A00%3A00%2B07%3A00"
//   sdk::retry_after_ms("120", now)                    ->  120000
//   sdk::retry_after_ms("Sun, 06 Nov 1994 08:49:47 GMT", now)
//   sdk::read_token_answer(R"({"access_token":"t","expires_in":300})", now)
#ifndef KPIHUB_HTTP_HELPERS_HPP
#define KPIHUB_HTTP_HELPERS_HPP

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <iomanip>
#include <limits>
#include <locale>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>

namespace kpihub::sdk {

// A query or form value, or a path segment, percent-encoded: everything but RFC 3986's
// unreserved characters (letters, digits, "-._~"), UTF-8 byte by byte (Boost.URL).
inline std::string percent_encode(std::string_view text) {
  return boost::urls::encode(text, boost::urls::unreserved_chars);
}

// Milliseconds a Retry-After header (RFC 9110, 10.2.3) asks to wait, counted from
// `now_unix_ms`: a number of seconds, or an HTTP date in any of the three forms RFC 9110 names
// (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT",
// asctime "Sun Nov  6 08:49:37 1994"). A date in the past gives 0. A number of more than nine
// digits gives the largest int64_t: callers cap the wait with their own limit (a hostile or
// broken server must not park a plugin for weeks). nullopt when the value is none of these.
inline std::optional<std::int64_t> retry_after_ms(std::string_view value,
                                                  std::int64_t now_unix_ms) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    if (value.size() > 9) return std::numeric_limits<std::int64_t>::max();
    return std::stoll(std::string(value)) * 1000;
  }
  // The longest HTTP date is 33 characters. A longer value is none, and it must not reach
  // std::regex, whose matcher recurses once per character (a 64 KB header would overflow the
  // stack: found in review).
  if (value.size() > 64) return std::nullopt;
  // The shape first: std::get_time alone reads more than these forms.
  static const std::regex kImfFixdate(
      R"(^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$)");
  static const std::regex kRfc850(
      R"(^[A-Z][a-z]+day, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$)");
  static const std::regex kAsctime(
      R"(^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$)");
  const std::string text(value);
  const char* format = nullptr;
  std::string input = text;
  if (std::regex_match(text, kImfFixdate)) {
    format = "%a, %d %b %Y %H:%M:%S";
  } else if (std::regex_match(text, kRfc850)) {
    format = "%A, %d-%b-%y %H:%M:%S";
  } else if (std::regex_match(text, kAsctime)) {
    // "Nov  6": the day's padding space is not a field std::get_time reads.
    if (input[8] == ' ') input[8] = '0';
    format = "%a %b %d %H:%M:%S %Y";
  } else {
    return std::nullopt;
  }
  std::tm tm{};
  std::istringstream in(input);
  in.imbue(std::locale::classic());
  in >> std::get_time(&tm, format);
  if (in.fail()) return std::nullopt;
  const std::int64_t at_ms = static_cast<std::int64_t>(timegm(&tm)) * 1000;
  return std::max<std::int64_t>(0, at_ms - now_unix_ms);
}

// An OAuth2 access token (RFC 6749, 4.4: client credentials) and when to fetch the next one.
struct AccessToken {
  std::string value;
  std::int64_t expires_in_s = 0;  // as the endpoint said; an hour when it said nothing
  // A tenth of its life before it expires, at most a minute: a token never expires in flight.
  std::int64_t renew_at_unix_ms = 0;
};

// A token endpoint's 200 answer (RFC 6749, 5.1), received at `now_unix_ms`: nullopt when it is
// not a JSON object with a non-empty `access_token` string. `expires_in` is a number of seconds
// (a whole number or not); missing, negative or not a number: an hour.
inline std::optional<AccessToken> read_token_answer(std::string_view body,
                                                    std::int64_t now_unix_ms) {
  boost::system::error_code ec;
  const boost::json::value answer = boost::json::parse(body, ec);
  const boost::json::object* object = !ec ? answer.if_object() : nullptr;
  const boost::json::value* token = object ? object->if_contains("access_token") : nullptr;
  if (token == nullptr || !token->is_string() || token->get_string().empty()) return std::nullopt;
  AccessToken out;
  out.value = std::string(token->get_string());
  out.expires_in_s = 3600;
  if (const boost::json::value* e = object->if_contains("expires_in"); e && e->is_number()) {
    const double seconds = e->to_number<double>();
    if (seconds >= 0 && seconds < 1e9) out.expires_in_s = static_cast<std::int64_t>(seconds);
  }
  const std::int64_t life_ms = out.expires_in_s * 1000;
  out.renew_at_unix_ms = now_unix_ms + life_ms - std::min<std::int64_t>(life_ms / 10, 60'000);
  return out;
}

}  // namespace kpihub::sdk

#endif  // KPIHUB_HTTP_HELPERS_HPP
