// The scorer against a real SQLite store, with pages committed between its reads, as the
// hub's ingest thread does while the scorer works: a record's (record_id, sequence) must
// never go out twice with different content, and its sequences must only grow.
#include <kpihub/hub.hpp>
#include <kpihub_test/bundled_reference.hpp>
#include <kpihub_test/manual_clock.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>

#include <sched.h>
#include <boost/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>

using namespace kpihub;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string kConfig = std::string(KPIHUB_SOURCE_DIR) + "/config";

// 2025-05-10: April 2025 is open until its due date, 25 May.
constexpr int64_t kBeforeAprilIsDue = 1746835200000;
// 2025-05-26: April 2025 has closed.
constexpr int64_t kAfterAprilIsDue = 1748217600000;

// Forwards to a real store's scoring state; before and after each staff month the scorer reads,
// runs a hook that may commit a page (as the ingest thread may at that moment).
class InterleavingScoring final : public ScoringState {
 public:
  explicit InterleavingScoring(ScoringState& inner) : inner_(inner) {}
  std::function<void(const StaffMonthKey&)> before_read, after_read;

  // Called with each scoring commit before it reaches the store (may throw: a crash then).
  std::function<void(const ScoringCommit&)> before_commit;

  int month_reads = 0, day_reads = 0;
  // The most records one read of records returned, the most record items one commit queued.
  std::size_t most_records_read = 0, most_records_committed = 0;
  // The most records one batch of a month scan held (about kScanBatchRecords, in whole days).
  std::size_t most_records_scanned = 0;
  int commits = 0;

  StaffMonthForScoring staff_month_for_scoring(const StaffMonthKey& key) override {
    ++month_reads;
    if (before_read) before_read(key);
    auto out = inner_.staff_month_for_scoring(key);
    if (after_read) after_read(key);
    most_records_read = std::max(most_records_read, out.records.size());
    return out;
  }
  StaffMonthForScoring staff_days_for_scoring(const StaffMonthKey& key, DayMask days) override {
    ++day_reads;
    if (before_read) before_read(key);
    auto out = inner_.staff_days_for_scoring(key, days);
    if (after_read) after_read(key);
    most_records_read = std::max(most_records_read, out.records.size());
    return out;
  }
  std::vector<WorkRecord> records_of_staff_days(const StaffMonthKey& k, DayMask days) override {
    auto out = inner_.records_of_staff_days(k, days);
    most_records_read = std::max(most_records_read, out.size());
    return out;
  }
  std::vector<DayCount> records_per_day(const StaffMonthKey& k, DayMask days) override {
    return inner_.records_per_day(k, days);
  }
  void scan_month_for_scoring(const std::string& month, const std::vector<std::string>& split,
                              const PartVisitor& visit) override {
    std::mutex most;
    inner_.scan_month_for_scoring(
        month, split, [&](std::size_t part, const std::string& staff, ScanBatch& batch) {
          {
            std::lock_guard lock(most);
            most_records_scanned = std::max(most_records_scanned, batch.count);
          }
          visit(part, staff, batch);
        });
  }

  std::vector<DirtyStaffMonth> dirty_staff_days(std::size_t n) override {
    return inner_.dirty_staff_days(n);
  }
  std::size_t mark_month_dirty(const std::string& m) override { return inner_.mark_month_dirty(m); }
  std::vector<WorkRecord> records_of_staff_month(const StaffMonthKey& k) override {
    auto out = inner_.records_of_staff_month(k);
    most_records_read = std::max(most_records_read, out.size());
    return out;
  }
  std::vector<std::string> staff_of_month(const std::string& m) override {
    return inner_.staff_of_month(m);
  }
  std::vector<RecordScoreRow> record_scores(const std::vector<std::string>& ids) override {
    return inner_.record_scores(ids);
  }
  std::optional<ScoringCommit::MonthRow> month_row(OutboxKind k, const std::string& m,
                                                   const std::string& c) override {
    return inner_.month_row(k, m, c);
  }
  std::vector<ScoringCommit::MonthRow> month_rows(OutboxKind k, const std::string& m) override {
    return inner_.month_rows(k, m);
  }
  void commit_scoring(const ScoringCommit& c) override {
    if (before_commit) before_commit(c);
    ++commits;
    const auto records = static_cast<std::size_t>(
        std::count_if(c.outbox.begin(), c.outbox.end(),
                      [](const OutboxItem& item) { return item.kind == OutboxKind::record; }));
    most_records_committed = std::max(most_records_committed, records);
    inner_.commit_scoring(c);
  }

 private:
  ScoringState& inner_;
};

WorkRecord diary(const std::string& id, int64_t revision, const std::string& staff,
                 int32_t minutes) {
  WorkRecord r;
  r.source_system = "eoffice";
  r.source_id = id;
  r.record_id = "eoffice:" + id;
  r.revision = revision;
  r.staff_code = staff;
  r.agency_code = "000.00.12.H34";
  r.task_code = "B.03.2";
  r.work_date = *Date::parse("2025-04-08");
  r.declared_minutes = minutes;
  r.quantity = 2;
  r.title = "Xử lý văn bản đến " + id + " r" + std::to_string(revision);
  return r;
}

