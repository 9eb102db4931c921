// A page pulled from a source plugin in the hub's process and from the same plugin in a process
// of its own ("isolation": "process"): the difference is what isolation costs per page, the
// page crossing a socket once and being read back (docs/performance.md, "What isolation
// costs"). The source is the hub tests' counting source: records of the E-Office shape, with a
// Vietnamese title, made without I/O, so the plugin's own work is small and the crossing shows.
#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/plugins.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace {

class QuietLogger final : public kpihub::Logger {
 public:
  void log(kpihub::LogLevel, std::string_view, std::string_view, std::string_view) override {}
};

// Pulls pages of range(1) records, in a child process when range(0) is 1, from the start again
// whenever the source is caught up.
void BM_PullPage(benchmark::State& state) {
  const bool process = state.range(0) == 1;
  const auto page_size = state.range(1);
  QuietLogger logger;
  kpihub::SystemClock clock;
  kpihub::SecretResolver secrets;
  kpihub::PluginIsolation isolation;
  isolation.process = process;
  kpihub::PluginInstance source(
      kpihub::load_plugin(COUNTING_SOURCE_PLUGIN), "bench",
      R"({"records": 10000000, "page_size": )" + std::to_string(page_size) + "}",
      std::make_unique<kpihub::HostServices>("bench", logger, clock, secrets, nullptr), isolation);
  std::optional<std::string> cursor;
  std::size_t records = 0;
  for (auto _ : state) {
    const kpihub_page page = source.pull(cursor);
    records += page.record_count;
    cursor =
        page.caught_up
            ? std::nullopt
            : std::optional<std::string>(std::string(page.next_cursor.data, page.next_cursor.size));
    benchmark::DoNotOptimize(page.records);
  }
  state.SetItemsProcessed(static_cast<int64_t>(records));
  state.SetLabel(process ? "in its own process" : "in the hub's process");
}
BENCHMARK(BM_PullPage)
    ->ArgNames({"process", "page"})
    ->Args({0, 100})
    ->Args({1, 100})
    ->Args({0, 1000})
    ->Args({1, 1000})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
