// kpihub-bench-engines: the record-log workload of issue 20 on each storage engine, each
// in a process of its own (so peak RSS, CPU and disk writes do not mix), on a real disk.
//
//   kpihub-bench-engines                          # a province-month: 7,000 staff x 22 days x 10
//   kpihub-bench-engines --staff 35000            # the 5x backlog (7.7 M records)
//   kpihub-bench-engines --staff 700              # smaller
//   kpihub-bench-engines --engines rocksdb,lmdb --cache-mb 32 --json out.json
//   kpihub-bench-engines --smoke                  # 20 staff: proves it runs (CI)
// Engines: sqlite (the default set's three are sqlite, rocksdb, lmdb), sqlite-normal,
// sqlite-text, rocksdb-idkey, rocksdb-nobloom, rocksdb-raw, rocksdb-clustered (engine.hpp and
// each engine's file say what they are).
//
// Per engine: pass 1 stores the month's records (all new), pass 2 reads the same feed
// again with --revise-percent of it revised (the rest are duplicates the store skips);
// each pass ends with the engine's own settling (flushes, compactions, checkpoint). Then
// 1,000 random staff-days are read back, then the whole month in staff-day order.
// Figures per phase: records/s, CPU s per million records (getrusage, all threads, the
// generator's own CPU taken out), disk writes per record (/proc/self/io write_bytes), peak
// RSS (VmHWM, reset per phase through /proc/self/clear_refs) and the largest RssAnon seen.
#include "engine.hpp"
#include "workload.hpp"

#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace po = boost::program_options;
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace kpihub::bench::engines;

