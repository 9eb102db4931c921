// `kpihub store copy` (issue 20): a store made through the seams on one engine, copied into a
// new store of another, holds the same records (every field, when each was received), cursors,
// quarantine, scores, month rows, day totals, synced staff lists and the same staff months
// waiting to be rescored; a non-empty destination and an undelivered outbox are refused.
#include <kpihub/store/copy.hpp>
#include <kpihub/store/rocksdb.hpp>
#include <kpihub/store/sqlite.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>

namespace kpihub {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kApril9 = 1744185600000;  // 2025-04-09T08:00:00Z, a page's time

Timestamp ts(const char* text) {
  return Timestamp::parse(text).value();
}

WorkRecord record(const std::string& source, const std::string& id, int64_t revision,
                  const std::string& staff, const char* date) {
  WorkRecord r;
  r.source_system = source;
  r.source_id = id;
  r.record_id = source + ":" + id;
  r.revision = revision;
  r.staff_code = staff;
  r.source_staff_id = "u-" + staff;
  r.agency_code = "SO-NV";
  r.task_code = "VB-DEN";
  r.work_date = *Date::parse(date);
  r.declared_minutes = 45 + static_cast<int32_t>(revision);
  r.quantity = 2.75;
  r.product_unit = "văn bản";
  r.title = "Xử lý công văn " + id;
  r.evidence_ref = "https://eoffice.example.vn/vb/" + id;
  r.deadline = Deadline{std::nullopt, ts("2025-04-10T17:00:00+07:00")};
  r.completed_at = ts("2025-04-09T15:30:00+07:00");
  r.approval = Approval{ApprovalStatus::approved, Rating::good, "Nguyễn Thị Hằng",
                        ts("2025-04-09T16:00:00+07:00")};
  r.changed_at = ts("2025-04-09T09:00:00Z");
  r.attributes = {{"document_type", "incoming"}, {"ghi_chú", "khẩn"}};
  return r;
}

PageCommit page(const std::string& source, std::vector<WorkRecord> records, int64_t at,
                std::optional<std::string> cursor = {}) {
  PageCommit p;
  p.source = source;
  p.records = std::move(records);
  p.received_at_unix_ms = at;
  p.cursor = std::move(cursor);
  return p;
}

QuarantineEntry quarantined(const std::string& source, const std::string& id,
                            const std::string& revision) {
  QuarantineEntry q;
  q.source_system = source;
  q.source_id = id;
  q.record_id = id.empty() ? "" : source + ":" + id;
  q.reason = Reason::unknown_staff;
  q.field = "staff_code";
  q.message = "staff_code: \"KH-9\" is not in the staff directory";
  q.payload = R"({"id": ")" + id + R"("})";
  q.location = "page 3, item 7";
  if (!revision.empty()) q.fields = R"({"revision": ")" + revision + R"("})";
  return q;
}

// The parameter: "<engine of the source> to <engine of the destination>".
struct Engines {
  std::string from;
  std::string to;
};
void PrintTo(const Engines& e, std::ostream* os) {
  *os << e.from << " to " << e.to;
}

class StoreCopyTest : public ::testing::TestWithParam<Engines> {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kpihub-copy-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<Storage> open(const std::string& engine, const std::string& name) {
    const std::string path = (dir_ / (name + "." + engine)).string();
    if (engine == "rocksdb") return open_rocksdb_storage(path);
    return open_sqlite_storage(path);
  }

