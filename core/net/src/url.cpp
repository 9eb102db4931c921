// URLs through Boost.URL (RFC 3986): what the hub and its tools take apart, encode and decode.
// Boost 1.81's Boost.URL is a compiled library that Debian ships only as headers with
// libboost1.81-dev; this is the one translation unit that builds it (boost/url/src.hpp), so
// nothing else in a binary may include that header.
#include <boost/url/src.hpp>

#include <boost/url/encode.hpp>
#include <boost/url/params_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <cctype>
#include <string>

#include "kpihub/net.hpp"

namespace kpihub::net {
namespace {

namespace urls = boost::urls;

HttpError BadUrl(const std::string& url, const std::string& reason) {
  return HttpError(FailureKind::config, "invalid URL '" + url + "': " + reason);
}

}  // namespace

Url Url::parse(const std::string& url) {
  const auto parsed_uri = urls::parse_uri(url);
  if (!parsed_uri) {
    if (url.find("://") == std::string::npos) throw BadUrl(url, "expected http:// or https://");
    throw BadUrl(url, "not a URL (RFC 3986): " + parsed_uri.error().message());
  }
  const urls::url_view& u = *parsed_uri;
  Url out;
  out.scheme = std::string(u.scheme());
  std::transform(out.scheme.begin(), out.scheme.end(), out.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (out.scheme != "http" && out.scheme != "https") {
    throw BadUrl(url, "unsupported scheme '" + out.scheme + "' (expected http or https)");
  }
  // Credentials in URLs end up in logs; they belong in the secrets store.
  if (u.has_userinfo()) throw BadUrl(url, "user information in URLs is not supported");
  out.host = u.host_address();  // an IPv6 literal without its brackets
  if (out.host.empty()) throw BadUrl(url, "missing host");
  if (!u.has_port() || u.port().empty()) {
    out.port = out.scheme == "https" ? "443" : "80";
  } else {
    const std::string port(u.port());
    if (port.size() > 5 || u.port_number() < 1 || std::stoi(port) > 65535) {
      throw BadUrl(url, "port out of range '" + port + "'");
    }
    out.port = std::to_string(u.port_number());
  }
  // The fragment is never sent to the server.
  out.target = std::string(u.encoded_target());
  // Boost.URL 1.81 reads "host:12ab/" as port 12 and a path "ab/", which RFC 3986 does not
  // allow after an authority (path-abempty starts with '/').
  if (!out.target.empty() && out.target.front() != '/' && out.target.front() != '?') {
    throw BadUrl(url, "invalid port or path after the host");
  }
  if (out.target.empty() || out.target.front() == '?') out.target.insert(0, "/");
  return out;
}

std::string url_encode(const std::string& s) {
  return urls::encode(s, urls::unreserved_chars);
}

std::string url_decode(const std::string& s) {
  // A stray '%' ("100%") is not an escape: such text is kept as it is, decoding never fails on
  // user input.
  const auto escaped = urls::make_pct_string_view(s);
  if (!escaped) return s;
  return escaped->decode();
}

std::map<std::string, std::string> parse_form(const std::string& text) {
  std::map<std::string, std::string> fields;
  urls::encoding_opts form;
  form.space_as_plus = true;
  const auto query = urls::parse_query(text);
  if (!query) return fields;  // not a query: no fields
  for (const urls::param_pct_view& p : *query) {
    if (p.key.empty() && !p.has_value) continue;
    // The first occurrence wins.
    fields.emplace(p.key.decode(form), p.has_value ? p.value.decode(form) : std::string());
  }
  return fields;
}

}  // namespace kpihub::net
