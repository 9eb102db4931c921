// Asynchronous HTTP(S) server on Boost.Beast. The io threads only move bytes;
// handlers run on a separate pool of the same size so that a handler that
// blocks never stalls other connections, and Reply::delay waits on a timer.
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kpihub/net.hpp"

namespace kpihub::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr char kServerName[] = "kpihub/0.1";
// After an error answer the server stops sending but keeps reading for a
// moment, so that the client's unread request bytes do not turn the close
// into a reset that would destroy the answer before the client reads it.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr std::size_t kMaxLingerBytes = 1024 * 1024;
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};
// Bytes asked of the socket per read: Beast's own cap on one read.
constexpr std::size_t kReadChunk = 64 * 1024;

Reply ErrorReply(int status, const std::string& code, const std::string& message) {
  Reply reply;
  reply.status = status;
  reply.body = boost::json::serialize(boost::json::object{{"error", code}, {"message", message}});
  return reply;
}

bool ContainsLineBreak(const std::string& text) {
  return text.find_first_of("\r\n") != std::string::npos;
}

std::string ToLower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string EndpointText(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

bool IsHttpCategory(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category();
}

class Session {
 public:
  virtual ~Session() = default;
  // Thread-safe: closes the connection on its own strand.
  virtual void close() = 0;
};

}  // namespace

std::optional<std::string> Request::header(const std::string& lower_name) const {
  const auto found = headers.find(lower_name);
  if (found == headers.end()) return std::nullopt;
  return found->second;
}

struct ServerState {
  ServerState(ServerOptions server_options, Handler request_handler)
      : options(std::move(server_options)),
        handler(std::move(request_handler)),
        threads(std::max<std::size_t>(options.threads, 1)),
        workers(threads),
        ioc(static_cast<int>(threads)),
        acceptor(asio::make_strand(ioc)),
        accept_retry_timer(acceptor.get_executor()) {}

  Reply invoke(const Request& request) {
    try {
      Reply reply = handler(request);
      if (reply.status < 100 || reply.status > 999) {
        return ErrorReply(500, "internal",
                          "handler returned invalid status " + std::to_string(reply.status));
      }
      for (const auto& [name, value] : reply.headers) {
        if (name.empty() || ContainsLineBreak(name) || ContainsLineBreak(value)) {
          return ErrorReply(500, "internal", "handler returned an invalid header '" + name + "'");
        }
      }
      return reply;
    } catch (const std::exception& error) {
      return ErrorReply(500, "internal", error.what());
    } catch (...) {
      return ErrorReply(500, "internal", "unknown error in the request handler");
    }
  }

  // Called for each accepted connection (one at a time, on the acceptor's strand) before it is
  // registered: closes the connection that has waited longest for a request when `client` or
  // the server is at its limit (ServerOptions::max_connections_per_client, max_connections).
  // False when there is no room (every connection of the full set is busy with a request) or
  // the server is stopping: the caller drops the new connection.
  bool make_room(const std::string& client) {
    std::vector<std::shared_ptr<Session>> evicted;
    {
      std::lock_guard lock(mutex);
      if (stopping) return false;
      const auto of_client = static_cast<std::size_t>(
          std::count_if(sessions.begin(), sessions.end(),
                        [&](const auto& entry) { return entry.second.client == client; }));
      if (of_client >= options.max_connections_per_client &&
          !evict_longest_waiting(&client, evicted)) {
        return false;
      }
      if (sessions.size() >= options.max_connections && !evict_longest_waiting(nullptr, evicted)) {
        return false;
      }
    }
    for (const auto& session : evicted) session->close();
    return true;
  }

  // False when the server is stopping: the caller drops the connection. A new connection waits
  // for its first request (or its TLS handshake) from now.
  bool register_session(std::uint64_t id, std::weak_ptr<Session> session, std::string client) {
    std::lock_guard lock(mutex);
    if (stopping) return false;
    sessions.emplace(
        id, Registered{std::move(session), std::move(client), std::chrono::steady_clock::now()});
    return true;
  }

