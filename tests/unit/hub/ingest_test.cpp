// The ingest stage without plugins or HTTP: a page as a plugin would hand it
// over, resolved against the shipped reference data.
#include <kpihub/hub.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <map>

using namespace kpihub;

namespace {

const std::string kConfig = std::string(KPIHUB_SOURCE_DIR) + "/config";

ReferenceData shipped_reference() {
  ReferenceData r;
  r.catalog =
      load_catalog({kConfig + "/catalog/province.csv", kConfig + "/catalog/group-c-example.csv",
                    kConfig + "/catalog/education.csv", kConfig + "/catalog/health.csv"});
  r.directory = load_directory(kConfig + "/staff.csv", kConfig + "/units.csv");
  r.holidays = load_holidays({kConfig + "/holidays/2025.csv"});
  r.rules = load_rules(kConfig + "/rules.json");
  return r;
}

// Owns the text a kpihub_record points into, as a plugin's page would.
struct Item {
  std::map<std::string, std::string> f;
  std::vector<std::pair<std::string, std::string>> attributes;
  mutable std::vector<kpihub_attribute> c_attributes;  // what c() points at
  kpihub_str s(const char* k) const {
    auto it = f.find(k);
    return it == f.end() ? kpihub_str{nullptr, 0}
                         : kpihub_str{it->second.data(), it->second.size()};
  }
  kpihub_record c() const {
    kpihub_record r{};
    r.struct_size = sizeof(r);
    c_attributes.clear();
    for (const auto& [k, v] : attributes) {
      c_attributes.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
    }
    r.attributes = c_attributes.data();
    r.attribute_count = c_attributes.size();
    r.source_id = s("source_id");
    r.revision = s("revision");
    r.retracted = s("retracted");
    r.changed_at = s("changed_at");
    r.staff_code = s("staff_code");
    r.source_staff_id = s("source_staff_id");
    r.agency_code = s("agency_code");
    r.task_code = s("task_code");
    r.work_date = s("work_date");
    r.declared_minutes = s("declared_minutes");
    r.quantity = s("quantity");
    r.approval_status = s("approval_status");
    return r;
  }
};

Item item(std::map<std::string, std::string> overrides) {
  Item i;
  i.f = {{"source_id", "X-1"},    {"revision", "1"},           {"staff_code", "KH-000123"},
         {"task_code", "B.03.2"}, {"work_date", "2025-04-08"}, {"declared_minutes", "60"},
         {"quantity", "2"}};
  for (auto& [k, v] : overrides) {
    if (v.empty()) {
      i.f.erase(k);
    } else {
      i.f[k] = v;
    }
  }
  return i;
}

PageCommit prepare(const Ingestor& ingest, const std::string& source,
                   const std::vector<Item>& items) {
  std::vector<kpihub_record> records;
  for (const auto& i : items) records.push_back(i.c());
  kpihub_page page{};
  page.struct_size = sizeof(page);
  page.records = records.data();
  page.record_count = records.size();
  return ingest.prepare(source, page, 0);
}

kpihub_page page_of(std::vector<kpihub_record>& records) {
  kpihub_page page{};
  page.struct_size = sizeof(page);
  page.records = records.data();
  page.record_count = records.size();
  return page;
}

// On each store engine (IngestTest/sqlite, IngestTest/rocksdb).
class IngestTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Ingests the items as one page of `source`, received at `now_ms`.
  IngestResult ingest_page(Ingestor& ingestor, const std::vector<Item>& items, int64_t now_ms,
                           const std::string& source = "eoffice") {
    std::vector<kpihub_record> records;
    for (const auto& i : items) records.push_back(i.c());
    return ingestor.ingest(source, page_of(records), now_ms);
  }
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kpihub-ingest-" + std::to_string(::getpid()) + "-" + GetParam());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = test::open_test_store(GetParam(), dir_ / test::store_file_name(GetParam()));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  ReferenceData ref_ = shipped_reference();
  std::filesystem::path dir_;
  std::unique_ptr<Storage> store_;  // prepare() never writes to it
};

INSTANTIATE_TEST_SUITE_P(Engines, IngestTest, ::testing::ValuesIn(test::store_engines()),
                         test::engine_name);

}  // namespace