// Approved work due on 10 April with no completion: it earns points while April is open and
// none, flagged overdue, once April has closed (spec 3, 5.4).
WorkRecord approved_open_task(const std::string& id) {
  WorkRecord r = diary(id, 1, "KH-000123", 60);
  r.deadline = Deadline{};
  r.deadline->date = *Date::parse("2025-04-10");
  r.approval.emplace();
  r.approval->status = ApprovalStatus::approved;
  return r;
}

PageCommit page(std::vector<WorkRecord> records) {
  static int n = 0;
  PageCommit p;
  p.source = "eoffice";
  p.cursor = "page-" + std::to_string(++n);
  p.received_at_unix_ms = 1744100000000;
  p.records = std::move(records);
  return p;
}

// On each store engine (ScorerTest/sqlite, ScorerTest/rocksdb).
class ScorerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kpihub-scorer-" + std::to_string(::getpid()) + "-" + GetParam());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_ = open_store(store_path());
  }
  fs::path store_path() const { return dir_ / test::store_file_name(GetParam()); }
  std::unique_ptr<Storage> open_store(const fs::path& path) const {
    return test::open_test_store(GetParam(), path);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  // Every record item in the outbox, in order: (record_id, sequence) -> payload.
  std::vector<std::pair<std::pair<std::string, int64_t>, std::string>> records_sent() {
    std::vector<std::pair<std::pair<std::string, int64_t>, std::string>> out;
    while (auto batch = store_->outbox().next_batch("provincial", 1000, 1 << 24)) {
      for (const OutboxItem& item : batch->items) {
        if (item.kind != OutboxKind::record) continue;
        const json::object o = json::parse(item.payload).as_object();
        out.push_back(
            {{item.key, o.at("scoring").as_object().at("sequence").as_int64()}, item.payload});
      }
      store_->outbox().complete_batch(batch->batch_id, {});
    }
    return out;
  }

  fs::path dir_;
  std::unique_ptr<Storage> store_;
  ReferenceData ref_ = test::bundled_reference();
  test::ManualClock clock_{kBeforeAprilIsDue};
};

INSTANTIATE_TEST_SUITE_P(Engines, ScorerTest, ::testing::ValuesIn(test::store_engines()),
                         test::engine_name);

// Issue 18: a hospital export puts tens of thousands of credits a month on one lab clinician,
// and the hub held that staff month whole several times over (404 MB for a 200 MB export).
// Three runs' worth of records of one staff month over 28 days.
constexpr std::size_t kLargeMonth = 3 * Scorer::kRecordsPerRun;

void commit_large_month(RecordLog& store) {
  std::vector<WorkRecord> records;
  for (std::size_t i = 0; i < kLargeMonth; ++i) {
    WorkRecord r = diary("LAB-" + std::to_string(100000 + i), 1, "KH-000123",
                         static_cast<int32_t>(5 + i % 40));
    r.work_date = Date{Date::parse("2025-04-01")->days + static_cast<int32_t>(i % 28)};
    if (i % 3 != 0) {
      r.approval.emplace();
      r.approval->status = ApprovalStatus::approved;
    }
    if (i % 7 == 0) r.evidence_ref = "ev-" + std::to_string(i % 11);
    records.push_back(std::move(r));
    if (records.size() == 2000 || i + 1 == kLargeMonth) {
      store.commit_page(page(std::move(records)));
      records.clear();
    }
  }
}

TEST_P(ScorerTest, ALargeStaffMonthIsReadAndCommittedAFewDaysAtATimeWithTheSameScores) {
  commit_large_month(store_->records());
  InterleavingScoring store(store_->scoring());
  Scorer scorer(store, store_->records(), ref_, clock_, "test-hub");
  while (scorer.score_pending().staff_months > 0) {
  }
  // No read holds more than a run's records (each day has under 900), no month scan's batch
  // more than about kScanBatchRecords (whole days), no commit more than kRecordsPerCommit.
  EXPECT_LE(store.most_records_read, Scorer::kRecordsPerRun);
  EXPECT_LE(store.most_records_scanned, ScoringState::kScanBatchRecords + 900);
  EXPECT_LE(store.most_records_committed, Scorer::kRecordsPerCommit);
  EXPECT_GT(store.commits, static_cast<int>(kLargeMonth / Scorer::kRecordsPerCommit));

  // Every record went out once.
  const auto sent = records_sent();
  std::set<std::string> ids;
  // A first version carries the time it was first sent as its sequence (issue 19 section 4).
  const int64_t first = next_send_number(0, clock_.now_unix_ms());
  for (const auto& [key, payload] : sent) {
    EXPECT_EQ(key.second, first) << key.first;
    EXPECT_TRUE(ids.insert(key.first).second) << key.first << " went out twice";
  }
  EXPECT_EQ(ids.size(), kLargeMonth);

  // The staff month is the one scoring all its records at once gives, bit for bit; so is the
  // month recompute's (which scans it in batches of days).
  const Month april = *Month::parse("2025-04");
  const StaffMonthResult whole = scorer.explain_staff_month("KH-000123", april);
  const auto row = store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->json, json::serialize(to_json(whole, first)));
  bool recomputed = false;
  for (const StaffMonthResult& m : scorer.compute_month(april)) {
    if (m.staff_code != "KH-000123") continue;
    recomputed = true;
    EXPECT_EQ(json::serialize(to_json(m, first)), row->json);
  }
  EXPECT_TRUE(recomputed);

  // Scored whole again, it has nothing new to send.
  store_->scoring().mark_month_dirty("2025-04");
  while (scorer.score_pending().staff_months > 0) {
  }
  EXPECT_TRUE(records_sent().empty());
  EXPECT_EQ(store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123")->revision,
            first);
}