namespace {

constexpr long kTmpfsMagic = 0x01021994;
const std::vector<std::string> kEngines = {"sqlite",      "sqlite-normal",     "sqlite-text",
                                           "rocksdb",     "rocksdb-idkey",     "rocksdb-nobloom",
                                           "rocksdb-raw", "rocksdb-clustered", "lmdb"};

struct Args {
  Shape shape;
  std::string engines = "sqlite,rocksdb,lmdb";
  std::string child;  // internal: run one engine and print its JSON
  std::string dir = "/var/tmp";
  std::string json_out;
  std::size_t cache_mb = 32;
  int staff_days = 1000;
};

std::unique_ptr<Engine> open_engine(const std::string& name, const EngineOptions& o) {
  if (name == "sqlite") return open_sqlite(o, true, false);
  if (name == "sqlite-normal") return open_sqlite(o, false, false);
  if (name == "sqlite-text") return open_sqlite(o, true, true);
  if (name == "rocksdb") return open_rocksdb(o, RocksVariant{});
  if (name == "rocksdb-idkey") return open_rocksdb(o, RocksVariant{.hash_key = false});
  if (name == "rocksdb-nobloom") return open_rocksdb(o, RocksVariant{.bloom_filter = false});
  if (name == "rocksdb-raw") return open_rocksdb(o, RocksVariant{.compression = false});
  if (name == "rocksdb-clustered") return open_rocksdb(o, RocksVariant{.clustered = true});
  if (name == "lmdb") return open_lmdb(o);
  throw std::invalid_argument("unknown engine " + name);
}

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double process_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// A "key: value" line of a /proc file, as a number (kB for /proc/self/status).
std::uint64_t proc_value(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + key.size(), nullptr, 10);
  }
  return 0;
}

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::uint64_t folder_bytes(const fs::path& dir) {
  std::uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

// What one phase cost, measured from its start.
class Phase {
 public:
  Phase() {
    reset_ok_ = reset_peak_rss();
    start_wall_ = std::chrono::steady_clock::now();
    start_cpu_ = process_cpu();
    start_write_ = proc_value("/proc/self/io", "write_bytes: ");
    start_read_ = proc_value("/proc/self/io", "read_bytes: ");
    start_cancelled_ = proc_value("/proc/self/io", "cancelled_write_bytes: ");
    sample();
  }
  // The generator's work, taken out of the phase's figures.
  template <typename F>
  auto untimed(F f) {
    const auto w = std::chrono::steady_clock::now();
    const double c = thread_cpu();
    auto result = f();
    generator_cpu_ += thread_cpu() - c;
    generator_wall_ += std::chrono::steady_clock::now() - w;
    return result;
  }
  void sample() {
    max_anon_kb_ = std::max(max_anon_kb_, proc_value("/proc/self/status", "RssAnon:"));
  }
  json::object finish(std::int64_t records, std::int64_t stored) {
    sample();
    const double wall = seconds(std::chrono::steady_clock::now() - start_wall_ - generator_wall_);
    const double cpu = process_cpu() - start_cpu_ - generator_cpu_;
    json::object o;
    o["records"] = records;
    o["stored"] = stored;
    o["wall_s"] = wall;
    o["cpu_s"] = cpu;
    o["records_per_s"] = records > 0 ? static_cast<double>(records) / wall : 0.0;
    o["cpu_s_per_million"] = records > 0 ? cpu * 1e6 / static_cast<double>(records) : 0.0;
    o["write_bytes"] = proc_value("/proc/self/io", "write_bytes: ") - start_write_;
    o["cancelled_write_bytes"] =
        proc_value("/proc/self/io", "cancelled_write_bytes: ") - start_cancelled_;
    o["read_bytes"] = proc_value("/proc/self/io", "read_bytes: ") - start_read_;
    o["peak_rss_kb"] = proc_value("/proc/self/status", "VmHWM:");
    o["peak_rss_since_phase_start"] = reset_ok_;
    o["max_rss_anon_kb"] = max_anon_kb_;
    o["generator_cpu_s"] = generator_cpu_;
    return o;
  }

 private:
  bool reset_ok_ = false;
  std::chrono::steady_clock::time_point start_wall_;
  std::chrono::steady_clock::duration generator_wall_{};
  double start_cpu_ = 0, generator_cpu_ = 0;
  std::uint64_t start_write_ = 0, start_read_ = 0, start_cancelled_ = 0, max_anon_kb_ = 0;
};

json::object memory_of(const Engine& engine) {
  json::object o;
  for (const auto& [name, bytes] : engine.memory()) o[name] = bytes;
  return o;
}

json::object ingest(Engine& engine, const Shape& shape, int pass) {
  Feed feed(shape, pass);
  Page page;
  Phase phase;
  std::int64_t records = 0, stored = 0;
  while (phase.untimed([&] { return feed.next(page); })) {
    records += static_cast<std::int64_t>(page.records.size());
    stored += static_cast<std::int64_t>(engine.commit_page(page));
    phase.sample();
  }
  json::object before_settling = memory_of(engine);
  engine.settle();
  json::object o = phase.finish(records, stored);
  o["engine_memory_before_settling"] = std::move(before_settling);
  o["engine_memory"] = memory_of(engine);
  return o;
}

int run_child(const Args& a) {
  struct statfs sf {};
  if (statfs(a.dir.c_str(), &sf) != 0) throw std::runtime_error("cannot stat folder " + a.dir);
  if (static_cast<long>(sf.f_type) == kTmpfsMagic)
    throw std::runtime_error(a.dir + " is a tmpfs (memory): give --dir a folder on a disk");
  std::string pattern = (fs::path(a.dir) / ("kpihub-engines-" + a.child + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
  const fs::path dir = pattern;
  struct Remove {
    fs::path p;
    ~Remove() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } remove{dir};

  json::object out;
  out["engine"] = a.child;
  std::int64_t revised_expected = Feed::revised_in_pass2(a.shape);
  {
    auto engine = open_engine(a.child, EngineOptions{dir.string(), a.cache_mb});
    out["settings"] = engine->settings();
    json::object pass1 = ingest(*engine, a.shape, 1);
    json::object pass2 = ingest(*engine, a.shape, 2);
    const std::int64_t stored = pass1["stored"].as_int64() + pass2["stored"].as_int64();
    if (pass1["stored"].as_int64() != a.shape.records() ||
        pass2["stored"].as_int64() != revised_expected)
      throw std::runtime_error("stored " + json::serialize(pass1["stored"]) + " then " +
                               json::serialize(pass2["stored"]) + " records, expected " +
                               std::to_string(a.shape.records()) + " then " +
                               std::to_string(revised_expected));
    out["pass1"] = std::move(pass1);
    out["pass2"] = std::move(pass2);
    out["file_bytes_after_ingest"] = folder_bytes(dir);
    out["stored_revisions"] = stored;

    std::mt19937_64 rng(20);
    std::uniform_int_distribution<int> staff(0, a.shape.staff - 1), day(0, a.shape.days - 1);
    const int reads = a.staff_days;
    ReadTotals days;
    {
      Phase phase;
      for (int i = 0; i < reads; ++i) {
        const auto [s, d] =
            phase.untimed([&] { return std::make_pair(Feed::staff_code(staff(rng)), day(rng)); });
        days += engine->read_staff_day(s, Feed::day_of_month(d));
        if (i % 64 == 0) phase.sample();
      }
      json::object o = phase.finish(static_cast<std::int64_t>(days.records), 0);
      o["staff_days"] = reads;
      o["ms_per_staff_day"] = o["wall_s"].as_double() * 1e3 / reads;
      o["revision_sum"] = days.revision_sum;
      o["bytes"] = days.bytes;
      out["staff_days"] = std::move(o);
    }
    if (days.records != static_cast<std::uint64_t>(reads) * a.shape.per_day)
      throw std::runtime_error("read " + std::to_string(days.records) + " records of " +
                               std::to_string(reads) + " staff-days, expected " +
                               std::to_string(reads * a.shape.per_day));
    {
      Phase phase;
      const ReadTotals month = engine->read_month_by_staff();
      json::object o = phase.finish(static_cast<std::int64_t>(month.records), 0);
      o["revision_sum"] = month.revision_sum;
      o["bytes"] = month.bytes;
      o["engine_memory"] = memory_of(*engine);
      out["month"] = std::move(o);
      const auto expected_sum = static_cast<std::uint64_t>(a.shape.records() + revised_expected);
      if (month.records != static_cast<std::uint64_t>(a.shape.records()) ||
          month.revision_sum != expected_sum)
        throw std::runtime_error("the month read " + std::to_string(month.records) +
                                 " records with revisions summing to " +
                                 std::to_string(month.revision_sum) + ", expected " +
                                 std::to_string(a.shape.records()) + " and " +
                                 std::to_string(expected_sum));
    }
  }  // closed: the files are final
  out["file_bytes"] = folder_bytes(dir);
  out["file_bytes_per_stored_revision"] = static_cast<double>(out["file_bytes"].as_uint64()) /
                                          static_cast<double>(out["stored_revisions"].as_int64());
  out["peak_rss_kb_process"] = proc_value("/proc/self/status", "VmHWM:");
  std::cout << json::serialize(out) << "\n";
  return 0;
}

// Runs one engine in a child process; its JSON, with what the parent saw added.
json::object run_engine(const std::string& self, const std::string& engine,
                        const std::vector<std::string>& passthrough) {
  int pipefd[2];
  if (pipe(pipefd) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> argv_s = {self, "--child", engine};
  argv_s.insert(argv_s.end(), passthrough.begin(), passthrough.end());
  const std::string load_before = loadavg();
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    close(pipefd[0]);
    close(pipefd[1]);
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());  // this very binary, even if rebuilt meanwhile
    std::perror("execv");
    _exit(127);
  }
  close(pipefd[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  close(pipefd[0]);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("engine " + engine + " failed (status " + std::to_string(status) +
                             ")");
  json::object o = json::parse(text).as_object();
  o["child_maxrss_kb"] = ru.ru_maxrss;
  o["child_cpu_s"] = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  o["child_wall_s"] = seconds(std::chrono::steady_clock::now() - start);
  o["loadavg_before"] = load_before;
  o["loadavg_after"] = loadavg();
  return o;
}

double num(const json::value& v) {
  return v.to_number<double>();
}

void print_table(const json::array& results, const Shape& shape) {
  std::printf("\n%lld records (%d staff x %d days x %d), pages of %d, revise %d%% in pass 2\n",
              static_cast<long long>(shape.records()), shape.staff, shape.days, shape.per_day,
              shape.page_size, shape.revise_percent);
  std::printf(
      "| engine | pass | records/s | CPU s per million | disk write KB per record | peak RSS MB "
      "| max RssAnon MB |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    const auto& o = r.as_object();
    for (const char* pass : {"pass1", "pass2"}) {
      const auto& p = o.at(pass).as_object();
      std::printf("| %s | %s | %.0f | %.2f | %.2f | %.1f | %.1f |\n",
                  o.at("engine").as_string().c_str(), pass, num(p.at("records_per_s")),
                  num(p.at("cpu_s_per_million")),
                  num(p.at("write_bytes")) / 1024.0 / num(p.at("records")),
                  num(p.at("peak_rss_kb")) / 1024.0, num(p.at("max_rss_anon_kb")) / 1024.0);
    }
  }
  std::printf(
      "\n| engine | staff-day read ms | staff-days: peak RSS MB | month read s | month records/s "
      "| month: peak RSS MB / RssAnon MB | file bytes per stored revision | load before -> "
      "after |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
  for (const auto& r : results) {
    const auto& o = r.as_object();
    const auto& d = o.at("staff_days").as_object();
    const auto& m = o.at("month").as_object();
    std::printf("| %s | %.3f | %.1f | %.2f | %.0f | %.1f / %.1f | %.0f | %s -> %s |\n",
                o.at("engine").as_string().c_str(), num(d.at("ms_per_staff_day")),
                num(d.at("peak_rss_kb")) / 1024.0, num(m.at("wall_s")), num(m.at("records_per_s")),
                num(m.at("peak_rss_kb")) / 1024.0, num(m.at("max_rss_anon_kb")) / 1024.0,
                num(o.at("file_bytes_per_stored_revision")),
                o.at("loadavg_before").as_string().c_str(),
                o.at("loadavg_after").as_string().c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  po::options_description flags("kpihub-bench-engines: the record log of issue 20 on each engine");
  // clang-format off
  flags.add_options()
    ("help", "show this help")
    ("engines", po::value(&a.engines)->default_value(a.engines),
     "comma-separated: sqlite, sqlite-normal, sqlite-text, rocksdb, rocksdb-nobloom, "
     "rocksdb-idkey, rocksdb-raw (no compression), rocksdb-clustered, lmdb")
    ("staff", po::value(&a.shape.staff)->default_value(a.shape.staff), "staff (35000: the 5x backlog)")
    ("days", po::value(&a.shape.days)->default_value(a.shape.days), "working days, 1..22")
    ("per-day", po::value(&a.shape.per_day)->default_value(a.shape.per_day), "entries per staff-day")
    ("revise-percent", po::value(&a.shape.revise_percent)->default_value(a.shape.revise_percent),
     "share of pass 2 that is a new revision")
    ("page", po::value(&a.shape.page_size)->default_value(a.shape.page_size), "records per page")
    ("cache-mb", po::value(&a.cache_mb)->default_value(a.cache_mb),
     "memory budget of each engine's caches and write buffers, MiB")
    ("staff-days", po::value(&a.staff_days)->default_value(a.staff_days), "random staff-days read back")
    ("dir", po::value(&a.dir)->default_value(a.dir), "folder on a real disk for the engines' files")
    ("json", po::value(&a.json_out), "write every figure to this file")
    ("smoke", "20 staff: proves every engine runs (CI)")
    ("child", po::value(&a.child), "internal: run one engine and print its JSON");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, flags), vm);
    if (vm.count("help")) {
      std::cout << flags << "\n";
      return 0;
    }
    po::notify(vm);
    if (vm.count("smoke")) {
      a.shape.staff = 20;
      a.staff_days = 50;
    }
    if (!a.child.empty()) return run_child(a);

    std::vector<std::string> engines;
    std::stringstream list(a.engines);
    for (std::string e; std::getline(list, e, ',');) {
      if (std::find(kEngines.begin(), kEngines.end(), e) == kEngines.end())
        throw std::invalid_argument("unknown engine " + e);
      engines.push_back(e);
    }
    const std::vector<std::string> passthrough = {"--staff",
                                                  std::to_string(a.shape.staff),
                                                  "--days",
                                                  std::to_string(a.shape.days),
                                                  "--per-day",
                                                  std::to_string(a.shape.per_day),
                                                  "--revise-percent",
                                                  std::to_string(a.shape.revise_percent),
                                                  "--page",
                                                  std::to_string(a.shape.page_size),
                                                  "--cache-mb",
                                                  std::to_string(a.cache_mb),
                                                  "--staff-days",
                                                  std::to_string(a.staff_days),
                                                  "--dir",
                                                  a.dir};
    const std::string self = fs::read_symlink("/proc/self/exe").string();
    json::array results;
    for (const auto& e : engines) {
      std::fprintf(stderr, "bench/engines: %s (load %s)\n", e.c_str(), loadavg().c_str());
      results.push_back(run_engine(self, e, passthrough));
    }
    std::fflush(stderr);
    print_table(results, a.shape);
    if (!a.json_out.empty()) {
      json::object all{{"records", a.shape.records()},
                       {"staff", a.shape.staff},
                       {"days", a.shape.days},
                       {"per_day", a.shape.per_day},
                       {"revise_percent", a.shape.revise_percent},
                       {"page", a.shape.page_size},
                       {"cache_mb", a.cache_mb},
                       {"dir", a.dir},
                       {"results", results}};
      std::ofstream(a.json_out) << json::serialize(all) << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kpihub-bench-engines: " << e.what() << "\n";
    return 1;
  }
}