TEST_P(IngestTest, ResolvesStaffAndAgencyFromTheDirectory) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  const auto c = prepare(ingest, "eoffice", {item({{"agency_code", "999.99.99.H34"}})});
  ASSERT_EQ(c.records.size(), 1u);
  const auto& r = c.records[0];
  EXPECT_EQ(r.agency_code, "000.00.12.H34");  // the directory wins...
  ASSERT_EQ(r.attributes.size(), 1u);         // ...and the difference is kept visible
  EXPECT_EQ(r.attributes[0],
            (std::pair<std::string, std::string>{"source_agency_code", "999.99.99.H34"}));
  EXPECT_FALSE(r.approval) << "E-Office records are not auto-approved";
}

TEST_P(IngestTest, SectorIdentifiersResolveToStaffCodesAndSectorSourcesAreAutoApproved) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  const auto c = prepare(ingest, "education",
                         {item({{"staff_code", ""},
                                {"source_staff_id", "GV-000123"},
                                {"task_code", "EDU.LESSON.upper-secondary"},
                                {"quantity", "1"}})});
  ASSERT_EQ(c.records.size(), 1u) << (c.quarantined.empty() ? "" : c.quarantined[0].message);
  EXPECT_EQ(c.records[0].staff_code, "KH-000201");
  ASSERT_TRUE(c.records[0].approval);
  EXPECT_EQ(c.records[0].approval->status, ApprovalStatus::approved);
}

TEST_P(IngestTest, UnknownStaffAndTasksGoToQuarantineWithReasons) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  const auto c =
      prepare(ingest, "eoffice",
              {item({{"source_id", "A"}, {"staff_code", "KH-999999"}}),
               item({{"source_id", "B"}, {"staff_code", ""}, {"source_staff_id", "GV-NOPE"}}),
               item({{"source_id", "C"}, {"task_code", "Z.99"}}),
               // group C item of another agency
               item({{"source_id", "D"}, {"task_code", "C.KHCN.02"}, {"staff_code", "KH-000201"}}),
               // education item for an E-Office civil servant
               item({{"source_id", "E"}, {"task_code", "EDU.LESSON.primary"}}),
               item({{"source_id", "F"}})});
  ASSERT_EQ(c.records.size(), 1u);
  EXPECT_EQ(c.records[0].source_id, "F");
  ASSERT_EQ(c.quarantined.size(), 5u);
  std::map<std::string, QuarantineEntry> by_id;
  for (const auto& q : c.quarantined) by_id[q.source_id] = q;
  EXPECT_EQ(by_id["A"].reason, Reason::unknown_staff);
  EXPECT_NE(by_id["A"].message.find("KH-999999"), std::string::npos);
  EXPECT_EQ(by_id["B"].reason, Reason::unknown_staff);
  EXPECT_NE(by_id["B"].message.find("GV-NOPE"), std::string::npos);
  EXPECT_EQ(by_id["C"].reason, Reason::unknown_task);
  EXPECT_NE(by_id["C"].message.find("Z.99"), std::string::npos);
  EXPECT_EQ(by_id["D"].reason, Reason::unknown_task);
  EXPECT_NE(by_id["D"].message.find("not approved for agency"), std::string::npos)
      << by_id["D"].message;
  EXPECT_EQ(by_id["E"].reason, Reason::unknown_task);
  EXPECT_NE(by_id["E"].message.find("sector"), std::string::npos) << by_id["E"].message;
  EXPECT_EQ(by_id["A"].record_id, "eoffice:A");
}

TEST_P(IngestTest, TheValidationDateCanMoveForward) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  const Item tomorrow = item({{"work_date", "2025-04-21"}});
  auto c = prepare(ingest, "eoffice", {tomorrow});
  ASSERT_EQ(c.quarantined.size(), 1u);
  EXPECT_EQ(c.quarantined[0].reason, Reason::future_date);
  ingest.set_today(*Date::parse("2025-04-21"));
  c = prepare(ingest, "eoffice", {tomorrow});
  EXPECT_EQ(c.records.size(), 1u);
}

TEST_P(IngestTest, QuarantineReplayStoresWhatTheFixedDirectoryNowResolves) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  // A teacher not yet in the directory, and a task code nobody has.
  const Item teacher = item({{"source_id", "L-1"},
                             {"staff_code", ""},
                             {"source_staff_id", "GV-999001"},
                             {"task_code", "EDU.LESSON.primary"},
                             {"quantity", "1"}});
  const Item bad_task = item({{"source_id", "X-2"}, {"task_code", "Z.99"}});
  std::vector<kpihub_record> records{teacher.c(), bad_task.c()};
  kpihub_page page{};
  page.struct_size = sizeof(page);
  page.records = records.data();
  page.record_count = records.size();
  ingest.ingest("education", page, 1000);
  ASSERT_EQ(store_->views().quarantine("", "", 10, 0).size(), 2u);

  // Nothing changed yet: both stay, each with its reason.
  auto r = replay_quarantine(store_->views(), ingest, "", "", 0, 2000);
  EXPECT_EQ(r.replayed, 0u);
  EXPECT_EQ(r.still_failing, 2u);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_NE(r.problems[0].find("still unknown_staff"), std::string::npos) << r.problems[0];

  // The staff directory learns the teacher; replaying unknown_staff stores the lesson
  // and removes its entry, in one transaction; the other entry stays.
  StaffInfo lan{"GD-000001", "Nguyễn Thị Lan", "000.00.25.H34", false, true, "education"};
  ref_.directory.add_staff(lan);
  ref_.directory.add_identifier("GV-999001", "GD-000001");
  r = replay_quarantine(store_->views(), ingest, "", "unknown_staff", 0, 3000);
  EXPECT_EQ(r.replayed, 1u);
  EXPECT_EQ(r.still_failing, 0u);
  const auto stored = store_->records().record("education:L-1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->staff_code, "GD-000001");
  EXPECT_EQ(stored->agency_code, "000.00.25.H34");
  const auto left = store_->views().quarantine("", "", 10, 0);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].entry.record_id, "education:X-2");
  EXPECT_EQ(left[0].entry.reason, Reason::unknown_task);
  EXPECT_FALSE(store_->scoring().dirty_staff_days(10).empty()) << "the replayed record is scored";
  // Replaying again finds nothing more to store.
  EXPECT_EQ(replay_quarantine(store_->views(), ingest, "", "", 0, 4000).replayed, 0u);
}

TEST_P(IngestTest, AReplayedRecordKeepsItsAttributes) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  Item unknown_task = item({{"source_id", "X-7"}, {"task_code", "Z.99"}});
  unknown_task.attributes = {{"document_no", "12/UBND-VP"}, {"unit", "Văn phòng"}};
  ingest_page(ingest, {unknown_task}, 1000);
  ASSERT_EQ(store_->views().quarantine("", "", 10, 0).size(), 1u);

  // The catalog learns the task; the replayed record is the one the source sent, attributes
  // included (the receiver gets them for every other record).
  CatalogItem z99;
  z99.code = "Z.99";
  z99.group = "B";
  z99.title = "Việc mới";
  ref_.catalog.add(z99);
  const auto r = replay_quarantine(store_->views(), ingest, "", "", 0, 2000);
  ASSERT_EQ(r.replayed, 1u);
  const auto stored = store_->records().record("eoffice:X-7");
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->attributes, unknown_task.attributes);
}

