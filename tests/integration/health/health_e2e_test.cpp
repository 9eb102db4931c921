// Issue 4, "Done when": generated hospital exports (130 and 4210 layouts,
// re-exported episodes) go through `kpihub run --once` (the real binary, the
// real health plugin, an inbox folder, a SQLite file), and every clinician
// credit the generator wrote is stored exactly once, at its latest content,
// withdrawn where its row vanished, for the right staff code; no patient name
// reaches the hub's log or store. Scale with KPIHUB_HEALTH_HOSPITALS /
// _CLINICIANS / _DAYS.
#include <kpihub_test/process.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

namespace fs = std::filesystem;

namespace {

using kpihub::test::run;
using kpihub::test::slurp;
using kpihub::test::spawn;

const std::string kConfigDir = std::string(KPIHUB_SOURCE_DIR) + "/config";

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// A hub.json with the health source (`settings` is its settings object's body).
void write_hub_json(const fs::path& dir, const fs::path& gen, const std::string& settings) {
  std::ofstream(dir / "hub.json") << R"({
  "hub_id": "health-e2e",
  "data_dir": ")" << (dir / "var").string()
                                  << R"(",
  "plugin_dir": ")" << (dir / "plugins").string()
                                  << R"(",
  "today": "2025-05-10",
  "log_level": "info",
  "catalog_files": [")" << kConfigDir
                                  << R"(/catalog/province.csv", ")" << kConfigDir
                                  << R"(/catalog/health.csv"],
  "staff_file": [")" << kConfigDir << R"(/staff.csv", ")"
                                  << (gen / "staff.csv").string() << R"("],
  "units_file": [")" << kConfigDir << R"(/units.csv", ")"
                                  << (gen / "units.csv").string() << R"("],
  "rules_file": ")" << kConfigDir << R"(/rules.json",
  "holiday_files": [")" << kConfigDir
                                  << R"(/holidays/2025.csv"],
  "sources": [{"name": "health", "plugin": "health", "settings": {)"
                                  << settings << R"(}}],
  "sinks": [{"name": "files", "plugin": "file-sink", "settings": {"file": ")"
                                  << (dir / "delivered.tsv").string() << R"("}}]
})";
}

void copy_plugins(const fs::path& dir) {
  fs::create_directories(dir / "plugins");
  fs::copy_file(HEALTH_PLUGIN, dir / "plugins" / fs::path(HEALTH_PLUGIN).filename());
  fs::copy_file(FILE_SINK_PLUGIN, dir / "plugins" / fs::path(FILE_SINK_PLUGIN).filename());
}

// Every credit of gen/expected.tsv is in the store once, at its latest
// content or withdrawn, for the right staff code, and nothing else is; no
// patient name (the generator's all have " Văn ") is in the log or the
// quarantine. Returns the number of credits checked.
std::size_t expect_generated_credits(const fs::path& dir, const fs::path& gen,
                                     const std::string& log) {
  auto store = kpihub::test::read_hub_store(dir / "hub.json");
  EXPECT_TRUE(store->views().quarantine("", "", 10, 0).empty())
      << store->views().quarantine("", "", 1, 0).at(0).entry.message;
  // Certificate number -> staff code, from the generated directory.
  std::map<std::string, std::string> staff_of;
  {
    std::ifstream staff(gen / "staff.csv");
    std::string row;
    while (std::getline(staff, row)) {
      if (row.empty() || row[0] == '#' || row.rfind("staff_code", 0) == 0) continue;
      staff_of[row.substr(row.rfind(',') + 1)] = row.substr(0, row.find(','));
    }
  }
  std::ifstream expected(gen / "expected.tsv");
  std::string line;
  std::size_t n = 0, withdrawn = 0;
  while (std::getline(expected, line)) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string part; std::getline(fields, part, '\t');) f.push_back(part);
    const auto r = store->records().record("health:" + f.at(0));
    if (!r.has_value()) {
      ADD_FAILURE() << f[0] << " was not stored";
      continue;
    }
    ++n;
    // Issue 18 section 3: stamped with the export's time (the generator's NGAYLAP).
    EXPECT_EQ(r->changed_at ? r->changed_at->str() : "none", "2025-04-30T00:00:00+07:00") << f[0];
    if (f.at(1) == "retracted") {
      EXPECT_TRUE(r->retracted) << f[0] << " vanished from its re-export but was not withdrawn";
      ++withdrawn;
      continue;
    }
    EXPECT_FALSE(r->retracted) << f[0];
    EXPECT_EQ(r->task_code, f.at(1)) << f[0];
    EXPECT_EQ(r->work_date.str(), f.at(2)) << f[0];
    EXPECT_EQ(std::to_string(r->declared_minutes), f.at(3)) << f[0];
    EXPECT_DOUBLE_EQ(r->quantity, std::stod(f.at(4))) << f[0];
    const std::string cchn = f.at(5).substr(0, f.at(5).find(".C."));
    EXPECT_EQ(r->staff_code, staff_of.at(cchn)) << f[0];
    EXPECT_EQ(r->evidence_ref,
              f[0].substr(f[0].find('|') + 1, f[0].find('|', 6) - f[0].find('|') - 1));
  }
  EXPECT_GT(withdrawn, 0u) << "the generator re-exported episodes with a vanished row";
  EXPECT_EQ(log.find(" Văn "), std::string::npos);
  for (const auto& q : store->views().quarantine("", "", 1000, 0)) {
    EXPECT_EQ(q.entry.payload.find(" Văn "), std::string::npos);
    EXPECT_EQ(q.entry.message.find(" Văn "), std::string::npos);
  }
  EXPECT_EQ(store->views().counts().records, static_cast<int64_t>(n))
      << "nothing more than the generator wrote";
  // Scored: staff months for the clinicians.
  EXPECT_FALSE(store->scoring().month_rows(kpihub::OutboxKind::staff_month, "2025-04").empty());
  return n;
}

TEST(HealthE2E, GeneratedHospitalExportsAreStoredOnceAtTheirLatestContentForTheRightClinician) {
  const fs::path dir =
      fs::temp_directory_path() / ("kpihub-health-e2e-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  copy_plugins(dir);

  const std::string hospitals = std::to_string(env_int("KPIHUB_HEALTH_HOSPITALS", 8));
  const std::string clinicians = std::to_string(env_int("KPIHUB_HEALTH_CLINICIANS", 6));
  const std::string days = std::to_string(env_int("KPIHUB_HEALTH_DAYS", 3));
  ASSERT_EQ(
      run({SIM_HEALTH, "--out", (dir / "gen").string(), "--hospitals", hospitals, "--clinicians",
           clinicians, "--days", days, "--episodes", "4", "--month", "2025-04"},
          dir / "gen.log"),
      0)
      << slurp(dir / "gen.log");
  std::size_t written = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "gen/inbox")) ++written;
  write_hub_json(dir, dir / "gen",
                 R"("inbox_dir": ")" + (dir / "gen/inbox").string() + R"(", "state_file": ")" +
                     (dir / "var/health-state.db").string() + R"(", "settle_ms": 0)");
  const int code =
      run({KPIHUB, "run", "--once", "--config", (dir / "hub.json").string()}, dir / "run.log");
  const std::string log = slurp(dir / "run.log");
  ASSERT_EQ(code, 0) << log;

  EXPECT_GT(expect_generated_credits(dir, dir / "gen", log), 300u);

  // Every taken file is archived (none rejected), and the inbox is empty.
  std::size_t archived = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "gen/inbox/.archive"))
    ++archived;
  EXPECT_EQ(archived, written) << log;
  EXPECT_TRUE(fs::is_empty(dir / "gen/inbox/.rejected"));

  // The plugin passes kpihub-adapter-check, on a copy of a fixture.
  fs::create_directories(dir / "check/inbox");
  fs::copy_file(fs::path(KPIHUB_SOURCE_DIR) / "tests/fixtures/health/episodes-130.xml",
                dir / "check/inbox/a.xml");
  std::ofstream(dir / "check/settings.json")
      << R"({"inbox_dir": ")" << (dir / "check/inbox").string()
      << R"(", "settle_ms": 0, "page_records": 3, "state_file": ")"
      << (dir / "check/state.db").string() << R"("})";
  const int checked = run({ADAPTER_CHECK, HEALTH_PLUGIN, "--config",
                           (dir / "check/settings.json").string(), "--today", "2025-05-10"},
                          dir / "check.log");
  EXPECT_EQ(checked, 0) << slurp(dir / "check.log");
  EXPECT_NE(slurp(dir / "check.log").find("result: PASS"), std::string::npos);
  if (!HasFailure()) fs::remove_all(dir);
}

// Issue 18 review: a hospital row quarantined by the adapter got a new
// quarantine entry with every re-delivery that still held it, and none ever
// resolved (the row's id has no clinician, its credits' have). One entry per
// bad row; the corrected re-export resolves it.
TEST(HealthE2E, ABadRowDeliveredTwiceIsQuarantinedOnceAndResolvedByItsCorrection) {
  const fs::path dir =
      fs::temp_directory_path() / ("kpihub-health-e2e-row-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  copy_plugins(dir);
  fs::create_directories(dir / "inbox");
  // A directory and units files to run with (the fixtures' clinicians need not be in it).
  ASSERT_EQ(run({SIM_HEALTH, "--out", (dir / "gen").string(), "--hospitals", "1", "--clinicians",
                 "1", "--days", "1", "--episodes", "1", "--month", "2025-04"},
                dir / "gen.log"),
            0)
      << slurp(dir / "gen.log");
  write_hub_json(dir, dir / "gen",
                 R"("inbox_dir": ")" + (dir / "inbox").string() + R"(", "state_file": ")" +
                     (dir / "var/health-state.db").string() + R"(", "settle_ms": 0)");
  const fs::path fixtures = fs::path(KPIHUB_SOURCE_DIR) / "tests/fixtures/health";
  const std::string row = "health:56001|LK001|XML3|4";
  auto deliver = [&](const char* fixture, const std::string& as) {
    fs::copy_file(fixtures / fixture, dir / "inbox" / as);
    const int code = run({KPIHUB, "run", "--once", "--config", (dir / "hub.json").string()},
                         dir / ("run-" + as + ".log"));
    EXPECT_EQ(code, 0) << slurp(dir / ("run-" + as + ".log"));
    auto store = kpihub::test::read_hub_store(dir / "hub.json");
    std::size_t entries = 0;
    for (const auto& q : store->views().quarantine("", "", 1000, 0))
      entries += q.entry.record_id == row;
    return entries;
  };
  EXPECT_EQ(deliver("episodes-130.xml", "a.xml"), 0u);
  EXPECT_EQ(deliver("reexport-bad-row-130.xml", "b.xml"), 1u);
  EXPECT_EQ(deliver("reexport-bad-row-130.xml", "c.xml"), 1u) << "one entry, not two";
  EXPECT_EQ(deliver("reexport-130.xml", "d.xml"), 0u) << "the correction resolves it";
  if (!HasFailure()) fs::remove_all(dir);
}

// The same through the HIS's HTTP endpoint: kpihub-sim-health serve lists and
// serves the generated exports with a bearer key; the adapter fetches them
// one by one into an empty inbox.
TEST(HealthE2E, ExportsFetchedOverHttpAreStoredLikeInboxOnes) {
  const fs::path dir =
      fs::temp_directory_path() / ("kpihub-health-e2e-http-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  copy_plugins(dir);
  fs::create_directories(dir / "inbox");
  ASSERT_EQ(run({SIM_HEALTH, "generate", "--out", (dir / "gen").string(), "--hospitals", "2",
                 "--clinicians", "5", "--days", "2", "--episodes", "4", "--seed", "7"},
                dir / "gen.log"),
            0)
      << slurp(dir / "gen.log");
  std::size_t served = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "gen/inbox")) ++served;
  std::ofstream(dir / "his.key") << "his-e2e-key\n";

  const pid_t sim = spawn({SIM_HEALTH, "serve", "--dir", (dir / "gen/inbox").string(),
                           "--api-key-file", (dir / "his.key").string()},
                          dir / "sim.log");
  std::string url;
  for (int i = 0; i < 100 && url.empty(); ++i) {
    const std::string out = slurp(dir / "sim.log");
    const auto at = out.find("listening on ");
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
      url = out.substr(at + 13, out.find('\n', at) - at - 13);
    } else {
      ::usleep(100 * 1000);
    }
  }
  if (url.empty()) {
    ::kill(sim, SIGTERM);
    ::waitpid(sim, nullptr, 0);
    FAIL() << "kpihub-sim-health serve did not start: " << slurp(dir / "sim.log");
  }
  write_hub_json(dir, dir / "gen",
                 R"("inbox_dir": ")" + (dir / "inbox").string() + R"(", "state_file": ")" +
                     (dir / "var/health-state.db").string() +
                     R"(", "settle_ms": 0, "http": {"base_url": ")" + url +
                     R"(", "api_key_file": ")" + (dir / "his.key").string() + R"("})");
  const int code =
      run({KPIHUB, "run", "--once", "--config", (dir / "hub.json").string()}, dir / "run.log");
  ::kill(sim, SIGTERM);
  int status = 0;
  ::waitpid(sim, &status, 0);
  const std::string log = slurp(dir / "run.log");
  ASSERT_EQ(code, 0) << log;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir / "sim.log");

  EXPECT_GT(expect_generated_credits(dir, dir / "gen", log), 50u);
  std::size_t archived = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "inbox/.archive")) ++archived;
  EXPECT_EQ(archived, served) << "every served export fetched once\n" << log;
  EXPECT_EQ(log.find("his-e2e-key"), std::string::npos) << "the key is not logged";
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
