// The whole pipeline end to end over real sockets (issues 3 and 5, "Done
// when"): the `kpihub` binary with the real E-Office adapter and provincial
// sink, the E-Office simulator and the provincial receiver as child
// processes on loopback. Each test drives a run (clean, faulty, SIGKILLed,
// receiver restarted, poison record, TLS) and then checks what a user would:
// the hub's store holds exactly what E-Office served (compared with the
// simulator's GET /sim/served), and the receiver holds exactly the hub's
// scored records and monthly summaries (its read-back API), with no 409.
//
// Size: 5 agencies, 60 staff, 5 days by default (a few thousand records).
// For a province-size run set, e.g.,
//   KPIHUB_PIPELINE_AGENCIES=53 KPIHUB_PIPELINE_STAFF=7000 KPIHUB_PIPELINE_DAYS=22
// (see docs/performance.md).
//
// The tests run on the default store engine (a hub.json naming none); the
// SIGKILLs, the poison record and the memory under a backlog on each engine
// (PipelineE2EOnEachEngine).
#include <kpihub/net.hpp>
#include <kpihub/store/scoring_digest.hpp>
#include <kpihub/store/storage.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

const std::string kConfigDir = std::string(KPIHUB_SOURCE_DIR) + "/config";
const std::string kTls = std::string(KPIHUB_FIXTURES_DIR) + "/tls/";
const std::string kMonth = "2025-04";
const std::string kEOfficeClient = "kpihub";
const std::string kProvinceClient = "kpihub-hub";

int setting(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
const int kAgencies = setting("KPIHUB_PIPELINE_AGENCIES", 5);
const int kStaff = setting("KPIHUB_PIPELINE_STAFF", 60);
const int kDays = setting("KPIHUB_PIPELINE_DAYS", 5);
// Longest a single hub run or start-up may take before the test gives up.
const auto kRunLimit = std::chrono::seconds(setting("KPIHUB_PIPELINE_RUN_LIMIT_S", 240));
// Longest wait before each of the ten SIGKILLs. At test size the simulators
// are slowed down so that 1.5 s covers pulling and forwarding; at province
// size set it to a share of a clean run's length (e.g. 30000 for a 4-minute
// run), and the simulators run at full speed.
const int kKillMaxMs = setting("KPIHUB_PIPELINE_KILL_MAX_MS", 1500);

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// ------------------------------------------------------------ processes ---

struct Child {
  pid_t pid = -1;
  fs::path log;
  std::optional<int> code;  // exit code (128 + signal when killed) once reaped
};

Child spawn(const std::string& exe, const std::vector<std::string>& args, const fs::path& log) {
  Child c;
  c.log = log;
  // A log left by an earlier child must not be read as this one's.
  fs::remove(log);
  std::ofstream{log};
  c.pid = ::fork();
  if (c.pid == 0) {
    // A simulator must not outlive a test binary that crashed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      ::dup2(fileno(f), 1);
      ::dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    _exit(127);
  }
  return c;
}

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

// True once the child has ended (reaping it).
bool ended(Child& c) {
  if (c.code) return true;
  if (c.pid <= 0) return true;
  int status = 0;
  if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
    c.code = status_code(status);
    return true;
  }
  return false;
}

// Waits up to `limit`; kills the child with SIGKILL beyond it. Returns the code.
int wait_for(Child& c, std::chrono::steady_clock::duration limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!ended(c) && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(20ms);
  if (!ended(c)) {
    ::kill(c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    c.code = -1;  // did not end in time
  }
  return *c.code;
}

void stop(Child& c, int signal = SIGTERM) {
  if (ended(c)) return;
  ::kill(c.pid, signal);
  wait_for(c, 20s);
}

struct HubRun {
  int code;
  std::string output;
};

HubRun run_hub(const std::vector<std::string>& args, const fs::path& log) {
  Child c = spawn(PIPELINE_KPIHUB, args, log);
  const int code = wait_for(c, kRunLimit);
  return {code, slurp(log)};
}

// A simulator child and where it listens.
struct Server {
  Child proc;
  std::string url;  // http(s)://127.0.0.1:PORT
  uint16_t port = 0;
};

// Starts a simulator and waits for its "listening on URL" line.
Server start_server(const std::string& exe, const std::vector<std::string>& args,
                    const fs::path& log) {
  Server s;
  s.proc = spawn(exe, args, log);
  static const std::regex line(R"(listening on (https?://127\.0\.0\.1:(\d+)))");
  const auto until = std::chrono::steady_clock::now() + kRunLimit;
  while (std::chrono::steady_clock::now() < until) {
    std::smatch m;
    const std::string out = slurp(log);
    if (std::regex_search(out, m, line)) {
      s.url = m[1];
      s.port = static_cast<uint16_t>(std::stoi(m[2]));
      return s;
    }
    if (ended(s.proc)) break;
    std::this_thread::sleep_for(20ms);
  }
  stop(s.proc, SIGKILL);
  ADD_FAILURE() << exe << " did not start listening: " << slurp(log);
  return s;
}

// ------------------------------------------------------------------ HTTP ---

kpihub::net::ClientOptions client_options(bool tls) {
  kpihub::net::ClientOptions o;
  if (tls) o.ca_file = kTls + "ca.pem";
  o.request_timeout = 60s;
  return o;
}

// What the receiver holds, through its read-back API.
class ReceiverReader {
 public:
  ReceiverReader(std::string url, const std::string& secret, bool tls)
      : url_(std::move(url)), http_(client_options(tls)) {
    const auto r = http_.request(
        "POST", url_ + "/oauth2/token", {{"Content-Type", "application/x-www-form-urlencoded"}},
        "grant_type=client_credentials&client_id=" + kProvinceClient + "&client_secret=" + secret);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status == 200) token_ = json::parse(r.body).at("access_token").as_string().c_str();
  }
  kpihub::net::Response get(const std::string& path) {
    return http_.request("GET", url_ + path, {{"Authorization", "Bearer " + token_}});
  }
  json::object get_json(const std::string& path) {
    const auto r = get(path);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    json::error_code ec;
    auto v = json::parse(r.body, ec);
    return !ec && v.is_object() ? v.as_object() : json::object{};
  }

 private:
  std::string url_;
  kpihub::net::HttpClient http_;
  std::string token_;
};