TEST_P(IngestTest, AWithdrawalNeedsOnlyTheRecordsIdAndRevision) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  ingest_page(ingest, {item({{"source_id", "X-1"}, {"revision", "1"}})}, 1000);
  ASSERT_TRUE(store_->records().record("eoffice:X-1").has_value());

  // The source only knows the id: the stored record is withdrawn, its content kept.
  Item withdrawal;
  withdrawal.f = {{"source_id", "X-1"}, {"revision", "2"}, {"retracted", "true"}};
  auto r = ingest_page(ingest, {withdrawal}, 2000);
  EXPECT_EQ(r.commit.quarantined, 0u);
  EXPECT_EQ(r.commit.updated, 1u);
  EXPECT_TRUE(store_->views().quarantine("", "", 10, 0).empty());
  auto stored = store_->records().record("eoffice:X-1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(stored->retracted);
  EXPECT_EQ(stored->revision, 2);
  EXPECT_EQ(stored->staff_code, "KH-000123");
  EXPECT_EQ(stored->work_date, *Date::parse("2025-04-08"));
  EXPECT_EQ(stored->task_code, "B.03.2");
  EXPECT_EQ(store_->views().counts().revisions, 2) << "the scorer's change log has the withdrawal";

  // A tombstone that carries the last content the source had, which was never valid
  // (2000 minutes), still withdraws the record the hub has.
  ingest_page(ingest, {item({{"source_id", "X-2"}, {"revision", "1"}})}, 3000);
  ingest_page(ingest,
              {item({{"source_id", "X-2"}, {"revision", "2"}, {"declared_minutes", "2000"}})},
              4000);
  r = ingest_page(ingest,
                  {item({{"source_id", "X-2"},
                         {"revision", "3"},
                         {"retracted", "true"},
                         {"declared_minutes", "2000"}})},
                  5000);
  EXPECT_EQ(r.commit.quarantined, 0u);
  stored = store_->records().record("eoffice:X-2");
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(stored->retracted);
  EXPECT_EQ(stored->revision, 3);
  EXPECT_EQ(stored->declared_minutes, 60);

  // A withdrawal of a record the hub never stored changes nothing and is no failure.
  Item unknown;
  unknown.f = {{"source_id", "X-404"}, {"revision", "5"}, {"retracted", "true"}};
  r = ingest_page(ingest, {unknown}, 6000);
  EXPECT_EQ(r.commit.quarantined, 0u);
  EXPECT_EQ(r.commit.inserted, 0u);
  EXPECT_FALSE(store_->records().record("eoffice:X-404").has_value());
  // Nor is the withdrawal of a record only ever quarantined; its entries go with it (the
  // source deleted it: nothing is left to fix).
  ingest_page(ingest,
              {item({{"source_id", "X-9"}, {"revision", "1"}, {"work_date", "2025-02-30"}})}, 6500);
  ASSERT_EQ(store_->views().quarantine("", "", 10, 0).size(), 1u);
  Item gone;
  gone.f = {{"source_id", "X-9"}, {"revision", "2"}, {"retracted", "true"}};
  r = ingest_page(ingest, {gone}, 6600);
  EXPECT_EQ(r.commit.quarantine_resolved, 1u);
  EXPECT_TRUE(store_->views().quarantine("", "", 10, 0).empty());
  EXPECT_FALSE(store_->records().record("eoffice:X-9").has_value());

  // Without its revision it is still refused, naming the field.
  Item no_revision;
  no_revision.f = {{"source_id", "X-1"}, {"retracted", "true"}};
  r = ingest_page(ingest, {no_revision}, 7000);
  EXPECT_EQ(r.commit.quarantined, 1u);
  EXPECT_EQ(r.quarantined_by_reason.count("missing_field"), 1u);
}

