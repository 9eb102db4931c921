// kpihub: the hub's command line. Each subcommand has its own --help.
#include <kpihub/admin.hpp>
#include <kpihub/hub.hpp>
#include <kpihub/model_json.hpp>
#include <kpihub/run_lock.hpp>
#include <kpihub/sdk.hpp>
#include <kpihub/store/copy.hpp>
#include <kpihub/store/rocksdb.hpp>
#include <kpihub/store/sqlite.hpp>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace kpihub;

namespace {

std::atomic<bool> g_stop{false};  // set from the signal handler; atomic<bool> is lock-free
std::atomic<bool> g_reload{false};
extern "C" void on_signal(int) {
  g_stop.store(true);
}
extern "C" void on_reload_signal(int) {
  g_reload.store(true);
}

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConfig = 3;
constexpr int kExitStore = 4;

const char* kDefaultConfig = "config/hub.json";

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

// Parses the subcommand's options; prints help and returns false on --help.
bool parse(const std::vector<std::string>& args, po::options_description& desc,
           po::variables_map& vm, const std::string& usage,
           po::positional_options_description* positional = nullptr) {
  desc.add_options()("help,h", "show this help");
  try {
    auto parser = po::command_line_parser(args).options(desc);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    // --help wins over missing required options.
    if (vm.count("help")) {
      std::cout << "usage: " << usage << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Usage(std::string(e.what()) + "\nusage: " + usage);
  }
  return true;
}

void add_config_option(po::options_description& desc) {
  desc.add_options()("config,c", po::value<std::string>()->default_value(kDefaultConfig),
                     "hub configuration file (JSON)");
}

// The --month option, checked: a usage error names the value.
Month month_option(const po::variables_map& vm) {
  const std::string text = vm["month"].as<std::string>();
  const auto month = Month::parse(text);
  if (!month) throw Usage("--month: \"" + text + "\" is not YYYY-MM");
  return *month;
}

HubConfig load_config(const po::variables_map& vm) {
  return load_hub_config(vm["config"].as<std::string>());
}

// The data folder must exist and be writable before the store opens in it.
void prepare_data_dir(const HubConfig& config) {
  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec)
    throw StoreError("data folder " + config.data_dir + ": cannot create it: " + ec.message());
  if (::access(config.data_dir.c_str(), W_OK) != 0) {
    throw StoreError("data folder " + config.data_dir + ": not writable by this user");
  }
}

LogLevel log_level_of(const HubConfig& config) {
  LogLevel level = LogLevel::info;
  // load_config accepted it: a level the logger does not know is a bug, never a silent `info`.
  if (!parse_log_level(config.log_level, level)) {
    throw ConfigError(config.file + ": log_level: \"" + config.log_level +
                      "\" is not a level the logger knows");
  }
  return level;
}

// How a command uses the store. Several processes write to one SQLite file (its locking and
// busy timeout share it out), but only one to a RocksDB store, the running hub: the other
// commands read it read-only beside it, and those that write need it stopped.
enum class StoreUse {
  write,  // `run`, and the commands that change what the store holds
  read,   // status, report, explain, quarantine list, dead-letters list
};

// The SQLite store in the file `path`, its upgrades logged as they go: one of a large store
// takes minutes (schema 4: ~8 s per 1.5 M records).
std::unique_ptr<Storage> open_sqlite(const std::string& path, LogLevel level,
                                     const Clock* clock = nullptr) {
  JsonLineLogger logger(stderr, level);
  SqliteStorageOptions options;
  options.clock = clock;
  options.on_migration = [&](const std::string& message) { logger.info("store", message); };
  return open_sqlite_storage(path, options);
}

// The configured store on its engine. `clock`, when given, stamps the store's times (it must
// outlive the store): `run` gives the hub's, which its outbox compaction compares delivery times
// with.
std::unique_ptr<Storage> open_store(const HubConfig& config, StoreUse use,
                                    const Clock* clock = nullptr) {
  prepare_data_dir(config);
  if (config.store == "rocksdb") {
    RocksdbStorageOptions options;
    options.memory_budget_bytes = config.store_memory_mb << 20;
    options.clock = clock;
    // A reader never takes the writer's lock, hub or not: RocksDB waits for no one, so a hub
    // starting while `kpihub status` held it would be refused. It reads the store as it was
    // when it opened. A store not made yet is made, as SQLite's is.
    std::error_code ec;
    options.read_only = use == StoreUse::read && fs::exists(config.store_path, ec);
    return open_rocksdb_storage(config.store_path, options);
  }
  return open_sqlite(config.store_path, log_level_of(config), clock);
}

// A command that writes to a RocksDB store needs it to itself, and a running hub holds it (its
// run lock says whether one runs). Held until the command ends; nothing to hold for SQLite,
// which shares its file out. `instead`: what asks the running hub to do the same through the
// admin API (empty: nothing does).
std::optional<StoreRunLock> lock_for_writing(const HubConfig& config, const std::string& command,
                                             const std::string& instead) {
  if (config.store != "rocksdb") return std::nullopt;
  prepare_data_dir(config);
  try {
    return std::optional<StoreRunLock>(std::in_place, config.store_path);
  } catch (const StoreInUse& e) {
    throw StoreError("store " + config.store_path +
                     " is a RocksDB store, which one process at a "
                     "time writes to, and another kpihub process holds it (" +
                     e.holder() + ", lock file " + e.lock_path() +
                     "): stop the hub before `kpihub " + command + "`" +
                     (instead.empty()
                          ? std::string()
                          : ", or ask the running hub through its admin API: " + instead));
  }
}

// The run lock for a command that must not run beside the hub on either engine (the hub holds
// what it changes in memory); nullopt, after saying why, when a hub holds it.
std::optional<StoreRunLock> lock_with_hub_stopped(const HubConfig& config,
                                                  const std::string& command) {
  prepare_data_dir(config);
  try {
    return std::optional<StoreRunLock>(std::in_place, config.store_path);
  } catch (const StoreError& e) {
    std::cerr << "kpihub: " << command << " needs the hub stopped: " << e.what() << "\n";
    return std::nullopt;
  }
}

// ------------------------------------------------------------ commands ----

int cmd_check_config(const std::vector<std::string>& args) {
  po::options_description desc(
      "check-config: load the configuration, reference data and plugins, and report");
  add_config_option(desc);
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub check-config [--config FILE]")) return kExitOk;
  const HubConfig config = load_config(vm);
  std::cout << "config " << config.file << " (hub " << config.hub_id << ")\n";
  if (config.store == "rocksdb") {
    std::cout << "store: rocksdb, folder " << config.store_path << ", memory budget "
              << config.store_memory_mb << " MB\n";
  } else {
    std::cout << "store: sqlite, file " << config.store_path
              << (config.store_inferred.empty() ? "" : " (" + config.store_inferred + ")") << "\n";
  }
  // Everything is checked and every error reported, in one pass.
  int problems = 0;
  try {
    const ReferenceData ref = load_reference(config);
    std::cout << "catalog: " << ref.catalog.size() << " task items, version " << ref.catalog.version
              << "\n";
    std::cout << "staff directory: " << ref.directory.size() << " staff\n";
    std::cout << "holidays: " << ref.holidays.holidays().size() << " dates\n";
    std::cout << "rules: " << ref.rules.version << "\n";
  } catch (const ConfigErrors& e) {
    for (const auto& error : e.errors()) std::cout << "ERROR " << error << "\n";
    problems += static_cast<int>(e.errors().size());
  }
  // Plugins are created (settings checked) without pulling anything.
  JsonLineLogger logger(stderr, LogLevel::warn);
  SystemClock clock;
  Metrics metrics;
  SecretResolver secrets(config.base_dir);
  PluginScan scan = scan_plugins(config.plugin_dir);
  problems += static_cast<int>(scan.refused.size());
  for (const auto& line : scan.refused) std::cout << "REFUSED " << line << "\n";
  auto check = [&](const PluginInstanceConfig& c, kpihub_plugin_kind kind) {
    for (const auto& p : scan.loaded) {
      if (p->info().name != c.plugin || p->info().kind != kind) continue;
      try {
        PluginInstance instance(
            p, c.name, c.settings_json,
            std::make_unique<HostServices>(c.name, logger, clock, secrets, &metrics),
            plugin_isolation(c, p->info()));
        std::cout << to_string(kind) << " " << c.name << ": ok (plugin " << c.plugin << " "
                  << p->info().version
                  << (instance.isolation().process ? ", in a process of its own" : "") << ")\n";
      } catch (const PluginError& e) {
        std::cout << "ERROR " << e.what() << "\n";
        ++problems;
      }
      return;
    }
    std::cout << "ERROR " << to_string(kind) << " " << c.name << ": no " << to_string(kind)
              << " plugin named \"" << c.plugin << "\" in " << config.plugin_dir << "\n";
    ++problems;
  };
  for (const auto& c : config.sources) check(c, KPIHUB_KIND_SOURCE);
  for (const auto& c : config.sinks) check(c, KPIHUB_KIND_SINK);
  std::cout << (problems ? std::to_string(problems) + " problem(s) found"
                         : std::string("all checks passed"))
            << "\n";
  return problems ? kExitConfig : kExitOk;
}

int cmd_plugins(const std::vector<std::string>& args) {
  po::options_description desc("plugins: list the plugins in the plugin folder and those refused");
  add_config_option(desc);
  desc.add_options()("dir", po::value<std::string>(),
                     "plugin folder (default: plugin_dir of the config)");
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub plugins [--config FILE] [--dir FOLDER]")) return kExitOk;
  const std::string dir =
      vm.count("dir") ? vm["dir"].as<std::string>() : load_config(vm).plugin_dir;
  PluginScan scan = scan_plugins(dir);
  std::cout << "plugin folder " << dir << ": " << scan.loaded.size() << " loaded, "
            << scan.refused.size() << " refused\n";
  for (const auto& p : scan.loaded) {
    const auto& i = p->info();
    std::cout << "  " << i.name << " (" << to_string(i.kind) << ") " << i.version << ", ABI "
              << i.abi_major << "." << i.abi_minor << ", SDK " << i.sdk_version << ", "
              << i.compiler << ", " << i.cxx_stdlib << "\n    " << i.description << "\n    "
              << i.file << "\n";
  }
  for (const auto& line : scan.refused) std::cout << "  REFUSED " << line << "\n";
  return scan.refused.empty() ? kExitOk : kExitFailure;
}

std::string megabytes(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

// Issue 19 section 4: a damaged store is found when the hub starts, not by the report or rescore
// that reads the damaged page. Bounded (store_check_at_start_ms); RocksDB's newest files first.
void check_store_at_start(Storage& store, const HubConfig& config, Logger& logger) {
  if (config.store_check_at_start_ms <= 0) return;
  const auto started = std::chrono::steady_clock::now();
  const IntegrityReport report =
      store.integrity().check(std::chrono::milliseconds(config.store_check_at_start_ms));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!report.problems.empty()) {
    for (const auto& problem : report.problems) logger.error("store", problem);
    throw StoreError("store " + config.store_path + " failed its check at start (" +
                     std::to_string(report.problems.size()) +
                     " problems, above): it is damaged. Restore the last backup "
                     "(docs/operations.md, \"Back up the store\"), or run `kpihub check-store` "
                     "to see everything that is");
  }
  char took[32];
  std::snprintf(took, sizeof took, "%.1f s", seconds);
  // SQLite knows the bytes of the whole file only: a part of it checked says no size.
  const std::string size =
      report.bytes_checked > 0 ? " (" + megabytes(report.bytes_checked) + ")" : std::string();
  logger.info("store", "checked at start: " + std::to_string(report.checked) + " of " +
                           std::to_string(report.total) + " " + report.unit + size + " in " + took +
                           ", no problem" +
                           (report.complete ? ""
                                            : "; the rest within store_check_at_start_ms was not "
                                              "read: `kpihub check-store` reads everything"));
}

int cmd_run(const std::vector<std::string>& args) {
  po::options_description desc("run: pull every source, store, score and forward");
  add_config_option(desc);
  desc.add_options()("once",
                     "pull every source until caught up, score, forward, then exit with a summary")(
      "forward-timeout", po::value<int>()->default_value(60),
      "with --once: seconds to keep retrying a receiver that does not take batches");
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub run [--config FILE] [--once]")) return kExitOk;
  HubConfig config = load_config(vm);
  // Every reference file error is reported before the store is touched: a typo in the catalog
  // neither creates nor upgrades a store, nor takes its lock.
  ReferenceData ref = load_reference(config);
  JsonLineLogger logger(stderr, log_level_of(config));
  SystemClock clock;
  Metrics metrics;
  prepare_data_dir(config);
  const StoreRunLock run_lock(config.store_path);
  auto store = open_store(config, StoreUse::write, &clock);
  logger.info("store",
              config.store == "rocksdb"
                  ? "rocksdb store " + config.store_path + ", memory budget " +
                        std::to_string(config.store_memory_mb) + " MB"
                  : "sqlite store " + config.store_path +
                        (config.store_inferred.empty() ? "" : " (" + config.store_inferred + ")"));
  check_store_at_start(*store, config, logger);
  merge_synced_staff(ref.directory, store->staff_lists().synced_staff());
  HubOptions options;
  options.forward_timeout_ms = static_cast<int64_t>(vm["forward-timeout"].as<int>()) * 1000;
  options.return_free_memory = [] { malloc_trim(0); };
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Both run the same runner (Hub::run); --once only ends it when there is nothing left to do.
  const bool once = vm.count("once") > 0;
  // Long-running: SIGHUP re-reads the configuration and restarts sources and
  // sinks with it. Everything buffered is in the store (cursors, outbox,
  // pending batches), so the switch loses and repeats nothing; a new
  // configuration that does not load leaves the running one in place.
  if (!once) std::signal(SIGHUP, on_reload_signal);
  for (bool first = true;; first = false) {
    Hub hub(config, *store, ref, logger, clock, metrics, options);
    std::atomic<bool> stop_this_run{false};
    std::atomic<bool> leaving{false};
    // Started before hub.start(): a source reading its staff list there may wait out retries,
    // which SIGINT/SIGTERM cut short.
    std::thread watcher([&] {
      while (!g_stop.load() && !g_reload.load() && !leaving.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      stop_this_run.store(true);
      hub.request_stop();
    });
    struct JoinAtExit {
      std::atomic<bool>& leaving;
      std::thread& thread;
      ~JoinAtExit() {
        leaving.store(true);
        thread.join();
      }
    } join_watcher{leaving, watcher};
    const auto problems = hub.start();
    if (first && hub.source_count() == 0 && hub.sink_count() == 0) {
      std::cerr << "kpihub: no source and no sink could be started; see the errors above\n";
      return kExitConfig;
    }
    if (once) {
      const auto started = std::chrono::steady_clock::now();
      RunSummary s = hub.run(stop_this_run, RunMode::once);
      for (const auto& p : problems) s.errors.push_back(p);
      std::cout << s.line() << "\n";
      // What the run cost, for capacity planning and bench/run.
      rusage usage{};
      ::getrusage(RUSAGE_SELF, &usage);
      const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
      const double wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      std::printf("resources: wall %.2f s, cpu %.2f s, peak RSS %.1f MB\n", wall, cpu,
                  static_cast<double>(usage.ru_maxrss) / 1024.0);
      std::cout << s.stages_line() << "\n";
      for (const auto& e : s.errors) std::cout << "  error: " << e << "\n";
      return s.ok() ? kExitOk : kExitFailure;
    }
    LiveHubView view(hub);
    std::unique_ptr<AdminApi> api;
    std::unique_ptr<AdminServer> admin;
    if (config.admin.enabled) {
      api = std::make_unique<AdminApi>(config, *store, ref, metrics, view, clock, logger);
      admin = std::make_unique<AdminServer>(config.admin, *api);
      admin->start();
      const auto colon = config.admin.listen.rfind(':');
      logger.info("admin", std::string("listening on ") +
                               (config.admin.tls_cert_file ? "https" : "http") + "://" +
                               config.admin.listen.substr(0, colon) + ":" +
                               std::to_string(admin->port()) + "/");
    }
    logger.info("hub", "running with " + std::to_string(hub.source_count()) + " sources and " +
                           std::to_string(hub.sink_count()) +
                           " sinks; SIGINT or SIGTERM stops after the page in hand, SIGHUP reloads "
                           "the configuration");
    const RunSummary s = hub.run(stop_this_run);
    if (admin) admin->stop();
    logger.info("hub", s.line());  // what this configuration's run did, as run --once prints it
    if (g_stop.load()) break;
    g_reload.store(false);
    logger.info("hub", "SIGHUP: reloading " + config.file);
    try {
      HubConfig next = load_config(vm);
      ReferenceData next_ref = load_reference(next, store->staff_lists());
      if (next.store != config.store || next.store_path != config.store_path ||
          next.store_memory_mb != config.store_memory_mb) {
        logger.warn("hub", "store changed to " + next.store + " at " + next.store_path +
                               "; another store needs a restart, the running one stays");
        next.store = config.store;
        next.store_path = config.store_path;
        next.store_memory_mb = config.store_memory_mb;
        next.store_inferred = config.store_inferred;
      }
      config = std::move(next);
      ref = std::move(next_ref);
      logger.set_min_level(log_level_of(config));
      logger.info("hub", "configuration reloaded: " + std::to_string(config.sources.size()) +
                             " sources, " + std::to_string(config.sinks.size()) + " sinks");
    } catch (const std::exception& e) {
      logger.error("hub",
                   std::string("reload failed, keeping the running configuration: ") + e.what());
    }
  }
  logger.info("hub", "stopped");
  return kExitOk;
}

int cmd_report(const std::vector<std::string>& args) {
  po::options_description desc(
      "report: monthly results per staff member and agency, from the store");
  add_config_option(desc);
  desc.add_options()("month", po::value<std::string>()->required(), "month, YYYY-MM")(
      "agency", po::value<std::string>(), "only this agency code")(
      "format", po::value<std::string>()->default_value("table"), "table, json or csv");
  po::variables_map vm;
  if (!parse(args, desc, vm,
             "kpihub report --month YYYY-MM [--agency CODE] [--format table|json|csv]")) {
    return kExitOk;
  }
  const Month month = month_option(vm);
  const std::string format = vm["format"].as<std::string>();
  if (format != "table" && format != "json" && format != "csv") {
    throw Usage("--format: \"" + format + "\" is not table, json or csv");
  }
  const std::string agency = vm.count("agency") ? vm["agency"].as<std::string>() : "";
  const HubConfig config = load_config(vm);
  auto store = open_store(config, StoreUse::read);
  auto staff_rows = store->scoring().month_rows(OutboxKind::staff_month, month.str());
  auto agency_rows = store->scoring().month_rows(OutboxKind::agency_month, month.str());
  auto keep = [&](const ScoringCommit::MonthRow& r) {
    return agency.empty() || r.agency_code == agency;
  };
  // An empty table would read as "nobody worked": say what is missing, and fail.
  if (staff_rows.empty() && agency_rows.empty()) {
    std::cerr << "kpihub report: no results for " << month.str() << " in " << config.store_path
              << ": nothing was scored for that month (kpihub status shows what the store "
                 "holds)\n";
    return kExitFailure;
  }
  const std::size_t staff_kept = std::count_if(staff_rows.begin(), staff_rows.end(), keep);
  const std::size_t agency_kept = std::count_if(agency_rows.begin(), agency_rows.end(), keep);
  if (staff_kept == 0 && agency_kept == 0) {
    std::set<std::string> known;
    for (const auto& r : agency_rows) known.insert(r.agency_code);
    for (const auto& r : staff_rows) known.insert(r.agency_code);
    constexpr std::size_t kNamed = 10;  // a province has hundreds
    std::string named;
    std::size_t count = 0;
    for (const auto& code : known) {
      if (count++ == kNamed) {
        named += " and " + std::to_string(known.size() - kNamed) + " more";
        break;
      }
      named += (named.empty() ? "" : ", ") + code;
    }
    std::cerr << "kpihub report: agency \"" << agency << "\" has no results for " << month.str()
              << " (agencies with results: " << named << ")\n";
    return kExitFailure;
  }
  if (format == "json") {
    std::cout << report_json(store->scoring(), month, agency) << "\n";
    return kExitOk;
  }
  if (format == "csv") {
    std::cout << report_csv(store->scoring(), month, agency);
    return kExitOk;
  }
  auto cell = [](const boost::json::object& o, const char* key) -> std::string {
    const auto* v = o.if_contains(key);
    if (!v || v->is_null()) return "";
    if (v->is_string()) return std::string(v->as_string());
    if (v->is_double()) {
      // Boost.JSON writes doubles as 1.95E0; people read 1.95.
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.15g", v->as_double());
      return buf;
    }
    return boost::json::serialize(*v);
  };
  std::printf("Month %s%s: %zu staff months, %zu agency months\n\n", month.str().c_str(),
              agency.empty() ? "" : (" agency " + agency).c_str(), staff_kept, agency_kept);
  std::printf("%-14s %-16s %6s %8s %8s %10s %10s  %s\n", "agency", "status", "staff", "mean",
              "median", "avg h/day", "high hours", "classes (exc/good/comp/not/n.a.)");
  for (const auto& r : agency_rows) {
    if (!keep(r)) continue;
    const auto o = boost::json::parse(r.json).as_object();
    const auto& cl = o.at("classes").as_object();
    std::printf(
        "%-14s %-16s %6s %8s %8s %10s %10s  %s/%s/%s/%s/%s\n", cell(o, "agency_code").c_str(),
        cell(o, "status").c_str(), cell(o, "staff_counted").c_str(),
        cell(o, "mean_kpi_score").c_str(), cell(o, "median_kpi_score").c_str(),
        cell(o, "avg_declared_hours_per_staff_day").c_str(), cell(o, "high_average_hours").c_str(),
        cell(cl, "excellent").c_str(), cell(cl, "good").c_str(), cell(cl, "complete").c_str(),
        cell(cl, "not_complete").c_str(), cell(cl, "not_assessed").c_str());
  }
  std::printf("\n%-12s %-14s %6s %9s %9s %8s %8s %12s  %s\n", "staff", "agency", "leader", "points",
              "kpi", "prov.", "assess.", "class", "");
  for (const auto& r : staff_rows) {
    if (!keep(r)) continue;
    const auto o = boost::json::parse(r.json).as_object();
    std::printf("%-12s %-14s %6s %9s %9s %8s %8s %12s\n", cell(o, "staff_code").c_str(),
                cell(o, "agency_code").c_str(), cell(o, "leader").c_str(),
                cell(o, "points").c_str(), cell(o, "kpi_score").c_str(),
                cell(o, "provisional_score").c_str(), cell(o, "assessment_points").c_str(),
                cell(o, "class").c_str());
  }
  return kExitOk;
}

int cmd_explain(const std::vector<std::string>& args) {
  po::options_description desc("explain: every record of a staff month, its factors and the sums");
  add_config_option(desc);
  desc.add_options()("staff", po::value<std::string>()->required(), "staff code")(
      "month", po::value<std::string>()->required(), "month, YYYY-MM");
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub explain --staff CODE --month YYYY-MM")) return kExitOk;
  const Month month = month_option(vm);
  const HubConfig config = load_config(vm);
  // The reference files first: one that does not load leaves the store as it is.
  ReferenceData ref = load_reference(config);
  auto store = open_store(config, StoreUse::read);
  merge_synced_staff(ref.directory, store->staff_lists().synced_staff());
  SystemClock system_clock;
  const RecordClock clock(config, system_clock, ref.rules.utc_offset_minutes);
  Scorer scorer(store->scoring(), store->records(), ref, clock, config.hub_id, nullptr,
                &system_clock);
  const std::string staff = vm["staff"].as<std::string>();
  if (!ref.directory.staff(staff)) {
    std::cerr << "kpihub: note: staff " << staff << " is not in the staff directory\n";
  }
  std::cout << explain(scorer.explain_staff_month(staff, month));
  return kExitOk;
}

// Scores every marked staff month, a progress line on stderr a second (a province's month is
// minutes of work), and returns what was sent.
ScoringRunResult score_until_done(Scorer& scorer, const char* command, std::size_t marked) {
  ScoringRunResult total;
  auto last_line = std::chrono::steady_clock::now();
  for (;;) {
    const auto r = scorer.score_pending(512);
    if (r.staff_months == 0) break;
    total.staff_months += r.staff_months;
    total.records_sent += r.records_sent;
    total.staff_months_sent += r.staff_months_sent;
    total.agency_months_sent += r.agency_months_sent;
    if (std::chrono::steady_clock::now() - last_line >= std::chrono::seconds(1)) {
      last_line = std::chrono::steady_clock::now();
      std::cerr << command << ": " << total.staff_months << " of " << marked
                << " staff months scored\n";
    }
  }
  return total;
}

int cmd_rescore(const std::vector<std::string>& args) {
  po::options_description desc(
      "rescore: recompute a month under the current rules; changed results go out again");
  add_config_option(desc);
  desc.add_options()("month", po::value<std::string>()->required(), "month, YYYY-MM");
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub rescore --month YYYY-MM")) return kExitOk;
  const Month month = month_option(vm);
  const HubConfig config = load_config(vm);
  // The reference files first: one that does not load leaves the store as it is.
  ReferenceData ref = load_reference(config);
  const auto lock = lock_for_writing(config, "rescore --month " + month.str(),
                                     "POST /api/months/" + month.str() + "/rescore");
  auto store = open_store(config, StoreUse::write);
  merge_synced_staff(ref.directory, store->staff_lists().synced_staff());
  SystemClock system_clock;
  const RecordClock clock(config, system_clock, ref.rules.utc_offset_minutes);
  const std::size_t marked = store->scoring().mark_month_dirty(month.str());
  Scorer scorer(store->scoring(), store->records(), ref, clock, config.hub_id, nullptr,
                &system_clock);
  const ScoringRunResult total = score_until_done(scorer, "rescore", marked);
  store->views().audit("cli", "rescore", month.str() + " under " + ref.rules.version);
  std::cout << "rescore " << month.str() << " (" << ref.rules.version << "): " << marked
            << " staff months, " << total.records_sent << " records, " << total.staff_months_sent
            << " staff months and " << total.agency_months_sent
            << " agency months changed and queued for forwarding\n";
  return kExitOk;
}

int cmd_quarantine(const std::vector<std::string>& args) {
  po::options_description desc(
      "quarantine: items that failed validation, with their reasons; replay them after a fix "
      "of the catalog or the staff directory, or dismiss those a fix made obsolete");
  add_config_option(desc);
  desc.add_options()("action", po::value<std::string>()->default_value("list"),
                     "list, replay or dismiss")(
      "source", po::value<std::string>()->default_value(""), "only this source")(
      "reason", po::value<std::string>()->default_value(""), "only this reason code")(
      "id", po::value<int64_t>()->default_value(0), "replay, dismiss: only this entry")(
      "limit", po::value<std::size_t>()->default_value(50), "list: at most this many")(
      "after", po::value<int64_t>()->default_value(0), "list: entries after this id (paging)");
  po::positional_options_description pos;
  pos.add("action", 1);
  po::variables_map vm;
  if (!parse(args, desc, vm,
             "kpihub quarantine [list] [--source S] [--reason R] [--limit N] [--after ID]\n"
             "       kpihub quarantine replay [--id ID | --source S --reason R]\n"
             "       kpihub quarantine dismiss (--id ID | --source S [--reason R] | --reason R)",
             &pos)) {
    return kExitOk;
  }
  const std::string action = vm["action"].as<std::string>();
  if (action != "list" && action != "replay" && action != "dismiss") {
    throw Usage("quarantine: \"" + action + "\" is not list, replay or dismiss");
  }
  const HubConfig config = load_config(vm);
  if (action == "dismiss") {
    const int64_t id = vm["id"].as<int64_t>();
    const std::string source = vm["source"].as<std::string>();
    const std::string reason = vm["reason"].as<std::string>();
    if (id < 0) throw Usage("quarantine dismiss: --id " + std::to_string(id) + " is below 1");
    if (id == 0 && source.empty() && reason.empty()) {
      throw Usage(
          "quarantine dismiss needs --id, --source or --reason: it does not dismiss every entry "
          "at once");
    }
    if (!reason.empty() && !parse_reason(reason)) {
      throw Usage("quarantine dismiss: --reason " + reason + " is not a reason code (see " +
                  "`kpihub quarantine list`)");
    }
    const auto lock = lock_for_writing(config, "quarantine dismiss", "");
    auto store = open_store(config, StoreUse::write);
    const std::size_t dismissed = store->records().dismiss_quarantine(source, reason, id);
    const std::string what = (id > 0 ? "id " + std::to_string(id) + " " : std::string()) +
                             "source \"" + source + "\" reason \"" + reason + "\"";
    store->views().audit("cli", "dismiss quarantine", what + ": " + std::to_string(dismissed));
    std::cout << dismissed << " quarantine entries dismissed (" << what << ")\n";
    return dismissed > 0 || id <= 0 ? kExitOk : kExitFailure;
  }
  if (action == "replay") {
    const int64_t id = vm["id"].as<int64_t>();
    const auto lock =
        lock_for_writing(config, "quarantine replay",
                         "POST /api/quarantine/replay?" +
                             (id > 0 ? "id=" + std::to_string(id)
                                     : "source=" + vm["source"].as<std::string>() +
                                           "&reason=" + vm["reason"].as<std::string>()));
    auto store = open_store(config, StoreUse::write);
    const ReferenceData ref = load_reference(config, store->staff_lists());
    SystemClock system_clock;
    const RecordClock clock(config, system_clock, ref.rules.utc_offset_minutes);
    Ingestor ingestor(store->records(), ref, hub_today(config, clock, ref.rules));
    const ReplayResult r = replay_quarantine(
        store->views(), ingestor, vm["source"].as<std::string>(), vm["reason"].as<std::string>(),
        vm["id"].as<int64_t>(), clock.now_unix_ms());
    for (const auto& p : r.problems) std::cout << p << "\n";
    std::cout << r.replayed << " stored, " << r.still_failing << " still failing, "
              << r.not_replayable
              << " not replayable here (the adapter gave no record: fix them at the source)\n";
    store->views().audit("cli", "replay quarantine",
                         "id " + std::to_string(vm["id"].as<int64_t>()) + " source \"" +
                             vm["source"].as<std::string>() + "\" reason \"" +
                             vm["reason"].as<std::string>() + "\"");
    return kExitOk;
  }
  auto store = open_store(config, StoreUse::read);
  const auto rows =
      store->views().quarantine(vm["source"].as<std::string>(), vm["reason"].as<std::string>(),
                                vm["limit"].as<std::size_t>(), vm["after"].as<int64_t>());
  for (const auto& r : rows) {
    std::cout << r.id << "\t" << r.entry.source_system << "\t" << to_string(r.entry.reason) << "\t"
              << (r.entry.record_id.empty() ? "-" : r.entry.record_id) << "\t" << r.entry.message
              << (r.entry.location.empty() ? "" : " [" + r.entry.location + "]") << "\n";
  }
  std::cout << rows.size() << " entries\n";
  return kExitOk;
}

int cmd_dead_letters(const std::vector<std::string>& args) {
  po::options_description desc(
      "dead-letters: items a receiver refused; list them or replay one after a fix");
  add_config_option(desc);
  desc.add_options()("action", po::value<std::string>()->default_value("list"), "list or replay")(
      "id", po::value<int64_t>(), "dead letter id (replay)")(
      "sink", po::value<std::string>()->default_value(""), "only this sink (list)")(
      "limit", po::value<std::size_t>()->default_value(50), "at most this many (list)");
  po::positional_options_description pos;
  pos.add("action", 1).add("id", 1);
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub dead-letters list [--sink S] | kpihub dead-letters replay ID",
             &pos)) {
    return kExitOk;
  }
  const HubConfig config = load_config(vm);
  const std::string action = vm["action"].as<std::string>();
  if (action == "list") {
    auto store = open_store(config, StoreUse::read);
    const auto rows = store->outbox().dead_letters(vm["sink"].as<std::string>(),
                                                   vm["limit"].as<std::size_t>(), 0);
    for (const auto& d : rows) {
      std::cout << d.id << "\t" << d.sink << "\t" << d.key << "\t" << d.code << "\t" << d.message
                << (d.replayed ? "\t(replayed)" : "") << "\n";
    }
    std::cout << rows.size() << " dead letters\n";
    return kExitOk;
  }
  if (action == "replay") {
    if (!vm.count("id")) throw Usage("dead-letters replay needs the id of a dead letter");
    const int64_t id = vm["id"].as<int64_t>();
    const auto lock = lock_for_writing(config, "dead-letters replay " + std::to_string(id),
                                       "POST /api/dead-letters/" + std::to_string(id) + "/replay");
    auto store = open_store(config, StoreUse::write);
    if (!store->outbox().replay_dead_letter(id)) {
      std::cerr << "kpihub: no dead letter with id " << id << "\n";
      return kExitFailure;
    }
    store->views().audit("cli", "replay dead letter", std::to_string(id));
    std::cout << "dead letter " << id << " queued again\n";
    return kExitOk;
  }
  throw Usage("dead-letters: \"" + action + "\" is not list or replay");
}

