// Normalization throughput of E-Office diary pages: bytes of a 500-item page
// (as the simulator serves them) to a kpihub_page view, no HTTP.
#include <kpihub/eoffice/normalizer.hpp>
#include <kpihub/sim/eoffice_sim.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace {

std::string make_page(std::size_t items, double malformed) {
  kpihub::sim::EOfficeSimConfig config;
  config.seed = 3;
  config.agencies = 5;
  config.staff = 100;
  config.days = 2;
  config.malformed = malformed;
  const kpihub::sim::DiaryData data(config);
  const auto slice = data.slice(0, items);
  std::string body = "{\"items\":[";
  for (std::size_t i = 0; i < slice.items.size(); ++i) body += (i ? "," : "") + slice.items[i];
  body += "],\"next_page_token\":\"abc\",\"server_time\":\"2025-04-09T16:05:00+07:00\"}";
  return body;
}

void normalize(benchmark::State& state, double malformed) {
  const std::string body = make_page(static_cast<std::size_t>(state.range(0)), malformed);
  const kpihub::eoffice::Normalizer normalizer;
  kpihub::sdk::Page page;
  std::size_t items = 0;
  for (auto _ : state) {
    page.clear();
    const auto summary = normalizer.normalize_page(body, std::nullopt, page);
    const kpihub_page view = page.c_view();
    benchmark::DoNotOptimize(view.record_count);
    items += summary.items;
  }
  state.SetItemsProcessed(static_cast<int64_t>(items));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["page_bytes"] = static_cast<double>(body.size());
}

void BM_NormalizePage(benchmark::State& state) {
  normalize(state, 0.0);
}
void BM_NormalizePageWithMalformed(benchmark::State& state) {
  normalize(state, 0.05);
}

}  // namespace

BENCHMARK(BM_NormalizePage)->Arg(500)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NormalizePageWithMalformed)->Arg(500)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
