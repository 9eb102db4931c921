// What every kpihub benchmark reports or decides the same way: peak RSS,
// CPU time, and whether CI asked for the short smoke mode.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kpihub::bench {

// A fresh folder under the system temp folder, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "kpihub-bench") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + pattern);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Peak resident set of this process so far, MiB.
inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

// User + system CPU of the whole process, s.
inline double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// CPU of the calling thread only, s.
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Smoke mode (a tiny input, proving the benchmark runs) when
// KPIHUB_BENCH_SMOKE=1 or --benchmark_min_time is below 0.1 s, as CI runs
// every bench_* binary.
inline bool smoke_requested(int argc, char** argv) {
  if (const char* env = std::getenv("KPIHUB_BENCH_SMOKE");
      env != nullptr && std::string_view(env) == "1") {
    return true;
  }
  constexpr std::string_view kFlag = "--benchmark_min_time=";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg.substr(0, kFlag.size()) == kFlag) {
      // "0.01" or "0.01s"; an iteration count ("10x") is not a time.
      const std::string value(arg.substr(kFlag.size()));
      if (!value.empty() && value.back() == 'x') continue;
      if (std::strtod(value.c_str(), nullptr) < 0.1) return true;
    }
  }
  return false;
}

}  // namespace kpihub::bench
