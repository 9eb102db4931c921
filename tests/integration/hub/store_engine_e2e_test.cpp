// The store's engine chosen in hub.json and moved with `kpihub store copy` (issue 20), with the
// `kpihub` binary, the counting source and the file sink: a hub runs on a RocksDB store, the
// commands that read open it beside the running hub, those that write say to stop it or use
// the admin API, and a store copied into another engine carries on where it stopped (nothing
// pulled or sent twice).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace {

const std::string kKpihub = std::string(KPIHUB_BINARY_DIR) + "/bin/kpihub";
const std::string kConfigDir = std::string(KPIHUB_SOURCE_DIR) + "/config";

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `kpihub args...`, stdout and stderr into out_file.
pid_t start(const std::vector<std::string>& args, const std::string& out_file) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* f = std::fopen(out_file.c_str(), "w");
    ::dup2(fileno(f), 1);
    ::dup2(fileno(f), 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(kKpihub.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kKpihub.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct RunResult {
  int code;
  std::string output;
};

class StoreEngineE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');  // a parameterized test's "name/0"
    dir_ = fs::temp_directory_path() /
           ("kpihub-engine-e2e-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "plugins");
    for (const char* p : {TEST_SOURCE_PLUGIN, TEST_SINK_PLUGIN}) {
      fs::copy_file(p, dir_ / "plugins" / fs::path(p).filename());
    }
  }
  void TearDown() override {
    if (hub_ > 0) {
      ::kill(hub_, SIGKILL);
      wait_exit(hub_);
    }
    if (!HasFailure()) fs::remove_all(dir_);
  }

  RunResult run(const std::vector<std::string>& args) {
    const std::string out = (dir_ / ("out-" + std::to_string(runs_++) + ".txt")).string();
    const int code = wait_exit(start(args, out));
    return {code, slurp(out)};
  }

  // hub.json with the counting source (`records` records in pages of `page_size`, every 7th
  // quarantined) and the file sink; `store` is written as is among the top-level keys. The data
  // folder and what the sink got are in `home` (a folder in the test's).
  std::string write_config(int records, int page_size, const std::string& store,
                           int page_delay_ms = 0, const std::string& home = "") {
    const fs::path at = dir_ / home;
    fs::create_directories(at);
    std::ofstream(at / "hub.json") << R"({
  "hub_id": "test-hub",
  "data_dir": ")" << (at / "var").string()
                                   << R"(",)" << store << R"(
  "plugin_dir": ")" << (dir_ / "plugins").string()
                                   << R"(",
  "today": "2025-05-10",
  "log_level": "warn",
  "catalog_files": [")" << kConfigDir
                                   << R"(/catalog/province.csv"],
  "staff_file": ")" << kConfigDir << R"(/staff.csv",
  "units_file": ")" << kConfigDir << R"(/units.csv",
  "rules_file": ")" << kConfigDir << R"(/rules.json",
  "holiday_files": [")" << kConfigDir
                                   << R"(/holidays/2025.csv"],
  "sources": [{"name": "counting", "plugin": "counting-source", "interval_ms": 100, "settings": {
    "records": )" << records << R"(, "page_size": )"
                                   << page_size << R"(, "page_delay_ms": )" << page_delay_ms << R"(,
    "staff": ["KH-000123", "KH-000124", "KH-000125"]}}],
  "sinks": [{"name": "files", "plugin": "file-sink", "batch_max_items": 50, "settings": {
    "file": ")" << (at / "delivered.tsv").string()
                                   << R"("}}],
  "admin": {"enabled": false}
})";
    return (at / "hub.json").string();
  }

  // key -> how many times the sink got it
  std::map<std::string, int> delivered(const std::string& home = "") {
    std::map<std::string, int> out;
    std::ifstream in(dir_ / home / "delivered.tsv");
    std::string line;
    while (std::getline(in, line)) {
      const auto t1 = line.find('\t');
      const auto t2 = line.find('\t', t1 + 1);
      ++out[line.substr(t1 + 1, t2 - t1 - 1)];
    }
    return out;
  }

  fs::path dir_;
  int runs_ = 0;
  pid_t hub_ = -1;
};

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "in: " << (text)

TEST_F(StoreEngineE2E, CheckConfigNamesTheEngineAndWhereItsStoreIs) {
  // RocksDB unless the configuration names SQLite.
  auto r = run({"check-config", "--config", write_config(10, 5, "")});
  EXPECT_CONTAINS(r.output, "store: rocksdb, folder " + (dir_ / "var/hub.rocksdb").string() +
                                ", memory budget 16 MB\n");
  r = run({"check-config", "--config",
           write_config(10, 5, R"( "store": "rocksdb", "store_memory_mb": 64,)")});
  EXPECT_CONTAINS(r.output, "store: rocksdb, folder " + (dir_ / "var/hub.rocksdb").string() +
                                ", memory budget 64 MB\n");
  r = run({"check-config", "--config", write_config(10, 5, R"( "store": "sqlite",)")});
  EXPECT_CONTAINS(r.output, "store: sqlite, file " + (dir_ / "var/hub.db").string() + "\n");
}

// RocksDB became the default engine after hubs had run on SQLite with configurations naming no
// engine: after the upgrade such a hub carries on with its SQLite store, says why, and never
// starts an empty RocksDB store beside it (which would pull every source again).
TEST_F(StoreEngineE2E, AnUpgradedHubWhoseConfigurationNamesNoEngineKeepsItsSqliteStore) {
  // Before the upgrade: the SQLite store, the default then.
  auto r = run({"run", "--once", "--config", write_config(350, 40, R"( "store": "sqlite",)")});
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(fs::is_regular_file(dir_ / "var/hub.db"));

  const auto config = write_config(420, 40, "");  // the same configuration, naming no engine
  r = run({"check-config", "--config", config});
  EXPECT_CONTAINS(r.output, "store: sqlite, file " + (dir_ / "var/hub.db").string() +
                                " (no \"store\" key, and the SQLite store " +
                                (dir_ / "var/hub.db").string() + " exists");
  r = run({"run", "--once", "--config", config});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "70 items: 60 new");  // from the stored cursor: 350..419
  EXPECT_FALSE(fs::exists(dir_ / "var/hub.rocksdb"));
  r = run({"status", "--config", config});
  EXPECT_CONTAINS(r.output, "(sqlite): 360 records");

  // Copied into RocksDB beside it: which of the two is meant is not guessed.
  r = run({"store", "copy", "--from", (dir_ / "var/hub.db").string(), "--to",
           (dir_ / "var/hub.rocksdb").string()});
  ASSERT_EQ(r.code, 0) << r.output;
  r = run({"run", "--once", "--config", config});
  EXPECT_EQ(r.code, 3) << r.output;
  EXPECT_CONTAINS(r.output, "no \"store\" key, and both " + (dir_ / "var/hub.db").string() +
                                " (a SQLite store) and " + (dir_ / "var/hub.rocksdb").string() +
                                " (a RocksDB store) exist: name the engine to use");
  write_config(420, 40, R"( "store": "rocksdb",)");  // the operator names the copy's engine
  r = run({"run", "--once", "--config", config});
  ASSERT_EQ(r.code, 0) << r.output;
  r = run({"status", "--config", config});
  EXPECT_CONTAINS(r.output, "(rocksdb): 360 records");
}

TEST_F(StoreEngineE2E, ARunOnARocksdbStoreStoresScoresAndForwardsAndStatusReadsIt) {
  const auto config = write_config(350, 40, R"( "store": "rocksdb",)");
  auto r = run({"run", "--once", "--config", config});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "350 items: 300 new");
  EXPECT_TRUE(fs::is_directory(dir_ / "var/hub.rocksdb"));
  EXPECT_TRUE(fs::exists(dir_ / "var/hub.rocksdb.lock"));  // the run lock, beside the folder
  EXPECT_FALSE(fs::exists(dir_ / "var/hub.db"));
  r = run({"status", "--config", config});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "store " + (dir_ / "var/hub.rocksdb").string() +
                                " (rocksdb): 300 records (300 revisions), 50 quarantined");
  EXPECT_CONTAINS(r.output, "scoring: 0 revisions not yet read, 0 staff months waiting");
  r = run({"report", "--month", "2025-04", "--format", "csv", "--config", config});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "KH-000123");
  const auto sent = delivered();
  int records = 0;
  for (const auto& [key, times] : sent) records += key.rfind("counting:", 0) == 0 ? 1 : 0;
  EXPECT_EQ(records, 300);
}

// After a fix of a source's plugin or mapping (issue 22): `kpihub source reset` has the next run
// read the source again from its start, which stores nothing twice and sends nothing again; and
// `kpihub quarantine dismiss` removes entries the fix made obsolete. Both audited, on both
// engines.
TEST_F(StoreEngineE2E, ASourceIsReadAgainFromItsStartAndObsoleteQuarantineIsDismissed) {
  for (const std::string engine : {"sqlite", "rocksdb"}) {
    SCOPED_TRACE(engine);
    const auto config = write_config(350, 40, " \"store\": \"" + engine + "\",", 0, engine);
    auto r = run({"run", "--once", "--config", config});
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_CONTAINS(r.output, "350 items: 300 new");
    const auto sent = delivered(engine);
    ASSERT_FALSE(sent.empty());

    r = run({"source", "reset", "nosuch", "--config", config});
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_CONTAINS(r.output, "no source nosuch in " + config);
    r = run({"source", "reset", "counting", "--config", config});
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_CONTAINS(r.output, "source counting: cursor \"");
    EXPECT_CONTAINS(r.output, "\" -> (none: its start); the next run reads it from there");
    r = run({"status", "--config", config});
    EXPECT_CONTAINS(r.output, "source counting: 300 records, 50 quarantined, cursor (none)");

    r = run({"run", "--once", "--config", config});
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_CONTAINS(r.output, "350 items: 0 new, 0 updated, 350 unchanged, 0 quarantined");
    EXPECT_EQ(delivered(engine), sent);  // nothing went out again
    r = run({"status", "--config", config});
    // The items quarantined again are the same entries: not kept twice.
    EXPECT_CONTAINS(r.output, "300 records (300 revisions), 50 quarantined");

    r = run({"quarantine", "dismiss", "--config", config});
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_CONTAINS(r.output, "quarantine dismiss needs --id, --source or --reason");
    r = run({"quarantine", "dismiss", "--reason", "no_such_reason", "--config", config});
    EXPECT_EQ(r.code, 2) << r.output;
    r = run({"quarantine", "dismiss", "--source", "counting", "--config", config});
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_CONTAINS(r.output, "50 quarantine entries dismissed (source \"counting\" reason \"\")");
    r = run({"status", "--config", config});
    EXPECT_CONTAINS(r.output, "300 records (300 revisions), 0 quarantined");
    EXPECT_CONTAINS(r.output, "source counting: 300 records, 0 quarantined");
  }
}

// RocksDB takes one writer, the running hub: a command that reads opens the store read-only
// beside it; one that writes is told to stop the hub or to ask it through the admin API.
TEST_F(StoreEngineE2E, BesideARunningHubReadingCommandsWorkAndWritingOnesSayWhatToDo) {
  const auto config = write_config(1000000, 10, R"( "store": "rocksdb",)", 20);
  hub_ = start({"run", "--config", config}, (dir_ / "hub.txt").string());
  bool stored = false;
  for (int i = 0; i < 200 && !stored; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto status = run({"status", "--config", config});
    stored = status.code == 0 && status.output.find(": 0 records") == std::string::npos &&
             status.output.find("records") != std::string::npos;
  }
  ASSERT_TRUE(stored) << slurp(dir_ / "hub.txt");
  auto r = run({"quarantine", "list", "--config", config});
  EXPECT_EQ(r.code, 0) << r.output;
  r = run({"explain", "--staff", "KH-000123", "--month", "2025-04", "--config", config});
  EXPECT_EQ(r.code, 0) << r.output;
  r = run({"dead-letters", "list", "--config", config});
  EXPECT_EQ(r.code, 0) << r.output;

  const std::string store = "store " + (dir_ / "var/hub.rocksdb").string() +
                            " is a RocksDB store, which one process at a time writes to, and "
                            "another kpihub process holds it (pid " +
                            std::to_string(hub_) + ", lock file " +
                            (dir_ / "var/hub.rocksdb.lock").string() +
                            "): stop the hub before `kpihub ";
  r = run({"rescore", "--month", "2025-04", "--config", config});
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_CONTAINS(r.output, store +
                                "rescore --month 2025-04`, or ask the running hub through "
                                "its admin API: POST /api/months/2025-04/rescore");
  r = run({"dead-letters", "replay", "7", "--config", config});
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_CONTAINS(r.output, store +
                                "dead-letters replay 7`, or ask the running hub through its "
                                "admin API: POST /api/dead-letters/7/replay");
  r = run({"quarantine", "replay", "--reason", "bad_value", "--config", config});
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_CONTAINS(r.output, "POST /api/quarantine/replay?source=&reason=bad_value");
  r = run({"quarantine", "dismiss", "--reason", "bad_value", "--config", config});
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_CONTAINS(r.output, store + "quarantine dismiss`");
  // The running hub holds the cursor in memory and would store its own over a reset.
  r = run({"source", "reset", "counting", "--config", config});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_CONTAINS(r.output, "source reset needs the hub stopped");

  r = run({"store", "copy", "--from", (dir_ / "var/hub.rocksdb").string(), "--to",
           (dir_ / "copy.db").string()});
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_CONTAINS(r.output, "store copy: rocksdb:" + (dir_ / "var/hub.rocksdb").string() +
                                " is in use by another kpihub process (pid " +
                                std::to_string(hub_) + ", lock file " +
                                (dir_ / "var/hub.rocksdb.lock").string() + "): stop the hub first");
  EXPECT_FALSE(fs::exists(dir_ / "copy.db"));

  ::kill(hub_, SIGTERM);
  EXPECT_EQ(wait_exit(hub_), 0) << slurp(dir_ / "hub.txt");
  hub_ = -1;
}

