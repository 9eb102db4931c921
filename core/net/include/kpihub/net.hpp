// HTTP(S) over real sockets: Boost.Beast + Boost.Asio + OpenSSL.
// The client backs the SDK's host HTTP service; the server backs the admin
// API, the simulators of the source systems and the provincial receiver.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpihub::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

// ------------------------------------------------------------- client -----

struct ClientOptions {
  std::optional<std::string> ca_file;           // PEM; default: system trust store
  std::optional<std::string> client_cert_file;  // PEM, for mutual TLS
  std::optional<std::string> client_key_file;
  bool verify = true;  // certificate AND host name; false only by a named setting
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  // Larger answers are refused (a config error naming the limit).
  std::size_t max_response_body_bytes = 64 * 1024 * 1024;
};

struct Response {
  int status = 0;
  Headers headers;
  std::string body;
  std::optional<std::string> header(const std::string& name) const;  // case-insensitive
};

enum class FailureKind {
  transient,  // refused, reset, timeout, DNS: retry later
  tls,        // certificate or host name refused: fix the configuration
  config      // bad URL, unreadable CA or key file
};

class HttpError : public std::runtime_error {
 public:
  HttpError(FailureKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  FailureKind kind() const { return kind_; }

 private:
  FailureKind kind_;
};

// Synchronous client; keeps one connection per scheme://host:port alive and
// reconnects when the server closed it. Not thread-safe: one per thread or
// guarded by the caller. Messages name the URL and the failing step
// ("https://127.0.0.1:8443/oauth2/token: TLS handshake: certificate verify
// failed (self-signed certificate in certificate chain)").
class HttpClient {
 public:
  explicit HttpClient(ClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `body` is sent from where it is, not copied (a sink's batch is megabytes).
  Response request(const std::string& method, const std::string& url, const Headers& headers = {},
                   std::string_view body = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------- server -----

struct Request {
  std::string method;
  std::string target;                          // path and query as sent
  std::string path;                            // target without the query, percent-decoded
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote;  // "127.0.0.1:53422"
  std::optional<std::string> header(const std::string& lower_name) const;
};

struct Reply {
  int status = 200;
  Headers headers;  // Content-Type defaults to application/json
  std::string body;
  // Fault injection for simulators: close the connection without answering,
  // or wait this long before answering.
  bool drop_connection = false;
  std::chrono::milliseconds delay{0};
};

using Handler = std::function<Reply(const Request&)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;                         // 0: any free port (see HttpServer::port)
  std::optional<std::string> tls_cert_file;  // PEM chain; HTTPS when set
  std::optional<std::string> tls_key_file;
  std::optional<std::string> client_ca_file;  // require client certificates signed by it
  std::size_t threads = 2;
  // At most this many connections in all, and from one client address. Beyond either, the
  // connection (of that address, for the second) that has waited longest for a request (not
  // all of it received yet, or idle between requests) is closed to make room; when none waits,
  // the new connection is refused. Behind a reverse proxy every connection comes from the
  // proxy's address: raise max_connections_per_client to max_connections there. So slow or idle
  // connections cannot crowd out a client that sends its request at once (a health poll).
  std::size_t max_connections = 256;
  std::size_t max_connections_per_client = 32;
  std::size_t max_body_bytes = 8 * 1024 * 1024;  // 413 beyond
  std::size_t max_header_bytes = 16 * 1024;      // 431 beyond
  // A request's headers (and a TLS handshake) must arrive within header_timeout of the
  // connection opening or of the previous answer; its body, and the client's reading of the
  // answer, within read_timeout. Slow clients are cut off.
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds read_timeout{15000};
};

// Bounded, stoppable server. The handler runs on the server's threads and
// may be called concurrently; an exception from it becomes a 500 with the
// message in a JSON body; a malformed request gets 400; the server never
// crashes on input.
class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler handler);
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void start();  // binds and listens; throws std::runtime_error naming address and port
  uint16_t port() const;
  void stop();  // stops accepting, closes connections, joins threads

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "http[s]://host[:port]/path?query".
struct Url {
  std::string scheme, host, port, target;
  static Url parse(const std::string& url);  // throws HttpError(config) on bad URLs
};

std::string url_encode(const std::string& s);
std::string url_decode(const std::string& s);

// Decodes "a=1&b=x+y" (query strings, application/x-www-form-urlencoded
// bodies): '+' is a space, names and values are percent-decoded, the first
// occurrence of a repeated name wins.
std::map<std::string, std::string> parse_form(const std::string& text);

}  // namespace kpihub::net
