#include <kpihub/store.hpp>

namespace kpihub {

void Store::scan_month_for_scoring(const std::string& month, const ScoringVisitor& visit) {
  for (const std::string& staff : staff_of_month(month)) {
    const std::vector<WorkRecord> records = records_of_staff_month({staff, month});
    std::vector<std::string> ids;
    ids.reserve(records.size());
    for (const auto& r : records) ids.push_back(r.record_id);
    const std::vector<int64_t> received = received_at(ids);
    visit(staff, records, received);
  }
}

}  // namespace kpihub