int cmd_forget_sink(const std::vector<std::string>& args) {
  po::options_description desc(
      "forget-sink: a sink taken out of the configuration for good stops holding outbox items "
      "back (outbox_retention_days); if it is configured again it starts from the oldest item "
      "left");
  add_config_option(desc);
  desc.add_options()("sink", po::value<std::string>()->required(), "the sink's name");
  po::positional_options_description pos;
  pos.add("sink", 1);
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub forget-sink NAME [--config FILE]", &pos)) return kExitOk;
  const HubConfig config = load_config(vm);
  const std::string sink = vm["sink"].as<std::string>();
  for (const auto& s : config.sinks) {
    if (s.name == sink) {
      std::cerr << "kpihub: sink " << sink << " is in " << config.file
                << "; take it out of \"sinks\" first (forgetting a configured sink would send it "
                   "everything left in the outbox again)\n";
      return kExitFailure;
    }
  }
  // A running hub may still have the sink loaded (its file edited, not yet reloaded): forgetting
  // it then would drop its batch in flight and send it everything kept again.
  const auto run_lock = lock_with_hub_stopped(config, "forget-sink");
  if (!run_lock) return kExitFailure;
  auto store = open_store(config, StoreUse::write);
  if (!store->outbox().forget_sink(sink)) {
    std::cerr << "kpihub: sink " << sink << " never took a batch from " << config.store_path
              << "; nothing to forget\n";
    return kExitFailure;
  }
  store->views().audit("cli", "forget sink", sink);
  std::cout << "sink " << sink << " forgotten: it no longer holds outbox items back\n";
  return kExitOk;
}