TEST_P(IngestTest, QuarantineEntriesResolveOnceAHigherValidRevisionIsStored) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  const auto entries = [&] {
    std::vector<std::string> out;
    for (const auto& q : store_->views().quarantine("", "", 100, 0)) {
      out.push_back(q.entry.record_id + " " + std::string(to_string(q.entry.reason)));
    }
    return out;
  };
  const auto quarantined_count = [&] {
    for (const auto& s : store_->records().sources()) {
      if (s.source == "eoffice") return s.quarantined;
    }
    return int64_t{-1};
  };
  // Revision 1 of X-1 is invalid, and so is X-2 (another record).
  ingest_page(ingest,
              {item({{"source_id", "X-1"}, {"revision", "1"}, {"declared_minutes", "2000"}}),
               item({{"source_id", "X-2"}, {"revision", "1"}, {"task_code", "Z.99"}})},
              1000);
  ASSERT_EQ(entries().size(), 2u);
  // The source corrects X-1: its entry resolves, X-2's stays.
  ingest_page(ingest, {item({{"source_id", "X-1"}, {"revision", "2"}})}, 2000);
  EXPECT_EQ(entries(), std::vector<std::string>{"eoffice:X-2 unknown_task"});
  EXPECT_EQ(quarantined_count(), 1);
  EXPECT_EQ(store_->views().counts().quarantined, 1);

  // An invalid revision above the stored one stays while only older or equal revisions come.
  ingest_page(ingest, {item({{"source_id", "X-1"}, {"revision", "4"}, {"quantity", "-1"}})}, 3000);
  ingest_page(ingest, {item({{"source_id", "X-1"}, {"revision", "3"}})}, 4000);
  EXPECT_EQ(entries(),
            (std::vector<std::string>{"eoffice:X-2 unknown_task", "eoffice:X-1 bad_value"}));
  // Within one page, the valid revision 5 resolves the invalid 4 (earlier) but not the
  // invalid 6 (later).
  ingest_page(ingest,
              {item({{"source_id", "X-1"}, {"revision", "5"}}),
               item({{"source_id", "X-1"}, {"revision", "6"}, {"work_date", "2025-02-30"}})},
              5000);
  const auto q = store_->views().quarantine("", "", 100, 0);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[1].entry.record_id, "eoffice:X-1");
  EXPECT_NE(q[1].entry.message.find("2025-02-30"), std::string::npos) << q[1].entry.message;
  EXPECT_EQ(quarantined_count(), 2);
}

TEST_P(IngestTest, AnInvalidRevisionNotAboveTheStoredOneIsNotQuarantined) {
  Ingestor ingest(store_->records(), ref_, *Date::parse("2025-04-20"));
  const auto quarantined_count = [&] {
    for (const auto& s : store_->records().sources()) {
      if (s.source == "eoffice") return s.quarantined;
    }
    return int64_t{-1};
  };
  ingest_page(ingest, {item({{"source_id", "X-1"}, {"revision", "5"}})}, 1000);
  // The source sends an old revision again, invalid (a re-sent revision 3, and 5 itself under a
  // changed catalog): the stored revision 5 supersedes both, nothing is left to fix.
  IngestResult r = ingest_page(
      ingest, {item({{"source_id", "X-1"}, {"revision", "3"}, {"declared_minutes", "2000"}})},
      2000);
  EXPECT_EQ(r.commit.quarantined, 0u);
  EXPECT_EQ(r.commit.ignored_stale, 1u);
  EXPECT_TRUE(r.quarantined_by_reason.empty());
  r = ingest_page(ingest, {item({{"source_id", "X-1"}, {"revision", "5"}, {"task_code", "Z.99"}})},
                  3000);
  EXPECT_EQ(r.commit.quarantined, 0u);
  EXPECT_EQ(r.commit.ignored_stale, 1u);
  EXPECT_TRUE(r.quarantined_by_reason.empty());
  EXPECT_TRUE(store_->views().quarantine("", "", 100, 0).empty());
  EXPECT_EQ(quarantined_count(), 0);
  EXPECT_EQ(store_->views().counts().quarantined, 0);
  EXPECT_EQ(store_->records().record("eoffice:X-1")->revision, 5);

  // In one page: the invalid revision 6 comes before the valid 7 that supersedes it.
  r = ingest_page(ingest,
                  {item({{"source_id", "X-1"}, {"revision", "6"}, {"quantity", "-1"}}),
                   item({{"source_id", "X-1"}, {"revision", "7"}})},
                  4000);
  EXPECT_EQ(r.commit.quarantined, 0u);
  EXPECT_EQ(r.commit.updated, 1u);
  EXPECT_TRUE(r.quarantined_by_reason.empty());
  EXPECT_TRUE(store_->views().quarantine("", "", 100, 0).empty());

  // An invalid revision above the stored one is kept, and counted.
  r = ingest_page(ingest, {item({{"source_id", "X-1"}, {"revision", "8"}, {"quantity", "-1"}})},
                  5000);
  EXPECT_EQ(r.commit.quarantined, 1u);
  EXPECT_EQ(r.quarantined_by_reason["bad_value"], 1u);
  EXPECT_EQ(store_->views().quarantine("", "", 100, 0).size(), 1u);
  EXPECT_EQ(quarantined_count(), 1);
  EXPECT_EQ(store_->views().counts().quarantined, 1);
}
