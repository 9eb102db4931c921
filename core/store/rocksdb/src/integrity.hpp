// The RocksDB engine's integrity check: every live table file read through RocksDB's own
// reader and its block checksums verified, the newest files first (what a crash or a failing
// disk damaged last, and what a quick check at start must reach).
#pragma once

#include "database.hpp"

#include <kpihub/store/integrity.hpp>

namespace kpihub::rocks {

class RocksIntegrity final : public StoreIntegrity {
 public:
  explicit RocksIntegrity(Database& db) : db_(db) {}
  IntegrityReport check(std::optional<std::chrono::milliseconds> budget,
                        const std::function<void(const IntegrityProgress&)>& progress) override;

 private:
  Database& db_;
};

}  // namespace kpihub::rocks