// The hub dies between two commits of a large staff month: the records of the committed part
// are not sent again (a later score would carry another scored_at, so another content under
// the same sequence); the others go out once.
TEST_P(ScorerTest, ACrashBetweenTheCommitsOfALargeStaffMonthSendsEveryRecordOnce) {
  commit_large_month(store_->records());
  {
    InterleavingScoring store(store_->scoring());
    store.before_commit = [&](const ScoringCommit&) {
      if (store.commits == 1) throw std::runtime_error("killed");
    };
    Scorer scorer(store, store_->records(), ref_, clock_, "test-hub");
    EXPECT_THROW(scorer.score_pending(), std::runtime_error);
    ASSERT_EQ(store.commits, 1);
  }
  clock_.set(kBeforeAprilIsDue + 60000);
  InterleavingScoring store(store_->scoring());
  Scorer scorer(store, store_->records(), ref_, clock_, "test-hub");
  while (scorer.score_pending().staff_months > 0) {
  }
  std::map<std::pair<std::string, int64_t>, std::string> first_payload;
  std::set<std::string> ids;
  for (const auto& [key, payload] : records_sent()) {
    const auto [it, inserted] = first_payload.emplace(key, payload);
    EXPECT_TRUE(inserted) << key.first << " sequence " << key.second << " went out twice";
    // A first version, numbered by the run that sent it.
    EXPECT_TRUE(key.second == kBeforeAprilIsDue || key.second == kBeforeAprilIsDue + 60000)
        << key.first << " " << key.second;
    ids.insert(key.first);
  }
  EXPECT_EQ(ids.size(), kLargeMonth);
  const auto row = store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->json,
            json::serialize(to_json(
                scorer.explain_staff_month("KH-000123", *Month::parse("2025-04")), row->revision)));
  EXPECT_EQ(row->revision, kBeforeAprilIsDue + 60000);
}

// The scorer reads and scores KH-000123's month; before it reads KH-000124's in the same run,
// a page moves one of KH-000123's records there. Both reads saw the record's last score
// (sequence 1), so both would send sequence 2: with its old staff and with its new one.
TEST_P(ScorerTest, ARecordMovedBetweenTwoReadsOfOneRunGoesOutOnceWithTheNewerContent) {
  store_->records().commit_page(
      page({diary("WD-1", 1, "KH-000123", 60), diary("WD-2", 1, "KH-000124", 60)}));
  InterleavingScoring store(store_->scoring());
  Scorer scorer(store, store_->records(), ref_, clock_, "test-hub");
  while (scorer.score_pending(64).staff_months > 0) {
  }
  // Both staff months dirty again, KH-000123 first (marks are read in the order made).
  store_->records().commit_page(
      page({diary("WD-1", 2, "KH-000123", 90), diary("WD-2", 2, "KH-000124", 90)}));
  bool moved = false;
  store.before_read = [&](const StaffMonthKey& key) {
    if (moved || key.staff_code != "KH-000124") return;
    moved = true;
    store_->records().commit_page(page({diary("WD-1", 3, "KH-000124", 120)}));
  };
  while (scorer.score_pending(64).staff_months > 0) {
  }
  ASSERT_TRUE(moved);

  std::map<std::pair<std::string, int64_t>, std::string> first_payload;
  std::map<std::string, int64_t> last_sequence;
  for (const auto& [key, payload] : records_sent()) {
    const auto [it, inserted] = first_payload.emplace(key, payload);
    EXPECT_TRUE(inserted && it->second == payload)
        << key.first << " sequence " << key.second << " went out twice:\n"
        << it->second << "\n"
        << payload;
    EXPECT_GT(key.second, last_sequence[key.first]) << key.first;
    last_sequence[key.first] = key.second;
  }
  // Its last version says where it is now, and its score is kept there for the next one.
  const auto scores = store_->scoring().record_scores({"eoffice:WD-1"});
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_EQ(scores[0].revision, 3);
  EXPECT_EQ(scores[0].sequence, last_sequence["eoffice:WD-1"]);
  const auto where = store_->scoring().staff_month_for_scoring({"KH-000124", "2025-04"});
  EXPECT_EQ(where.records.size(), 2u);
}