// The engine is not changed by a reload: the running store stays until a restart, and the log
// says so (a hub switching stores mid-run would start the sources from nothing).
TEST_F(StoreEngineE2E, ASighupNamingAnotherEngineKeepsTheRunningStore) {
  const auto config = write_config(1000000, 10, R"( "store": "sqlite",)", 20);
  hub_ = start({"run", "--config", config}, (dir_ / "hub.txt").string());
  const auto stored = [&] {
    const auto status = run({"status", "--config", config});
    return status.code == 0 && status.output.find(": 0 records") == std::string::npos;
  };
  bool ok = false;
  for (int i = 0; i < 200 && !(ok = stored()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(ok) << slurp(dir_ / "hub.txt");
  write_config(1000000, 10, R"( "store": "rocksdb",)", 20);
  ASSERT_EQ(::kill(hub_, SIGHUP), 0);
  bool warned = false;
  for (int i = 0; i < 200 && !warned; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    warned = slurp(dir_ / "hub.txt")
                 .find("store changed to rocksdb at " + (dir_ / "var/hub.rocksdb").string() +
                       "; another store needs a restart, the running one "
                       "stays") != std::string::npos;
  }
  EXPECT_TRUE(warned) << slurp(dir_ / "hub.txt");
  ::kill(hub_, SIGTERM);
  EXPECT_EQ(wait_exit(hub_), 0) << slurp(dir_ / "hub.txt");
  hub_ = -1;
  EXPECT_FALSE(fs::exists(dir_ / "var/hub.rocksdb"));
  // It went on storing into the SQLite file after the reload.
  const auto r =
      run({"status", "--config", write_config(1000000, 10, R"( "store": "sqlite",)", 20)});
  EXPECT_CONTAINS(r.output, "(sqlite): ");
}

// A store moved to the other engine carries on where it stopped: the source is pulled from its
// cursor, and the hub sends what a hub that never moved sends (scores it had sent are what it
// compares new ones with: a record whose score did not change is not sent again). The parameter
// is the engine copied into, from the other one.
class StoreCopyE2E : public StoreEngineE2E, public ::testing::WithParamInterface<std::string> {};

TEST_P(StoreCopyE2E, AStoreCopiedIntoAnotherEngineCarriesOnWhereItStopped) {
  const std::string engine = GetParam();
  const std::string from_engine = engine == "sqlite" ? "rocksdb" : "sqlite";
  auto r = run({"run", "--once", "--config",
                write_config(350, 40, R"( "store": ")" + from_engine + R"(",)")});
  ASSERT_EQ(r.code, 0) << r.output;
  const fs::path from = dir_ / "var" / (from_engine == "sqlite" ? "hub.db" : "hub.rocksdb");
  const fs::path copy = dir_ / "var" / ("copy." + engine);
  r = run({"store", "copy", "--from", from.string(), "--to", engine + ":" + copy.string()});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "store copy: 300 of 300 records copied (100%)");
  EXPECT_CONTAINS(r.output, "300 records, 50 quarantine entries, 1 cursors");
  EXPECT_CONTAINS(r.output, "counts: records 300 / 300, quarantined 50 / 50");
  EXPECT_CONTAINS(r.output, "the copy is whole");

  const auto config = write_config(
      420, 40, R"( "store": ")" + engine + R"(", "store_path": ")" + copy.string() + R"(",)");
  r = run({"run", "--once", "--config", config});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "70 items: 60 new");  // from the cursor copied: 350..419
  r = run({"status", "--config", config});
  EXPECT_CONTAINS(r.output, "(" + engine + "): 360 records");
  EXPECT_CONTAINS(r.output, "60 quarantined");
  EXPECT_CONTAINS(r.output, "cursor 420");
  // The same hub, never moved: it sends the same keys, as many times each.
  ASSERT_EQ(run({"run", "--once", "--config", write_config(350, 40, "", 0, "control")}).code, 0);
  ASSERT_EQ(run({"run", "--once", "--config", write_config(420, 40, "", 0, "control")}).code, 0);
  const auto sent = delivered();
  EXPECT_EQ(sent, delivered("control"));
  int records = 0;
  for (const auto& [key, times] : sent) records += key.rfind("counting:", 0) == 0 ? 1 : 0;
  EXPECT_EQ(records, 360);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreCopyE2E, ::testing::Values("sqlite", "rocksdb"),
                         [](const auto& info) { return std::string(info.param); });

TEST_F(StoreEngineE2E, StoreCopyRefusesANonEmptyDestinationAndAPathOfNoKnownEngine) {
  ASSERT_EQ(run({"run", "--once", "--config", write_config(20, 10, R"( "store": "sqlite",)")}).code,
            0);
  const std::string from = (dir_ / "var/hub.db").string();
  const std::string to = (dir_ / "copy.db").string();
  ASSERT_EQ(run({"store", "copy", "--from", from, "--to", to}).code, 0);
  auto r = run({"store", "copy", "--from", from, "--to", to});
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_CONTAINS(r.output, "store copy: the destination sqlite:" + to +
                                " is not empty (18 records, 2 quarantined, 1 sources");
  EXPECT_CONTAINS(r.output, "a copy goes only into a new store");
  r = run({"store", "copy", "--from", from, "--to", (dir_ / "elsewhere").string()});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "--to: cannot tell the engine of " + (dir_ / "elsewhere").string() +
                                " (nothing is there yet, and its name ends in neither .db nor "
                                ".rocksdb): write sqlite:");
  r = run({"store", "copy", "--from", from, "--to", from});
  EXPECT_EQ(r.code, 2) << r.output;
  r = run({"store", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_CONTAINS(r.output, "usage: kpihub store copy --from");
}

}  // namespace