int cmd_source(const std::vector<std::string>& args) {
  po::options_description desc(
      "source reset: read a source again from its start (or from --to CURSOR) at the next run, "
      "after a fix of its plugin or mapping; records the store has at the same revision are "
      "ignored, quarantine entries resolve when a valid revision of their record comes");
  add_config_option(desc);
  desc.add_options()("action", po::value<std::string>()->required(), "reset")(
      "name", po::value<std::string>()->required(), "the source's name in the configuration")(
      "to", po::value<std::string>(), "the cursor to read from (default: the source's start)");
  po::positional_options_description pos;
  pos.add("action", 1).add("name", 1);
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub source reset NAME [--to CURSOR] [--config FILE]", &pos)) {
    return kExitOk;
  }
  const std::string action = vm["action"].as<std::string>();
  if (action != "reset") throw Usage("source: \"" + action + "\" is not reset");
  const HubConfig config = load_config(vm);
  const std::string name = vm["name"].as<std::string>();
  if (std::none_of(config.sources.begin(), config.sources.end(),
                   [&](const auto& s) { return s.name == name; })) {
    std::cerr << "kpihub: no source " << name << " in " << config.file << "\n";
    return kExitFailure;
  }
  // A running hub keeps each source's cursor in memory and stores it with its next page: the
  // reset would be overwritten.
  const auto run_lock = lock_with_hub_stopped(config, "source reset");
  if (!run_lock) return kExitFailure;
  auto store = open_store(config, StoreUse::write);
  const std::optional<std::string> was = store->records().cursor(name);
  std::optional<std::string> to;
  if (vm.count("to")) to = vm["to"].as<std::string>();
  store->records().set_cursor(name, to);
  const auto text = [](const std::optional<std::string>& c) {
    return c ? "\"" + *c + "\"" : std::string("(none: its start)");
  };
  store->views().audit("cli", "reset source", name + ": cursor " + text(was) + " -> " + text(to));
  std::cout << "source " << name << ": cursor " << text(was) << " -> " << text(to)
            << "; the next run reads it from there\n";
  return kExitOk;
}

int cmd_status(const std::vector<std::string>& args) {
  po::options_description desc("status: sources, cursors and counts from the store");
  add_config_option(desc);
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub status [--config FILE]")) return kExitOk;
  const HubConfig config = load_config(vm);
  auto store = open_store(config, StoreUse::read);
  const auto counts = store->views().counts();
  std::cout << "store " << config.store_path << " (" << config.store << "): " << counts.records
            << " records (" << counts.revisions << " revisions), " << counts.quarantined
            << " quarantined, " << counts.dead_letters << " dead letters\n";
  std::cout << "scoring: " << counts.revisions_to_read << " revisions not yet read, "
            << counts.staff_months_to_score << " staff months waiting to be rescored\n";
  for (const auto& s : store->records().sources()) {
    std::cout << "source " << s.source << ": " << s.records << " records, " << s.quarantined
              << " quarantined, cursor " << (s.cursor ? *s.cursor : std::string("(none)")) << "\n";
  }
  for (const auto& s : config.sinks) {
    std::cout << "sink " << s.name << ": " << store->outbox().depth(s.name) << " items waiting\n";
  }
  for (const auto& name : store->outbox().sinks_with_batches()) {
    const bool configured = std::any_of(config.sinks.begin(), config.sinks.end(),
                                        [&](const auto& s) { return s.name == name; });
    if (configured) continue;
    std::cout << "sink " << name << ": not configured, but took batches: it keeps delivered "
              << "outbox items from being deleted (outbox_retention_days) until `kpihub "
              << "forget-sink " << name << "`\n";
  }
  return kExitOk;
}