// A page revises a record between the scorer's read of its staff month and its commit: the
// older revision is not sent with the newer record's fields; the next run sends the newer.
// Once as a staff month's first scoring (its rows read in one range), once as a revision of
// one record among several (read by key).
TEST_P(ScorerTest, ARecordRevisedAfterTheReadIsSentByTheNextRunWithItsOwnScore) {
  InterleavingScoring store(store_->scoring());
  Scorer scorer(store, store_->records(), ref_, clock_, "test-hub");
  const auto check = [&](int64_t revision, int32_t minutes) {
    const auto sent = records_sent();
    ASSERT_FALSE(sent.empty());
    for (const auto& [key, payload] : sent) {
      if (key.first != "eoffice:WD-1") continue;
      const json::object o = json::parse(payload).as_object();
      // Fields and score of the same revision.
      EXPECT_EQ(o.at("revision").as_int64(), revision) << payload;
      EXPECT_EQ(o.at("declared_minutes").as_int64(), minutes) << payload;
    }
  };
  int64_t revision = 1;
  int32_t minutes = 60;
  store.after_read = [&](const StaffMonthKey&) {
    if (revision % 2 == 0) return;
    ++revision;
    minutes /= 2;
    store_->records().commit_page(page({diary("WD-1", revision, "KH-000123", minutes)}));
  };
  store_->records().commit_page(
      page({diary("WD-1", 1, "KH-000123", 60), diary("WD-2", 1, "KH-000123", 60),
            diary("WD-3", 1, "KH-000123", 60), diary("WD-4", 1, "KH-000123", 60),
            diary("WD-5", 1, "KH-000123", 60)}));
  while (scorer.score_pending(64).staff_months > 0) {
  }
  ASSERT_EQ(revision, 2);
  check(2, 30);

  ++revision;  // 3: the page below; the hook then commits 4 after the scorer's read
  minutes = 40;
  store_->records().commit_page(page({diary("WD-1", revision, "KH-000123", minutes)}));
  while (scorer.score_pending(64).staff_months > 0) {
  }
  ASSERT_EQ(revision, 4);
  check(4, 20);
  // The second version sent: one above the first, both numbered at the same (test) time.
  EXPECT_EQ(store_->scoring().record_scores({"eoffice:WD-1"})[0].sequence,
            next_send_number(next_send_number(0, clock_.now_unix_ms()), clock_.now_unix_ms()));
}

