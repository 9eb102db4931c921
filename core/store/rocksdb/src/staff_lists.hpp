// The RocksDB engine's StaffLists (kpihub/store/staff_lists.hpp); the layout is in database.hpp.
#pragma once

#include "database.hpp"

#include <kpihub/store/staff_lists.hpp>

namespace kpihub::rocks {

class RocksStaffLists final : public StaffLists {
 public:
  explicit RocksStaffLists(Database& db) : db_(db) {}

  void save_synced_staff(const std::string& source,
                         const std::vector<SyncedStaff>& entries) override;
  std::vector<SyncedStaff> synced_staff() override;

 private:
  Database& db_;
};

}  // namespace kpihub::rocks