int cmd_check_store(const std::vector<std::string>& args) {
  po::options_description desc(
      "check-store: read every part of the store and check it (SQLite's integrity check of each\n"
      "table and its indexes; each RocksDB table file's block checksums), with progress.\n"
      "Runs beside the hub. Exit 0: no problem found; 4: the store is damaged (each problem\n"
      "names the table or file)");
  add_config_option(desc);
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub check-store [--config FILE]")) return kExitOk;
  const HubConfig config = load_config(vm);
  auto store = open_store(config, StoreUse::read);
  auto last_line = std::chrono::steady_clock::now();
  const auto started = last_line;
  const IntegrityReport report =
      store->integrity().check(std::nullopt, [&](const IntegrityProgress& p) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_line < std::chrono::seconds(1) && p.done != p.total) return;
        last_line = now;
        std::cerr << "check-store: " << p.done << " of " << p.total << " checked (" << p.part
                  << ")\n";
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (const auto& problem : report.problems) std::cout << "PROBLEM " << problem << "\n";
  char took[32];
  std::snprintf(took, sizeof took, "%.1f s", seconds);
  std::cout << "store " << config.store_path << " (" << config.store << "): " << report.checked
            << " " << report.unit << " checked (" << megabytes(report.bytes_checked) << ") in "
            << took << ", "
            << (report.problems.empty()
                    ? std::string("no problem found")
                    : std::to_string(report.problems.size()) +
                          " problems: the store is damaged; restore the last backup "
                          "(docs/operations.md, \"Back up the store\")")
            << "\n";
  return report.problems.empty() ? kExitOk : kExitStore;
}