  // A connection starts waiting for a request (true) or has its request's headers (false).
  void set_waiting(std::uint64_t id, bool waiting) {
    std::lock_guard lock(mutex);
    const auto found = sessions.find(id);
    if (found == sessions.end()) return;
    found->second.waiting_since =
        waiting ? std::optional(std::chrono::steady_clock::now()) : std::nullopt;
  }

  void unregister_session(std::uint64_t id) {
    std::lock_guard lock(mutex);
    sessions.erase(id);
  }

  ServerOptions options;
  Handler handler;
  std::size_t threads;
  std::optional<ssl::context> tls_context;
  std::atomic<std::uint64_t> next_session_id{0};
  struct Registered {
    std::weak_ptr<Session> session;
    std::string client;  // the remote address, without the port
    // Since when it has waited for a request; nullopt while it has one.
    std::optional<std::chrono::steady_clock::time_point> waiting_since;
  };
  std::mutex mutex;
  bool stopping = false;                         // guarded by mutex
  std::map<std::uint64_t, Registered> sessions;  // guarded by mutex

 private:
  // Under `mutex`: unregisters the connection (of `client`, when given) that has waited longest
  // for a request and adds it to `evicted`, to be closed once the mutex is released.
  bool evict_longest_waiting(const std::string* client,
                             std::vector<std::shared_ptr<Session>>& evicted) {
    auto longest = sessions.end();
    for (auto it = sessions.begin(); it != sessions.end(); ++it) {
      if (!it->second.waiting_since || (client && it->second.client != *client)) continue;
      if (longest == sessions.end() || *it->second.waiting_since < *longest->second.waiting_since) {
        longest = it;
      }
    }
    if (longest == sessions.end()) return false;
    if (auto session = longest->second.session.lock()) evicted.push_back(std::move(session));
    sessions.erase(longest);
    return true;
  }

 public:
  asio::thread_pool workers;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry_timer;
};

namespace {

template <class Stream>
class StreamSession : public Session, public std::enable_shared_from_this<StreamSession<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  StreamSession(ServerState& state, Stream stream, std::string remote, std::uint64_t id)
      : state_(state),
        stream_(std::move(stream)),
        remote_(std::move(remote)),
        id_(id),
        delay_timer_(stream_.get_executor()) {
    // Beast reads at most the buffer's free capacity (at least 512 bytes) per
    // call: an unreserved buffer read a 1.3 MB batch 512 bytes at a time,
    // each read a system call, a timer reset and a trip through the strand
    // (2,600 per batch; most of the receiver simulator's CPU).
    buffer_.reserve(kReadChunk);
  }