// Issue 19 section 4: after a store was restored from a backup, the hub handed out record
// sequences and month revisions it had already sent after the backup (with other content), and
// the receiver kept what it had. Numbers sent after the restore are above every one sent
// before it.
TEST_P(ScorerTest, NumbersSentAfterARestoreAreAboveEveryOneSentBeforeIt) {
  const fs::path path = store_path();
  const fs::path backup = dir_ / "backup";
  struct Sent {
    int64_t sequence;
    int64_t month_revision;
  };
  const auto score = [&](int64_t revision, int32_t minutes) {
    WorkRecord r = diary("WD-1", revision, "KH-000123", minutes);
    r.approval.emplace();  // so that its minutes count in the month's summary
    r.approval->status = ApprovalStatus::approved;
    store_->records().commit_page(page({r}));
    Scorer scorer(store_->scoring(), store_->records(), ref_, clock_, "test-hub");
    while (scorer.score_pending().staff_months > 0) {
    }
    records_sent();
    return Sent{
        store_->scoring().record_scores({"eoffice:WD-1"}).at(0).sequence,
        store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123")->revision};
  };
  const auto reopen = [&](const std::function<void()>& with_the_store_closed) {
    store_.reset();  // the last close folds the WAL into the file
    with_the_store_closed();
    store_ = open_store(path);
  };

  score(1, 60);
  reopen([&] { fs::copy(path, backup, fs::copy_options::recursive); });  // a file or a folder
  clock_.set(kBeforeAprilIsDue + 3'600'000);
  const Sent after_backup = score(2, 30);
  reopen([&] {
    fs::remove_all(path);
    fs::copy(backup, path, fs::copy_options::recursive);
  });
  clock_.set(kBeforeAprilIsDue + 7'200'000);
  const Sent after_restore = score(2, 45);  // the source's revision 2 as it is now
  EXPECT_GT(after_restore.sequence, after_backup.sequence);
  EXPECT_GT(after_restore.month_revision, after_backup.month_revision);
}

// Issue 19 section 4: after a restore the receiver may hold versions the restored store does not
// know it sent, and a rescore sends only what changed since the store's last send. `kpihub
// resend` scores with Send::everything: every record, staff month and agency month of the month
// goes out again, the same content under numbers above the earlier ones.
TEST_P(ScorerTest, ResendingAMonthSendsEveryItemAgainWithTheSameContentAndHigherNumbers) {
  std::vector<WorkRecord> records;
  for (int i = 0; i < 12; ++i) {
    WorkRecord r = diary("WD-" + std::to_string(i), 1, i % 2 ? "KH-000123" : "KH-000124", 30 + i);
    r.work_date = *Date::parse("2025-04-0" + std::to_string(1 + i % 9));
    records.push_back(r);
  }
  store_->records().commit_page(page(records));
  // key -> (number, content without the number and the time it was scored)
  using Sent = std::map<std::string, std::pair<int64_t, std::string>>;
  const auto drain = [&] {
    Sent out;
    while (auto batch = store_->outbox().next_batch("provincial", 1000, 1 << 24)) {
      for (const OutboxItem& item : batch->items) {
        json::object o = json::parse(item.payload).as_object();
        int64_t number = 0;
        if (item.kind == OutboxKind::record) {
          number = o.at("scoring").as_object().at("sequence").as_int64();
          o.at("scoring").as_object().erase("sequence");
        } else {
          number = o.at("revision").as_int64();
          o.erase("revision");
        }
        o.erase("scored_at");  // when it was scored: later for the resend, as it should be
        out[item.key] = {number, json::serialize(o)};
      }
      store_->outbox().complete_batch(batch->batch_id, {});
    }
    return out;
  };
  const auto score = [&](Scorer::Send send) {
    Scorer scorer(store_->scoring(), store_->records(), ref_, clock_, "test-hub", nullptr, nullptr,
                  send);
    while (scorer.score_pending().staff_months > 0) {
    }
  };
  score(Scorer::Send::changed);
  const Sent first = drain();
  ASSERT_EQ(std::count_if(first.begin(), first.end(),
                          [](const auto& e) { return e.first.rfind("staff:", 0) == 0; }),
            2);
  ASSERT_GT(first.size(), 14u);  // 12 records, 2 staff months, their agency months
  // A rescore of what did not change sends nothing: what the receiver holds is not looked at.
  clock_.set(clock_.now_unix_ms() + 60'000);
  store_->scoring().mark_month_dirty("2025-04");
  score(Scorer::Send::changed);
  EXPECT_TRUE(drain().empty());
  // A resend sends everything again.
  clock_.set(clock_.now_unix_ms() + 60'000);
  store_->scoring().mark_month_dirty("2025-04");
  score(Scorer::Send::everything);
  const Sent again = drain();
  ASSERT_EQ(again.size(), first.size());
  for (const auto& [key, sent] : first) {
    const auto it = again.find(key);
    ASSERT_NE(it, again.end()) << key << " was not sent again";
    EXPECT_GT(it->second.first, sent.first) << key;
    EXPECT_EQ(it->second.second, sent.second) << key;
  }
}

// With "today" set, the scoring clock is the configured day; the numbers must still come from
// the real clock, or they would move back a day for each day the hub ran with the same "today"
// (review of issue 19 section 4).
TEST_P(ScorerTest, NumbersComeFromTheRealClockNotTheConfiguredDay) {
  test::ManualClock real{kBeforeAprilIsDue + 86'400'000LL * 200};
  Scorer scorer(store_->scoring(), store_->records(), ref_, clock_, "test-hub", nullptr, &real);
  store_->records().commit_page(page({diary("WD-1", 1, "KH-000123", 60)}));
  while (scorer.score_pending().staff_months > 0) {
  }
  EXPECT_EQ(store_->scoring().record_scores({"eoffice:WD-1"}).at(0).sequence, real.now_unix_ms());
  EXPECT_EQ(store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123")->revision,
            real.now_unix_ms());
}

// Issue 8, part 3: a page rescores only the days it touched, folded with the stored totals of
// the others. Random pages (new records, revisions that change minutes, approval, date, staff,
// retractions, leave) scored page by page must leave exactly what scoring every staff month
// whole leaves: a whole rescore afterwards sends nothing, and each stored staff month equals
// the month computed from scratch.
TEST_P(ScorerTest, RescoringTheChangedDaysLeavesWhatAWholeRescoreWould) {
  InterleavingScoring store(store_->scoring());
  Scorer scorer(store, store_->records(), ref_, clock_, "test-hub");
  std::mt19937 rng(42);
  const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::vector<std::string> staff = {"KH-000123", "KH-000124", "KH-000010"};
  const std::vector<std::string> tasks = {"B.03.2", "A.01", "D.01", "D.LEAVE"};
  std::map<std::string, WorkRecord> current;
  for (int p = 0; p < 40; ++p) {
    std::vector<WorkRecord> records;
    for (int i = 0, n = 1 + pick(12); i < n; ++i) {
      const std::string id = "WD-" + std::to_string(pick(60));
      auto it = current.find("eoffice:" + id);
      WorkRecord r = it == current.end()
                         ? diary(id, 0, staff[static_cast<std::size_t>(pick(3))], 60)
                         : it->second;
      r.revision += 1;
      r.declared_minutes = 30 + pick(300);
      r.quantity = pick(6);
      r.task_code = tasks[static_cast<std::size_t>(pick(10) == 0 ? 3 : pick(3))];
      if (pick(4) == 0) {
        r.work_date = Date::from_ymd(2025, 4, static_cast<unsigned>(1 + pick(30)));
      }
      if (pick(8) == 0) r.staff_code = staff[static_cast<std::size_t>(pick(3))];
      r.retracted = pick(12) == 0;
      r.approval.emplace();
      r.approval->status = pick(3) == 0 ? ApprovalStatus::pending : ApprovalStatus::approved;
      current[r.record_id] = r;
      records.push_back(std::move(r));
    }
    store_->records().commit_page(page(std::move(records)));
    if (pick(3) != 0) {
      while (scorer.score_pending(2).staff_months > 0) {
      }
    }
  }
  while (scorer.score_pending(64).staff_months > 0) {
  }
  EXPECT_GT(store.day_reads, 40) << "the changed days were read, not whole staff months";
  EXPECT_LE(store.month_reads, 3) << "each staff month is read whole once, for its first totals";
  records_sent();  // drained: only what a whole rescore sends is looked at below

  const Month april{2025, 4};
  std::map<std::string, std::string> fresh;
  for (const StaffMonthResult& m : scorer.compute_month(april)) {
    fresh[m.staff_code] = json::serialize(to_json(m, 0));
  }
  std::map<std::string, std::string> stored;
  for (const auto& row : store_->scoring().month_rows(OutboxKind::staff_month, "2025-04")) {
    json::object o = json::parse(row.json).as_object();
    o["revision"] = 0;
    stored[row.code] = json::serialize(o);
  }
  EXPECT_EQ(stored, fresh);

  ASSERT_EQ(store_->scoring().mark_month_dirty("2025-04"), 3u);
  ScoringRunResult whole;
  for (;;) {
    const ScoringRunResult run = scorer.score_pending(64);
    if (run.staff_months == 0) break;
    whole.records_sent += run.records_sent;
    whole.staff_months_sent += run.staff_months_sent;
    whole.agency_months_sent += run.agency_months_sent;
  }
  EXPECT_EQ(whole.records_sent, 0u);
  EXPECT_EQ(whole.staff_months_sent, 0u);
  EXPECT_EQ(whole.agency_months_sent, 0u);
  EXPECT_TRUE(records_sent().empty());
}

// A province changes its rules (a new version) and a page arrives before anyone runs
// `rescore`: the staff month it touches is scored whole under the new rules, never folded from
// days scored under both.
TEST_P(ScorerTest, DayTotalsOfOtherRulesAreNotFolded) {
  store_->records().commit_page(
      page({diary("WD-1", 1, "KH-000123", 60), diary("WD-2", 1, "KH-000123", 60)}));
  {
    Scorer scorer(store_->scoring(), store_->records(), ref_, clock_, "test-hub");
    while (scorer.score_pending().staff_months > 0) {
    }
  }
  ReferenceData changed = ref_;
  changed.rules.version = "kpi-rules/1-khanh-hoa-2025-06";
  changed.rules.quality_none = 0.5;
  InterleavingScoring store(store_->scoring());
  Scorer scorer(store, store_->records(), changed, clock_, "test-hub");
  WorkRecord other_day = diary("WD-3", 1, "KH-000123", 60);
  other_day.work_date = *Date::parse("2025-04-09");
  store_->records().commit_page(page({other_day}));
  while (scorer.score_pending().staff_months > 0) {
  }
  EXPECT_EQ(store.month_reads, 1) << "scored whole";
  EXPECT_EQ(store.day_reads, 1) << "the changed day was read first, then found of other rules";
  const auto fresh = scorer.compute_month(Month{2025, 4});
  ASSERT_EQ(fresh.size(), 1u);
  const auto row = store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->json, json::serialize(to_json(fresh[0], row->revision)));
  EXPECT_EQ(json::parse(row->json).at("rules_version"), "kpi-rules/1-khanh-hoa-2025-06");
}

// Found in review: a month closes (its due date passes) while nothing rescored it whole, here
// because the hub restarted after the due date, so refresh_time_dependent never saw it open.
// A page then changes one day. The other days' totals were computed while the month was open
// (a record with a deadline and no completion earned points); folding them with the changed
// day would send a month that is neither. The staff month is scored whole instead.
TEST_P(ScorerTest, DayTotalsFromBeforeTheDueDateAreNotFoldedAfterIt) {
  const WorkRecord open_task = approved_open_task("WD-1");
  WorkRecord other_day = diary("WD-2", 1, "KH-000123", 60);
  other_day.work_date = *Date::parse("2025-04-09");
  store_->records().commit_page(page({open_task, other_day}));
  test::ManualClock clock(kBeforeAprilIsDue);
  {
    Scorer scorer(store_->scoring(), store_->records(), ref_, clock, "test-hub");
    while (scorer.score_pending().staff_months > 0) {
    }
  }
  clock.set(kAfterAprilIsDue);  // a new process
  Scorer scorer(store_->scoring(), store_->records(), ref_, clock, "test-hub");
  scorer.refresh_time_dependent();
  other_day.revision = 2;
  other_day.declared_minutes = 90;
  store_->records().commit_page(page({other_day}));
  while (scorer.score_pending().staff_months > 0) {
  }

  const auto fresh = scorer.compute_month(Month{2025, 4});
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].flags.overdue, 1);
  const auto row = store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->json, json::serialize(to_json(fresh[0], row->revision)));
  const auto scores = store_->scoring().record_scores({"eoffice:WD-1"});
  ASSERT_EQ(scores.size(), 1u);
  // The last version sent of the record is the overdue one, and it is the one the store keeps.
  std::string last_sent;
  for (const auto& [key, payload] : records_sent()) {
    if (key == std::pair<std::string, int64_t>{"eoffice:WD-1", scores[0].sequence}) {
      last_sent = payload;
    }
  }
  ASSERT_FALSE(last_sent.empty()) << "the score the store keeps was never sent";
  EXPECT_NE(json::serialize(json::parse(last_sent).at("scoring").at("flags")).find("overdue"),
            std::string::npos)
      << last_sent;
}