// A store named on the command line: "sqlite:PATH", "rocksdb:PATH", or a PATH whose engine is
// told by what is there (a folder is a RocksDB store, a file a SQLite one) or, for a store not
// made yet, by its name (.db, .sqlite, .sqlite3; .rocksdb).
struct StoreSpec {
  std::string engine;
  std::string path;
  std::string name() const { return engine + ":" + path; }
};

StoreSpec store_spec(const std::string& option, const std::string& text) {
  StoreSpec spec;
  for (const char* engine : {"sqlite", "rocksdb"}) {
    const std::string prefix = std::string(engine) + ":";
    if (text.rfind(prefix, 0) == 0) {
      spec.engine = engine;
      spec.path = text.substr(prefix.size());
    }
  }
  if (spec.engine.empty()) spec.path = text;
  if (spec.path.empty()) throw Usage(option + ": no path in \"" + text + "\"");
  fs::path path = fs::absolute(spec.path).lexically_normal();
  while (!path.has_filename() && path.has_relative_path()) path = path.parent_path();
  spec.path = path.string();
  if (!spec.engine.empty()) return spec;
  spec.engine = store_engine_of_path(spec.path);
  if (spec.engine.empty()) {
    throw Usage(option + ": cannot tell the engine of " + spec.path +
                " (nothing is there yet, and its name ends in neither .db nor .rocksdb): write "
                "sqlite:" +
                spec.path + " or rocksdb:" + spec.path);
  }
  return spec;
}

