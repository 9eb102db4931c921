// Scoring throughput: a province-sized month (7,000 staff x ~210 records, about
// 1.5 million records) scored staff month by staff month. Target: under 2 s.
#include <kpihub/model_json.hpp>
#include <kpihub/scoring.hpp>

#include <benchmark/benchmark.h>
#include <kpihub_bench/support.hpp>

#include <algorithm>
#include <random>

namespace kpihub {
namespace {

constexpr int kStaff = 7000;
constexpr int kRecordsPerStaff = 210;
constexpr int kAgencies = 53;
constexpr Month kMonth{2025, 4};

struct StaffData {
  StaffInfo staff;
  std::vector<WorkRecord> records;
  std::vector<int64_t> received_at_ms;
};

struct Province {
  Catalog catalog;
  HolidayCalendar calendar;
  Rules rules;
  std::vector<StaffData> staff;
  std::size_t records = 0;
};

CatalogItem item(std::string code, std::string group, Measure measure, double standard_minutes,
                 double coefficient, bool leave = false) {
  CatalogItem i;
  i.code = std::move(code);
  i.group = std::move(group);
  i.measure = measure;
  i.standard_minutes = standard_minutes;
  i.coefficient = coefficient;
  i.leave = leave;
  return i;
}

// Records shaped like real diaries: mostly E-Office, some school and hospital
// records, a few of them the same work seen twice, a mix of approval states.
const Province& province() {
  static const Province p = [] {
    Province p;
    p.catalog.version = "2025.04";
    std::vector<std::string> tasks;
    for (int i = 0; i < 40; ++i) {
      const bool product = i % 3 != 0;
      std::string code = "B.0" + std::to_string(i / 10) + "." + std::to_string(i % 10);
      p.catalog.add(item(code, i < 20 ? "B" : "C", product ? Measure::product : Measure::time,
                         product ? 10.0 + i : 0, 1.0 + (i % 5) * 0.1));
      tasks.push_back(code);
    }
    p.catalog.add(item("LEAVE", "D", Measure::time, 0, 1.0, true));
    p.calendar.add(Date::from_ymd(2025, 4, 7), "Hung Kings Commemoration");
    p.calendar.add(Date::from_ymd(2025, 4, 30), "Reunification Day");

    std::mt19937 rng(42);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    const int64_t due_ms = due_unix_seconds(kMonth, p.rules) * 1000;
    const Date first = kMonth.first_day();
    p.staff.resize(kStaff);
    for (int s = 0; s < kStaff; ++s) {
      StaffData& d = p.staff[static_cast<std::size_t>(s)];
      d.staff.staff_code = "KH-" + std::to_string(100000 + s);
      d.staff.agency_code = "000.00." + std::to_string(10 + s % kAgencies) + ".H34";
      d.staff.leader = s % 12 == 0;
      const int n = kRecordsPerStaff - 10 + pick(21);
      d.records.reserve(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) {
        WorkRecord r;
        const int src = pick(10);
        r.source_system = src < 8 ? "eoffice" : src == 8 ? "education" : "health";
        r.source_id = "WD-2025-" + std::to_string(s * 1000 + i);
        r.record_id = r.source_system + ":" + r.source_id;
        r.revision = 1 + pick(3);
        r.retracted = pick(100) == 0;
        r.staff_code = d.staff.staff_code;
        r.agency_code = d.staff.agency_code;
        r.task_code = pick(200) == 0 ? "LEAVE" : tasks[static_cast<std::size_t>(pick(40))];
        r.work_date = Date{first.days + pick(30)};
        r.declared_minutes = 10 + pick(90);
        r.quantity = 1 + pick(4);
        if (pick(4) == 0) r.evidence_ref = "EV-" + std::to_string(pick(30));
        if (pick(3) == 0) {
          r.deadline.emplace();
          r.deadline->date = Date{r.work_date.days + pick(5)};
          r.completed_at =
              Timestamp{static_cast<int64_t>(r.work_date.days) * 86400 + pick(8 * 86400), 420};
        }
        const int st = pick(20);
        r.approval.emplace();
        r.approval->status = st < 16   ? ApprovalStatus::approved
                             : st < 18 ? ApprovalStatus::pending
                             : st < 19 ? ApprovalStatus::returned
                                       : ApprovalStatus::rejected;
        if (pick(2) == 0) r.approval->rating = static_cast<Rating>(pick(3));
        d.records.push_back(std::move(r));
        d.received_at_ms.push_back(due_ms - 86400000LL * (1 + pick(40)) +
                                   (pick(50) == 0 ? 90 * 86400000LL : 0));
      }
      p.records += d.records.size();
    }
    return p;
  }();
  return p;
}

StaffMonthInput input_for(const Province& p, const StaffData& d, Timestamp now) {
  StaffMonthInput in;
  in.staff = d.staff;
  in.month = kMonth;
  in.records = d.records;
  in.received_at_ms = d.received_at_ms;
  in.catalog = &p.catalog;
  in.calendar = &p.calendar;
  in.rules = &p.rules;
  in.now = now;
  return in;
}

const Timestamp kNow{due_unix_seconds(kMonth, Rules{}) + 86400, 420};

// The whole province's month, one staff month at a time, results dropped as we go.
void BM_ScoreProvinceMonth(benchmark::State& state) {
  const Province& p = province();
  for (auto _ : state) {
    double total = 0;
    for (const StaffData& d : p.staff) {
      const StaffMonthResult m = score_staff_month(input_for(p, d, kNow));
      total += m.points;
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(p.records));
  state.counters["records"] = static_cast<double>(p.records);
  state.counters["peak_rss_mb"] = bench::peak_rss_mib();
}
BENCHMARK(BM_ScoreProvinceMonth)->Unit(benchmark::kMillisecond)->UseRealTime();

// One staff month (~210 records): the unit the pipeline recomputes per new record.
void BM_ScoreOneStaffMonth(benchmark::State& state) {
  const Province& p = province();
  const StaffData& d = p.staff.front();
  for (auto _ : state) {
    StaffMonthResult m = score_staff_month(input_for(p, d, kNow));
    benchmark::DoNotOptimize(m.points);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(d.records.size()));
}
BENCHMARK(BM_ScoreOneStaffMonth);

// Agency summaries over all 7,000 staff months of the month.
void BM_AgencyMonths(benchmark::State& state) {
  const Province& p = province();
  std::vector<StaffMonthResult> months;
  months.reserve(p.staff.size());
  for (const StaffData& d : p.staff) {
    StaffMonthResult m = score_staff_month(input_for(p, d, kNow));
    m.scored.clear();  // agency summaries need the month figures only
    m.scored.shrink_to_fit();
    months.push_back(std::move(m));
  }
  for (auto _ : state) {
    auto agencies = agency_months(months, kMonth, {}, kNow, {}, p.rules);
    benchmark::DoNotOptimize(agencies.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(months.size()));
  state.counters["peak_rss_mb"] = bench::peak_rss_mib();
}
BENCHMARK(BM_AgencyMonths)->Unit(benchmark::kMillisecond);

// The receiver's items: each scored record's JSON payload and the text of its `scoring` (what
// the store's digest is taken of), built by the scorer's writer (the sink later splices the
// payloads into a batch body without parsing).
void BM_SerializeRecordPayloads(benchmark::State& state) {
  const Province& p = province();
  const StaffData& d = p.staff.front();
  const StaffMonthResult m = score_staff_month(input_for(p, d, kNow));
  std::size_t bytes = 0;
  ScoredRecordWriter writer;
  for (auto _ : state) {
    for (std::size_t i = 0; i < std::min(m.scored.size(), d.records.size()); ++i) {
      // What the scorer writes for a record it sends: the text its digest is taken of, then the
      // receiver's item.
      benchmark::DoNotOptimize(writer.scoring_text(m.scored[i].scoring).data());
      const std::string text = writer.payload(d.records[i], m.scored[i].scoring, 1, "bench-hub",
                                              "2025-05-10T08:00:00+07:00");
      bytes += text.size();
      benchmark::DoNotOptimize(text.data());
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(m.scored.size()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_SerializeRecordPayloads);

}  // namespace
}  // namespace kpihub

BENCHMARK_MAIN();