// A month closes while no scorer runs (the hub is down at the due date, or runs only
// `run --once`) and nothing in it changes afterwards: the next scorer still rescores it, so
// its agency months leave `open` and records without completion become overdue.
// run --once reports the scoring stage's CPU; a recompute reads and scores on more threads
// than the caller's, and what they use must be counted too.
TEST_P(ScorerTest, AMonthRecomputeReportsTheCpuOfItsOtherThreads) {
  std::vector<WorkRecord> records;
  for (const char* staff : {"KH-000010", "KH-000123", "KH-000308"}) {  // both ends
    for (int i = 0; i < 50; ++i) {
      records.push_back(diary(std::string(staff) + "-" + std::to_string(i), 1, staff, 60));
    }
  }
  store_->records().commit_page(page(std::move(records)));
  Scorer scorer(store_->scoring(), store_->records(), ref_, clock_, "test-hub");
  EXPECT_EQ(scorer.take_helper_cpu_seconds(), 0.0);
  ASSERT_EQ(scorer.compute_month(Month{2025, 4}).size(), 3u);
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  if (CPU_COUNT(&allowed) > 1) {
    EXPECT_GT(scorer.take_helper_cpu_seconds(), 0.0) << "parts on other threads";
  } else {
    EXPECT_EQ(scorer.take_helper_cpu_seconds(), 0.0) << "one core: one part, the caller's";
  }
  EXPECT_EQ(scorer.take_helper_cpu_seconds(), 0.0) << "taken once";
}

