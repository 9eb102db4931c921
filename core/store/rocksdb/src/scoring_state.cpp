#include "scoring_state.hpp"

namespace kpihub::rocks {

std::vector<DirtyStaffMonth> RocksScoringState::dirty_staff_days(std::size_t /*limit*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::dirty_staff_days is not built yet in the RocksDB engine");
}

std::size_t RocksScoringState::mark_month_dirty(const std::string& /*month*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::mark_month_dirty is not built yet in the RocksDB engine");
}

std::vector<WorkRecord> RocksScoringState::records_of_staff_month(const StaffMonthKey& /*key*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::records_of_staff_month is not built yet in the RocksDB engine");
}

std::vector<WorkRecord> RocksScoringState::records_of_staff_days(const StaffMonthKey& /*key*/,
                                                                 DayMask /*days*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::records_of_staff_days is not built yet in the RocksDB engine");
}

std::vector<ScoringState::DayCount> RocksScoringState::records_per_day(
    const StaffMonthKey& /*key*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::records_per_day is not built yet in the RocksDB engine");
}

ScoringState::StaffMonthForScoring RocksScoringState::staff_month_for_scoring(
    const StaffMonthKey& /*key*/) {
  throw StoreError(
      "store " + db_.path() +
      ": ScoringState::staff_month_for_scoring is not built yet in the RocksDB engine");
}

ScoringState::StaffMonthForScoring RocksScoringState::staff_days_for_scoring(
    const StaffMonthKey& /*key*/, DayMask /*days*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::staff_days_for_scoring is not built yet in the RocksDB engine");
}

std::vector<std::string> RocksScoringState::staff_of_month(const std::string& /*month*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::staff_of_month is not built yet in the RocksDB engine");
}

std::vector<RecordScoreRow> RocksScoringState::record_scores(
    const std::vector<std::string>& /*record_ids*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::record_scores is not built yet in the RocksDB engine");
}

std::optional<ScoringCommit::MonthRow> RocksScoringState::month_row(OutboxKind /*kind*/,
                                                                    const std::string& /*month*/,
                                                                    const std::string& /*code*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::month_row is not built yet in the RocksDB engine");
}

std::vector<ScoringCommit::MonthRow> RocksScoringState::month_rows(OutboxKind /*kind*/,
                                                                   const std::string& /*month*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::month_rows is not built yet in the RocksDB engine");
}

void RocksScoringState::commit_scoring(const ScoringCommit& commit) {
  // Provisional (the skeleton): only the outbox items, so the outbox can be built and tested
  // beside the scoring state. The scoring state's helper replaces it whole.
  if (!commit.done.empty() || !commit.record_scores.empty() || !commit.months.empty() ||
      !commit.day_totals.empty()) {
    throw StoreError("store " + db_.path() +
                     ": ScoringState::commit_scoring is not built yet in the RocksDB engine");
  }
  std::lock_guard lock(db_.write_mutex());
  rocksdb::WriteBatch batch;
  append_outbox_items(db_, batch, commit.outbox);
  db_.write(batch, "appending to the outbox");
}

void RocksScoringState::scan_month_for_scoring(const std::string& /*month*/,
                                               const std::vector<std::string>& /*split_before*/,
                                               const PartVisitor& /*visit*/) {
  throw StoreError("store " + db_.path() +
                   ": ScoringState::scan_month_for_scoring is not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks

namespace kpihub::rocks {

void add_dirty_marks(Database& db, rocksdb::WriteBatch& /*batch*/,
                     const std::map<StaffMonthKey, DayMask>& /*days_of*/) {
  throw StoreError("store " + db.path() + ": dirty marks are not built yet in the RocksDB engine");
}

void move_score(Database& db, rocksdb::WriteBatch& /*batch*/, const std::string& /*record_id*/,
                const StaffMonthKey& /*from*/, const StaffMonthKey& /*to*/) {
  throw StoreError("store " + db.path() + ": moving scores is not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks

namespace kpihub::rocks {

int64_t staff_months_to_score(Database& db, const rocksdb::Snapshot* /*snapshot*/) {
  throw StoreError("store " + db.path() + ": dirty counts are not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks
