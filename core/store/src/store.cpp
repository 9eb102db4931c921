#include <kpihub/store.hpp>

#include <algorithm>
#include <map>

namespace kpihub {

std::vector<WorkRecord> Store::records_of_staff_days(const StaffMonthKey& key, DayMask days) {
  std::vector<WorkRecord> records = records_of_staff_month(key);
  std::erase_if(records, [&](const WorkRecord& r) { return (days & day_bit(r.work_date)) == 0; });
  return records;
}

std::vector<Store::DayCount> Store::records_per_day(const StaffMonthKey& key) {
  std::map<Date, std::size_t> counts;
  for (const WorkRecord& r : records_of_staff_month(key)) ++counts[r.work_date];
  std::vector<DayCount> out;
  out.reserve(counts.size());
  for (const auto& [date, n] : counts) out.push_back({date, n});
  return out;
}

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

void Store::scan_month_for_scoring(const std::string& month,
                                   const std::vector<std::string>& split_before,
                                   const PartVisitor& visit) {
  scan_month_for_scoring(month, [&](const std::string& staff, ScanBatch& batch) {
    const auto part = std::upper_bound(split_before.begin(), split_before.end(), staff);
    visit(static_cast<std::size_t>(part - split_before.begin()), staff, batch);
  });
}

}  // namespace kpihub