// Hub::explain recomputes a staff month while source threads may merge a staff list into the
// directory: it reads the directory under the lock they write it under (issue 18).
TEST_P(ScorerTest, ExplainWaitsForAStaffListBeingMergedIntoTheDirectory) {
  store_->records().commit_page(page({diary("WD-1", 1, "KH-000123", 60)}));
  std::shared_mutex directory_lock;
  Scorer scorer(store_->scoring(), store_->records(), ref_, clock_, "test-hub", &directory_lock);
  std::unique_lock merging(directory_lock);  // a source thread merging its staff list
  auto explained = std::async(std::launch::async, [&] {
    return scorer.explain_staff_month("KH-000123", *Month::parse("2025-04"));
  });
  EXPECT_EQ(explained.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "explain read the directory while a staff list was merged into it";
  merging.unlock();
  const StaffMonthResult result = explained.get();
  EXPECT_EQ(result.staff_code, "KH-000123");
  EXPECT_EQ(result.agency_code, "000.00.12.H34");
}

TEST_P(ScorerTest, AMonthThatClosedWhileNoScorerRanIsRescored) {
  const WorkRecord open_task = approved_open_task("WD-1");
  store_->records().commit_page(page({open_task}));
  test::ManualClock clock(kBeforeAprilIsDue);
  {
    Scorer scorer(store_->scoring(), store_->records(), ref_, clock, "test-hub");
    scorer.refresh_time_dependent();
    while (scorer.score_pending().staff_months > 0) {
    }
  }
  const auto agency = [&] {
    return json::parse(store_->scoring()
                           .month_row(OutboxKind::agency_month, "2025-04", "000.00.12.H34")
                           ->json)
        .as_object();
  };
  ASSERT_EQ(agency().at("status"), "open");

  clock.set(kAfterAprilIsDue);  // a new process, no new records
  Scorer scorer(store_->scoring(), store_->records(), ref_, clock, "test-hub");
  scorer.refresh_time_dependent();
  while (scorer.score_pending().staff_months > 0) {
  }
  EXPECT_EQ(agency().at("status"), "on_time");
  const auto fresh = scorer.compute_month(Month{2025, 4});
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].flags.overdue, 1);
  const auto row = store_->scoring().month_row(OutboxKind::staff_month, "2025-04", "KH-000123");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->json, json::serialize(to_json(fresh[0], row->revision)));

  // Once rescored closed, a later scorer finds nothing to do.
  Scorer later(store_->scoring(), store_->records(), ref_, clock, "test-hub");
  later.refresh_time_dependent();
  EXPECT_EQ(later.score_pending().staff_months, 0u);
}

}  // namespace

// The one directory every command scores with: the staff files, then the stored staff lists,
// oldest first. A list's word on a person replaces the file's agency and leader flag; the
// file's sector and identifiers stay (issue 18).
TEST_P(ScorerTest, TheDirectoryIsTheStaffFilesWithTheStoredStaffListsOverThem) {
  HubConfig config;
  config.catalog_files = {kConfig + "/catalog/province.csv", kConfig + "/catalog/education.csv"};
  config.staff_files = {kConfig + "/staff.csv", kConfig + "/staff-education.csv"};
  config.units_files = {kConfig + "/units.csv", kConfig + "/units-education.csv"};
  config.rules_file = kConfig + "/rules.json";
  config.holiday_files = {kConfig + "/holidays/2025.csv"};
  const ReferenceData files_only = load_reference(config, store_->staff_lists());
  ASSERT_EQ(files_only.directory.size(), load_reference(config).directory.size());
  ASSERT_EQ(files_only.directory.staff("GD-000003")->sector, "education");
  ASSERT_FALSE(files_only.directory.staff("GD-000003")->leader);

  store_->staff_lists().save_synced_staff(
      "eoffice", {{"eoffice", "GD-000003", "Huỳnh Quốc Linh", "000.00.61.H34", true, true, 1000},
                  {"eoffice", "KH-900001", "Lãnh đạo mới", "000.00.12.H34", true, true, 1000},
                  {"eoffice", "KH-000123", "Trần Văn Bình", "000.00.13.H34", false, true, 1000}});
  store_->staff_lists().save_synced_staff(
      "hr", {{"hr", "KH-000123", "Trần Văn Bình", "000.00.14.H34", false, false, 2000}});
  const ReferenceData merged = load_reference(config, store_->staff_lists());
  EXPECT_EQ(merged.directory.size(), files_only.directory.size() + 1);
  const StaffInfo* teacher = merged.directory.by_identifier("GV-001-0003");
  ASSERT_NE(teacher, nullptr);
  EXPECT_EQ(teacher->staff_code, "GD-000003");
  EXPECT_TRUE(teacher->leader);
  EXPECT_EQ(teacher->agency_code, "000.00.61.H34");
  EXPECT_EQ(teacher->sector, "education");
  const StaffInfo* leader = merged.directory.staff("KH-900001");
  ASSERT_NE(leader, nullptr);
  EXPECT_TRUE(leader->leader);
  EXPECT_EQ(leader->sector, "");
  // The later list has the last word.
  EXPECT_EQ(merged.directory.staff("KH-000123")->agency_code, "000.00.14.H34");
  EXPECT_FALSE(merged.directory.staff("KH-000123")->active);
}

