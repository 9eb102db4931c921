// Synchronous HTTP(S) client on Boost.Beast. Every step runs as an
// asynchronous operation on a private io_context so that beast::tcp_stream's
// expiry gives each step a deadline; request() runs the context until the
// step completes.
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "kpihub/net.hpp"

namespace kpihub::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxResponseHeaderBytes = 64 * 1024;
constexpr char kUserAgent[] = "kpihub/0.1";
// Bytes asked of the socket per read: Beast's own cap on one read.
constexpr std::size_t kReadChunk = 64 * 1024;

void RequireReadable(const std::string& path, const std::string& what) {
  std::ifstream file(path);
  if (!file) throw HttpError(FailureKind::config, "cannot read " + what + " '" + path + "'");
}

bool IsIpLiteral(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string HostHeader(const Url& url) {
  std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  const bool default_port =
      (url.scheme == "http" && url.port == "80") || (url.scheme == "https" && url.port == "443");
  return default_port ? host : host + ":" + url.port;
}

bool ContainsLineBreak(const std::string& text) {
  return text.find_first_of("\r\n") != std::string::npos;
}

// The peer closed (or reset) the connection: on an idle kept-alive connection
// this means the server timed it out, so one fresh attempt is safe as long as
// no byte of a response arrived.
bool IsDisconnect(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

bool IsTlsError(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() && ec != ssl::error::stream_truncated;
}

std::string Millis(std::chrono::milliseconds duration) {
  return std::to_string(duration.count()) + " ms";
}

struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  bool used = false;           // has completed at least one exchange
  std::string verify_failure;  // why the certificate was refused, from the verify callback

  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void close() {
    error_code ignored;
    tcp().socket().close(ignored);
  }
};

struct ExchangeOutcome {
  error_code read_error;
  error_code write_error;
  bool write_complete = false;
  bool response_started = false;
};

}  // namespace

std::optional<std::string> Response::header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(key, name)) return value;
  }
  return std::nullopt;
}

struct HttpClient::Impl {
  explicit Impl(ClientOptions client_options)
      : options(std::move(client_options)), tls_context(ssl::context::tls_client) {
    SSL_CTX_set_min_proto_version(tls_context.native_handle(), TLS1_2_VERSION);
    error_code ec;
    if (options.ca_file) {
      RequireReadable(*options.ca_file, "CA file");
      tls_context.load_verify_file(*options.ca_file, ec);
      if (ec) {
        throw HttpError(FailureKind::config,
                        "cannot load CA file '" + *options.ca_file + "': " + ec.message());
      }
    } else {
      tls_context.set_default_verify_paths(ec);
      if (ec) {
        throw HttpError(FailureKind::config, "cannot load the system trust store: " + ec.message());
      }
    }
    if (options.client_cert_file.has_value() != options.client_key_file.has_value()) {
      throw HttpError(FailureKind::config,
                      "client_cert_file and client_key_file must be set together");
    }
    if (options.client_cert_file) {
      RequireReadable(*options.client_cert_file, "client certificate file");
      RequireReadable(*options.client_key_file, "client key file");
      tls_context.use_certificate_chain_file(*options.client_cert_file, ec);
      if (ec) {
        throw HttpError(FailureKind::config, "cannot load client certificate '" +
                                                 *options.client_cert_file + "': " + ec.message());
      }
      tls_context.use_private_key_file(*options.client_key_file, ssl::context::pem, ec);
      if (ec || SSL_CTX_check_private_key(tls_context.native_handle()) != 1) {
        throw HttpError(FailureKind::config, "cannot load client key '" + *options.client_key_file +
                                                 "' (unreadable or not matching the certificate)");
      }
    }
  }

  ~Impl() {
    for (auto& [origin, connection] : connections) connection->close();
  }

  // Runs the operations started by the caller to completion; each of them
  // carries its own deadline.
  void run_pending() {
    ioc.restart();
    ioc.run();
  }

  tcp::resolver::results_type resolve(const Url& target, const std::string& url) {
    struct ResolveState {
      bool done = false;
      error_code error;
      tcp::resolver::results_type results;
    };
    // Shared with the handler: a resolver that outlives its deadline completes later.
    auto state = std::make_shared<ResolveState>();
    auto resolver = std::make_shared<tcp::resolver>(ioc);
    resolver->async_resolve(target.host, target.port,
                            [state, resolver](error_code ec, tcp::resolver::results_type results) {
                              state->done = true;
                              state->error = ec;
                              state->results = std::move(results);
                            });
    ioc.restart();
    ioc.run_for(options.connect_timeout);
    if (!state->done) {
      resolver->cancel();
      throw HttpError(FailureKind::transient, url + ": resolving host '" + target.host +
                                                  "' timed out after " +
                                                  Millis(options.connect_timeout));
    }
    if (state->error) {
      throw HttpError(FailureKind::transient, url + ": cannot resolve host '" + target.host +
                                                  "': " + state->error.message());
    }
    return state->results;
  }