  // A store as a hub leaves it: two sources, two months, a revised record, a record moved to
  // another staff member, a withdrawn one, quarantine entries, scores, month rows and day
  // totals sent and delivered (one dead letter), one staff month still waiting to be rescored,
  // and two synced staff lists.
  void fill(Storage& s) {
    auto& log = s.records();
    log.commit_page(page("eoffice",
                         {record("eoffice", "1", 1, "KH-1", "2025-04-09"),
                          record("eoffice", "2", 1, "KH-1", "2025-04-10"),
                          record("eoffice", "3", 1, "KH-2", "2025-04-09"),
                          record("eoffice", "4", 1, "KH-2", "2025-03-31")},
                         kApril9, "c1"));
    // Scored and sent as a scorer does, with the outbox delivered.
    ScoringCommit scored;
    for (const auto& d : s.scoring().dirty_staff_days(100)) scored.done.push_back(d.key);
    for (const char* id : {"eoffice:1", "eoffice:2", "eoffice:3", "eoffice:4"}) {
      scored.record_scores.push_back(
          {id, 1, 1, std::string(R"({"points": 1.5, "id": ")") + id + "\"}"});
      scored.outbox.push_back({0, OutboxKind::record, id, std::string("payload of ") + id});
    }
    scored.months = {
        {OutboxKind::staff_month, "2025-04", "KH-1", "SO-NV", 1, R"({"kpi_score": 91.5})"},
        {OutboxKind::staff_month, "2025-04", "KH-2", "SO-NV", 1, R"({"kpi_score": 80})"},
        {OutboxKind::staff_month, "2025-03", "KH-2", "SO-NV", 1, R"({"kpi_score": 70})"},
        {OutboxKind::agency_month, "2025-04", "SO-NV", "SO-NV", 2, R"({"mean": 85.75})"}};
    scored.day_totals = {{{"KH-1", "2025-04"}, std::string("totals\0of KH-1", 14)},
                         {{"KH-2", "2025-04"}, "totals of KH-2"},
                         {{"KH-2", "2025-03"}, "totals of KH-2 in March"}};
    s.scoring().commit_scoring(scored);
    auto batch = s.outbox().next_batch("provincial", 100, 1 << 20);
    ASSERT_TRUE(batch);
    DeadLetter refused;
    refused.key = "eoffice:3";
    refused.code = "invalid";
    refused.message = "agency unknown";
    refused.payload = "payload of eoffice:3";
    s.outbox().complete_batch(batch->batch_id, {refused});

    // Later pages: a revision, a record moved to KH-2 (KH-1's day 10 is left: dirty), a
    // withdrawal, another source, quarantine entries with and without a record.
    PageCommit later = page("eoffice",
                            {record("eoffice", "1", 2, "KH-1", "2025-04-09"),
                             record("eoffice", "2", 3, "KH-2", "2025-04-11")},
                            kApril9 + 3600000, "c2");
    WorkRecord withdrawal;
    withdrawal.source_system = "eoffice";
    withdrawal.source_id = "4";
    withdrawal.record_id = "eoffice:4";
    withdrawal.revision = 2;
    withdrawal.retracted = true;
    later.records.push_back(withdrawal);
    later.quarantined = {quarantined("eoffice", "1", "5"), quarantined("eoffice", "", "")};
    log.commit_page(later);
    log.commit_page(
        page("school", {record("school", "a", 1, "KH-3", "2025-04-02")}, kApril9 + 7200000, "s-1"));
    PageCommit school_bad = page("school", {}, kApril9 + 7300000, "s-2");
    school_bad.quarantined = {quarantined("school", "b", "1")};
    log.commit_page(school_bad);
    // Everything but KH-2's April and KH-1's April (the move) is scored again.
    ScoringCommit rescored;
    for (const auto& d : s.scoring().dirty_staff_days(100)) {
      if (d.key.month == "2025-04" && d.key.staff_code != "KH-3") continue;
      rescored.done.push_back(d.key);
    }
    s.scoring().commit_scoring(rescored);

    s.staff_lists().save_synced_staff(
        "eoffice", {{"eoffice", "KH-1", "Trần Văn A", "SO-NV", true, true, kApril9},
                    {"eoffice", "KH-2", "Lê Thị B", "SO-NV", false, true, kApril9}});
    s.staff_lists().save_synced_staff(
        "school", {{"school", "KH-3", "Phạm C", "SO-GD", false, true, kApril9}});
    s.staff_lists().save_synced_staff(
        "eoffice", {{"eoffice", "KH-1", "Trần Văn A", "SO-NV", true, true, kApril9 + 1000}});
  }

  fs::path dir_;
};

std::map<StaffMonthKey, DayMask> dirty_of(Storage& s) {
  std::map<StaffMonthKey, DayMask> out;
  for (const auto& d : s.scoring().dirty_staff_days(1000)) out[d.key] = d.days;
  return out;
}

TEST_P(StoreCopyTest, CarriesEveryRecordCursorQuarantineScoreAndStaffListIntoANewStore) {
  auto from = open(GetParam().from, "from");
  auto to = open(GetParam().to, "to");
  fill(*from);
  const auto dirty_before = dirty_of(*from);
  ASSERT_EQ(dirty_before.size(), 2u);  // KH-1 and KH-2 in April

  StoreCopyOptions options;
  options.from_name = GetParam().from + ":from";
  options.to_name = GetParam().to + ":to";
  options.page_records = 2;  // several pages per source and time
  options.buffer_records = 3;
  std::vector<StoreCopyProgress> progress;
  options.on_progress = [&](const StoreCopyProgress& p) { progress.push_back(p); };
  const StoreCopyResult result = copy_store(*from, *to, options);

  EXPECT_TRUE(result.mismatches.empty()) << result.mismatches.front();
  EXPECT_EQ(result.records, 5);
  EXPECT_EQ(result.quarantined, 3);
  EXPECT_EQ(result.cursors, 2);
  EXPECT_EQ(result.record_scores, 4);
  EXPECT_EQ(result.month_rows, 4);
  EXPECT_EQ(result.synced_staff, 3);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().records_copied, 5);
  EXPECT_EQ(progress.back().records_total, 5);

