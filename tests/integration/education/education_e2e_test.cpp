// Issue 4, "Done when": a generated month of teaching logs goes through
// `kpihub run --once` (the real binary, the real education plugin, an inbox
// folder, a SQLite file), and every lesson and duty the generator wrote is
// stored exactly once, at its latest revision, retracted where cancelled, for
// the right staff code. Scale with KPIHUB_EDU_SCHOOLS / _TEACHERS / _DAYS.
// The same over HTTP: `kpihub-sim-education --serve` is each school's
// system, one education source per school pulls its export with a bearer key.
#include <kpihub_test/process.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

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

TEST(EducationE2E, AGeneratedMonthIsStoredExactlyOnceAtItsLatestRevisionForTheRightTeacher) {
  const fs::path dir = fs::temp_directory_path() / ("kpihub-edu-e2e-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "plugins");
  fs::copy_file(EDU_PLUGIN, dir / "plugins" / fs::path(EDU_PLUGIN).filename());
  fs::copy_file(FILE_SINK_PLUGIN, dir / "plugins" / fs::path(FILE_SINK_PLUGIN).filename());

  const std::string schools = std::to_string(env_int("KPIHUB_EDU_SCHOOLS", 4));
  const std::string teachers = std::to_string(env_int("KPIHUB_EDU_TEACHERS", 12));
  const std::string days = std::to_string(env_int("KPIHUB_EDU_DAYS", 10));
  ASSERT_EQ(run({SIM_EDUCATION, "--out", (dir / "gen").string(), "--schools", schools, "--teachers",
                 teachers, "--days", days, "--month", "2025-04"},
                dir / "gen.log"),
            0)
      << slurp(dir / "gen.log");

  std::size_t written = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "gen/inbox")) ++written;
  std::ofstream(dir / "hub.json") << R"({
  "hub_id": "edu-e2e",
  "data_dir": ")" << (dir / "var").string()
                                  << R"(",
  "plugin_dir": ")" << (dir / "plugins").string()
                                  << R"(",
  "today": "2025-05-10",
  "log_level": "warn",
  "catalog_files": [")" << kConfigDir
                                  << R"(/catalog/province.csv", ")" << kConfigDir
                                  << R"(/catalog/education.csv"],
  "staff_file": [")" << kConfigDir << R"(/staff.csv", ")"
                                  << (dir / "gen/staff.csv").string() << R"("],
  "units_file": [")" << kConfigDir << R"(/units.csv", ")"
                                  << (dir / "gen/units.csv").string() << R"("],
  "rules_file": ")" << kConfigDir << R"(/rules.json",
  "holiday_files": [")" << kConfigDir
                                  << R"(/holidays/2025.csv"],
  "sources": [{"name": "education", "plugin": "education", "settings": {
    "inbox_dir": ")" << (dir / "gen/inbox").string()
                                  << R"(", "settle_ms": 0}}],
  "sinks": [{"name": "files", "plugin": "file-sink", "settings": {"file": ")"
                                  << (dir / "delivered.tsv").string() << R"("}}]
})";
  const int code =
      run({KPIHUB, "run", "--once", "--config", (dir / "hub.json").string()}, dir / "run.log");
  const std::string log = slurp(dir / "run.log");
  ASSERT_EQ(code, 0) << log;

  auto store = kpihub::test::read_hub_store(dir / "hub.json");
  EXPECT_TRUE(store->views().quarantine("", "", 10, 0).empty())
      << store->views().quarantine("", "", 1, 0).at(0).entry.message;
  std::ifstream expected(dir / "gen/expected.tsv");
  std::string line;
  std::size_t n = 0;
  while (std::getline(expected, line)) {
    std::istringstream fields(line);
    std::string source_id, revision, retracted, staff_code, minutes;
    std::getline(fields, source_id, '\t');
    std::getline(fields, revision, '\t');
    std::getline(fields, retracted, '\t');
    std::getline(fields, staff_code, '\t');
    std::getline(fields, minutes, '\t');
    const auto r = store->records().record("education:" + source_id);
    ASSERT_TRUE(r.has_value()) << source_id << " was not stored";
    EXPECT_EQ(std::to_string(r->revision), revision) << source_id;
    EXPECT_EQ(r->retracted ? "true" : "false", retracted) << source_id;
    EXPECT_EQ(r->staff_code, staff_code) << source_id;
    EXPECT_EQ(std::to_string(r->declared_minutes), minutes) << source_id;
    // Issue 18 section 3: the generator writes no `generated`, so the file's arrival.
    EXPECT_TRUE(r->changed_at.has_value()) << source_id;
    ++n;
  }
  ASSERT_GT(n, 500u);
  const auto counts = store->views().counts();
  EXPECT_EQ(counts.records, static_cast<int64_t>(n)) << "nothing more than the generator wrote";
  // Every taken file is archived (none rejected), and the inbox is empty.
  std::size_t archived = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "gen/inbox/.archive"))
    ++archived;
  EXPECT_EQ(archived, written) << log;
  EXPECT_TRUE(fs::is_empty(dir / "gen/inbox/.rejected"));
  // Scored: staff months for the teachers.
  EXPECT_FALSE(store->scoring().month_rows(kpihub::OutboxKind::staff_month, "2025-04").empty());

  // The plugin passes kpihub-adapter-check, on a copy of a fixture.
  fs::create_directories(dir / "check/inbox");
  fs::copy_file(fs::path(KPIHUB_SOURCE_DIR) / "tests/fixtures/education/good-week.xml",
                dir / "check/inbox/a.xml");
  std::ofstream(dir / "check/settings.json")
      << R"({"inbox_dir": ")" << (dir / "check/inbox").string()
      << R"(", "settle_ms": 0, "page_records": 3})";
  const int checked = run({ADAPTER_CHECK, EDU_PLUGIN, "--config",
                           (dir / "check/settings.json").string(), "--today", "2025-05-10"},
                          dir / "check.log");
  EXPECT_EQ(checked, 0) << slurp(dir / "check.log");
  EXPECT_NE(slurp(dir / "check.log").find("result: PASS"), std::string::npos);
  if (!HasFailure()) fs::remove_all(dir);
}