// "YYYY-MM..YYYY-MM"
std::pair<Month, Month> months_option(const std::string& text) {
  const auto dots = text.find("..");
  const auto first = dots == std::string::npos ? std::nullopt : Month::parse(text.substr(0, dots));
  const auto last = dots == std::string::npos ? std::nullopt : Month::parse(text.substr(dots + 2));
  if (!first || !last || *last < *first) {
    throw Usage("--months: \"" + text + "\" is not FIRST..LAST (YYYY-MM..YYYY-MM, in order)");
  }
  return {*first, *last};
}

int cmd_store(const std::vector<std::string>& args) {
  po::options_description desc(
      "store copy: copy a store into a new store of either engine (SQLite into RocksDB, or back)\n"
      "through the store's seams; stop the hub first.\n"
      "  carried: every record at its current revision, cursors, quarantine, scores and month\n"
      "    results as last sent, what waits to be rescored, synced staff lists\n"
      "  not carried: older revisions, dead letters, the batch history, the audit log (they\n"
      "    stay in the source); a store whose outbox is not delivered to every sink is refused\n"
      "options");
  desc.add_options()("action", po::value<std::string>()->required(), "copy")(
      "from", po::value<std::string>()->required(),
      "the store to copy: sqlite:FILE or rocksdb:FOLDER (or a path: a folder is a RocksDB "
      "store, a file a SQLite one)")(
      "to", po::value<std::string>()->required(),
      "the new store: sqlite:FILE or rocksdb:FOLDER (or a path ending in .db or .rocksdb); "
      "refused unless empty")(
      "months", po::value<std::string>(),
      "the months whose records are looked for, FIRST..LAST (default: 1990-01 to five years "
      "from now); a record outside them fails the final check")(
      "memory-mb", po::value<std::size_t>()->default_value(256),
      "memory budget of a RocksDB store, either side, MB");
  po::positional_options_description pos;
  pos.add("action", 1);
  po::variables_map vm;
  if (!parse(args, desc, vm,
             "kpihub store copy --from [sqlite:|rocksdb:]PATH --to [sqlite:|rocksdb:]PATH "
             "[--months YYYY-MM..YYYY-MM]",
             &pos)) {
    return kExitOk;
  }
  if (vm["action"].as<std::string>() != "copy") {
    throw Usage("store: \"" + vm["action"].as<std::string>() + "\" is not copy");
  }
  const StoreSpec from = store_spec("--from", vm["from"].as<std::string>());
  const StoreSpec to = store_spec("--to", vm["to"].as<std::string>());
  if (from.path == to.path) throw Usage("--from and --to are the same store: " + from.path);
  std::error_code ec;
  if (!fs::exists(from.path, ec)) throw StoreError("store " + from.name() + ": nothing there");

  StoreCopyOptions options;
  options.from_name = from.name();
  options.to_name = to.name();
  const int this_year =
      static_cast<int>(std::chrono::year_month_day(
                           std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now()))
                           .year());
  options.first_month = Month{1990, 1};
  options.last_month = Month{this_year + 5, 12};
  if (vm.count("months")) {
    std::tie(options.first_month, options.last_month) =
        months_option(vm["months"].as<std::string>());
  }

  // Neither store may change meanwhile: no hub on the source, none starting on the copy.
  const auto lock = [](const StoreSpec& spec) {
    try {
      return std::make_unique<StoreRunLock>(spec.path);
    } catch (const StoreInUse& e) {
      throw StoreError("store copy: " + spec.name() + " is in use by another kpihub process (" +
                       e.holder() + ", lock file " + e.lock_path() + "): stop the hub first");
    }
  };
  const auto from_lock = lock(from);
  const auto to_lock = lock(to);
  const std::size_t memory = vm["memory-mb"].as<std::size_t>() << 20;
  const auto open = [&](const StoreSpec& spec) {
    if (spec.engine == "rocksdb") {
      RocksdbStorageOptions rocks;
      rocks.memory_budget_bytes = memory;
      return open_rocksdb_storage(spec.path, rocks);
    }
    return open_sqlite(spec.path, LogLevel::info);
  };
  auto source = open(from);
  auto destination = open(to);

  const auto started = std::chrono::steady_clock::now();
  auto last_line = started;
  options.on_progress = [&](const StoreCopyProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_line < std::chrono::seconds(3) && p.records_copied < p.records_total) return;
    last_line = now;
    std::fprintf(stderr, "store copy: %lld of %lld records copied (%.0f%%), %.0f s\n",
                 static_cast<long long>(p.records_copied), static_cast<long long>(p.records_total),
                 p.records_total > 0 ? 100.0 * static_cast<double>(p.records_copied) /
                                           static_cast<double>(p.records_total)
                                     : 100.0,
                 std::chrono::duration<double>(now - started).count());
  };
  std::cerr << "store copy: " << from.name() << " into " << to.name() << ", months "
            << options.first_month.str() << " to " << options.last_month.str() << "\n";
  StoreCopyResult r;
  try {
    r = copy_store(*source, *destination, options);
  } catch (const StoreError& e) {
    const bool started_writing =
        destination->views().counts().records > 0 || !destination->records().sources().empty();
    throw StoreError(std::string(e.what()) +
                     (started_writing ? "; the copy in " + to.name() +
                                            " is not whole: delete it before copying again"
                                      : ""));
  }
  std::cout << "store copy: " << from.name() << " -> " << to.name() << ": " << r.records
            << " records, " << r.quarantined << " quarantine entries, " << r.cursors << " cursors, "
            << r.record_scores << " record scores, " << r.month_rows << " month rows, "
            << r.day_totals << " day totals, " << r.synced_staff << " synced staff, "
            << r.staff_months_to_score << " staff months still to rescore\n";
  std::cout << "counts: records " << r.from.records << " / " << r.to.records << ", quarantined "
            << r.from.quarantined << " / " << r.to.quarantined << ", outbox pending "
            << r.from.outbox_pending << " / " << r.to.outbox_pending << ", staff months to rescore "
            << r.from.staff_months_to_score << " / " << r.to.staff_months_to_score << "\n";
  std::cout << "not carried: " << (r.from.revisions - r.from.records) << " older revisions, "
            << r.from.dead_letters
            << " dead letters, the batch history and the audit log (they stay in " << from.name()
            << ")\n";
  if (!r.months_marked_whole.empty()) {
    std::cout << "marked for a whole rescore (a staff month waited on days its records left):";
    for (const auto& m : r.months_marked_whole) std::cout << " " << m;
    std::cout << "\n";
  }
  for (const auto& key : r.dirty_without_records) {
    std::cout << "warning: staff " << key.staff_code << " in " << key.month
              << " waited to be rescored and has no record left: its month result stays as "
                 "last sent in the copy\n";
  }
  if (!r.mismatches.empty()) {
    std::cerr << "kpihub: store copy: the copy is not whole:\n";
    for (const auto& m : r.mismatches) std::cerr << "  " << m << "\n";
    std::cerr << "delete " << to.path << " before copying again (--months to look further)\n";
    return kExitFailure;
  }
  std::cout << "the copy is whole; to run on it, set \"store\": \"" << to.engine
            << "\" and \"store_path\": \"" << to.path << "\" in hub.json\n";
  return kExitOk;
}

