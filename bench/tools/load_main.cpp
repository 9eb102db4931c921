// kpihub-bench-load: a load client that measures one simulator alone
// (bench/simulators): how fast the E-Office simulator serves diary pages to
// clients that pull as fast as they can, and how fast the provincial receiver
// simulator takes batches of scored records. Prints one line:
//   result: records=N wall_s=W bytes=B cpu_s=C
// (cpu_s: this client's own CPU; the caller measures the simulator's).
#include <kpihub/net.hpp>

#include <sys/resource.h>
#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

namespace po = boost::program_options;
namespace json = boost::json;
using kpihub::net::HttpClient;

namespace {

struct Options {
  std::string mode, url, client_id, secret;
  std::size_t clients = 2, page_size = 1000, batch = 2000, records = 100000;
};

std::string token(HttpClient& client, const Options& o) {
  const std::string form =
      "grant_type=client_credentials&client_id=" + kpihub::net::url_encode(o.client_id) +
      "&client_secret=" + kpihub::net::url_encode(o.secret);
  const auto r = client.request("POST", o.url + "/oauth2/token",
                                {{"Content-Type", "application/x-www-form-urlencoded"}}, form);
  if (r.status != 200) {
    throw std::runtime_error(o.url + "/oauth2/token answered " + std::to_string(r.status) + ": " +
                             r.body);
  }
  return std::string(json::parse(r.body).at("access_token").as_string());
}

kpihub::net::ClientOptions client_options() {
  kpihub::net::ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(120000);
  return options;
}

struct Totals {
  std::atomic<uint64_t> records{0}, bytes{0};
  std::mutex mutex;
  std::string error;  // the first failure of any client
  void fail(const std::string& what) {
    std::lock_guard lock(mutex);
    if (error.empty()) error = what;
  }
};

// Each client pulls the whole feed from its start, up to `records` items.
void pull(const Options& o, Totals& totals) {
  HttpClient client(client_options());
  const std::string bearer = "Bearer " + token(client, o);
  std::string page_token;
  std::size_t pulled = 0;
  while (pulled < o.records) {
    std::string url = o.url + "/api/v1/work-diary?page_size=" + std::to_string(o.page_size);
    if (!page_token.empty()) url += "&page_token=" + kpihub::net::url_encode(page_token);
    const auto r = client.request("GET", url, {{"Authorization", bearer}});
    if (r.status != 200) {
      throw std::runtime_error(url + " answered " + std::to_string(r.status) + ": " + r.body);
    }
    const json::object page = json::parse(r.body).as_object();
    const std::size_t items = page.at("items").as_array().size();
    pulled += items;
    totals.records += items;
    totals.bytes += r.body.size();
    const json::value& next = page.at("next_page_token");
    if (next.is_null() || items == 0) break;
    page_token = std::string(next.as_string());
  }
}

// Records shaped like the hub's scored records (kpi-model.md), unique ids.
std::string batch_body(std::size_t batch_index, std::size_t first, std::size_t count) {
  json::array records;
  records.reserve(count);
  for (std::size_t i = first; i < first + count; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "WD-LOAD-%08zu", i);
    char staff[16];
    std::snprintf(staff, sizeof staff, "KH-%06zu", i % 7000);
    records.push_back(json::object{{"record_id", std::string("eoffice:") + id},
                                   {"source_system", "eoffice"},
                                   {"source_id", id},
                                   {"revision", 1},
                                   {"retracted", false},
                                   {"staff_code", staff},
                                   {"agency_code", "000.00.12.H34"},
                                   {"task_code", "B.03.2"},
                                   {"work_date", "2025-04-08"},
                                   {"declared_minutes", 150},
                                   {"quantity", 4},
                                   {"product_unit", "văn bản"},
                                   {"title", "Xử lý văn bản đến số 1234/UBND-VP"},
                                   {"evidence_ref", "1234/UBND-VP"},
                                   {"completed_at", "2025-04-09T15:00:00+07:00"},
                                   {"approval", json::object{{"status", "approved"},
                                                             {"rating", "good"},
                                                             {"by", "KH-000010"},
                                                             {"at", "2025-04-09T16:00:00+07:00"}}},
                                   {"changed_at", "2025-04-09T16:00:00+07:00"},
                                   {"scoring", json::object{{"sequence", 1},
                                                            {"standard_minutes", 120},
                                                            {"credited_minutes", 120},
                                                            {"points", 2.5},
                                                            {"flags", json::array{}}}}});
  }
  return json::serialize(json::object{{"hub_id", "bench-load"},
                                      {"batch_id", "load-" + std::to_string(batch_index)},
                                      {"records", std::move(records)}});
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string secret_file;
  po::options_description flags(
      "kpihub-bench-load: measures a simulator alone (bench/simulators)\n"
      "  kpihub-bench-load --mode eoffice --url URL ...   pull diary pages\n"
      "  kpihub-bench-load --mode receiver --url URL ...  post batches of scored records\nFlags");
  // clang-format off
  flags.add_options()
    ("help", "show this help")
    ("mode", po::value(&o.mode)->required(), "eoffice or receiver")
    ("url", po::value(&o.url)->required(), "the simulator's base URL")
    ("client-id", po::value(&o.client_id)->default_value("kpihub"), "OAuth2 client id")
    ("client-secret-file", po::value(&secret_file)->required(), "file holding the client secret")
    ("clients", po::value(&o.clients)->default_value(2), "concurrent clients (threads)")
    ("page-size", po::value(&o.page_size)->default_value(1000), "eoffice: items per page")
    ("batch", po::value(&o.batch)->default_value(2000), "receiver: records per batch")
    ("records", po::value(&o.records)->default_value(100000),
     "eoffice: at most this many per client; receiver: this many in all");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, flags), vm);
    if (vm.count("help")) {
      std::cout << flags << "\n";
      return 0;
    }
    po::notify(vm);
    if (o.mode != "eoffice" && o.mode != "receiver") {
      throw std::invalid_argument("--mode must be eoffice or receiver, not " + o.mode);
    }
    if (o.clients < 1 || o.batch < 1 || o.page_size < 1) {
      throw std::invalid_argument("--clients, --batch and --page-size must be at least 1");
    }
    std::ifstream in(secret_file);
    if (!in || !std::getline(in, o.secret)) {
      throw std::invalid_argument("cannot read --client-secret-file " + secret_file);
    }
  } catch (const std::exception& e) {
    std::cerr << "kpihub-bench-load: " << e.what() << "\n(see --help)\n";
    return 2;
  }

  try {
    // Receiver batches are built before the clock starts: the client's own
    // JSON work is not the simulator's.
    std::vector<std::string> bodies;
    if (o.mode == "receiver") {
      for (std::size_t first = 0; first < o.records; first += o.batch) {
        bodies.push_back(batch_body(bodies.size(), first, std::min(o.batch, o.records - first)));
      }
    }
    Totals totals;
    std::atomic<std::size_t> next_batch{0};
    const double cpu_before = cpu_seconds();
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (std::size_t c = 0; c < o.clients; ++c) {
      clients.emplace_back([&] {
        try {
          if (o.mode == "eoffice") return pull(o, totals);
          HttpClient client(client_options());
          const std::string bearer = "Bearer " + token(client, o);
          for (std::size_t i = next_batch++; i < bodies.size(); i = next_batch++) {
            const auto r = client.request("POST", o.url + "/api/v1/kpi/records:batch",
                                          {{"Authorization", bearer},
                                           {"Content-Type", "application/json"},
                                           {"Idempotency-Key", "bench-load-" + std::to_string(i)}},
                                          bodies[i]);
            if (r.status != 200) {
              throw std::runtime_error("batch " + std::to_string(i) + " answered " +
                                       std::to_string(r.status) + ": " + r.body);
            }
            const auto accepted = json::parse(r.body).at("accepted").to_number<uint64_t>();
            totals.records += accepted;
            totals.bytes += bodies[i].size();
          }
        } catch (const std::exception& e) {
          totals.fail(e.what());
        }
      });
    }
    for (auto& t : clients) t.join();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!totals.error.empty()) throw std::runtime_error(totals.error);
    std::printf("result: records=%llu wall_s=%.3f bytes=%llu cpu_s=%.3f\n",
                static_cast<unsigned long long>(totals.records.load()), wall,
                static_cast<unsigned long long>(totals.bytes.load()), cpu_seconds() - cpu_before);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kpihub-bench-load: " << e.what() << "\n";
    return 1;
  }
}