  ~StreamSession() override { state_.unregister_session(id_); }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->read_request();
      }
    });
  }

  void close() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->close_now(); });
  }

 private:
  beast::tcp_stream& socket() { return beast::get_lowest_layer(stream_); }

  void handshake() {
    socket().expires_after(state_.options.header_timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            [self = this->shared_from_this()](error_code ec) {
                              if (ec) return self->close_now();
                              self->read_request();
                            });
  }

  void read_request() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(state_.options.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(state_.options.max_body_bytes);
    // The headers must arrive within header_timeout, the body then within read_timeout: a slow
    // client is cut off.
    state_.set_waiting(id_, true);
    socket().expires_after(state_.options.header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (closed_) return;
    if (ec) return on_read(ec);
    socket().expires_after(state_.options.read_timeout);
    if (auto refused = refused_framing(parser_->get())) return answer_and_close(*refused);
    // Clients that ask before sending a large body (curl does above 1 MiB)
    // would otherwise wait a second for permission.
    const auto expect = parser_->get().find(http::field::expect);
    if (expect != parser_->get().end() && beast::iequals(expect->value(), "100-continue")) {
      auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                        parser_->get().version());
      http::async_write(stream_, *interim,
                        [self = this->shared_from_this(), interim](error_code ec, std::size_t) {
                          if (ec) return self->close_now();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  // A body length two parsers could read differently (request smuggling, RFC 9112 6.1 and
  // 6.3): Transfer-Encoding other than one "chunked" alone, or beside Content-Length. The
  // answer closes the connection, so what follows is never read as another request.
  static std::optional<Reply> refused_framing(const http::request_header<>& header) {
    const std::size_t codings = header.count(http::field::transfer_encoding);
    if (codings == 0) return std::nullopt;
    if (header.version() < 11) {
      // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
      return ErrorReply(400, "bad_request", "Transfer-Encoding is not accepted in HTTP/1.0");
    }
    std::string value(header[http::field::transfer_encoding]);
    const auto first = value.find_first_not_of(" \t");
    const auto last = value.find_last_not_of(" \t");
    const std::string coding =
        first == std::string::npos ? std::string() : value.substr(first, last - first + 1);
    if (codings > 1 || !beast::iequals(coding, "chunked")) {
      return ErrorReply(
          400, "bad_request",
          "Transfer-Encoding \"" + value + "\" is not accepted: only \"chunked\" alone, once");
    }
    if (header.count(http::field::content_length) > 0) {
      return ErrorReply(400, "bad_request",
                        "Transfer-Encoding and Content-Length together are not accepted");
    }
    return std::nullopt;
  }

  void read_body() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (closed_) return;
    if (ec == http::error::end_of_stream) return linger_and_close();
    if (ec == http::error::header_limit) {
      return answer_and_close(ErrorReply(
          431, "header_too_large",
          "request header exceeds " + std::to_string(state_.options.max_header_bytes) + " bytes"));
    }
    if (ec == http::error::body_limit) {
      return answer_and_close(ErrorReply(
          413, "body_too_large",
          "request body exceeds " + std::to_string(state_.options.max_body_bytes) + " bytes"));
    }
    if (ec == http::error::partial_message) return close_now();  // the client went away
    if (IsHttpCategory(ec)) {
      return answer_and_close(ErrorReply(400, "bad_request", "malformed request: " + ec.message()));
    }
    if (ec) return close_now();  // timeout, reset: nobody left to answer

    // The whole request is in: no longer a connection that waits for one (make_room), even
    // while its handler takes its time. A slow body could be pushed out until now.
    state_.set_waiting(id_, false);
    socket().expires_never();  // the handler may take its time
    auto message = parser_->release();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    auto request = std::make_shared<Request>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    const auto query_begin = request->target.find('?');
    request->path = url_decode(request->target.substr(0, query_begin));
    if (query_begin != std::string::npos) {
      request->query = parse_form(request->target.substr(query_begin + 1));
    }
    for (const auto& field : message) {
      const std::string name = ToLower(std::string(field.name_string()));
      auto [entry, inserted] = request->headers.emplace(name, std::string(field.value()));
      if (!inserted) entry->second += ", " + std::string(field.value());
    }
    request->body = std::move(message.body());
    request->remote = remote_;

    asio::post(state_.workers, [self = this->shared_from_this(), request] {
      Reply reply = self->state_.invoke(*request);
      asio::post(self->stream_.get_executor(),
                 [self, reply = std::move(reply)]() mutable { self->on_reply(std::move(reply)); });
    });
  }

  void on_reply(Reply reply) {
    if (closed_) return;
    if (reply.delay.count() > 0) {
      const auto delay = reply.delay;
      reply.delay = std::chrono::milliseconds{0};
      delay_timer_.expires_after(delay);
      delay_timer_.async_wait(
          [self = this->shared_from_this(), reply = std::move(reply)](error_code ec) mutable {
            if (ec || self->closed_) return;
            self->on_reply(std::move(reply));
          });
      return;
    }
    if (reply.drop_connection) return close_now();
    write_reply(reply, keep_alive_);
  }

  void answer_and_close(const Reply& reply) {
    keep_alive_ = false;
    write_reply(reply, false);
  }

  void write_reply(const Reply& reply, bool keep_alive) {
    auto response = std::make_shared<http::response<http::string_body>>();
    response->result(static_cast<unsigned>(reply.status));
    response->version(version_);
    bool has_content_type = false;
    for (const auto& [name, value] : reply.headers) {
      if (beast::iequals(name, "content-type")) has_content_type = true;
      response->insert(name, value);
    }
    if (!has_content_type) response->set(http::field::content_type, "application/json");
    response->set(http::field::server, kServerName);
    response->body() = reply.body;
    response->keep_alive(keep_alive);
    response->prepare_payload();

    // A client that does not read its answer is cut off like a slow sender.
    socket().expires_after(state_.options.read_timeout);
    http::async_write(stream_, *response,
                      [self = this->shared_from_this(), response](error_code ec, std::size_t) {
                        if (ec) return self->close_now();
                        if (response->keep_alive()) return self->read_request();
                        self->linger_and_close();
                      });
  }

  void linger_and_close() {
    if (closed_) return;
    error_code ignored;
    socket().socket().shutdown(tcp::socket::shutdown_send, ignored);
    socket().expires_after(std::min(state_.options.read_timeout, kLingerTime));
    drain();
  }

  void drain() {
    socket().async_read_some(asio::buffer(drain_buffer_),
                             [self = this->shared_from_this()](error_code ec, std::size_t bytes) {
                               self->drained_bytes_ += bytes;
                               if (ec || self->closed_ || self->drained_bytes_ > kMaxLingerBytes)
                                 return self->close_now();
                               self->drain();
                             });
  }

  void close_now() {
    if (closed_) return;
    closed_ = true;
    delay_timer_.cancel();
    socket().close();
  }

  ServerState& state_;
  Stream stream_;
  std::string remote_;
  std::uint64_t id_;
  asio::steady_timer delay_timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  bool closed_ = false;
  std::size_t drained_bytes_ = 0;
  std::array<char, 16 * 1024> drain_buffer_{};
};

using PlainSession = StreamSession<beast::tcp_stream>;
using TlsSession = StreamSession<beast::ssl_stream<beast::tcp_stream>>;

ssl::context MakeServerTlsContext(const ServerOptions& options) {
  if (!options.tls_key_file) {
    throw std::runtime_error("HTTP server: tls_cert_file is set but tls_key_file is not");
  }
  ssl::context context(ssl::context::tls_server);
  context.set_options(ssl::context::default_workarounds | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  error_code ec;
  context.use_certificate_chain_file(*options.tls_cert_file, ec);
  if (ec) {
    throw std::runtime_error("HTTP server: cannot load TLS certificate '" + *options.tls_cert_file +
                             "': " + ec.message());
  }
  context.use_private_key_file(*options.tls_key_file, ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(context.native_handle()) != 1) {
    throw std::runtime_error("HTTP server: cannot load TLS key '" + *options.tls_key_file +
                             "' (unreadable or not matching the certificate)");
  }
  if (options.client_ca_file) {
    context.load_verify_file(*options.client_ca_file, ec);
    if (ec) {
      throw std::runtime_error("HTTP server: cannot load client CA file '" +
                               *options.client_ca_file + "': " + ec.message());
    }
    // Tell clients which CA we accept, so they pick the right certificate.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file->c_str())) {
      SSL_CTX_set_client_CA_list(context.native_handle(), names);
    }
    context.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

void Accept(ServerState& state);

void OnAccept(ServerState& state, error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !state.acceptor.is_open()) return;
  if (ec) {
    // Out of descriptors or similar: back off instead of spinning.
    state.accept_retry_timer.expires_after(kAcceptRetryDelay);
    state.accept_retry_timer.async_wait([&state](error_code wait_error) {
      if (!wait_error) Accept(state);
    });
    return;
  }
  Accept(state);

  error_code endpoint_error;
  const auto remote_endpoint = socket.remote_endpoint(endpoint_error);
  if (endpoint_error) return;  // already gone
  const std::string client = remote_endpoint.address().to_string();
  if (!state.make_room(client)) {
    error_code ignored;
    socket.close(ignored);  // refused: every connection is busy with a request
    return;
  }
  socket.set_option(tcp::no_delay(true), endpoint_error);
  const std::uint64_t id = ++state.next_session_id;
  const std::string remote = EndpointText(remote_endpoint);

  std::shared_ptr<Session> session;
  auto start = [&](auto typed) {
    session = typed;
    if (state.register_session(id, typed, client)) typed->start();
  };
  if (state.tls_context) {
    start(std::make_shared<TlsSession>(
        state, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *state.tls_context), remote,
        id));
  } else {
    start(std::make_shared<PlainSession>(state, beast::tcp_stream(std::move(socket)), remote, id));
  }
}

void Accept(ServerState& state) {
  state.acceptor.async_accept(
      asio::make_strand(state.ioc),
      [&state](error_code ec, tcp::socket socket) { OnAccept(state, ec, std::move(socket)); });
}

}  // namespace

struct HttpServer::Impl {
  Impl(ServerOptions options, Handler handler)
      : state(std::make_unique<ServerState>(std::move(options), std::move(handler))) {}

  std::unique_ptr<ServerState> state;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_guard;
  std::vector<std::thread> io_threads;
  uint16_t port = 0;
  bool started = false;
  bool stopped = false;
};

HttpServer::HttpServer(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  if (impl_->started) throw std::logic_error("HttpServer::start called twice");
  ServerState& state = *impl_->state;
  const ServerOptions& options = state.options;
  const std::string where = options.address + ":" + std::to_string(options.port);
  if (!state.handler) throw std::invalid_argument("HTTP server on " + where + ": no handler");
  if (options.tls_cert_file) state.tls_context.emplace(MakeServerTlsContext(options));

  error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) {
    throw std::runtime_error("HTTP server: invalid listen address '" + options.address +
                             "' (expected an IP address): " + ec.message());
  }
  const tcp::endpoint endpoint(address, options.port);
  auto fail = [&](const std::string& step) {
    throw std::runtime_error("HTTP server: cannot listen on " + where + ": " + step + ": " +
                             ec.message());
  };
  if (state.acceptor.open(endpoint.protocol(), ec)) fail("open");
  if (state.acceptor.set_option(asio::socket_base::reuse_address(true), ec)) fail("reuse_address");
  if (state.acceptor.bind(endpoint, ec)) fail("bind");
  if (state.acceptor.listen(asio::socket_base::max_listen_connections, ec)) fail("listen");
  impl_->port = state.acceptor.local_endpoint().port();

  impl_->started = true;
  Accept(state);
  impl_->work_guard.emplace(state.ioc.get_executor());
  for (std::size_t i = 0; i < state.threads; ++i) {
    impl_->io_threads.emplace_back([&state] { state.ioc.run(); });
  }
}

uint16_t HttpServer::port() const {
  return impl_->port;
}

void HttpServer::stop() {
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  ServerState& state = *impl_->state;

  std::vector<std::shared_ptr<Session>> open_sessions;
  {
    std::lock_guard lock(state.mutex);
    state.stopping = true;
    for (const auto& [id, registered] : state.sessions) {
      if (auto session = registered.session.lock()) open_sessions.push_back(std::move(session));
    }
  }
  asio::post(state.acceptor.get_executor(), [&state] {
    error_code ignored;
    state.acceptor.close(ignored);
    state.accept_retry_timer.cancel();
  });
  for (const auto& session : open_sessions) session->close();
  open_sessions.clear();

  // Handlers already running finish (they cannot be interrupted); their
  // answers find their connections closed.
  state.workers.join();
  impl_->work_guard.reset();
  for (auto& thread : impl_->io_threads) thread.join();
  impl_->io_threads.clear();
}

}  // namespace kpihub::net
