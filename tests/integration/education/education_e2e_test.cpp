// Issue 4, "Done when": a generated month of teaching logs goes through
// `kpihub run --once` (the real binary, the real education plugin, an inbox
// folder, a SQLite file), and every lesson and duty the generator wrote is
// stored exactly once, at its latest revision, retracted where cancelled, for
// the right staff code. Scale with KPIHUB_EDU_SCHOOLS / _TEACHERS / _DAYS.
#include <kpihub/store.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

const std::string kConfigDir = std::string(KPIHUB_SOURCE_DIR) + "/config";

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

int run(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* f = std::fopen(log.c_str(), "w");
    ::dup2(fileno(f), 1);
    ::dup2(fileno(f), 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
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

  auto store = kpihub::open_sqlite_store((dir / "var/hub.db").string());
  EXPECT_TRUE(store->quarantine("", "", 10, 0).empty())
      << store->quarantine("", "", 1, 0).at(0).entry.message;
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
    const auto r = store->record("education:" + source_id);
    ASSERT_TRUE(r.has_value()) << source_id << " was not stored";
    EXPECT_EQ(std::to_string(r->revision), revision) << source_id;
    EXPECT_EQ(r->retracted ? "true" : "false", retracted) << source_id;
    EXPECT_EQ(r->staff_code, staff_code) << source_id;
    EXPECT_EQ(std::to_string(r->declared_minutes), minutes) << source_id;
    ++n;
  }
  ASSERT_GT(n, 500u);
  const auto counts = store->counts();
  EXPECT_EQ(counts.records, static_cast<int64_t>(n)) << "nothing more than the generator wrote";
  // Every taken file is archived (none rejected), and the inbox is empty.
  std::size_t archived = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "gen/inbox/.archive"))
    ++archived;
  EXPECT_EQ(archived, written) << log;
  EXPECT_TRUE(fs::is_empty(dir / "gen/inbox/.rejected"));
  // Scored: staff months for the teachers.
  EXPECT_FALSE(store->month_rows(kpihub::OutboxKind::staff_month, "2025-04").empty());

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

}  // namespace
