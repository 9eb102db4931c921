// Whether what a store holds on disk can still be read as it was written: every page of an
// SQLite file, every block of a RocksDB table file, checked against the engine's own checks
// (issue 19 section 4). `kpihub check-store` checks everything, with progress; the hub checks
// what it can within a small budget when it starts (RocksDB's newest files first, SQLite's
// tables by name), and refuses a store that fails. Corruption found while the pipeline reads is a StoreError as before; this finds it
// before a report or a rescore reads a damaged page.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kpihub {

struct IntegrityProgress {
  std::size_t done = 0;   // parts checked (an SQLite table and its indexes, a RocksDB file)
  std::size_t total = 0;  // parts there are
  std::string part;       // the one just checked
};

struct IntegrityReport {
  std::string unit;  // what a part is: "tables" or "files"
  std::size_t checked = 0;
  std::size_t total = 0;
  uint64_t bytes_checked = 0;
  // False when the budget ended the check before every part was read.
  bool complete = true;
  // One line per problem, naming the store's file or table and what the engine found.
  std::vector<std::string> problems;
};

class StoreIntegrity {
 public:
  virtual ~StoreIntegrity() = default;
  // Reads and checks the store's parts (RocksDB: the newest files first); with a budget, stops
  // once it is spent (a part under way is finished; SQLite's is interrupted). `progress`, when given, hears of each part checked.
  virtual IntegrityReport check(
      std::optional<std::chrono::milliseconds> budget,
      const std::function<void(const IntegrityProgress&)>& progress = {}) = 0;
};

}  // namespace kpihub