  // Record by record: every field, and when the hub received it (scoring reads it).
  std::vector<std::string> ids;
  for (const char* month : {"2025-03", "2025-04"}) {
    const auto records = from->records().records_of_month(month);
    EXPECT_EQ(to->records().records_of_month(month).size(), records.size()) << month;
    for (const auto& r : records) {
      ids.push_back(r.record_id);
      EXPECT_EQ(to->records().record(r.record_id), r) << r.record_id;
    }
  }
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_TRUE(to->records().record("eoffice:4")->retracted);
  EXPECT_EQ(to->records().received_at(ids), from->records().received_at(ids));
  const auto scores_from = from->scoring().record_scores(ids);
  const auto scores_to = to->scoring().record_scores(ids);
  ASSERT_EQ(scores_to.size(), scores_from.size());
  for (std::size_t i = 0; i < scores_from.size(); ++i) {
    EXPECT_EQ(scores_to[i].record_id, scores_from[i].record_id);
    EXPECT_EQ(scores_to[i].revision, scores_from[i].revision);
    EXPECT_EQ(scores_to[i].sequence, scores_from[i].sequence);
    EXPECT_EQ(scores_to[i].scoring_digest, scores_from[i].scoring_digest);
  }
  for (OutboxKind kind : {OutboxKind::staff_month, OutboxKind::agency_month}) {
    for (const char* month : {"2025-03", "2025-04"}) {
      const auto a = from->scoring().month_rows(kind, month);
      const auto b = to->scoring().month_rows(kind, month);
      ASSERT_EQ(b.size(), a.size()) << month;
      for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(b[i].code, a[i].code);
        EXPECT_EQ(b[i].agency_code, a[i].agency_code);
        EXPECT_EQ(b[i].revision, a[i].revision);
        EXPECT_EQ(b[i].json, a[i].json);
      }
    }
  }
  for (const StaffMonthKey& key : std::vector<StaffMonthKey>{
           {"KH-1", "2025-04"}, {"KH-2", "2025-04"}, {"KH-2", "2025-03"}, {"KH-3", "2025-04"}}) {
    EXPECT_EQ(to->scoring().staff_days_for_scoring(key, 0).day_totals,
              from->scoring().staff_days_for_scoring(key, 0).day_totals)
        << key.staff_code << " " << key.month;
  }

  // Cursors, quarantine (entries and times, in order), staff lists.
  const auto sources_from = from->records().sources();
  const auto sources_to = to->records().sources();
  ASSERT_EQ(sources_to.size(), sources_from.size());
  for (std::size_t i = 0; i < sources_from.size(); ++i) {
    EXPECT_EQ(sources_to[i].source, sources_from[i].source);
    EXPECT_EQ(sources_to[i].cursor, sources_from[i].cursor);
  }
  EXPECT_EQ(to->records().cursor("eoffice"), "c2");
  EXPECT_EQ(to->records().cursor("school"), "s-2");
  const auto q_from = from->views().quarantine("", "", 100, 0);
  const auto q_to = to->views().quarantine("", "", 100, 0);
  ASSERT_EQ(q_to.size(), 3u);
  ASSERT_EQ(q_to.size(), q_from.size());
  for (std::size_t i = 0; i < q_from.size(); ++i) {
    EXPECT_EQ(q_to[i].entry.record_id, q_from[i].entry.record_id);
    EXPECT_EQ(q_to[i].entry.source_system, q_from[i].entry.source_system);
    EXPECT_EQ(q_to[i].entry.reason, q_from[i].entry.reason);
    EXPECT_EQ(q_to[i].entry.message, q_from[i].entry.message);
    EXPECT_EQ(q_to[i].entry.payload, q_from[i].entry.payload);
    EXPECT_EQ(q_to[i].entry.location, q_from[i].entry.location);
    EXPECT_EQ(q_to[i].entry.fields, q_from[i].entry.fields);
    EXPECT_EQ(q_to[i].created_at_unix_ms, q_from[i].created_at_unix_ms);
  }
  EXPECT_EQ(to->staff_lists().synced_staff(), from->staff_lists().synced_staff());

  // What waits for the scorer waits in the copy too, on at least the same days; the rest is
  // scored. KH-1's April waited on the day its record left, which the copy's own marks (the
  // days its records have) do not hold: April is marked whole.
  EXPECT_EQ(result.months_marked_whole, std::vector<std::string>{"2025-04"});
  EXPECT_TRUE(result.dirty_without_records.empty());
  const auto dirty_after = dirty_of(*to);
  for (const auto& [key, days] : dirty_before) {
    ASSERT_TRUE(dirty_after.count(key)) << key.staff_code << " " << key.month;
    EXPECT_EQ(days & ~dirty_after.at(key), 0u) << key.staff_code << " " << key.month;
  }
  EXPECT_EQ(dirty_after.at({"KH-1", "2025-04"}), kWholeMonth);
  EXPECT_FALSE(dirty_after.count({"KH-2", "2025-03"}));
  EXPECT_EQ(dirty_after.size(), 3u);  // April's three staff

  // The counts agree but for what is not carried: older revisions, dead letters.
  EXPECT_EQ(result.to.records, result.from.records);
  EXPECT_EQ(result.to.quarantined, result.from.quarantined);
  EXPECT_EQ(result.to.outbox_pending, 0);
  EXPECT_EQ(result.from.dead_letters, 1);
  EXPECT_EQ(result.to.dead_letters, 0);
  EXPECT_EQ(result.to.revisions, 5);
  EXPECT_GT(result.from.revisions, result.to.revisions);
}