  std::unique_ptr<Connection> connect(const Url& target, const std::string& url) {
    const auto endpoints = resolve(target, url);
    auto connection = std::make_unique<Connection>();
    if (target.scheme == "https") {
      connection->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, tls_context);
    } else {
      connection->plain = std::make_unique<beast::tcp_stream>(ioc);
    }

    error_code ec;
    connection->tcp().expires_after(options.connect_timeout);
    connection->tcp().async_connect(
        endpoints, [&ec](error_code result, const tcp::endpoint&) { ec = result; });
    run_pending();
    if (ec) {
      const std::string where = target.host + ":" + target.port;
      if (ec == beast::error::timeout) {
        throw HttpError(FailureKind::transient, url + ": connecting to " + where +
                                                    " timed out after " +
                                                    Millis(options.connect_timeout));
      }
      throw HttpError(FailureKind::transient,
                      url + ": cannot connect to " + where + ": " + ec.message());
    }
    connection->tcp().socket().set_option(tcp::no_delay(true), ec);

    if (connection->tls) handshake(*connection, target, url);
    return connection;
  }

  void handshake(Connection& connection, const Url& target, const std::string& url) {
    auto& stream = *connection.tls;
    // SNI is for names only (RFC 6066 forbids IP literals).
    if (!IsIpLiteral(target.host) &&
        SSL_set_tlsext_host_name(stream.native_handle(), target.host.c_str()) != 1) {
      throw HttpError(FailureKind::config,
                      url + ": cannot set TLS server name '" + target.host + "'");
    }
    if (options.verify) {
      stream.set_verify_mode(ssl::verify_peer);
      const std::string hint =
          options.ca_file ? " (check ca_file)" : " (check the system trust store or set ca_file)";
      // host_name_verification checks DNS names and, for IP literals, IP SANs.
      stream.set_verify_callback([&connection, hint, host = target.host,
                                  check_host = ssl::host_name_verification(target.host)](
                                     bool preverified, ssl::verify_context& context) {
        X509_STORE_CTX* store = context.native_handle();
        if (!preverified) {
          if (connection.verify_failure.empty()) {
            connection.verify_failure =
                std::string("certificate verify failed: ") +
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)) + hint;
          }
          return false;
        }
        if (check_host(preverified, context)) return true;
        X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
        if (connection.verify_failure.empty()) {
          connection.verify_failure =
              "certificate is not valid for host '" + host + "' (check the URL's host name)";
        }
        return false;
      });
    } else {
      stream.set_verify_mode(ssl::verify_none);
    }

    error_code ec;
    connection.tcp().expires_after(options.connect_timeout);
    stream.async_handshake(ssl::stream_base::client, [&ec](error_code result) { ec = result; });
    run_pending();
    connection.tcp().expires_never();
    if (!ec) return;
    if (!connection.verify_failure.empty()) {
      throw HttpError(FailureKind::tls,
                      url + ": TLS handshake failed: " + connection.verify_failure);
    }
    if (ec == beast::error::timeout) {
      throw HttpError(FailureKind::transient,
                      url + ": TLS handshake timed out after " + Millis(options.connect_timeout));
    }
    throw HttpError(IsTlsError(ec) ? FailureKind::tls : FailureKind::transient,
                    url + ": TLS handshake failed: " + ec.message());
  }

  template <class Stream>
  ExchangeOutcome exchange(Stream& stream, beast::flat_buffer& buffer,
                           const http::request<http::span_body<const char>>& request,
                           http::response_parser<http::string_body>& parser) {
    auto& socket = beast::get_lowest_layer(stream);
    // Beast reads at most the buffer's free capacity (at least 512 bytes) per
    // call: unreserved, a page of 1,000 records came 512 bytes a read, each a
    // system call and a timer reset.
    buffer.reserve(kReadChunk);
    // One deadline for the whole exchange: sending the request and reading the answer.
    socket.expires_after(options.request_timeout);
    ExchangeOutcome outcome;
    bool write_done = false;
    // Reading while writing lets an early answer (413 for a body the server
    // will not read) arrive instead of a write that blocks until the deadline.
    http::async_write(stream, request, [&](error_code ec, std::size_t) {
      write_done = true;
      outcome.write_error = ec;
    });
    http::async_read(stream, buffer, parser, [&](error_code ec, std::size_t) {
      outcome.read_error = ec;
      if (!write_done) socket.cancel();
    });
    run_pending();
    socket.expires_never();
    outcome.write_complete = write_done && !outcome.write_error;
    outcome.response_started = parser.got_some();
    return outcome;
  }

  [[noreturn]] void throw_exchange_error(const ExchangeOutcome& outcome, const std::string& url) {
    const error_code& ec = outcome.read_error;
    if (ec == beast::error::timeout) {
      throw HttpError(FailureKind::transient, url +
                                                  ": no complete response within request_timeout " +
                                                  Millis(options.request_timeout) + " (timeout)");
    }
    if (ec == http::error::body_limit) {
      throw HttpError(FailureKind::config, url + ": response body exceeds the limit of " +
                                               std::to_string(options.max_response_body_bytes) +
                                               " bytes (max_response_body_bytes)");
    }
    if (ec == http::error::header_limit) {
      throw HttpError(FailureKind::transient, url + ": response header exceeds the limit of " +
                                                  std::to_string(kMaxResponseHeaderBytes) +
                                                  " bytes");
    }
    if (IsTlsError(ec)) {
      throw HttpError(FailureKind::tls, url + ": TLS failure during the exchange: " + ec.message() +
                                            " (does the server require a client certificate?)");
    }
    if (IsDisconnect(ec) && !outcome.response_started) {
      throw HttpError(
          FailureKind::transient,
          url + ": connection closed by the server before any response (" + ec.message() + ")");
    }
    if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
      throw HttpError(FailureKind::transient, url + ": malformed response: " + ec.message());
    }
    const error_code& cause =
        ec == asio::error::operation_aborted && outcome.write_error ? outcome.write_error : ec;
    throw HttpError(FailureKind::transient,
                    url + ": reading the response failed: " + cause.message());
  }

  Response perform(const std::string& method, const std::string& url, const Headers& headers,
                   std::string_view body) {
    const Url target = Url::parse(url);
    if (method.empty() || ContainsLineBreak(method) || method.find(' ') != std::string::npos) {
      throw HttpError(FailureKind::config, url + ": invalid method '" + method + "'");
    }
    http::request<http::span_body<const char>> request;
    request.method_string(method);
    request.target(target.target);
    request.version(11);
    request.set(http::field::host, HostHeader(target));
    request.set(http::field::user_agent, kUserAgent);
    for (const auto& [name, value] : headers) {
      if (name.empty() || ContainsLineBreak(name) || ContainsLineBreak(value)) {
        throw HttpError(FailureKind::config, url + ": invalid header '" + name + "'");
      }
      if (beast::iequals(name, "host") || beast::iequals(name, "user-agent")) {
        request.set(name, value);
      } else {
        request.insert(name, value);
      }
    }
    request.body() = {body.data(), body.size()};
    request.keep_alive(true);
    request.prepare_payload();

    const std::string origin = target.scheme + "://" + HostHeader(target);
    for (int attempt = 0;; ++attempt) {
      auto found = connections.find(origin);
      if (found == connections.end()) {
        found = connections.emplace(origin, connect(target, url)).first;
      }
      Connection& connection = *found->second;
      const bool reused = connection.used;

      http::response_parser<http::string_body> parser;
      parser.body_limit(options.max_response_body_bytes);
      parser.header_limit(kMaxResponseHeaderBytes);
      if (beast::iequals(method, "HEAD")) parser.skip(true);
      const ExchangeOutcome outcome =
          connection.tls ? exchange(*connection.tls, connection.buffer, request, parser)
                         : exchange(*connection.plain, connection.buffer, request, parser);

      if (!outcome.read_error) {
        auto message = parser.release();
        Response response;
        response.status = static_cast<int>(message.result_int());
        for (const auto& field : message) {
          response.headers.emplace_back(std::string(field.name_string()),
                                        std::string(field.value()));
        }
        response.body = std::move(message.body());
        if (message.keep_alive() && outcome.write_complete) {
          connection.used = true;
        } else {
          connection.close();
          connections.erase(found);
        }
        return response;
      }

      connection.close();
      connections.erase(found);
      const bool stale_connection =
          reused && !outcome.response_started &&
          (IsDisconnect(outcome.read_error) || IsDisconnect(outcome.write_error));
      if (stale_connection && attempt == 0) continue;
      throw_exchange_error(outcome, url);
    }
  }

  ClientOptions options;
  asio::io_context ioc;
  ssl::context tls_context;
  // One kept-alive connection per scheme://host:port.
  std::map<std::string, std::unique_ptr<Connection>> connections;
};

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpClient::~HttpClient() = default;

Response HttpClient::request(const std::string& method, const std::string& url,
                             const Headers& headers, std::string_view body) {
  return impl_->perform(method, url, headers, body);
}

}  // namespace kpihub::net
