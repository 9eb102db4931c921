// The RocksDB engine's ScoringState (kpihub/store/scoring_state.hpp); the layout is in
// database.hpp.
#pragma once

#include "database.hpp"

#include <kpihub/store/scoring_state.hpp>

#include <cstdint>
#include <map>
#include <mutex>

namespace kpihub::rocks {

class RocksScoringState final : public ScoringState {
 public:
  explicit RocksScoringState(Database& db) : db_(db) {}

  std::vector<DirtyStaffMonth> dirty_staff_days(std::size_t limit) override;
  std::size_t mark_month_dirty(const std::string& month) override;
  std::vector<WorkRecord> records_of_staff_month(const StaffMonthKey& key) override;
  std::vector<WorkRecord> records_of_staff_days(const StaffMonthKey& key, DayMask days) override;
  std::vector<DayCount> records_per_day(const StaffMonthKey& key, DayMask days) override;
  StaffMonthForScoring staff_month_for_scoring(const StaffMonthKey& key) override;
  StaffMonthForScoring staff_days_for_scoring(const StaffMonthKey& key, DayMask days) override;
  std::vector<std::string> staff_of_month(const std::string& month) override;
  std::vector<RecordScoreRow> record_scores(const std::vector<std::string>& record_ids) override;
  std::optional<ScoringCommit::MonthRow> month_row(OutboxKind kind, const std::string& month,
                                                   const std::string& code) override;
  std::vector<ScoringCommit::MonthRow> month_rows(OutboxKind kind,
                                                  const std::string& month) override;
  void commit_scoring(const ScoringCommit& commit) override;
  void scan_month_for_scoring(const std::string& month,
                              const std::vector<std::string>& split_before,
                              const PartVisitor& visit) override;

 private:
  Database& db_;
  // The mark number of each dirty key as dirty_staff_days last listed it: commit_scoring clears
  // a key only while its mark is still that one (a page that marks it again meanwhile gives it
  // a new number, and it stays dirty). A key never listed is cleared whatever its mark.
  std::mutex listed_mutex_;
  std::map<StaffMonthKey, int64_t> listed_marks_;
};

}  // namespace kpihub::rocks