TEST_P(StoreCopyTest, RefusesADestinationThatHoldsAnything) {
  auto from = open(GetParam().from, "from");
  auto to = open(GetParam().to, "to");
  fill(*from);
  to->staff_lists().save_synced_staff("school", {{"school", "KH-3", "C", "SO-GD", false, true, 1}});
  StoreCopyOptions options;
  options.to_name = "rocksdb:/srv/new";
  try {
    copy_store(*from, *to, options);
    FAIL() << "copied into a store that holds a staff list";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "the destination rocksdb:/srv/new is not empty (0 records, 0 quarantined, 0 "
                  "sources, 0 outbox items, 0 dead letters, 1 synced staff): a copy goes only "
                  "into a new store"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(to->views().counts().records, 0);
}

TEST_P(StoreCopyTest, RefusesASourceWhoseOutboxIsNotDeliveredToEverySink) {
  auto from = open(GetParam().from, "from");
  auto to = open(GetParam().to, "to");
  fill(*from);
  ScoringCommit more;
  more.outbox = {{0, OutboxKind::record, "eoffice:1", "revision 2"}};
  from->scoring().commit_scoring(more);
  StoreCopyOptions options;
  options.from_name = "sqlite:/var/lib/kpihub/hub.db";
  try {
    copy_store(*from, *to, options);
    FAIL() << "copied a store with an item not delivered";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("store copy: sqlite:/var/lib/kpihub/hub.db has 1 outbox "
                                         "items not yet delivered to every sink"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(to->views().counts().records, 0);
}

// No seam lists a store's months: a record outside the months looked at is not copied, and the
// final check says so.
TEST_P(StoreCopyTest, ARecordOutsideTheMonthsLookedAtFailsTheFinalCheck) {
  auto from = open(GetParam().from, "from");
  auto to = open(GetParam().to, "to");
  fill(*from);
  StoreCopyOptions options;
  options.from_name = "a";
  options.to_name = "b";
  options.first_month = Month{2025, 4};
  const StoreCopyResult result = copy_store(*from, *to, options);
  ASSERT_FALSE(result.mismatches.empty());
  EXPECT_EQ(result.mismatches.front(), "records: 5 in a, 4 in b");
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreCopyTest,
                         ::testing::Values(Engines{"sqlite", "rocksdb"},
                                           Engines{"rocksdb", "sqlite"},
                                           Engines{"sqlite", "sqlite"}),
                         [](const auto& info) { return info.param.from + "_to_" + info.param.to; });

}  // namespace
}  // namespace kpihub
