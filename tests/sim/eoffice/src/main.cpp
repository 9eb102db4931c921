// kpihub-sim-eoffice: the simulated E-Office on loopback, for tests, demos
// and benchmarks. `--help` lists the flags.
#include <kpihub/sim/eoffice_sim.hpp>

#include <boost/program_options.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

namespace po = boost::program_options;

namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

double share(const std::string& flag, double v) {
  if (v < 0 || v > 1) throw std::invalid_argument(flag + " must be a share in 0..1");
  return v;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) std::cerr << "kpihub-sim-eoffice: cannot write " << path << "\n";
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  kpihub::sim::EOfficeSimConfig config;
  kpihub::net::ServerOptions server;
  std::string secret_file, slow, tls_cert, tls_key, served_out, dump_directory, leader_tasks,
      staff_tasks;
  po::options_description flags("kpihub-sim-eoffice: simulated E-Office (spec/sources.md §1)");
  // clang-format off
  flags.add_options()
    ("help", "show this help")
    ("address", po::value(&server.address)->default_value("127.0.0.1"), "listen address")
    ("port", po::value(&server.port)->default_value(0), "listen port (0: any free port)")
    ("tls-cert", po::value(&tls_cert), "PEM certificate chain: serve HTTPS")
    ("tls-key", po::value(&tls_key), "PEM private key for --tls-cert")
    ("threads", po::value(&server.threads)->default_value(2), "server threads")
    ("seed", po::value(&config.seed)->default_value(1), "data seed")
    ("agencies", po::value(&config.agencies)->default_value(3), "agencies (000.00.NN.H34)")
    ("staff", po::value(&config.staff)->default_value(60), "staff (KH-NNNNNN)")
    ("days", po::value(&config.days)->default_value(5), "working days with diary entries")
    ("month", po::value(&config.month)->default_value("2025-04"), "month of the data, YYYY-MM")
    ("client-id", po::value(&config.client_id)->default_value("kpihub"), "accepted OAuth2 client id")
    ("client-secret-file", po::value(&secret_file), "file holding the accepted client secret "
                                                    "(default secret: sim-secret)")
    ("leader-tasks", po::value(&leader_tasks), "comma-separated task codes leaders use")
    ("staff-tasks", po::value(&staff_tasks), "comma-separated task codes other staff use")
    ("fail-5xx", po::value(&config.fail_5xx)->default_value(0), "share of API answers 500/502")
    ("fail-429", po::value(&config.fail_429)->default_value(0),
     "share of API answers 429/503 with Retry-After")
    ("retry-after", po::value(&config.retry_after_seconds)->default_value(1),
     "Retry-After seconds sent with 429/503")
    ("drop", po::value(&config.drop)->default_value(0), "share of API requests whose connection "
                                                        "is dropped")
    ("slow", po::value(&slow), "SHARE:MS: that share of answers waits MS milliseconds")
    ("token-ttl", po::value(&config.token_ttl_seconds)->default_value(3600), "token lifetime, s")
    ("page-token-ttl", po::value(&config.page_token_ttl_seconds)->default_value(600),
     "page token lifetime, s")
    ("malformed", po::value(&config.malformed)->default_value(0),
     "share of diary entries malformed (wrong_type, bad_date, bad_utf8, missing_field)")
    ("live-rate", po::value(&config.live_rate)->default_value(0),
     "new or edited diary entries per second while running")
    ("served-out", po::value(&served_out), "write what was served (GET /sim/served) here on exit")
    ("dump-directory", po::value(&dump_directory),
     "write the staff directory CSV (config/staff.csv format) here at start");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, flags), vm);
    if (vm.count("help")) {
      std::cout << flags << "\n";
      return 0;
    }
    po::notify(vm);
    share("--fail-5xx", config.fail_5xx);
    share("--fail-429", config.fail_429);
    share("--drop", config.drop);
    share("--malformed", config.malformed);
    if (!slow.empty()) {
      const auto colon = slow.find(':');
      if (colon == std::string::npos) throw std::invalid_argument("--slow must be SHARE:MS");
      config.slow_share = share("--slow", std::stod(slow.substr(0, colon)));
      config.slow_ms = std::stoi(slow.substr(colon + 1));
    }
    if (!secret_file.empty()) {
      std::ifstream in(secret_file);
      if (!in) throw std::invalid_argument("cannot read --client-secret-file " + secret_file);
      std::getline(in, config.client_secret);
    }
    if (!leader_tasks.empty()) config.leader_tasks = split_list(leader_tasks);
    if (!staff_tasks.empty()) config.staff_tasks = split_list(staff_tasks);
    if (tls_cert.empty() != tls_key.empty()) {
      throw std::invalid_argument("--tls-cert and --tls-key go together");
    }
    if (!tls_cert.empty()) {
      server.tls_cert_file = tls_cert;
      server.tls_key_file = tls_key;
    }
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-eoffice: " << e.what() << "\n(see --help)\n";
    return 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  try {
    kpihub::sim::EOfficeSimulator sim(config, server);
    if (!dump_directory.empty() && !write_file(dump_directory, sim.data().directory_csv())) {
      return 1;
    }
    sim.start();
    std::cerr << "kpihub-sim-eoffice: " << sim.data().size() << " diary entries, "
              << sim.data().staff().size() << " staff\n";
    std::cout << "kpihub-sim-eoffice listening on " << sim.base_url() << std::endl;
    int received = 0;
    sigwait(&signals, &received);
    sim.stop();
    if (!served_out.empty() && !write_file(served_out, sim.data().served_json())) return 1;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-eoffice: " << e.what() << "\n";
    return 1;
  }
}