// A source's later list that no longer names someone says they left: they are inactive in the
// directory every command builds, as if the source had listed them inactive; their entry (with
// when the source last listed them) stays.
TEST_P(ScorerTest, StaffALaterListOfTheSameSourceNoLongerNamesAreInactive) {
  HubConfig config;
  config.catalog_files = {kConfig + "/catalog/province.csv"};
  config.staff_files = {kConfig + "/staff.csv"};
  config.units_files = {kConfig + "/units.csv"};
  config.rules_file = kConfig + "/rules.json";
  config.holiday_files = {kConfig + "/holidays/2025.csv"};
  const SyncedStaff a{"eoffice", "KH-900001", "Nguyễn Văn A", "000.00.12.H34", true, true, 1000};
  const SyncedStaff b{"eoffice", "KH-900002", "Trần Thị B", "000.00.77.H34", false, true, 1000};
  store_->staff_lists().save_synced_staff("eoffice", {a, b});
  ASSERT_TRUE(load_reference(config, store_->staff_lists()).directory.staff("KH-900002")->active);

  SyncedStaff a_again = a;
  a_again.synced_at_unix_ms = 2000;
  store_->staff_lists().save_synced_staff("eoffice", {a_again});
  const ReferenceData merged = load_reference(config, store_->staff_lists());
  ASSERT_NE(merged.directory.staff("KH-900002"), nullptr);
  EXPECT_FALSE(merged.directory.staff("KH-900002")->active);
  EXPECT_EQ(merged.directory.staff("KH-900002")->agency_code, "000.00.77.H34");
  EXPECT_TRUE(merged.directory.staff("KH-900001")->active);
  SyncedStaff b_left = b;
  b_left.active = false;
  EXPECT_EQ(store_->staff_lists().synced_staff(), (std::vector<SyncedStaff>{b_left, a_again}));

  // Another source's list leaves the first source's entries as they are.
  store_->staff_lists().save_synced_staff(
      "hr", {{"hr", "KH-900003", "Lê Văn C", "000.00.12.H34", false, true, 3000}});
  EXPECT_TRUE(load_reference(config, store_->staff_lists()).directory.staff("KH-900001")->active);
}

// scoring.md 5.4 (2026-12-07): a revision is submitted when its source recorded it
// (changed_at) unless that is later than when the hub received it. A hub back-filling April
// after its due date must not flag April's on-time work late; work changed after the due date
// is late. The scorer reads the records from the store, which used to leave changed_at out.
TEST_P(ScorerTest, WorkTheSourceRecordedBeforeTheDueDateIsNotLateWhenTheHubReceivesItAfter) {
  WorkRecord on_time = diary("WD-ON-TIME", 1, "KH-000123", 60);
  on_time.changed_at = Timestamp::parse("2025-04-20T10:00:00+07:00");
  WorkRecord changed_late = diary("WD-CHANGED-LATE", 1, "KH-000123", 60);
  changed_late.changed_at = Timestamp::parse("2025-05-26T10:00:00+07:00");
  WorkRecord unstamped = diary("WD-UNSTAMPED", 1, "KH-000123", 60);
  PageCommit backfill = page({on_time, changed_late, unstamped});
  backfill.received_at_unix_ms = kAfterAprilIsDue;  // the hub was down over the 25th
  store_->records().commit_page(backfill);

  test::ManualClock clock(kAfterAprilIsDue);
  Scorer scorer(store_->scoring(), store_->records(), ref_, clock, "test-hub");
  scorer.refresh_time_dependent();
  while (scorer.score_pending().staff_months > 0) {
  }
  std::map<std::string, bool> late;
  for (const auto& [key, payload] : records_sent()) {
    const json::value sent = json::parse(payload);
    const json::array& flags = sent.at("scoring").at("flags").as_array();
    late[key.first] =
        std::find(flags.begin(), flags.end(), json::value("late_submission")) != flags.end();
  }
  EXPECT_EQ(late, (std::map<std::string, bool>{{"eoffice:WD-ON-TIME", false},
                                               {"eoffice:WD-CHANGED-LATE", true},
                                               {"eoffice:WD-UNSTAMPED", true}}));
}
