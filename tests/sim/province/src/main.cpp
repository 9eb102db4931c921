// kpihub-sim-province: the provincial receiving API as a process, for demos,
// end-to-end tests and benchmarks. Runs until SIGINT or SIGTERM.
#include <kpihub/sim/province_receiver.hpp>

#include <boost/program_options.hpp>

#include <pthread.h>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

namespace po = boost::program_options;
using kpihub::sim::province::Receiver;
using kpihub::sim::province::ReceiverOptions;

namespace {

double share_option(const po::variables_map& vm, const char* name) {
  const double share = vm[name].as<double>();
  if (share < 0 || share > 1) {
    throw std::invalid_argument(std::string("--") + name + " " + std::to_string(share) +
                                ": a share is between 0 and 1");
  }
  return share;
}

std::string read_secret_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("--client-secret-file " + path + ": cannot be read");
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  return secret;
}

}  // namespace

int main(int argc, char** argv) {
  ReceiverOptions options;
  po::options_description flags(
      "kpihub-sim-province: the provincial assessment system's receiving API "
      "(spec/provincial-api.md), simulated, durable, with fault injection.\nFlags");
  std::string slow;
  std::vector<std::string> poison;
  std::optional<std::string> stats_out;
  // clang-format off
  flags.add_options()
    ("help", "print this help")
    ("address", po::value(&options.address)->default_value("127.0.0.1"), "address to listen on")
    ("port", po::value(&options.port)->default_value(0), "port (0: any free port, printed)")
    ("db", po::value(&options.db_path)->default_value("province.db"), "SQLite file, kept across restarts")
    ("client-id", po::value(&options.client_id)->default_value("kpihub-hub"), "accepted OAuth2 client id")
    ("client-secret", po::value(&options.client_secret)->default_value("kpihub-secret"), "accepted client secret")
    ("client-secret-file", po::value<std::string>(), "read the accepted client secret from a file")
    ("token-ttl", po::value(&options.token_ttl_seconds)->default_value(3600), "token lifetime, seconds")
    ("max-body", po::value(&options.max_body_bytes)->default_value(8 * 1024 * 1024), "body limit in bytes (413 beyond)")
    ("threads", po::value(&options.threads)->default_value(2), "server threads")
    ("fail-500", po::value<double>()->default_value(0), "share of batch requests answered 500")
    ("fail-503", po::value<double>()->default_value(0), "share answered 503 with Retry-After")
    ("fail-429", po::value<double>()->default_value(0), "share answered 429 with Retry-After")
    ("retry-after", po::value(&options.faults.retry_after_seconds)->default_value(1), "Retry-After seconds for 503/429")
    ("drop", po::value<double>()->default_value(0), "share of batch requests whose connection is closed unanswered")
    ("slow", po::value(&slow), "SHARE:MS: a share of batch answers delayed by MS milliseconds")
    ("reject-record", po::value(&poison)->composing(), "record id always rejected with code \"poison\" (repeatable)")
    ("seed", po::value(&options.seed)->default_value(1), "seed of the fault draws")
    ("tls-cert", po::value<std::string>(), "PEM certificate chain: serve HTTPS")
    ("tls-key", po::value<std::string>(), "PEM private key for --tls-cert")
    ("client-ca", po::value<std::string>(), "require client certificates signed by this CA (mTLS)")
    ("stats-out", po::value<std::string>(), "write the stats JSON to this file on exit");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, flags), vm);
    if (vm.count("help")) {
      std::cout << flags << "\n";
      return 0;
    }
    po::notify(vm);
    if (vm.count("client-secret-file")) {
      options.client_secret = read_secret_file(vm["client-secret-file"].as<std::string>());
    }
    options.faults.fail_500 = share_option(vm, "fail-500");
    options.faults.fail_503 = share_option(vm, "fail-503");
    options.faults.fail_429 = share_option(vm, "fail-429");
    options.faults.drop = share_option(vm, "drop");
    if (!slow.empty()) {
      const auto colon = slow.find(':');
      if (colon == std::string::npos)
        throw std::invalid_argument("--slow " + slow + ": expected SHARE:MS");
      options.faults.slow_share = std::stod(slow.substr(0, colon));
      options.faults.slow_delay = std::chrono::milliseconds(std::stoll(slow.substr(colon + 1)));
      if (options.faults.slow_share < 0 || options.faults.slow_share > 1) {
        throw std::invalid_argument("--slow " + slow + ": the share is between 0 and 1");
      }
    }
    options.poison_record_ids.insert(poison.begin(), poison.end());
    if (vm.count("tls-cert") != vm.count("tls-key")) {
      throw std::invalid_argument("--tls-cert and --tls-key go together");
    }
    if (vm.count("tls-cert")) {
      options.tls_cert_file = vm["tls-cert"].as<std::string>();
      options.tls_key_file = vm["tls-key"].as<std::string>();
    }
    if (vm.count("client-ca")) {
      if (!options.tls_cert_file) throw std::invalid_argument("--client-ca needs --tls-cert");
      options.client_ca_file = vm["client-ca"].as<std::string>();
    }
    if (vm.count("stats-out")) stats_out = vm["stats-out"].as<std::string>();
    if (options.token_ttl_seconds <= 0) throw std::invalid_argument("--token-ttl must be > 0");
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-province: " << e.what() << "\n(--help lists the flags)\n";
    return 2;
  }

  // Block the stop signals before any thread starts, then wait for one here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    Receiver receiver(options);
    receiver.start();
    std::cout << "kpihub-sim-province listening on " << receiver.base_url() << std::endl;
    int signal = 0;
    sigwait(&stop_signals, &signal);
    receiver.stop();
    const std::string stats = boost::json::serialize(receiver.stats());
    if (stats_out) {
      std::ofstream out(*stats_out);
      out << stats << "\n";
      if (!out) std::cerr << "kpihub-sim-province: cannot write --stats-out " << *stats_out << "\n";
    }
    std::cerr << "kpihub-sim-province stopped: " << stats << "\n";
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-province: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
