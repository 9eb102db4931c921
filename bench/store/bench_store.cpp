// Throughput of the SQLite store: page commits (full sync per page), month reads, and the
// outbox drain loop. Peak RSS is reported as a counter on every benchmark.
#include <kpihub/store/sqlite.hpp>

#include <benchmark/benchmark.h>
#include <unistd.h>
#include <kpihub_bench/support.hpp>

#include <filesystem>
#include <string>

namespace kpihub {
namespace {

namespace fs = std::filesystem;

using bench::TempDir;

// A record as an E-Office adapter produces it: most fields set, Vietnamese text.
WorkRecord realistic_record(int64_t n) {
  WorkRecord r;
  r.source_system = "eoffice";
  r.source_id = "WD-2025-" + std::to_string(n);
  r.record_id = "eoffice:" + r.source_id;
  r.revision = 1;
  r.staff_code = "CB" + std::to_string(1000 + n % 800);
  r.source_staff_id = "u" + std::to_string(n % 800);
  r.agency_code = "SO-" + std::to_string(n % 40);
  r.task_code = "VB-DEN";
  r.work_date = Date::from_ymd(2025, 4, static_cast<unsigned>(1 + n % 28));
  r.declared_minutes = 30 + static_cast<int32_t>(n % 90);
  r.quantity = 1;
  r.product_unit = "văn bản";
  r.title = "Xử lý công văn đến số " + std::to_string(n) + "/UBND-VP về việc báo cáo kết quả";
  r.evidence_ref = "https://eoffice.example.vn/vb/" + std::to_string(n);
  r.deadline = Deadline{std::nullopt, Timestamp::parse("2025-04-30T17:00:00+07:00")};
  r.completed_at = Timestamp::parse("2025-04-20T10:15:00+07:00");
  r.approval = Approval{ApprovalStatus::approved, Rating::good, "Trần Văn Nam",
                        Timestamp::parse("2025-04-21T08:00:00+07:00")};
  r.changed_at = Timestamp::parse("2025-04-21T08:00:00+07:00");
  r.attributes = {{"document_type", "incoming"}};
  return r;
}

PageCommit page_from(int64_t first, int64_t count) {
  PageCommit page;
  page.source = "eoffice";
  page.cursor = std::to_string(first + count);
  page.received_at_unix_ms = 1745000000000;
  page.records.reserve(static_cast<std::size_t>(count));
  for (int64_t n = first; n < first + count; ++n) page.records.push_back(realistic_record(n));
  return page;
}

// A new page of state.range(0) records per iteration, on one store: `untimed(store, page)`
// runs with the timer paused, then `timed(store, page)` is measured; items are records.
template <typename Untimed, typename Timed>
void each_new_page(benchmark::State& state, Untimed untimed, Timed timed) {
  const int64_t page_size = state.range(0);
  TempDir dir;
  auto store = open_sqlite_storage(dir.file("hub.db"));
  int64_t next = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const PageCommit page = page_from(next, page_size);
    next += page_size;
    untimed(*store, page);
    state.ResumeTiming();
    timed(*store, page);
  }
  state.SetItemsProcessed(state.iterations() * page_size);
  state.counters["peak_rss_MiB"] = bench::peak_rss_mib();
}

void BM_CommitPage(benchmark::State& state) {
  each_new_page(
      state, [](Storage&, const PageCommit&) {},
      [](Storage& store, const PageCommit& page) {
        benchmark::DoNotOptimize(store.records().commit_page(page));
      });
}
BENCHMARK(BM_CommitPage)->Arg(500)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2);

// What the ingest transaction no longer does (schema 7): the scorer turns the revisions a
// page logged into dirty marks before it lists them. Timed: that step alone, per record, for
// a page of N records each of another staff month than the one before (800 staff, so a page
// of 5,000 marks each staff month about 6 times, one upsert for all of them).
void BM_MarkLoggedChanges(benchmark::State& state) {
  each_new_page(
      state, [](Storage& store, const PageCommit& page) { store.records().commit_page(page); },
      [&](Storage& store, const PageCommit&) {
        if (store.scoring().dirty_staff_days(1024).empty()) {
          state.SkipWithError("the page's changes were not marked");
        }
      });
}
BENCHMARK(BM_MarkLoggedChanges)
    ->Arg(500)
    ->Arg(5000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2);

void BM_RecordsOfMonth(benchmark::State& state) {
  const int64_t records = state.range(0);
  TempDir dir;
  auto store = open_sqlite_storage(dir.file("hub.db"));
  for (int64_t n = 0; n < records; n += 5000) store->records().commit_page(page_from(n, 5000));
  for (auto _ : state) {
    auto month = store->records().records_of_month("2025-04");
    if (static_cast<int64_t>(month.size()) != records) state.SkipWithError("wrong record count");
    benchmark::DoNotOptimize(month.data());
  }
  state.SetItemsProcessed(state.iterations() * records);
  state.counters["peak_rss_MiB"] = bench::peak_rss_mib();
}
BENCHMARK(BM_RecordsOfMonth)->Arg(100000)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_NextBatchAndComplete(benchmark::State& state) {
  const auto batch_items = static_cast<std::size_t>(state.range(0));
  TempDir dir;
  auto store = open_sqlite_storage(dir.file("hub.db"));
  const std::string payload = R"({"record_id":"eoffice:WD-2025-1","revision":1,"scoring":{)"
                              R"("points":1.25,"status":"on_time","rules_version":"kpi-rules/1"}})";
  auto refill = [&] {
    ScoringCommit commit;
    for (int i = 0; i < 20000; ++i) {
      commit.outbox.push_back(
          OutboxItem{0, OutboxKind::record, "eoffice:WD-" + std::to_string(i), payload});
    }
    store->scoring().commit_scoring(commit);
  };
  refill();
  for (auto _ : state) {
    auto batch = store->outbox().next_batch("provincial", batch_items, 4 << 20);
    if (!batch) {
      state.PauseTiming();
      refill();
      state.ResumeTiming();
      batch = store->outbox().next_batch("provincial", batch_items, 4 << 20);
    }
    store->outbox().complete_batch(batch->batch_id, {});
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_items));
  state.counters["peak_rss_MiB"] = bench::peak_rss_mib();
}
BENCHMARK(BM_NextBatchAndComplete)->Arg(200)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kpihub

BENCHMARK_MAIN();
