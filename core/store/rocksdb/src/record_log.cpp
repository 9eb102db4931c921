#include "record_log.hpp"

namespace kpihub::rocks {

PageCommitResult RocksRecordLog::commit_page(const PageCommit& /*page*/) {
  throw StoreError("store " + db_.path() +
                   ": RecordLog::commit_page is not built yet in the RocksDB engine");
}

std::optional<std::string> RocksRecordLog::cursor(const std::string& /*source*/) {
  throw StoreError("store " + db_.path() +
                   ": RecordLog::cursor is not built yet in the RocksDB engine");
}

std::vector<SourceState> RocksRecordLog::sources() {
  throw StoreError("store " + db_.path() +
                   ": RecordLog::sources is not built yet in the RocksDB engine");
}

std::optional<WorkRecord> RocksRecordLog::record(const std::string& /*record_id*/) {
  throw StoreError("store " + db_.path() +
                   ": RecordLog::record is not built yet in the RocksDB engine");
}

std::vector<WorkRecord> RocksRecordLog::records_of_month(const std::string& /*month*/) {
  throw StoreError("store " + db_.path() +
                   ": RecordLog::records_of_month is not built yet in the RocksDB engine");
}

std::vector<int64_t> RocksRecordLog::received_at(const std::vector<std::string>& /*record_ids*/) {
  throw StoreError("store " + db_.path() +
                   ": RecordLog::received_at is not built yet in the RocksDB engine");
}

std::vector<HourCount> RocksRecordLog::stored_per_hour(int64_t /*since_unix_ms*/) {
  throw StoreError("store " + db_.path() +
                   ": RecordLog::stored_per_hour is not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks
