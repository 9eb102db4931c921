// kpihub-bench-sink: an HTTP sink for bench/peers. Takes any POST, counts
// its records (the lines of a newline-delimited body, as syslog-ng's http()
// destination batches them) and bytes, and answers 200; GET /stats answers
// {"records", "bytes", "requests"}. Runs until SIGINT or SIGTERM.
#include <kpihub/net.hpp>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <pthread.h>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>

namespace po = boost::program_options;

int main(int argc, char** argv) {
  kpihub::net::ServerOptions server;
  po::options_description flags("kpihub-bench-sink: counts the records a peer delivers over HTTP");
  // clang-format off
  flags.add_options()
    ("help", "show this help")
    ("port", po::value(&server.port)->default_value(0), "listen port (0: any free port)")
    ("threads", po::value(&server.threads)->default_value(2), "server threads")
    ("max-body", po::value(&server.max_body_bytes)->default_value(64 * 1024 * 1024),
     "body limit in bytes");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, flags), vm);
    if (vm.count("help")) {
      std::cout << flags << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "kpihub-bench-sink: " << e.what() << "\n(see --help)\n";
    return 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  std::atomic<uint64_t> records{0}, bytes{0}, requests{0};
  try {
    kpihub::net::HttpServer http(server, [&](const kpihub::net::Request& request) {
      kpihub::net::Reply reply;
      if (request.method == "GET" && request.path == "/stats") {
        reply.body = boost::json::serialize(boost::json::object{
            {"records", records.load()}, {"bytes", bytes.load()}, {"requests", requests.load()}});
        return reply;
      }
      if (request.method != "POST") {
        reply.status = 405;
        reply.body = R"({"error":"method_not_allowed"})";
        return reply;
      }
      const std::string& body = request.body;
      uint64_t lines = static_cast<uint64_t>(std::count(body.begin(), body.end(), '\n'));
      if (!body.empty() && body.back() != '\n') ++lines;
      records += lines;
      bytes += body.size();
      ++requests;
      reply.body = "{}";
      return reply;
    });
    http.start();
    std::cout << "kpihub-bench-sink listening on http://127.0.0.1:" << http.port() << std::endl;
    int received = 0;
    sigwait(&signals, &received);
    http.stop();
    std::cerr << "kpihub-bench-sink: " << records.load() << " records, " << bytes.load()
              << " bytes in " << requests.load() << " requests\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kpihub-bench-sink: " << e.what() << "\n";
    return 1;
  }
}