struct ServedItem {
  std::string id;
  int64_t revision = 0;
  bool deleted = false;
  std::string malformed;  // empty: well-formed
};

std::vector<ServedItem> served(const std::string& eoffice_url, bool tls) {
  kpihub::net::ClientOptions options = client_options(tls);
  // A province-month's report is over 64 MiB (about 60 bytes per entry).
  options.max_response_body_bytes = 1024 * 1024 * 1024;
  kpihub::net::HttpClient http(options);
  const auto r = http.request("GET", eoffice_url + "/sim/served");
  EXPECT_EQ(r.status, 200) << r.body;
  std::vector<ServedItem> out;
  if (r.status != 200) return out;
  const json::value body = json::parse(r.body);
  for (const auto& v : body.at("items").as_array()) {
    const auto& o = v.as_object();
    ServedItem s;
    s.id = o.at("id").as_string().c_str();
    s.revision = o.at("revision").to_number<int64_t>();
    s.deleted = o.at("deleted").as_bool();
    if (const auto* m = o.if_contains("malformed_kind")) s.malformed = m->as_string().c_str();
    out.push_back(std::move(s));
  }
  return out;
}

// The quarantine reason code each kind of malformed item must get.
std::string expected_reason(const std::string& malformed_kind) {
  if (malformed_kind == "wrong_type") return "bad_value";
  if (malformed_kind == "bad_utf8") return "bad_encoding";
  if (malformed_kind == "bad_date") return "bad_value";
  if (malformed_kind == "missing_field") return "missing_field";
  return "?" + malformed_kind;
}

// ------------------------------------------------------------- fixture ---

struct SimOptions {
  std::vector<std::string> eoffice_args;   // extra flags (faults)
  std::vector<std::string> receiver_args;  // extra flags (faults, poison)
  bool tls = false;
  std::string server_cert = "server";  // fixture certificate the simulators serve
  int staff = kStaff;                  // E-Office size (agencies: kAgencies)
  int days = kDays;
};

enum class ReadBack { every_record, sample };

