// The hub's in-memory path for E-Office diaries, without the store or the
// network: JSON page bytes (as the simulator serves them) -> the adapter's
// normalizer -> the host's validation and directory/catalog resolution
// (Ingestor::prepare) -> record scoring by staff month. Issue 7's target for
// this path: at least 1,000,000 records/s per core.
//
// Counters: records_per_s over the whole path on one thread, and the CPU
// seconds per million records of each step (parse_normalize, validate, score).
// Smoke mode (20 staff) when KPIHUB_BENCH_SMOKE=1 or --benchmark_min_time is
// below 0.1 s, as CI runs every bench_* binary.
#include <kpihub/eoffice/normalizer.hpp>
#include <kpihub/hub.hpp>
#include <kpihub/sim/eoffice_sim.hpp>
#include <kpihub/store/sqlite.hpp>

#include <benchmark/benchmark.h>
#include <unistd.h>
#include <boost/json.hpp>
#include <kpihub_bench/support.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kpihub {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kPageItems = 1000;
constexpr Month kMonth{2025, 4};

int g_staff = 700;  // 20 in smoke mode

constexpr int64_t kNowUnixMs = 1'746'860'400'000;  // 2025-05-10, the records' "today"

struct Fixture {
  bench::TempDir dir{"kpihub-bench-mem"};
  std::vector<std::string> pages;  // page bodies as the simulator serves them
  std::size_t items = 0;           // diary items in all pages
  ReferenceData ref;
  std::unique_ptr<Storage> store;  // Ingestor wants one; prepare() never touches it

  Fixture() {
    sim::EOfficeSimConfig config;
    config.seed = 7;
    config.agencies = 5;
    config.staff = g_staff;
    config.days = 22;
    const sim::DiaryData data(config);
    for (std::size_t from = 0;;) {
      const auto slice = data.slice(from, kPageItems);
      std::string body = "{\"items\":[";
      for (std::size_t i = 0; i < slice.items.size(); ++i)
        body.append(i ? "," : "").append(slice.items[i]);
      body += "],\"next_page_token\":\"t\",\"server_time\":\"2025-05-10T08:00:00+07:00\"}";
      items += slice.items.size();
      pages.push_back(std::move(body));
      if (!slice.more) break;
      from = slice.next;
    }
    std::ofstream(dir.file("staff.csv")) << data.directory_csv();
    const std::string config_dir = KPIHUB_BENCH_CONFIG_DIR;
    ref.catalog = load_catalog({config_dir + "/catalog/province.csv"});
    ref.holidays = load_holidays({config_dir + "/holidays/2025.csv"});
    ref.rules = load_rules(config_dir + "/rules.json");
    ref.directory = load_directory(dir.file("staff.csv"), config_dir + "/units.csv");
    store = open_sqlite_storage(dir.file("unused.db"));
  }
  ~Fixture() { store.reset(); }  // before its folder goes
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_ParseNormalizeValidateScore(benchmark::State& state) {
  Fixture& f = fixture();
  const eoffice::Normalizer normalizer;
  Ingestor ingestor(f.store->records(), f.ref, *Date::parse("2025-05-10"));
  const int64_t now_ms = kNowUnixMs;
  const Timestamp now{now_ms / 1000, 420};
  sdk::Page page;
  std::unordered_map<std::string, std::vector<WorkRecord>> by_staff;
  std::size_t records = 0, quarantined = 0;
  double parse_cpu = 0, validate_cpu = 0, score_cpu = 0;
  for (auto _ : state) {
    for (auto& [staff, list] : by_staff) list.clear();
    for (const std::string& body : f.pages) {
      const double t0 = bench::thread_cpu_seconds();
      page.clear();
      normalizer.normalize_page(body, std::nullopt, page);
      const double t1 = bench::thread_cpu_seconds();
      PageCommit commit = ingestor.prepare("eoffice", page.c_view(), now_ms);
      quarantined += commit.quarantined.size();
      for (WorkRecord& r : commit.records) by_staff[r.staff_code].push_back(std::move(r));
      const double t2 = bench::thread_cpu_seconds();
      parse_cpu += t1 - t0;
      validate_cpu += t2 - t1;
    }
    const double t0 = bench::thread_cpu_seconds();
    for (const auto& [code, list] : by_staff) {
      StaffMonthInput in;
      in.staff = *f.ref.directory.staff(code);
      in.month = kMonth;
      in.records = list;
      in.catalog = &f.ref.catalog;
      in.calendar = &f.ref.holidays;
      in.rules = &f.ref.rules;
      in.now = now;
      benchmark::DoNotOptimize(score_staff_month(in));
      records += list.size();
    }
    score_cpu += bench::thread_cpu_seconds() - t0;
  }
  const double m = static_cast<double>(records) / 1e6;
  state.SetItemsProcessed(static_cast<int64_t>(records));
  state.counters["records_per_s"] =
      benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
  state.counters["records_per_iteration"] =
      static_cast<double>(records) / static_cast<double>(state.iterations());
  state.counters["quarantined_per_iteration"] =
      static_cast<double>(quarantined) / static_cast<double>(state.iterations());
  state.counters["parse_normalize_cpu_s_per_M"] = parse_cpu / m;
  state.counters["validate_cpu_s_per_M"] = validate_cpu / m;
  state.counters["score_cpu_s_per_M"] = score_cpu / m;
  state.counters["records_per_cpu_s"] =
      static_cast<double>(records) / (parse_cpu + validate_cpu + score_cpu);
  state.counters["peak_rss_mb"] = bench::peak_rss_mib();
}
BENCHMARK(BM_ParseNormalizeValidateScore)->Unit(benchmark::kMillisecond)->UseRealTime();

// Boost.JSON parsing the same pages into values on a monotonic resource, and nothing else:
// what the normalizer did before it read pages in one pass of the parser's events (issue 20).
void BM_JsonParseOnly(benchmark::State& state) {
  Fixture& f = fixture();
  std::size_t bytes = 0;
  for (auto _ : state) {
    for (const std::string& body : f.pages) {
      boost::json::monotonic_resource resource;
      boost::json::parse_options options;
      options.allow_invalid_utf8 = true;
      boost::json::error_code ec;
      benchmark::DoNotOptimize(boost::json::parse(body, ec, &resource, options));
      bytes += body.size();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(f.items));
}
BENCHMARK(BM_JsonParseOnly)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace kpihub

int main(int argc, char** argv) {
  if (kpihub::bench::smoke_requested(argc, argv)) kpihub::g_staff = 20;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
