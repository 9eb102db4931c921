// The RocksDB engine's OperatorViews (kpihub/store/operator_views.hpp); the layout is in
// database.hpp.
#pragma once

#include "database.hpp"

#include <kpihub/store/operator_views.hpp>

namespace kpihub::rocks {

class RocksOperatorViews final : public OperatorViews {
 public:
  explicit RocksOperatorViews(Database& db) : db_(db) {}

  std::vector<QuarantineRow> quarantine(const std::string& source, const std::string& reason,
                                        std::size_t limit, int64_t after_id) override;
  std::vector<QuarantineCount> quarantine_counts() override;
  StoreCounts counts() override;
  void audit(const std::string& actor, const std::string& action,
             const std::string& detail) override;

 private:
  Database& db_;
};

}  // namespace kpihub::rocks
