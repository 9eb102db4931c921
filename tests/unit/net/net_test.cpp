#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kpihub/net.hpp"

namespace kpihub::net {
namespace {

using namespace std::chrono_literals;

std::string Fixture(const std::string& name) {
  return std::string(KPIHUB_FIXTURES_DIR) + "/tls/" + name;
}

ServerOptions TlsServerOptions(const std::string& cert_name) {
  ServerOptions options;
  options.tls_cert_file = Fixture(cert_name + ".pem");
  options.tls_key_file = Fixture(cert_name + ".key");
  return options;
}

ClientOptions ClientTrusting(const std::string& ca_name) {
  ClientOptions options;
  options.ca_file = Fixture(ca_name + ".pem");
  options.connect_timeout = 2s;
  options.request_timeout = 5s;
  return options;
}

Reply Text(std::string body, int status = 200) {
  Reply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

// Runs a request expected to fail and returns the error.
HttpError RequestError(HttpClient& client, const std::string& url,
                       const std::string& method = "GET", const std::string& body = {}) {
  try {
    const Response response = client.request(method, url, {}, body);
    ADD_FAILURE() << "expected an HttpError from " << url << ", got status " << response.status;
  } catch (const HttpError& error) {
    return error;
  }
  return HttpError(FailureKind::config, "no error");
}

std::string BaseUrl(const HttpServer& server, const std::string& scheme = "http",
                    const std::string& host = "127.0.0.1") {
  return scheme + "://" + host + ":" + std::to_string(server.port());
}

// A raw TCP peer for sending bytes no well-behaved client would send.
class RawPeer {
 public:
  // `from`: the local address to connect from (any 127.x.y.z is this machine), so that a test
  // can be several clients.
  explicit RawPeer(uint16_t port, const std::string& from = "") : socket_(ioc_) {
    if (!from.empty()) {
      socket_.open(boost::asio::ip::tcp::v4());
      socket_.bind({boost::asio::ip::make_address(from), 0});
    }
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    // A server bug must fail the test, not hang it.
    timeval timeout{5, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  void send(const std::string& bytes) { boost::asio::write(socket_, boost::asio::buffer(bytes)); }
  // The next header block (up to and including the blank line).
  std::string read_header_block() {
    boost::system::error_code ec;
    const std::size_t length =
        boost::asio::read_until(socket_, boost::asio::dynamic_buffer(pending_), "\r\n\r\n", ec);
    std::string block = pending_.substr(0, length);
    pending_.erase(0, length);
    return block;
  }
  // Everything the server sends until it closes the connection.
  std::string read_until_closed() {
    std::string received = std::move(pending_);
    boost::system::error_code ec;
    boost::asio::read(socket_, boost::asio::dynamic_buffer(received), ec);
    return received;
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  std::string pending_;
};

// ------------------------------------------------------------------ URLs --

TEST(UrlTest, SplitsSchemeHostPortAndTarget) {
  const Url plain = Url::parse("http://example.org/api/v1/staff?page_size=500");
  EXPECT_EQ(plain.scheme, "http");
  EXPECT_EQ(plain.host, "example.org");
  EXPECT_EQ(plain.port, "80");
  EXPECT_EQ(plain.target, "/api/v1/staff?page_size=500");

  const Url secure = Url::parse("HTTPS://127.0.0.1:8443");
  EXPECT_EQ(secure.scheme, "https");
  EXPECT_EQ(secure.port, "8443");
  EXPECT_EQ(secure.target, "/");

  EXPECT_EQ(Url::parse("https://lgsp.khanhhoa.gov.vn?x=1#frag").target, "/?x=1");
  EXPECT_EQ(Url::parse("https://lgsp.khanhhoa.gov.vn").port, "443");

  const Url v6 = Url::parse("http://[::1]:9000/x");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, "9000");
  EXPECT_EQ(v6.target, "/x");
}

TEST(UrlTest, RejectsBadUrlsAsConfigurationErrors) {
  for (const std::string bad :
       {"ftp://host/", "example.org/x", "http://", "http://host:0/", "http://host:70000/",
        "http://host:12ab/", "http://user:secret@host/", "http://[::1/", "http://::1/",
        "http://host/a path"}) {
    try {
      Url::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const HttpError& error) {
      EXPECT_EQ(error.kind(), FailureKind::config) << bad;
      EXPECT_NE(std::string(error.what()).find(bad), std::string::npos) << error.what();
    }
  }
}

TEST(UrlTest, EncodesAllButUnreservedAndDecodesBack) {
  EXPECT_EQ(url_encode("2025-04-01T00:00:00+07:00"), "2025-04-01T00%3A00%3A00%2B07%3A00");
  EXPECT_EQ(url_encode("a b/~_.-"), "a%20b%2F~_.-");
  const std::string vietnamese = "Trần Văn Bình & co";
  EXPECT_EQ(url_decode(url_encode(vietnamese)), vietnamese);
  EXPECT_EQ(url_decode("100%"), "100%");  // stray percent kept, never throws
  EXPECT_EQ(url_decode("a+b"), "a+b");    // '+' is only a space in forms

  const auto form = parse_form("grant_type=client_credentials&client_id=hub+1&x=%2B7&flag");
  EXPECT_EQ(form.at("grant_type"), "client_credentials");
  EXPECT_EQ(form.at("client_id"), "hub 1");
  EXPECT_EQ(form.at("x"), "+7");
  EXPECT_EQ(form.at("flag"), "");
}

// ------------------------------------------------------------ plain HTTP --

TEST(HttpTest, GetAndPostRoundTrip) {
  std::mutex mutex;
  std::vector<Request> seen;
  HttpServer server({}, [&](const Request& request) {
    std::lock_guard lock(mutex);
    seen.push_back(request);
    Reply reply = Text(request.method == "POST" ? "{\"echo\":" + request.body + "}" : "{}",
                       request.method == "POST" ? 201 : 200);
    reply.headers.emplace_back("X-Path", request.path);
    return reply;
  });
  server.start();
  ASSERT_NE(server.port(), 0);
  HttpClient client({});

  const Response got = client.request(
      "GET",
      BaseUrl(server) +
          "/api/v1/work%20diary?updated_since=2025-04-01T00%3A00%3A00%2B07%3A00&page_size=500",
      {{"Authorization", "Bearer abc"}});
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "{}");
  EXPECT_EQ(got.header("x-path"), "/api/v1/work diary");
  EXPECT_EQ(got.header("CONTENT-TYPE"), "application/json");
  EXPECT_FALSE(got.header("x-missing").has_value());

  const Response posted = client.request("POST", BaseUrl(server) + "/api/v1/kpi/records:batch",
                                         {{"Content-Type", "application/json"}}, "[1,2]");
  EXPECT_EQ(posted.status, 201);
  EXPECT_EQ(posted.body, "{\"echo\":[1,2]}");

  std::lock_guard lock(mutex);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].path, "/api/v1/work diary");
  EXPECT_EQ(seen[0].query.at("updated_since"), "2025-04-01T00:00:00+07:00");
  EXPECT_EQ(seen[0].query.at("page_size"), "500");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer abc");
  EXPECT_EQ(seen[0].header("user-agent"), "kpihub/0.1");
  EXPECT_EQ(seen[0].header("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen[0].remote.rfind("127.0.0.1:", 0), 0u) << seen[0].remote;
  EXPECT_EQ(seen[1].method, "POST");
  EXPECT_EQ(seen[1].body, "[1,2]");
  EXPECT_EQ(seen[1].header("content-length"), "5");
}

TEST(HttpTest, KeepAliveReusesOneConnectionPerOrigin) {
  std::mutex mutex;
  std::set<std::string> remotes;
  HttpServer server({}, [&](const Request& request) {
    std::lock_guard lock(mutex);
    remotes.insert(request.remote);
    return Text("{}");
  });
  server.start();
  HttpClient client({});
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(client.request("GET", BaseUrl(server) + "/ping").status, 200);
  }
  // "localhost" is another origin, hence another connection.
  EXPECT_EQ(client.request("GET", BaseUrl(server, "http", "localhost") + "/ping").status, 200);
  std::lock_guard lock(mutex);
  EXPECT_EQ(remotes.size(), 2u);
}

TEST(HttpTest, ReconnectsOnceWhenTheServerClosedAnIdleConnection) {
  std::atomic<int> calls{0};
  auto handler = [&](const Request&) {
    ++calls;
    return Text("{}");
  };
  auto first = std::make_unique<HttpServer>(ServerOptions{}, handler);
  first->start();
  const uint16_t port = first->port();
  HttpClient client({});
  EXPECT_EQ(client.request("GET", "http://127.0.0.1:" + std::to_string(port) + "/").status, 200);

  first.reset();  // closes the client's idle kept-alive connection
  ServerOptions same_port;
  same_port.port = port;
  HttpServer second(same_port, handler);
  second.start();
  EXPECT_EQ(client.request("GET", "http://127.0.0.1:" + std::to_string(port) + "/").status, 200);
  EXPECT_EQ(calls.load(), 2);
}

TEST(HttpTest, AnswersExpect100ContinueBeforeTheBody) {
  HttpServer server({}, [](const Request& request) { return Text(request.body); });
  server.start();
  RawPeer peer(server.port());
  peer.send(
      "POST /api/v1/kpi/records:batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
      "Expect: 100-continue\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(peer.read_header_block(), "HTTP/1.1 100 Continue\r\n\r\n");
  peer.send("[1,2]");
  const std::string answer = peer.read_until_closed();
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 5), "[1,2]") << answer;
}

TEST(HttpTest, HandlerExceptionBecomes500WithJsonMessage) {
  HttpServer server(
      {}, [](const Request&) -> Reply { throw std::runtime_error("catalog \"B.03\" missing"); });
  server.start();
  HttpClient client({});
  const Response response = client.request("GET", BaseUrl(server) + "/");
  EXPECT_EQ(response.status, 500);
  EXPECT_EQ(response.body, R"({"error":"internal","message":"catalog \"B.03\" missing"})");
  // The connection stays usable.
  EXPECT_EQ(client.request("GET", BaseUrl(server) + "/").status, 500);
}

TEST(HttpTest, ReplyHeadersAndContentTypeArePassedThrough) {
  HttpServer server({}, [](const Request&) {
    Reply reply = Text("a,b\n1,2\n");
    reply.headers = {{"Content-Type", "text/csv"}, {"Retry-After", "3"}};
    return reply;
  });
  server.start();
  HttpClient client({});
  const Response response = client.request("GET", BaseUrl(server) + "/export");
  EXPECT_EQ(response.header("content-type"), "text/csv");
  EXPECT_EQ(response.header("retry-after"), "3");
  EXPECT_EQ(response.body, "a,b\n1,2\n");
}

// --------------------------------------------------------------- failures --

TEST(HttpFailureTest, ConnectionRefusedIsTransient) {
  uint16_t port = 0;
  {
    HttpServer server({}, [](const Request&) { return Text("{}"); });
    server.start();
    port = server.port();
  }
  HttpClient client({});
  const HttpError error = RequestError(client, "http://127.0.0.1:" + std::to_string(port) + "/x");
  EXPECT_EQ(error.kind(), FailureKind::transient);
  EXPECT_NE(std::string(error.what()).find("/x: cannot connect"), std::string::npos)
      << error.what();
}

TEST(HttpFailureTest, UnresolvableHostIsTransient) {
  HttpClient client({});
  const HttpError error = RequestError(client, "http://no-such-host.invalid/x");
  EXPECT_EQ(error.kind(), FailureKind::transient);
  EXPECT_NE(std::string(error.what()).find("no-such-host.invalid"), std::string::npos);
}

TEST(HttpFailureTest, DroppedConnectionIsTransient) {
  std::atomic<int> calls{0};
  HttpServer server({}, [&](const Request&) {
    ++calls;
    Reply reply;
    reply.drop_connection = true;
    return reply;
  });
  server.start();
  HttpClient client({});
  const HttpError error = RequestError(client, BaseUrl(server) + "/drop", "POST", "{}");
  EXPECT_EQ(error.kind(), FailureKind::transient);
  EXPECT_NE(std::string(error.what()).find("closed by the server"), std::string::npos)
      << error.what();
  EXPECT_EQ(calls.load(), 1);  // a fresh connection is never retried
}

TEST(HttpFailureTest, DropOnAReusedConnectionIsRetriedOnceOnly) {
  std::atomic<int> calls{0};
  HttpServer server({}, [&](const Request&) {
    Reply reply = Text("{}");
    reply.drop_connection = ++calls > 1;
    return reply;
  });
  server.start();
  HttpClient client({});
  EXPECT_EQ(client.request("GET", BaseUrl(server) + "/").status, 200);
  // The reused connection closes before any answer: one fresh attempt, which
  // fails too. (So a dropping server may see a request twice.)
  const HttpError error = RequestError(client, BaseUrl(server) + "/");
  EXPECT_EQ(error.kind(), FailureKind::transient);
  EXPECT_EQ(calls.load(), 3);
}

TEST(HttpFailureTest, NeverRetriesOnceAnAnswerHasStarted) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t port = acceptor.local_endpoint().port();
  // A server that answers once, then starts a second answer and hangs up.
  std::thread server([&] {
    asio::ip::tcp::socket socket(ioc);
    acceptor.accept(socket);
    std::string buffer;
    boost::system::error_code ec;
    asio::read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n", ec);
    buffer.erase(0, buffer.find("\r\n\r\n") + 4);
    asio::write(socket, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")),
                ec);
    asio::read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n", ec);
    asio::write(socket, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")),
                ec);
    socket.close();
  });
  ClientOptions options;
  options.request_timeout = 5s;
  HttpClient client(options);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  EXPECT_EQ(client.request("GET", url).body, "{}");
  const HttpError error = RequestError(client, url, "POST", "{\"batch\":1}");
  server.join();
  EXPECT_EQ(error.kind(), FailureKind::transient);
  EXPECT_EQ(std::string(error.what()).find("timeout"), std::string::npos) << error.what();
  // No second connection was attempted.
  acceptor.non_blocking(true);
  asio::ip::tcp::socket retry(ioc);
  boost::system::error_code accept_error;
  acceptor.accept(retry, accept_error);
  EXPECT_EQ(accept_error, asio::error::would_block);
}

TEST(HttpFailureTest, SlowAnswerHitsRequestTimeout) {
  HttpServer server({}, [](const Request&) {
    Reply reply = Text("{}");
    reply.delay = 30s;
    return reply;
  });
  server.start();
  ClientOptions options;
  options.request_timeout = 200ms;
  HttpClient client(options);
  const HttpError error = RequestError(client, BaseUrl(server) + "/slow");
  EXPECT_EQ(error.kind(), FailureKind::transient);
  EXPECT_NE(std::string(error.what()).find("timeout"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("/slow"), std::string::npos) << error.what();
}

TEST(HttpFailureTest, OversizeBodyGets413AndServerKeepsServing) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  HttpServer server(options, [](const Request& request) { return Text(request.body); });
  server.start();
  HttpClient client({});
  const Response too_big =
      client.request("POST", BaseUrl(server) + "/", {}, std::string(64 * 1024, 'x'));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_NE(too_big.body.find("body_too_large"), std::string::npos);
  EXPECT_EQ(client.request("POST", BaseUrl(server) + "/", {}, "small").body, "small");
}

TEST(HttpFailureTest, OversizeHeaderGets431) {
  ServerOptions options;
  options.max_header_bytes = 1024;
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();
  HttpClient client({});
  const Response response =
      client.request("GET", BaseUrl(server) + "/", {{"X-Big", std::string(4096, 'a')}});
  EXPECT_EQ(response.status, 431);
}

TEST(HttpFailureTest, MalformedRequestGets400AndServerKeepsServing) {
  HttpServer server({}, [](const Request&) { return Text("{}"); });
  server.start();
  RawPeer peer(server.port());
  peer.send("THIS IS NOT HTTP\r\n\r\n");
  const std::string answer = peer.read_until_closed();
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("bad_request"), std::string::npos) << answer;

  HttpClient client({});
  EXPECT_EQ(client.request("GET", BaseUrl(server) + "/").status, 200);
}

TEST(HttpFailureTest, SlowClientDoesNotBlockOthers) {
  ServerOptions options;
  options.threads = 1;
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();
  RawPeer slow(server.port());
  slow.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ");  // and nothing more
  HttpClient client({});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client.request("GET", BaseUrl(server) + "/").status, 200);
}

TEST(HttpFailureTest, SlowBodyIsCutOffAfterReadTimeout) {
  ServerOptions options;
  options.read_timeout = 100ms;
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();
  RawPeer slow(server.port());
  slow.send("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n12");
  // The server closes without an answer; a hang here (5 s receive timeout) would fail.
  EXPECT_EQ(slow.read_until_closed(), "");
}

TEST(HttpFailureTest, BlockingHandlerDoesNotStallOtherConnections) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> entered;
  ServerOptions options;
  options.threads = 2;
  HttpServer server(options, [&](const Request& request) {
    if (request.path == "/block") {
      entered.set_value();
      released.wait();
    }
    return Text("{}");
  });
  server.start();
  auto blocked = std::async(std::launch::async, [&] {
    HttpClient client({});
    return client.request("GET", BaseUrl(server) + "/block").status;
  });
  entered.get_future().wait();
  HttpClient client({});
  EXPECT_EQ(client.request("GET", BaseUrl(server) + "/other").status, 200);
  release.set_value();
  EXPECT_EQ(blocked.get(), 200);
}

TEST(HttpFailureTest, ConnectionsBeyondTheLimitAreRefusedWhenEveryOneIsBusy) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> entered;
  ServerOptions options;
  options.max_connections = 1;
  HttpServer server(options, [&](const Request& request) {
    if (request.path == "/block") {
      entered.set_value();
      released.wait();
    }
    return Text("{}");
  });
  server.start();
  auto busy = std::async(std::launch::async, [&] {
    HttpClient client({});
    return client.request("GET", BaseUrl(server) + "/block").status;
  });
  entered.get_future().wait();
  HttpClient refused({});
  const HttpError error = RequestError(refused, BaseUrl(server) + "/");
  EXPECT_EQ(error.kind(), FailureKind::transient) << error.what();
  release.set_value();
  EXPECT_EQ(busy.get(), 200);
}

// Issue 19 section 3: 64 connections sending their headers a byte at a time, reopened when
// cut, made the admin API's /healthz fail on every poll (all of max_connections held). A
// connection that has waited longest for a request makes room for a new one; the attacker's
// connections go, the poller's get through.
TEST(HttpFailureTest, SlowHeaderConnectionsReopenedWhenCutDoNotCrowdOutOthers) {
  ServerOptions options;
  options.max_connections = 8;
  options.header_timeout = 2s;
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();
  std::atomic<bool> attacking{true};
  std::atomic<int> opened{0};
  std::vector<std::thread> attackers;
  for (int a = 0; a < 4; ++a) {
    attackers.emplace_back([&, a] {
      std::vector<std::unique_ptr<RawPeer>> held;
      const std::string from = "127.0.0." + std::to_string(10 + a);
      while (attacking) {
        try {
          held.push_back(std::make_unique<RawPeer>(server.port(), from));
          held.back()->send("G");
          ++opened;
          if (held.size() > 16) held.erase(held.begin());
        } catch (const std::exception&) {
        }
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  while (opened < 64) std::this_thread::sleep_for(5ms);
  int answered = 0;
  for (int poll = 0; poll < 20; ++poll) {
    HttpClient client({});
    try {
      if (client.request("GET", BaseUrl(server) + "/healthz").status == 200) ++answered;
    } catch (const HttpError& error) {
      ADD_FAILURE() << "poll " << poll << ": " << error.what();
    }
    std::this_thread::sleep_for(20ms);
  }
  attacking = false;
  for (auto& t : attackers) t.join();
  EXPECT_EQ(answered, 20);
}

// One client address holds at most max_connections_per_client connections: its oldest one
// waiting for a request is closed when it opens one more; other clients are untouched.
TEST(HttpFailureTest, OneClientAddressHoldsAtMostItsShareOfConnections) {
  ServerOptions options;
  options.max_connections = 64;
  options.max_connections_per_client = 4;
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();
  RawPeer other(server.port(), "127.0.0.3");
  other.send("GET / HTTP/1.1\r\nHost: x\r\n");  // headers not finished
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (int i = 0; i < 5; ++i) {
    peers.push_back(std::make_unique<RawPeer>(server.port(), "127.0.0.2"));
    peers.back()->send("GET / HTTP/1.1\r\n");
    std::this_thread::sleep_for(20ms);  // so that "oldest" is well defined
  }
  // The first is closed without an answer (a hang would fail on the 5 s receive timeout).
  EXPECT_EQ(peers.front()->read_until_closed(), "");
  // The other four and the other client are still served.
  for (std::size_t i = 1; i < peers.size(); ++i) {
    peers[i]->send("Host: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(peers[i]->read_until_closed().rfind("HTTP/1.1 200", 0), 0u) << i;
  }
  other.send("Connection: close\r\n\r\n");
  EXPECT_EQ(other.read_until_closed().rfind("HTTP/1.1 200", 0), 0u);
}

TEST(HttpFailureTest, HeadersMustArriveWithinTheHeaderTimeout) {
  ServerOptions options;
  options.header_timeout = 200ms;
  options.read_timeout = 30s;
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();
  RawPeer slow(server.port());
  const auto started = std::chrono::steady_clock::now();
  slow.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  EXPECT_EQ(slow.read_until_closed(), "");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

// Issue 19 section 3, request smuggling: a request whose body length two parsers could read
// differently is refused with 400 and its connection closed, so what follows it is never
// taken as a second request.
TEST(HttpFailureTest, AmbiguousOrUnsupportedFramingIsRefusedAndNothingAfterItIsAnswered) {
  std::mutex mutex;
  std::vector<std::string> seen;
  HttpServer server({}, [&](const Request& request) {
    std::lock_guard lock(mutex);
    seen.push_back(request.path);
    return Text("{}");
  });
  server.start();
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string framing : {"Transfer-Encoding: chunked, identity\r\nContent-Length: 0\r\n",
                                    "Transfer-Encoding: identity\r\nContent-Length: 0\r\n",
                                    "Transfer-Encoding: xchunked\r\nContent-Length: 0\r\n",
                                    "Transfer-Encoding: gzip, chunked\r\n",
                                    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                    "Transfer-Encoding: chunked, chunked\r\n"}) {
    RawPeer peer(server.port());
    peer.send("POST /first HTTP/1.1\r\nHost: x\r\n" + framing + "\r\n0\r\n\r\n" + smuggled);
    const std::string answer = peer.read_until_closed();
    EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << framing << answer;
    // It says which header is wrong.
    EXPECT_TRUE(answer.find("Transfer-Encoding") != std::string::npos ||
                answer.find("Content-Length") != std::string::npos)
        << framing << answer;
    EXPECT_EQ(answer.find("HTTP/1.1", 1), std::string::npos) << "a second answer: " << answer;
  }
  // HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1).
  RawPeer old(server.port());
  old.send(
      "POST /first HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
      smuggled);
  const std::string answer = old.read_until_closed();
  EXPECT_EQ(answer.find(" 400 "), 8u) << answer;
  EXPECT_NE(answer.find("HTTP/1.0"), std::string::npos) << answer;
  std::lock_guard lock(mutex);
  EXPECT_TRUE(seen.empty()) << seen.front();
}

// A connection whose body has not all arrived still waits for its request: it makes room for
// one that sends at once (review: slow bodies held their slots for read_timeout).
TEST(HttpFailureTest, ASlowBodyMakesRoomForARequestSentAtOnce) {
  ServerOptions options;
  options.max_connections = 2;
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();
  RawPeer slow1(server.port());
  RawPeer slow2(server.port());
  slow1.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
  slow2.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
  std::this_thread::sleep_for(50ms);
  HttpClient client({});
  EXPECT_EQ(client.request("GET", BaseUrl(server) + "/healthz").status, 200);
}

TEST(HttpTest, ChunkedRequestBodiesAreRead) {
  std::string body;
  HttpServer server({}, [&](const Request& request) {
    body = request.body;
    return Text("{}");
  });
  server.start();
  RawPeer peer(server.port());
  peer.send(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(peer.read_until_closed().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(body, "hello");
}

TEST(HttpFailureTest, StopWithRequestsInFlightReturnsPromptly) {
  std::atomic<int> entered{0};
  auto server = std::make_unique<HttpServer>(ServerOptions{}, [&](const Request&) {
    ++entered;
    Reply reply = Text("{}");
    reply.delay = 60s;
    return reply;
  });
  server->start();
  const std::string url = BaseUrl(*server) + "/slow";
  std::vector<std::future<FailureKind>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::async(std::launch::async, [url] {
      HttpClient client({});
      return RequestError(client, url).kind();
    }));
  }
  while (entered.load() < 3) std::this_thread::sleep_for(1ms);

  const auto before = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);  // far below the 60 s delay
  for (auto& client : clients) EXPECT_EQ(client.get(), FailureKind::transient);
  server->stop();  // idempotent
}

TEST(HttpFailureTest, StartFailsNamingTheBusyPort) {
  HttpServer first({}, [](const Request&) { return Text("{}"); });
  first.start();
  ServerOptions same_port;
  same_port.port = first.port();
  HttpServer second(same_port, [](const Request&) { return Text("{}"); });
  try {
    second.start();
    FAIL() << "second server bound a busy port";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << error.what();
  }
}

TEST(HttpFailureTest, UnreadableCaFileIsAConfigErrorNamingTheFile) {
  ClientOptions options;
  options.ca_file = "/nonexistent/ca.pem";
  try {
    HttpClient client(options);
    FAIL() << "accepted a missing CA file";
  } catch (const HttpError& error) {
    EXPECT_EQ(error.kind(), FailureKind::config);
    EXPECT_NE(std::string(error.what()).find("/nonexistent/ca.pem"), std::string::npos);
  }
}

// ------------------------------------------------------------------- TLS --

TEST(HttpsTest, TestCaIsTrustedForIpAndHostName) {
  HttpServer server(TlsServerOptions("server"), [](const Request&) { return Text("{\"ok\":1}"); });
  server.start();
  HttpClient client(ClientTrusting("ca"));
  const Response by_ip = client.request("POST", BaseUrl(server, "https") + "/oauth2/token", {},
                                        "grant_type=client_credentials");
  EXPECT_EQ(by_ip.status, 200);
  EXPECT_EQ(by_ip.body, "{\"ok\":1}");
  EXPECT_EQ(client.request("GET", BaseUrl(server, "https", "localhost") + "/").status, 200);
}

TEST(HttpsTest, UnknownCaIsATlsErrorNamingTheCertificateProblem) {
  HttpServer server(TlsServerOptions("server"), [](const Request&) { return Text("{}"); });
  server.start();
  HttpClient client(ClientTrusting("other-ca"));
  const HttpError error = RequestError(client, BaseUrl(server, "https") + "/oauth2/token");
  EXPECT_EQ(error.kind(), FailureKind::tls);
  const std::string message = error.what();
  EXPECT_NE(message.find("/oauth2/token: TLS handshake failed: certificate verify failed"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("check ca_file"), std::string::npos) << message;
}

TEST(HttpsTest, CertificateForAnotherHostIsATlsErrorNamingTheHost) {
  HttpServer server(TlsServerOptions("wrong-host"), [](const Request&) { return Text("{}"); });
  server.start();
  HttpClient client(ClientTrusting("ca"));
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    const HttpError error = RequestError(client, BaseUrl(server, "https", host) + "/");
    EXPECT_EQ(error.kind(), FailureKind::tls);
    EXPECT_NE(std::string(error.what()).find("certificate is not valid for host '" + host + "'"),
              std::string::npos)
        << error.what();
  }
}

TEST(HttpsTest, VerifyFalseAcceptsUntrustedAndMismatchedCertificates) {
  HttpServer server(TlsServerOptions("wrong-host"), [](const Request&) { return Text("{}"); });
  server.start();
  ClientOptions options = ClientTrusting("other-ca");
  options.verify = false;
  HttpClient client(options);
  EXPECT_EQ(client.request("GET", BaseUrl(server, "https") + "/").status, 200);
}

TEST(HttpsTest, PlainHttpClientAgainstTlsServerFails) {
  HttpServer server(TlsServerOptions("server"), [](const Request&) { return Text("{}"); });
  server.start();
  HttpClient client(ClientTrusting("ca"));
  const HttpError error = RequestError(client, BaseUrl(server, "http") + "/");
  EXPECT_EQ(error.kind(), FailureKind::transient) << error.what();
  // The server keeps serving TLS clients.
  EXPECT_EQ(client.request("GET", BaseUrl(server, "https") + "/").status, 200);
}

TEST(HttpsTest, MutualTlsRequiresTheClientCertificate) {
  ServerOptions options = TlsServerOptions("server");
  options.client_ca_file = Fixture("ca.pem");
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  server.start();

  HttpClient anonymous(ClientTrusting("ca"));
  const HttpError error = RequestError(anonymous, BaseUrl(server, "https") + "/");
  EXPECT_EQ(error.kind(), FailureKind::tls) << error.what();

  ClientOptions with_certificate = ClientTrusting("ca");
  with_certificate.client_cert_file = Fixture("client.pem");
  with_certificate.client_key_file = Fixture("client.key");
  HttpClient client(with_certificate);
  EXPECT_EQ(client.request("GET", BaseUrl(server, "https") + "/").status, 200);
  EXPECT_EQ(client.request("GET", BaseUrl(server, "https") + "/").status, 200);
}

TEST(HttpsTest, ServerRejectsAMissingKeyFileNamingIt) {
  ServerOptions options = TlsServerOptions("server");
  options.tls_key_file = "/nonexistent/server.key";
  HttpServer server(options, [](const Request&) { return Text("{}"); });
  try {
    server.start();
    FAIL() << "started without a key";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/server.key"), std::string::npos);
  }
}

TEST(HttpTest, ResponseBodyLimitIsASettingAndItsRefusalNamesIt) {
  HttpServer server({}, [](const Request&) { return Text(std::string(4096, 'x')); });
  server.start();
  ClientOptions small;
  small.max_response_body_bytes = 1024;
  HttpClient limited(small);
  try {
    limited.request("GET", BaseUrl(server) + "/big");
    FAIL() << "a 4 KiB answer passed a 1 KiB limit";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.kind(), FailureKind::config);
    EXPECT_NE(
        std::string(e.what()).find("exceeds the limit of 1024 bytes (max_response_body_bytes)"),
        std::string::npos)
        << e.what();
  }
  HttpClient roomy({});
  EXPECT_EQ(roomy.request("GET", BaseUrl(server) + "/big").body.size(), 4096u);
}

}  // namespace
}  // namespace kpihub::net