class PipelineE2E : public ::testing::Test {
 protected:
  // The engine hub.json names; empty: none, the hub's default.
  virtual std::string named_engine() const { return ""; }
  std::string engine() const {
    const std::string named = named_engine();
    return named.empty() ? kpihub::test::default_store_engine() : named;
  }
  fs::path store_path() const { return dir_ / "var" / kpihub::test::store_file_name(engine()); }

  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');  // "Test/rocksdb" on each engine
    dir_ =
        fs::temp_directory_path() / ("kpihub-pipeline-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "plugins");
    for (const char* p : {PIPELINE_EOFFICE_PLUGIN, PIPELINE_PROVINCIAL_PLUGIN}) {
      fs::copy_file(p, dir_ / "plugins" / fs::path(p).filename());
    }
    std::ofstream(dir_ / "eoffice-secret") << "pipeline-eoffice-secret\n";
    std::ofstream(dir_ / "province-secret") << "pipeline-province-secret\n";
  }
  void TearDown() override {
    stop(eoffice_.proc);
    stop(receiver_.proc);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::vector<std::string> tls_args(const SimOptions& o) {
    if (!o.tls) return {};
    return {"--tls-cert", kTls + o.server_cert + ".pem", "--tls-key",
            kTls + o.server_cert + ".key"};
  }

  void start_eoffice(const SimOptions& o) {
    std::vector<std::string> args = {"--seed",
                                     "20251123",
                                     "--agencies",
                                     std::to_string(kAgencies),
                                     "--staff",
                                     std::to_string(o.staff),
                                     "--days",
                                     std::to_string(o.days),
                                     "--month",
                                     kMonth,
                                     "--malformed",
                                     "0.02",
                                     "--client-id",
                                     kEOfficeClient,
                                     "--client-secret-file",
                                     (dir_ / "eoffice-secret").string()};
    for (const auto& a : tls_args(o)) args.push_back(a);
    for (const auto& a : o.eoffice_args) args.push_back(a);
    eoffice_ = start_server(PIPELINE_SIM_EOFFICE, args,
                            dir_ / ("eoffice-" + std::to_string(++eoffice_starts_) + ".log"));
  }

  // Starts the receiver; `port` 0 picks a free one, else the same port again.
  void start_receiver(const SimOptions& o, uint16_t port = 0) {
    std::vector<std::string> args = {"--port",
                                     std::to_string(port),
                                     "--db",
                                     (dir_ / "province.db").string(),
                                     "--client-id",
                                     kProvinceClient,
                                     "--client-secret-file",
                                     (dir_ / "province-secret").string()};
    for (const auto& a : tls_args(o)) args.push_back(a);
    for (const auto& a : o.receiver_args) args.push_back(a);
    receiver_ = start_server(PIPELINE_SIM_PROVINCE, args,
                             dir_ / ("receiver-" + std::to_string(++receiver_starts_) + ".log"));
  }

  void start_simulators(const SimOptions& o = {}) {
    start_eoffice(o);
    start_receiver(o);
  }

  // hub.json pointing at the simulators. `ca_file`: CA both plugins trust.
  std::string write_config(const std::string& ca_file = "", int page_size = 200,
                           int batch_items = 200, const std::string& eoffice_extra = "",
                           const std::string& sink_extra = "") {
    const std::string ca = ca_file.empty() ? "" : R"(, "ca_file": ")" + ca_file + R"(")";
    std::ofstream out(dir_ / "hub.json");
    out << R"({
  "hub_id": "pipeline-hub",
  "data_dir": ")"
        << (dir_ / "var").string() << R"(",)"
        << (named_engine().empty() ? "" : "\n  \"store\": \"" + named_engine() + "\",") << R"(
  "plugin_dir": ")"
        << (dir_ / "plugins").string() << R"(",
  "today": "2025-05-10",
  "log_level": ")"
        << log_level_ << R"(",
  "catalog_files": [")"
        << kConfigDir << R"(/catalog/province.csv"],
  "staff_file": ")"
        << kConfigDir << R"(/staff.csv",
  "units_file": ")"
        << kConfigDir << R"(/units.csv",
  "rules_file": ")"
        << kConfigDir << R"(/rules.json",
  "holiday_files": [")"
        << kConfigDir << R"(/holidays/2025.csv"],
  "sources": [
    {"name": "eoffice", "plugin": "eoffice", "interval_ms": 200, "settings": {
      "base_url": ")"
        << eoffice_.url << R"(", "client_id": ")" << kEOfficeClient
        << R"(", "client_secret_file": ")" << (dir_ / "eoffice-secret").string()
        << R"(", "page_size": )" << page_size << ca << eoffice_extra << R"(}}
  ],
  "sinks": [
    {"name": "provincial", "plugin": "provincial", "batch_max_items": )"
        << batch_items << R"(, "settings": {
      "base_url": ")"
        << receiver_.url << R"(", "client_id": ")" << kProvinceClient
        << R"(", "client_secret_file": ")" << (dir_ / "province-secret").string() << R"(")" << ca
        << sink_extra << R"(}}
  ],
  "admin": {"enabled": false}
})";
    return (dir_ / "hub.json").string();
  }

  HubRun run_once(const std::string& config, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"run", "--once", "--config", config};
    for (const auto& a : extra) args.push_back(a);
    return run_hub(args, dir_ / ("run-" + std::to_string(++runs_) + ".txt"));
  }

  // run --once until it exits 0 with an empty outbox, at most `max_runs`
  // times: under heavy faults one run may give up on a page or a batch and
  // leave the rest for the next run, as the operator's next run would.
  HubRun run_until_done(const std::string& config, int max_runs) {
    HubRun r{-1, ""};
    for (int i = 0; i < max_runs; ++i) {
      r = run_once(config);
      if (r.code == 0) return r;
      std::cerr << "run --once " << i + 1 << " ended " << r.code << "; running again:\n"
                << r.output << "\n";
    }
    return r;
  }

  // The store the hub wrote, read-only: RocksDB has one writer, and a hub may be running beside
  // it (a StoreError until the hub made it).
  std::unique_ptr<kpihub::Storage> open_store() {
    kpihub::test::TestStoreOptions options;
    options.read_only = true;
    return kpihub::test::open_test_store(engine(), store_path(), options);
  }

  // Every log the hub and the simulators wrote in this test.
  std::string all_logs() {
    std::string out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const auto ext = e.path().extension();
      if (ext == ".txt" || ext == ".log") out += slurp(e.path());
    }
    return out;
  }

  std::string log_level_ = "warn";

  // The store holds exactly what E-Office served, and the receiver exactly
  // the hub's scored records and monthly summaries. `poison`: a record id the
  // receiver refused, expected as a dead letter and nowhere downstream.
  void expect_final_state(bool tls, ReadBack read_back,
                          const std::optional<std::string>& poison = std::nullopt) {
    const auto items = served(eoffice_.url, tls);
    ASSERT_FALSE(items.empty());
    auto store = open_store();

    // --- the hub's store against /sim/served --------------------------------
    std::map<std::string, kpihub::WorkRecord> stored;  // by source id
    for (auto& r : store->records().records_of_month(kMonth))
      stored.emplace(r.source_id, std::move(r));
    std::map<std::string, std::set<std::string>> quarantined;  // source id -> reasons
    int64_t after = 0;
    for (int page = 0; page < 10000; ++page) {
      const auto rows = store->views().quarantine("eoffice", "", 1000, after);
      if (rows.empty()) break;
      for (const auto& q : rows) {
        quarantined[q.entry.source_id].insert(std::string(kpihub::to_string(q.entry.reason)));
      }
      after = rows.back().id;
    }
    std::size_t well_formed = 0, malformed = 0, deleted = 0, withdrawn_malformed = 0;
    for (const auto& s : items) {
      SCOPED_TRACE(s.id);
      if (!s.malformed.empty()) {
        ++malformed;
        EXPECT_EQ(stored.count(s.id), 0u) << "a malformed item was stored";
        const auto q = quarantined.find(s.id);
        if (s.deleted && (s.malformed == "bad_date" || s.malformed == "missing_field")) {
          // A deletion needs only the id (issue 18): its invalid last content, which the hub
          // checks itself, needs no fixing, and it withdraws nothing the hub stored. (The
          // adapter still rejects the other kinds, type and encoding, before the hub sees
          // that the item is a deletion.)
          EXPECT_EQ(q, quarantined.end()) << "a deleted " << s.malformed << " item in quarantine";
          ++withdrawn_malformed;
          continue;
        }
        ASSERT_NE(q, quarantined.end()) << s.malformed << " item not in quarantine";
        EXPECT_EQ(q->second, std::set<std::string>{expected_reason(s.malformed)}) << s.malformed;
        continue;
      }
      ++well_formed;
      const auto r = stored.find(s.id);
      ASSERT_NE(r, stored.end()) << "served but not stored";
      EXPECT_EQ(r->second.revision, s.revision) << "not the highest revision";
      EXPECT_EQ(r->second.retracted, s.deleted) << "deletion not withdrawn";
      if (s.deleted) ++deleted;
    }
    EXPECT_EQ(stored.size(), well_formed) << "the store has ids E-Office never served";
    EXPECT_EQ(quarantined.size(), malformed - withdrawn_malformed)
        << "quarantine has items that were well-formed";
    EXPECT_GT(malformed, 0u);
    EXPECT_GT(deleted, 0u);
    const auto counts = store->views().counts();
    EXPECT_EQ(counts.records, static_cast<int64_t>(well_formed));
    EXPECT_EQ(counts.outbox_pending, 0) << "the outbox is not empty";
    EXPECT_EQ(counts.dead_letters, poison ? 1 : 0);

    // --- the receiver against the hub's scored records ----------------------
    std::vector<std::string> ids;
    for (const auto& [source_id, r] : stored) ids.push_back(r.record_id);
    const auto scores = store->scoring().record_scores(ids);
    ASSERT_EQ(scores.size(), ids.size()) << "a stored record was never scored";
    std::map<std::string, const kpihub::WorkRecord*> by_record_id;
    for (const auto& [source_id, r] : stored) by_record_id[r.record_id] = &r;

    ReceiverReader receiver(receiver_.url, "pipeline-province-secret", tls);
    const auto stats = receiver.get_json("/api/v1/kpi/stats");
    ASSERT_TRUE(stats.contains("records")) << json::serialize(stats);
    EXPECT_EQ(stats.at("conflicts_409").to_number<int64_t>(), 0)
        << "an Idempotency-Key came with two different bodies";
    int64_t live = 0, withdrawn = 0;
    for (const auto& [id, r] : by_record_id) {
      if (poison && id == *poison) continue;
      (r->retracted ? withdrawn : live) += 1;
    }
    EXPECT_EQ(stats.at("records").to_number<int64_t>(), live) << json::serialize(stats);
    // A record deleted before it was ever sent has nothing to withdraw.
    EXPECT_LE(stats.at("retracted").to_number<int64_t>(), withdrawn) << json::serialize(stats);

    const std::size_t step =
        read_back == ReadBack::every_record ? 1 : std::max<std::size_t>(1, scores.size() / 60);
    for (std::size_t i = 0; i < scores.size(); i += step) {
      const auto& score = scores[i];
      SCOPED_TRACE(score.record_id);
      const auto* record = by_record_id.at(score.record_id);
      const auto reply = receiver.get("/api/v1/kpi/records/" + score.record_id);
      json::error_code ec;
      const auto body = json::parse(reply.body, ec);
      ASSERT_FALSE(ec) << reply.body;
      if (poison && score.record_id == *poison) {
        EXPECT_EQ(reply.status, 404) << "the poison record was stored";
        EXPECT_FALSE(body.as_object().contains("retracted"));
        continue;
      }
      EXPECT_EQ(score.revision, record->revision);
      if (record->retracted) {
        // Withdrawn, or never held (deleted before it was first sent).
        EXPECT_EQ(reply.status, 404) << "a deleted record is still held: " << reply.body;
        if (body.as_object().contains("retracted")) {
          EXPECT_EQ(body.at("revision").to_number<int64_t>(), record->revision);
        }
        continue;
      }
      ASSERT_EQ(reply.status, 200) << reply.body;
      EXPECT_EQ(body.at("revision").to_number<int64_t>(), record->revision);
      EXPECT_EQ(body.at("scoring").at("sequence").to_number<int64_t>(), score.sequence)
          << "not the hub's latest scoring";
      // The hub keeps a digest of the scoring it sent, without its sequence (kept beside it).
      json::object scoring;
      for (const auto& field : body.at("scoring").as_object()) {
        if (field.key() != "sequence") scoring.emplace(field.key(), field.value());
      }
      EXPECT_EQ(kpihub::scoring_digest(json::serialize(scoring)), score.scoring_digest)
          << "scoring differs: the receiver holds " << json::serialize(scoring);
    }

    // --- monthly summaries ---------------------------------------------------
    const auto months = receiver.get_json("/api/v1/kpi/months?month=" + kMonth);
    auto by_code = [](const json::value& list, const char* key) {
      std::map<std::string, json::value> out;
      if (!list.is_array()) return out;
      for (const auto& v : list.as_array()) out[v.at(key).as_string().c_str()] = v;
      return out;
    };
    std::map<std::string, json::value> hub_staff, hub_agency;
    for (const auto& r : store->scoring().month_rows(kpihub::OutboxKind::staff_month, kMonth)) {
      hub_staff[r.code] = json::parse(r.json);
    }
    for (const auto& r : store->scoring().month_rows(kpihub::OutboxKind::agency_month, kMonth)) {
      hub_agency[r.code] = json::parse(r.json);
    }
    EXPECT_FALSE(hub_staff.empty());
    EXPECT_FALSE(hub_agency.empty());
    const auto got_staff = by_code(
        months.contains("staff_months") ? months.at("staff_months") : json::value(), "staff_code");
    const auto got_agency =
        by_code(months.contains("agency_months") ? months.at("agency_months") : json::value(),
                "agency_code");
    EXPECT_EQ(got_staff.size(), hub_staff.size());
    EXPECT_EQ(got_agency.size(), hub_agency.size());
    for (const auto& [code, v] : hub_staff) {
      const auto it = got_staff.find(code);
      ASSERT_NE(it, got_staff.end()) << "staff month " << code << " not at the receiver";
      EXPECT_EQ(it->second, v) << "staff month " << code << " differs";
    }
    for (const auto& [code, v] : hub_agency) {
      const auto it = got_agency.find(code);
      ASSERT_NE(it, got_agency.end()) << "agency month " << code << " not at the receiver";
      EXPECT_EQ(it->second, v) << "agency month " << code << " differs";
    }
    EXPECT_EQ(stats.at("months").at("staff").to_number<int64_t>(),
              static_cast<int64_t>(hub_staff.size()));
    EXPECT_EQ(stats.at("months").at("agency").to_number<int64_t>(),
              static_cast<int64_t>(hub_agency.size()));
  }

  fs::path dir_;
  Server eoffice_;
  Server receiver_;
  int eoffice_starts_ = 0;
  int receiver_starts_ = 0;
  int runs_ = 0;
};

}  // namespace

