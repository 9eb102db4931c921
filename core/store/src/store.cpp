#include <kpihub/store.hpp>

namespace kpihub {

void Store::scan_month_for_scoring(const std::string& month, const ScoringVisitor& visit) {
  for (const std::string& staff : staff_of_month(month)) {
    ScanBatch batch;
    batch.records = records_of_staff_month({staff, month});
    std::vector<std::string> ids;
    ids.reserve(batch.records.size());
    for (const auto& r : batch.records) ids.push_back(r.record_id);
    batch.received_at = received_at(ids);
    batch.count = batch.records.size();
    visit(staff, batch);
  }
}

}  // namespace kpihub