// Every line of expected.tsv is stored once, for the source that pulled the
// school: at its latest revision, retracted where cancelled, for the right
// teacher, approved on arrival. Returns the number of lines.
std::size_t expect_all_stored(kpihub::Storage& store, const fs::path& expected_file,
                              const std::map<std::string, std::string>& source_of_school) {
  std::ifstream expected(expected_file);
  std::string line;
  std::size_t n = 0;
  while (std::getline(expected, line)) {
    std::istringstream fields(line);
    std::string source_id, revision, retracted, staff_code, minutes;
    std::getline(fields, source_id, '\t');
    std::getline(fields, revision, '\t');
    std::getline(fields, retracted, '\t');
    std::getline(fields, staff_code, '\t');
    std::getline(fields, minutes, '\t');
    const auto school = source_id.substr(0, source_id.find('|'));
    const auto r = store.records().record(source_of_school.at(school) + ":" + source_id);
    EXPECT_TRUE(r.has_value()) << source_id << " was not stored";
    if (!r) continue;
    EXPECT_EQ(std::to_string(r->revision), revision) << source_id;
    EXPECT_EQ(r->retracted ? "true" : "false", retracted) << source_id;
    EXPECT_EQ(r->staff_code, staff_code) << source_id;
    EXPECT_EQ(std::to_string(r->declared_minutes), minutes) << source_id;
    EXPECT_TRUE(r->approval && r->approval->status == kpihub::ApprovalStatus::approved)
        << source_id;
    ++n;
  }
  return n;
}