// What a store engine must keep whatever the engine: run on each.
class PipelineE2EOnEachEngine : public PipelineE2E,
                                public ::testing::WithParamInterface<std::string> {
 protected:
  std::string named_engine() const override { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Engines, PipelineE2EOnEachEngine,
                         ::testing::ValuesIn(kpihub::test::store_engines()),
                         kpihub::test::engine_name);

TEST_F(PipelineE2E, CleanRunStoresWhatWasServedAndDeliversEverything) {
  start_simulators();
  const auto config = write_config();
  const auto r = run_once(config);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_final_state(false, ReadBack::every_record);

  // A second run finds nothing new and sends nothing again.
  ReceiverReader receiver(receiver_.url, "pipeline-province-secret", false);
  const auto before = receiver.get_json("/api/v1/kpi/stats");
  const auto again = run_once(config);
  ASSERT_EQ(again.code, 0) << again.output;
  const auto after = receiver.get_json("/api/v1/kpi/stats");
  EXPECT_EQ(after.at("batches"), before.at("batches")) << again.output;
}

TEST_F(PipelineE2E, FaultsOnBothSidesEndInTheSameState) {
  SimOptions o;
  // The issues' shares; slow answers too; tokens expire every 2 s (the issues
  // say 30 s: shorter is harsher and keeps the test short).
  o.eoffice_args = {"--fail-5xx", "0.2",  "--fail-429", "0.05",     "--retry-after", "1",
                    "--drop",     "0.05", "--slow",     "0.05:300", "--token-ttl",   "2"};
  o.receiver_args = {"--fail-500", "0.3",  "--fail-429", "0.1",      "--retry-after", "1",
                     "--drop",     "0.05", "--slow",     "0.05:300", "--token-ttl",   "2"};
  start_simulators(o);
  // Few, large batches: each failed attempt backs off exponentially (1 s, 2 s,
  // 4 s ...), and a batch goes through only when every request of it does.
  log_level_ = "debug";  // the most the hub ever writes, for the secrets check below
  const auto config = write_config("", 200, 1000, R"(, "max_attempts": 10)");
  // One run --once normally finishes; if it gives up on a page or a batch
  // after its retries, the next run goes on from the stored cursor/outbox.
  const auto r = run_until_done(config, 4);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_final_state(false, ReadBack::sample);
  ReceiverReader receiver(receiver_.url, "pipeline-province-secret", false);
  EXPECT_GT(receiver.get_json("/api/v1/kpi/stats").at("faults_injected").to_number<int64_t>(), 0);

  // Token renewals, 401s and retries all happened: no secret reached a log.
  const std::string logs = all_logs();
  EXPECT_NE(logs.find("\"level\":\"debug\""), std::string::npos) << "the hub logged at debug level";
  for (const char* secret : {"pipeline-eoffice-secret", "pipeline-province-secret"}) {
    EXPECT_EQ(logs.find(secret), std::string::npos) << "secret " << secret << " is in a log";
  }
}

// Issue 3's fault run: E-Office alone misbehaves (20% 5xx, 5% 429, dropped
// connections, tokens that expire every 30 s; the receiver is healthy, so at
// province size the run is not dominated by forwarding under faults).
TEST_F(PipelineE2E, EOfficeFaultsAloneEndInTheSameStore) {
  SimOptions o;
  o.eoffice_args = {"--fail-5xx", "0.2",    "--fail-429", "0.05",        "--retry-after",
                    "1",          "--drop", "0.05",       "--token-ttl", "30"};
  start_simulators(o);
  log_level_ = "debug";  // the adapter reports later retries at debug level
  const auto config = write_config("", 200, 1000, R"(, "max_attempts": 10)");
  const auto r = run_until_done(config, 4);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_final_state(false, ReadBack::sample);
  EXPECT_NE(all_logs().find("); retrying in "), std::string::npos)
      << "no fault reached the adapter";
}

TEST_P(PipelineE2EOnEachEngine, KilledAtTenRandomMomentsEndsInTheSameState) {
  SimOptions o;
  const bool province_size = kKillMaxMs > 1500;
  if (!province_size) {
    // Slow answers and small pages and batches stretch pulling and forwarding
    // over the ten kills, so that each lands in the middle of the work.
    o.eoffice_args = {"--slow", "1:60"};
    o.receiver_args = {"--slow", "1:100"};
  }
  start_simulators(o);
  std::size_t well_formed = 0;
  for (const auto& s : served(eoffice_.url, false)) well_formed += s.malformed.empty() ? 1 : 0;
  const auto config = province_size ? write_config("", 1000, 2000) : write_config("", 100, 100);
  std::mt19937 rng(20251123);
  std::uniform_int_distribution<int> delay_ms(300, kKillMaxMs);
  int interrupted = 0;
  std::string stages;
  for (int i = 0; i < 10; ++i) {
    Child hub = spawn(PIPELINE_KPIHUB, {"run", "--config", config},
                      dir_ / ("kill-" + std::to_string(i) + ".txt"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(hub.pid, SIGKILL);
    ASSERT_EQ(wait_for(hub, 20s), 128 + SIGKILL) << slurp(hub.log);
    if (!fs::exists(store_path())) {
      stages += " start";
      ++interrupted;
      continue;
    }
    const auto counts = open_store()->views().counts();
    if (counts.records < static_cast<int64_t>(well_formed)) {
      stages += " pulling(" + std::to_string(counts.records) + ")";
      ++interrupted;
    } else if (counts.outbox_pending > 0) {
      stages += " forwarding(" + std::to_string(counts.outbox_pending) + " waiting)";
      ++interrupted;
    } else {
      stages += " done";
    }
  }
  std::cout << "killed while:" << stages << "\n";
  EXPECT_GE(interrupted, 5) << "most kills should land in the middle of the work:" << stages;
  const auto r = run_once(config);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_final_state(false, ReadBack::sample);
}

TEST_F(PipelineE2E, ReceiverRestartedMidRunEndsInTheSameState) {
  SimOptions o;
  o.receiver_args = {"--slow", "1:100"};
  start_simulators(o);
  const auto config = write_config("", 200, 50);
  Child hub = spawn(PIPELINE_KPIHUB, {"run", "--once", "--config", config}, dir_ / "run-mid.txt");
  // Wait until the receiver has taken some batches, then kill it.
  {
    ReceiverReader receiver(receiver_.url, "pipeline-province-secret", false);
    int64_t batches = 0;
    for (int i = 0; i < 3000 && batches < 3 && !ended(hub); ++i) {
      batches = receiver.get_json("/api/v1/kpi/stats").at("batches").to_number<int64_t>();
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_GE(batches, 3) << "the hub never forwarded: " << slurp(hub.log);
  }
  const uint16_t port = receiver_.port;
  stop(receiver_.proc, SIGKILL);
  std::this_thread::sleep_for(1500ms);
  // Again on the same port and database (the port may take a moment to free).
  for (int attempt = 0; attempt < 20; ++attempt) {
    start_receiver(o, port);
    if (receiver_.port == port) break;
    std::this_thread::sleep_for(250ms);
  }
  ASSERT_EQ(receiver_.port, port);
  const int code = wait_for(hub, kRunLimit);
  const std::string out = slurp(hub.log);
  if (code != 0) {
    // The run may have given up while the receiver was away; the next one
    // delivers what waits in the outbox.
    const auto r = run_until_done(config, 3);
    ASSERT_EQ(r.code, 0) << out << r.output;
  }
  expect_final_state(false, ReadBack::sample);
}

// Issue 19 section 4: following docs/operations.md's backup and restore, the receiver kept
// stale summaries and records (the hub handed out numbers it had sent before with other
// content). A backup taken mid-run, the run finished, the backup restored, the hub run again and
// `kpihub resend` of the month: the receiver ends exactly as the hub's store says, which holds
// exactly what E-Office served, as after a clean run. Then the store is lost altogether and
// the hub starts from nothing: the same end.
TEST_P(PipelineE2EOnEachEngine, ARestoredOrLostStoreEndsAsACleanRunAtTheReceiver) {
  SimOptions o;
  o.receiver_args = {"--slow", "1:100"};  // forwarding takes seconds: the backup lands mid-run
  start_simulators(o);
  const auto config = write_config("", 100, 50);
  {
    Child hub = spawn(PIPELINE_KPIHUB, {"run", "--config", config}, dir_ / "before-backup.txt");
    ReceiverReader receiver(receiver_.url, "pipeline-province-secret", false);
    int64_t batches = 0;
    for (int i = 0; i < 3000 && batches < 2 && !ended(hub); ++i) {
      batches = receiver.get_json("/api/v1/kpi/stats").at("batches").to_number<int64_t>();
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_GE(batches, 2) << "the hub never forwarded: " << slurp(hub.log);
    stop(hub, SIGTERM);  // the backup procedure stops the hub (RocksDB) or uses .backup
  }
  // Mid-run: part of what the store holds is at the receiver, part still waits to be sent.
  ASSERT_GT(open_store()->views().counts().outbox_pending, 0) << "the backup is not mid-run";
  const fs::path backup = dir_ / "backup";
  fs::copy(store_path(), backup, fs::copy_options::recursive);
  // From here on, large batches: the slow receiver answers each in 100 ms.
  write_config("", 100, 1000);
  ASSERT_EQ(run_until_done(config, 3).code, 0);
  expect_final_state(false, ReadBack::sample);

  // The restore, as docs/operations.md says: the hub stopped, the store put back whole.
  fs::remove_all(store_path());
  fs::copy(backup, store_path(), fs::copy_options::recursive);
  ASSERT_EQ(run_until_done(config, 3).code, 0);
  auto resend = run_hub({"resend", "--months", kMonth + ".." + kMonth, "--config", config},
                        dir_ / "resend.txt");
  ASSERT_EQ(resend.code, 0) << resend.output;
  EXPECT_NE(resend.output.find("resend " + kMonth + ".." + kMonth + ": "), std::string::npos)
      << resend.output;
  ASSERT_EQ(run_until_done(config, 3).code, 0);
  expect_final_state(false, ReadBack::every_record);

  // The store lost: the hub starts from nothing, pulls everything again and sends it under
  // numbers above everything sent before.
  fs::remove_all(store_path());
  ASSERT_EQ(run_until_done(config, 3).code, 0);
  expect_final_state(false, ReadBack::every_record);
}

// Peak resident memory of a process so far (VmHWM, kB), 0 once it is gone.
int64_t peak_rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return 0;
}

// On each engine: what the hub's memory does under a backlog is the store engine's doing
// (SQLite's page caches; RocksDB's block cache and write buffers within store_memory_mb).
TEST_P(PipelineE2EOnEachEngine,
       ADeadReceiverLetsTheOutboxGrowOnDiskWhileMemoryStaysFlatAndPullingGoesOn) {
  SimOptions o;
  // Big enough that holding the backlog in memory would show: ~80k records,
  // ~80 MB of outbox payloads.
  o.staff = std::max(kStaff, 400);
  o.days = std::max(kDays, 20);
  start_simulators(o);
  std::size_t well_formed = 0, live = 0;
  for (const auto& s : served(eoffice_.url, false)) {
    well_formed += s.malformed.empty() ? 1 : 0;
    live += s.malformed.empty() && !s.deleted ? 1 : 0;
  }
  const uint16_t receiver_port = receiver_.port;
  stop(receiver_.proc, SIGKILL);  // dead: connections to its port are refused
  const auto config = write_config("", 1000, 500);

  Child hub = spawn(PIPELINE_KPIHUB, {"run", "--config", config}, dir_ / "run-dead.txt");
  int64_t peak_at_quarter = 0;
  kpihub::StoreCounts counts;
  const auto until = std::chrono::steady_clock::now() + kRunLimit;
  while (std::chrono::steady_clock::now() < until && !ended(hub)) {
    std::this_thread::sleep_for(100ms);
    if (!fs::exists(store_path())) continue;
    try {
      auto store = open_store();
      counts = store->views().counts();
      // From when a quarter of the backlog waits in the outbox (scoring and the
      // sink's retries are running by then) to when all of it does.
      if (peak_at_quarter == 0 && counts.outbox_pending * 4 >= static_cast<int64_t>(well_formed)) {
        peak_at_quarter = peak_rss_kb(hub.pid);
      }
      // Everything pulled and scored (nothing left in the scorer's change log or marked for
      // it): the whole backlog waits in the outbox.
      if (counts.records == static_cast<int64_t>(well_formed) && counts.revisions_to_read == 0 &&
          counts.staff_months_to_score == 0) {
        break;
      }
    } catch (const kpihub::StoreError&) {
      // The hub may be creating the database at that moment.
    }
  }
  const int64_t peak_at_end = peak_rss_kb(hub.pid);
  ASSERT_FALSE(ended(hub)) << "the hub stopped while the receiver was dead: " << slurp(hub.log);
  stop(hub, SIGTERM);
  EXPECT_EQ(hub.code, 0) << slurp(hub.log);

  // Pulling went on: every well-formed item is stored although nothing could be delivered.
  EXPECT_EQ(counts.records, static_cast<int64_t>(well_formed));
  // Every record not deleted at the source waits, with the months; one deleted before it was
  // ever sent has nothing to withdraw and is not sent.
  EXPECT_GE(counts.outbox_pending, static_cast<int64_t>(live))
      << "records and months wait in the outbox";
  // Memory stayed flat while the outbox grew from a quarter of the backlog to all of it.
  ASSERT_GT(peak_at_quarter, 0);
  std::cout << "peak RSS with a quarter of the backlog in the outbox: " << peak_at_quarter / 1024
            << " MB; with all of it waiting (" << counts.outbox_pending
            << " items): " << peak_at_end / 1024 << " MB\n";
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps freed memory in quarantine (256 MB) and adds shadow
  // memory: the hub's RSS grows with its allocations, not its backlog (seen in
  // CI: 616 -> 921 MB). The bound is checked in the normal build.
  std::cout << "AddressSanitizer build: the memory bound is not checked\n";
#else
  // Holding the backlog in memory would add ~60 MB here. What may grow is bounded: SQLite's
  // page caches (8 MB per connection) fill as the store grows (seen: +0 to +16 MB, more
  // under load), so the bound is 24 MB; and issue 7's ceiling holds whatever the backlog.
  EXPECT_LT(peak_at_end - peak_at_quarter, 24 * 1024)
      << "peak RSS grew with the backlog: " << peak_at_quarter << " kB -> " << peak_at_end << " kB";
  EXPECT_LT(peak_at_end, 100 * 1024) << "peak RSS over issue 7's 100 MB: " << peak_at_end << " kB";
#endif

  // The receiver comes back on its port: everything waiting is delivered, nothing twice.
  for (int attempt = 0; attempt < 20; ++attempt) {
    start_receiver(o, receiver_port);
    if (receiver_.port == receiver_port) break;
    std::this_thread::sleep_for(250ms);
  }
  ASSERT_EQ(receiver_.port, receiver_port);
  const auto r = run_until_done(config, 3);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_final_state(false, ReadBack::sample);
}

TEST_P(PipelineE2EOnEachEngine, PoisonRecordIsADeadLetterWithTheReceiversReason) {
  start_eoffice({});
  std::string poison;
  for (const auto& s : served(eoffice_.url, false)) {
    if (s.malformed.empty() && !s.deleted) {
      poison = "eoffice:" + s.id;
      break;
    }
  }
  ASSERT_FALSE(poison.empty());
  SimOptions o;
  o.receiver_args = {"--reject-record", poison};
  start_receiver(o);
  const auto config = write_config();
  const auto r = run_once(config);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_final_state(false, ReadBack::sample, poison);
  const auto list = run_hub({"dead-letters", "list", "--config", config}, dir_ / "dl.txt");
  EXPECT_EQ(list.code, 0) << list.output;
  EXPECT_NE(list.output.find(poison + "\tpoison\trecord " + poison +
                             " is refused by the receiver's --reject-record setting"),
            std::string::npos)
      << list.output;
}

TEST_F(PipelineE2E, HttpsWithTheTestCaWorks) {
  SimOptions o;
  o.tls = true;
  start_simulators(o);
  ASSERT_EQ(eoffice_.url.rfind("https://", 0), 0u) << eoffice_.url;
  const auto config = write_config(kTls + "ca.pem");
  const auto r = run_once(config);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_final_state(true, ReadBack::sample);
}

TEST_F(PipelineE2E, HttpsWithTheWrongCaIsRefusedNamingTheCertificateProblem) {
  SimOptions o;
  o.tls = true;
  start_simulators(o);
  // Both sides distrusted: pulling fails and says why.
  auto r = run_once(write_config(kTls + "other-ca.pem"), {"--forward-timeout", "5"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("certificate verify failed"), std::string::npos) << r.output;
  EXPECT_EQ(open_store()->views().counts().records, 0);

  // E-Office trusted, the receiver not: records are stored, forwarding fails
  // and says why, and they wait in the outbox.
  r = run_once(write_config("", 200, 200, R"(, "ca_file": ")" + kTls + R"(ca.pem")",
                            R"(, "ca_file": ")" + kTls + R"(other-ca.pem")"),
               {"--forward-timeout", "5"});
  // (write_config's ca_file is empty, so each plugin gets its own.)
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("certificate verify failed"), std::string::npos) << r.output;
  const auto counts = open_store()->views().counts();
  EXPECT_GT(counts.records, 0);
  EXPECT_GT(counts.outbox_pending, 0);
}

TEST_F(PipelineE2E, HttpsWithAHostNameMismatchIsRefusedNamingTheHost) {
  SimOptions o;
  o.tls = true;
  o.server_cert = "wrong-host";
  start_simulators(o);
  auto r = run_once(write_config(kTls + "ca.pem"), {"--forward-timeout", "5"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("certificate is not valid for host '127.0.0.1'"), std::string::npos)
      << r.output;
  EXPECT_EQ(open_store()->views().counts().records, 0);

  // E-Office with the right certificate, the receiver still with the wrong
  // one: records are stored, forwarding is refused naming the host.
  stop(eoffice_.proc);
  SimOptions good = o;
  good.server_cert = "server";
  start_eoffice(good);
  r = run_once(write_config(kTls + "ca.pem"), {"--forward-timeout", "5"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("certificate is not valid for host '127.0.0.1'"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("provincial"), std::string::npos) << r.output;
  const auto counts = open_store()->views().counts();
  EXPECT_GT(counts.records, 0);
  EXPECT_GT(counts.outbox_pending, 0);
}

// Regression: when E-Office's staff list could not be read at start, the hub
// pulled anyway and quarantined everyone known only from E-Office as
// unknown_staff, then reported "no errors".
TEST_F(PipelineE2E, AnUnreadableStaffListStopsThatSourceInsteadOfQuarantiningItsStaff) {
  start_simulators();
  const auto r = run_once(write_config("", 200, 200, R"(, "staff_path": "/api/v1/staff-gone")"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("source eoffice: not pulled, because its staff list could not be read"),
            std::string::npos)
      << r.output;
  auto store = open_store();
  EXPECT_EQ(store->views().counts().records, 0);
  EXPECT_TRUE(store->views().quarantine("eoffice", "unknown_staff", 5, 0).empty());

  // Once the list can be read again, the same store fills normally.
  const auto again = run_once(write_config());
  ASSERT_EQ(again.code, 0) << again.output;
  expect_final_state(false, ReadBack::sample);
}
