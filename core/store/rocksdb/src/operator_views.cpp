#include "operator_views.hpp"

namespace kpihub::rocks {

std::vector<QuarantineRow> RocksOperatorViews::quarantine(const std::string& /*source*/,
                                                          const std::string& /*reason*/,
                                                          std::size_t /*limit*/,
                                                          int64_t /*after_id*/) {
  throw StoreError("store " + db_.path() +
                   ": OperatorViews::quarantine is not built yet in the RocksDB engine");
}

std::vector<QuarantineCount> RocksOperatorViews::quarantine_counts() {
  throw StoreError("store " + db_.path() +
                   ": OperatorViews::quarantine_counts is not built yet in the RocksDB engine");
}

StoreCounts RocksOperatorViews::counts() {
  throw StoreError("store " + db_.path() +
                   ": OperatorViews::counts is not built yet in the RocksDB engine");
}

void RocksOperatorViews::audit(const std::string& /*actor*/, const std::string& /*action*/,
                               const std::string& /*detail*/) {
  throw StoreError("store " + db_.path() +
                   ": OperatorViews::audit is not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks
