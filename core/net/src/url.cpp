#include <algorithm>
#include <cctype>
#include <string>

#include "kpihub/net.hpp"

namespace kpihub::net {
namespace {

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

HttpError BadUrl(const std::string& url, const std::string& reason) {
  return HttpError(FailureKind::config, "invalid URL '" + url + "': " + reason);
}

}  // namespace

Url Url::parse(const std::string& url) {
  Url parsed;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw BadUrl(url, "expected http:// or https://");
  parsed.scheme = url.substr(0, scheme_end);
  std::transform(parsed.scheme.begin(), parsed.scheme.end(), parsed.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (parsed.scheme != "http" && parsed.scheme != "https") {
    throw BadUrl(url, "unsupported scheme '" + parsed.scheme + "' (expected http or https)");
  }

  const auto authority_begin = scheme_end + 3;
  auto authority_end = url.find_first_of("/?#", authority_begin);
  if (authority_end == std::string::npos) authority_end = url.size();
  const std::string authority = url.substr(authority_begin, authority_end - authority_begin);
  // Credentials in URLs end up in logs; they belong in the secrets store.
  if (authority.find('@') != std::string::npos) {
    throw BadUrl(url, "user information in URLs is not supported");
  }

  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) throw BadUrl(url, "unterminated IPv6 literal");
    parsed.host = authority.substr(1, close - 1);
    const std::string rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw BadUrl(url, "unexpected text after IPv6 literal");
      port_text = rest.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    parsed.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
    if (parsed.host.find(':') != std::string::npos) {
      throw BadUrl(url, "IPv6 addresses must be written in brackets");
    }
  }
  if (parsed.host.empty()) throw BadUrl(url, "missing host");
  for (unsigned char c : parsed.host) {
    if (std::isspace(c) || std::iscntrl(c)) throw BadUrl(url, "invalid character in host");
  }

  if (port_text.empty()) {
    parsed.port = parsed.scheme == "https" ? "443" : "80";
  } else {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(),
                                             [](unsigned char c) { return std::isdigit(c); })) {
      throw BadUrl(url, "invalid port '" + port_text + "'");
    }
    const int port = std::stoi(port_text);
    if (port < 1 || port > 65535) throw BadUrl(url, "port out of range '" + port_text + "'");
    parsed.port = std::to_string(port);
  }

  // The fragment is never sent to the server.
  auto target_end = url.find('#', authority_end);
  if (target_end == std::string::npos) target_end = url.size();
  parsed.target = url.substr(authority_end, target_end - authority_end);
  if (parsed.target.empty() || parsed.target.front() == '?') parsed.target.insert(0, "/");
  for (unsigned char c : parsed.target) {
    if (c <= 0x20 || c == 0x7f) throw BadUrl(url, "unencoded space or control character in path");
  }
  return parsed;
}

std::string url_encode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (IsUnreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0f]);
    }
  }
  return out;
}

std::string url_decode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int high = HexValue(s[i + 1]);
      const int low = HexValue(s[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    // A stray '%' is kept as it is: decoding never fails on user input.
    out.push_back(s[i]);
  }
  return out;
}

std::map<std::string, std::string> parse_form(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    auto end = text.find('&', begin);
    if (end == std::string::npos) end = text.size();
    std::string pair = text.substr(begin, end - begin);
    std::replace(pair.begin(), pair.end(), '+', ' ');
    if (!pair.empty()) {
      const auto equals = pair.find('=');
      std::string name = url_decode(pair.substr(0, equals));
      std::string value = equals == std::string::npos ? "" : url_decode(pair.substr(equals + 1));
      fields.emplace(std::move(name), std::move(value));  // the first occurrence wins
    }
    begin = end + 1;
  }
  return fields;
}

}  // namespace kpihub::net
