// Throughput of the provincial sink against the in-process receiver over
// loopback, and of the receiver alone, so a run shows which side limits.
#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/plugins.hpp>
#include <kpihub/sim/province_receiver.hpp>

#include <benchmark/benchmark.h>
#include <boost/json.hpp>

#include <filesystem>
#include <random>

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using kpihub::sim::province::Receiver;
using kpihub::sim::province::ReceiverOptions;

const std::string kPluginFile = std::string(KPIHUB_BINARY_DIR) + "/plugins/libkpihub-provincial.so";

class QuietLogger final : public kpihub::Logger {
 public:
  void log(kpihub::LogLevel, std::string_view, std::string_view, std::string_view) override {}
};

class FixedSecrets final : public kpihub::SecretResolver {
 public:
  std::string resolve(std::string_view) const override { return "bench-secret"; }
};

std::string record_json(const std::string& record_id, int64_t sequence) {
  return json::serialize(json::object{
      {"record_id", record_id},
      {"source_system", "eoffice"},
      {"revision", 1},
      {"staff_code", "KH-000123"},
      {"agency_code", "000.00.12.H34"},
      {"task_code", "B.03.2"},
      {"work_date", "2025-04-08"},
      {"declared_minutes", 150},
      {"quantity", 4},
      {"title", "Xử lý văn bản đến số 1234/UBND-VP"},
      {"scoring",
       json::object{{"rules_version", "kpi-rules/1"}, {"points", 129.6}, {"sequence", sequence}}}});
}

// A fresh receiver database per run, removed afterwards.
struct ReceiverFixture {
  fs::path dir;
  std::unique_ptr<Receiver> receiver;
  ReceiverFixture() {
    dir = fs::temp_directory_path() /
          ("kpihub-provincial-bench-" + std::to_string(std::random_device()()));
    fs::create_directories(dir);
    ReceiverOptions options;
    options.db_path = (dir / "province.db").string();
    options.client_secret = "bench-secret";
    receiver = std::make_unique<Receiver>(options);
  }
  ~ReceiverFixture() {
    receiver.reset();
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

// The whole path a batch takes: plugin ABI, HTTP over loopback, receiver, SQLite commit.
void BM_SinkDeliversBatches(benchmark::State& state) {
  const auto batch_size = static_cast<std::size_t>(state.range(0));
  ReceiverFixture fixture;
  fixture.receiver->start();
  QuietLogger logger;
  kpihub::SystemClock clock;
  FixedSecrets secrets;
  const json::object settings{{"base_url", fixture.receiver->base_url()},
                              {"client_id", "kpihub-hub"},
                              {"client_secret_env", "BENCH"}};
  kpihub::PluginInstance sink(
      kpihub::load_plugin(kPluginFile), "province", json::serialize(settings),
      std::make_unique<kpihub::HostServices>("province", logger, clock, secrets, nullptr));
  const std::string hub_id = "bench-hub";
  int64_t batch_number = 0;
  std::size_t delivered = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string batch_id = "bench-" + std::to_string(++batch_number);
    std::vector<std::string> keys, bodies;
    for (std::size_t i = 0; i < batch_size; ++i) {
      keys.push_back("eoffice:B" + std::to_string(batch_number) + "-" + std::to_string(i));
      bodies.push_back(record_json(keys.back(), 1));
    }
    std::vector<kpihub_batch_item> items;
    for (std::size_t i = 0; i < batch_size; ++i) {
      items.push_back({sizeof(kpihub_batch_item),
                       KPIHUB_ITEM_RECORD,
                       {keys[i].data(), keys[i].size()},
                       {bodies[i].data(), bodies[i].size()}});
    }
    const kpihub_batch batch{sizeof(kpihub_batch),
                             {batch_id.data(), batch_id.size()},
                             {hub_id.data(), hub_id.size()},
                             items.data(),
                             items.size(),
                             1};
    state.ResumeTiming();
    const kpihub_delivery d = sink.deliver(batch);
    for (std::size_t i = 0; i < d.result_count; ++i)
      delivered += d.results[i].outcome == KPIHUB_ITEM_DELIVERED;
  }
  if (delivered != batch_size * static_cast<std::size_t>(state.iterations())) {
    state.SkipWithError("not every record was delivered");
  }
  state.SetItemsProcessed(static_cast<int64_t>(delivered));
  const json::object stats = fixture.receiver->stats();
  state.counters["receiver_records_per_busy_s"] =
      stats.at("records_per_busy_second").to_number<double>();
}
BENCHMARK(BM_SinkDeliversBatches)->Arg(100)->Arg(500)->Unit(benchmark::kMillisecond)->UseRealTime();

// The receiver's handler alone (parse, validate, one SQLite transaction):
// its capacity, to compare with the end-to-end rate above.
void BM_ReceiverAppliesBatches(benchmark::State& state) {
  const auto batch_size = static_cast<std::size_t>(state.range(0));
  ReceiverFixture fixture;
  Receiver& receiver = *fixture.receiver;
  kpihub::net::Request token_request;
  token_request.method = "POST";
  token_request.path = "/oauth2/token";
  token_request.body =
      "grant_type=client_credentials&client_id=kpihub-hub&client_secret=bench-secret";
  const std::string token =
      std::string(json::parse(receiver.handle(token_request).body).at("access_token").as_string());
  int64_t batch_number = 0;
  for (auto _ : state) {
    state.PauseTiming();
    kpihub::net::Request request;
    request.method = "POST";
    request.path = "/api/v1/kpi/records:batch";
    const std::string batch_id = "direct-" + std::to_string(++batch_number);
    request.headers = {{"authorization", "Bearer " + token}, {"idempotency-key", batch_id}};
    request.body = "{\"hub_id\":\"bench\",\"batch_id\":\"" + batch_id + "\",\"records\":[";
    for (std::size_t i = 0; i < batch_size; ++i) {
      if (i) request.body += ',';
      request.body +=
          record_json("eoffice:D" + std::to_string(batch_number) + "-" + std::to_string(i), 1);
    }
    request.body += "]}";
    state.ResumeTiming();
    const kpihub::net::Reply reply = receiver.handle(request);
    if (reply.status != 200) state.SkipWithError(("receiver answered " + reply.body).c_str());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}
BENCHMARK(BM_ReceiverAppliesBatches)->Arg(500)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
