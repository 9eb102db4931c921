#include "database.hpp"
#include "integrity.hpp"
#include "operator_views.hpp"
#include "outbox.hpp"
#include "record_log.hpp"
#include "scoring_state.hpp"
#include "staff_lists.hpp"

#include <kpihub/store/rocksdb.hpp>

#include <rocksdb/version.h>

namespace kpihub {

namespace {

class RocksdbStorage final : public Storage {
 public:
  RocksdbStorage(const std::string& path, const RocksdbStorageOptions& options)
      : db_(path, options),
        records_(db_),
        scoring_(db_),
        outbox_(db_),
        views_(db_),
        staff_lists_(db_),
        integrity_(db_) {}

  RecordLog& records() override { return records_; }
  ScoringState& scoring() override { return scoring_; }
  Outbox& outbox() override { return outbox_; }
  OperatorViews& views() override { return views_; }
  StaffLists& staff_lists() override { return staff_lists_; }
  StoreIntegrity& integrity() override { return integrity_; }

 private:
  rocks::Database db_;
  rocks::RocksRecordLog records_;
  rocks::RocksScoringState scoring_;
  rocks::RocksOutbox outbox_;
  rocks::RocksOperatorViews views_;
  rocks::RocksStaffLists staff_lists_;
  rocks::RocksIntegrity integrity_;
};

}  // namespace

int rocksdb_layout_version() {
  return 1;
}

std::string rocksdb_library_version() {
  return std::to_string(ROCKSDB_MAJOR) + "." + std::to_string(ROCKSDB_MINOR) + "." +
         std::to_string(ROCKSDB_PATCH);
}

std::unique_ptr<Storage> open_rocksdb_storage(const std::string& path,
                                              const RocksdbStorageOptions& options) {
  return std::make_unique<RocksdbStorage>(path, options);
}

}  // namespace kpihub