TEST(EducationE2E, SchoolSystemsOverHttpAreStoredExactlyOnceAtTheirLatestRevision) {
  const fs::path dir =
      fs::temp_directory_path() / ("kpihub-edu-http-e2e-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "plugins");
  fs::copy_file(EDU_PLUGIN, dir / "plugins" / fs::path(EDU_PLUGIN).filename());
  fs::copy_file(FILE_SINK_PLUGIN, dir / "plugins" / fs::path(FILE_SINK_PLUGIN).filename());
  std::ofstream(dir / "api-key") << "school-api-key-e2e\n";

  const std::string schools = std::to_string(env_int("KPIHUB_EDU_HTTP_SCHOOLS", 3));
  const std::string teachers = std::to_string(env_int("KPIHUB_EDU_TEACHERS", 12));
  const std::string days = std::to_string(env_int("KPIHUB_EDU_DAYS", 10));
  const pid_t sim = spawn({SIM_EDUCATION, "--serve", "--out", (dir / "gen").string(), "--schools",
                           schools, "--teachers", teachers, "--days", days, "--month", "2025-04",
                           "--api-key-file", (dir / "api-key").string()},
                          dir / "sim.log");
  std::string url;
  static const std::regex listening(R"(listening on (http://127\.0\.0\.1:\d+))");
  for (int i = 0; i < 1500 && url.empty(); ++i) {
    std::smatch m;
    const std::string out = slurp(dir / "sim.log");
    if (std::regex_search(out, m, listening)) url = m[1];
    if (url.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  struct StopAtEnd {
    pid_t pid;
    void stop() {
      if (pid <= 0) return;
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
      pid = -1;
    }
    ~StopAtEnd() { stop(); }
  } sim_guard{sim};
  if (url.empty()) {
    FAIL() << "kpihub-sim-education --serve did not start: " << slurp(dir / "sim.log");
  }

  // One source per school system; all of them auto-approved.
  std::map<std::string, std::string> source_of_school;
  {
    std::ifstream units(dir / "gen/units.csv");
    std::string line;
    std::getline(units, line);  // header
    while (std::getline(units, line)) {
      const std::string code = line.substr(0, line.find(','));
      source_of_school[code] = source_of_school.empty()
                                   ? "education"
                                   : "education-" + std::to_string(source_of_school.size() + 1);
    }
  }
  boost::json::value rules = boost::json::parse(slurp(kConfigDir + "/rules.json"));
  auto& approve = rules.as_object()["auto_approve_sources"].as_array();
  boost::json::array sources;
  for (const auto& [school, source] : source_of_school) {
    approve.emplace_back(source);
    fs::create_directories(dir / "inbox" / source);
    sources.push_back(boost::json::object{
        {"name", source},
        {"plugin", "education"},
        {"settings", boost::json::object{
                         {"inbox_dir", (dir / "inbox" / source).string()},
                         {"settle_ms", 0},
                         {"http", boost::json::object{{"base_url", url + "/" + school},
                                                      {"api_key_file", (dir / "api-key").string()},
                                                      {"from_date", "2025-03-20"},
                                                      {"window_days", 31},
                                                      {"lookback_days", 7}}}}}});
  }
  std::ofstream(dir / "rules.json") << boost::json::serialize(rules);
  const boost::json::object hub{
      {"hub_id", "edu-http-e2e"},
      {"data_dir", (dir / "var").string()},
      {"plugin_dir", (dir / "plugins").string()},
      {"today", "2025-05-10"},
      {"log_level", "info"},
      {"catalog_files", boost::json::array{kConfigDir + "/catalog/province.csv",
                                           kConfigDir + "/catalog/education.csv"}},
      {"staff_file",
       boost::json::array{kConfigDir + "/staff.csv", (dir / "gen/staff.csv").string()}},
      {"units_file",
       boost::json::array{kConfigDir + "/units.csv", (dir / "gen/units.csv").string()}},
      {"rules_file", (dir / "rules.json").string()},
      {"holiday_files", boost::json::array{kConfigDir + "/holidays/2025.csv"}},
      {"sources", sources},
      {"sinks",
       boost::json::array{boost::json::object{
           {"name", "files"},
           {"plugin", "file-sink"},
           {"settings", boost::json::object{{"file", (dir / "delivered.tsv").string()}}}}}}};
  std::ofstream(dir / "hub.json") << boost::json::serialize(hub);

  const int code =
      run({KPIHUB, "run", "--once", "--config", (dir / "hub.json").string()}, dir / "run.log");
  const std::string log = slurp(dir / "run.log");
  ASSERT_EQ(code, 0) << log;

  {
    auto store = kpihub::test::read_hub_store(dir / "hub.json");
    EXPECT_TRUE(store->views().quarantine("", "", 10, 0).empty())
        << store->views().quarantine("", "", 1, 0).at(0).entry.message;
    const std::size_t n = expect_all_stored(*store, dir / "gen/expected.tsv", source_of_school);
    ASSERT_GT(n, 300u);
    EXPECT_EQ(store->views().counts().records, static_cast<int64_t>(n))
        << "nothing more than the school systems hold";
    EXPECT_NE(log.find("education: fetched " + url + "/"), std::string::npos) << log;
    // Every answer went through the inbox and was archived.
    for (const auto& [school, source] : source_of_school) {
      EXPECT_FALSE(fs::is_empty(dir / "inbox" / source / ".archive")) << source;
      EXPECT_TRUE(fs::is_empty(dir / "inbox" / source / ".rejected")) << source;
    }
  }

  // A second run right away asks nothing (today's window was just fetched) and changes nothing.
  const int again =
      run({KPIHUB, "run", "--once", "--config", (dir / "hub.json").string()}, dir / "run2.log");
  EXPECT_EQ(again, 0) << slurp(dir / "run2.log");
  EXPECT_EQ(slurp(dir / "run2.log").find("education: fetched"), std::string::npos)
      << slurp(dir / "run2.log");

  // A wrong key (a fresh store and inbox, so that it is asked): an authentication error
  // naming the setting, and the key is not logged.
  std::ofstream(dir / "api-key") << "wrong-key-e2e\n";
  fs::remove_all(dir / "var");
  for (const auto& [school, source] : source_of_school) {
    fs::remove_all(dir / "inbox" / source);
    fs::create_directories(dir / "inbox" / source);
  }
  const int refused =
      run({KPIHUB, "run", "--once", "--config", (dir / "hub.json").string()}, dir / "run3.log");
  const std::string refused_log = slurp(dir / "run3.log");
  EXPECT_NE(refused, 0) << refused_log;
  EXPECT_NE(refused_log.find("refused the API key (HTTP 401); check http.api_key_file"),
            std::string::npos)
      << refused_log;
  EXPECT_EQ(refused_log.find("wrong-key-e2e"), std::string::npos) << "no key in the log";
  sim_guard.stop();
  EXPECT_NE(slurp(dir / "sim.log").find("served "), std::string::npos) << slurp(dir / "sim.log");
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