// Issue 19 section 4: after a restore, the receiver may hold versions the restored store does
// not know it sent (what the hub sent between the backup and the loss). Everything of the
// months is sent again, under numbers above any sent before (they come from the clock), so the
// receiver ends as after a clean run.
int cmd_resend(const std::vector<std::string>& args) {
  po::options_description desc(
      "resend: send every record, staff month and agency month of the months again, changed or\n"
      "not, after a restore (docs/operations.md, \"Back up the store\"); stop the hub first");
  add_config_option(desc);
  desc.add_options()("months", po::value<std::string>()->required(),
                     "months, FIRST..LAST (YYYY-MM..YYYY-MM)");
  po::variables_map vm;
  if (!parse(args, desc, vm, "kpihub resend --months YYYY-MM..YYYY-MM")) return kExitOk;
  const auto [first, last] = months_option(vm["months"].as<std::string>());
  const HubConfig config = load_config(vm);
  ReferenceData ref = load_reference(config);
  const auto lock =
      lock_for_writing(config, "resend --months " + vm["months"].as<std::string>(), "");
  auto store = open_store(config, StoreUse::write);
  merge_synced_staff(ref.directory, store->staff_lists().synced_staff());
  SystemClock system_clock;
  const RecordClock clock(config, system_clock, ref.rules.utc_offset_minutes);
  std::size_t marked = 0;
  for (Month m = first; !(last < m); m = m.next())
    marked += store->scoring().mark_month_dirty(m.str());
  Scorer scorer(store->scoring(), store->records(), ref, clock, config.hub_id, nullptr,
                &system_clock, Scorer::Send::everything);
  const ScoringRunResult total = score_until_done(scorer, "resend", marked);
  store->views().audit("cli", "resend", first.str() + ".." + last.str());
  std::cout << "resend " << first.str() << ".." << last.str() << ": " << total.records_sent
            << " records, " << total.staff_months_sent << " staff months and "
            << total.agency_months_sent
            << " agency months queued for every sink; `kpihub run` delivers them\n";
  return kExitOk;
}

const Command kCommands[] = {
    {"run", "pull, store, score and forward (--once: until caught up, then exit)", cmd_run},
    {"check-config", "check the configuration, reference data and plugin settings",
     cmd_check_config},
    {"plugins", "list loaded and refused plugins", cmd_plugins},
    {"status", "sources, cursors and counts", cmd_status},
    {"check-store", "read and check every part of the store (integrity, checksums)",
     cmd_check_store},
    {"report", "monthly results (table, json, csv)", cmd_report},
    {"explain", "how a staff member's monthly score was computed", cmd_explain},
    {"rescore", "recompute a month under the current rules", cmd_rescore},
    {"resend", "send months again whole, after a restore", cmd_resend},
    {"quarantine",
     "list items that failed validation, replay them after a fix, or dismiss obsolete ones",
     cmd_quarantine},
    {"dead-letters", "list or replay items a receiver refused", cmd_dead_letters},
    {"source", "reset a source's cursor to read it again after a fix (hub stopped)", cmd_source},
    {"forget-sink", "let a sink removed from the configuration stop holding outbox items",
     cmd_forget_sink},
    {"store", "store copy: copy a store into a new SQLite or RocksDB store", cmd_store},
};

// What an operator quotes with a problem: which hub, which plugins it can load, which stores.
void print_version() {
  std::cout << "kpihub " << KPIHUB_VERSION << "\n"
            << "plugin ABI " << KPIHUB_ABI_MAJOR << "." << KPIHUB_ABI_MINOR << " (SDK "
            << KPIHUB_SDK_VERSION << ")\n"
            << "store schema " << sqlite_schema_version() << " (SQLite " << sqlite_library_version()
            << ")\n"
            << "RocksDB store layout " << rocksdb_layout_version() << " (RocksDB "
            << rocksdb_library_version() << ")\n";
}

void print_help() {
  std::cout << "kpihub: integration hub for public-sector KPI assessment\n\n"
               "usage: kpihub <command> [options]   (kpihub <command> --help for its options)\n"
               "       kpihub --version\n\n"
               "commands:\n";
  for (const auto& c : kCommands) std::printf("  %-14s %s\n", c.name, c.summary);
  std::cout
      << "\nexit codes: 0 ok, 1 failure, 2 usage error, 3 configuration error, 4 storage error\n";
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives each thread that allocates its own arena (up to 8 per core), and memory freed
  // in one stays there: with the store's background threads, the scorer's and the month scan's,
  // the hub held ~40 MB more than it used (bench/run, 700 staff, RocksDB: 155.8 MB peak with
  // glibc's default, 123.8 MB with two arenas, the same speed). Before any thread starts.
  mallopt(M_ARENA_MAX, 2);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    print_help();
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (std::string(argv[1]) == "--version" || std::string(argv[1]) == "version") {
    print_version();
    return kExitOk;
  }
  const std::string name = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(args);
    } catch (const Usage& e) {
      std::cerr << "kpihub " << name << ": " << e.what() << "\n";
      return kExitUsage;
    } catch (const ConfigErrors& e) {
      if (e.errors().size() == 1) {
        std::cerr << "kpihub: configuration error: " << e.what() << "\n";
      } else {
        std::cerr << "kpihub: " << e.errors().size() << " configuration errors:\n";
        for (const auto& error : e.errors()) std::cerr << "  " << error << "\n";
      }
      return kExitConfig;
    } catch (const ConfigError& e) {
      std::cerr << "kpihub: configuration error: " << e.what() << "\n";
      return kExitConfig;
    } catch (const StoreError& e) {
      std::cerr << "kpihub: storage error: " << e.what() << "\n";
      return kExitStore;
    } catch (const std::exception& e) {
      std::cerr << "kpihub: " << e.what() << "\n";
      return kExitFailure;
    }
  }
  std::cerr << "kpihub: unknown command \"" << name << "\" (kpihub --help lists the commands)\n";
  return kExitUsage;
}
