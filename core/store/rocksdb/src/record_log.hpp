// The RocksDB engine's RecordLog (kpihub/store/record_log.hpp); the layout is in database.hpp.
#pragma once

#include "database.hpp"

#include <kpihub/store/record_log.hpp>

namespace kpihub::rocks {

class RocksRecordLog final : public RecordLog {
 public:
  explicit RocksRecordLog(Database& db) : db_(db) {}

  PageCommitResult commit_page(const PageCommit& page) override;
  std::optional<std::string> cursor(const std::string& source) override;
  std::vector<SourceState> sources() override;
  void set_cursor(const std::string& source, const std::optional<std::string>& cursor) override;
  std::size_t dismiss_quarantine(const std::string& source, const std::string& reason,
                                 int64_t id) override;
  std::optional<WorkRecord> record(const std::string& record_id) override;
  std::vector<WorkRecord> records_of_month(const std::string& month) override;
  std::vector<int64_t> received_at(const std::vector<std::string>& record_ids) override;
  std::vector<HourCount> stored_per_hour(int64_t since_unix_ms) override;

 private:
  Database& db_;
};

}  // namespace kpihub::rocks
