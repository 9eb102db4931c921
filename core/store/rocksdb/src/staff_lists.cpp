#include "staff_lists.hpp"

namespace kpihub::rocks {

void RocksStaffLists::save_synced_staff(const std::string& /*source*/,
                                        const std::vector<SyncedStaff>& /*entries*/) {
  throw StoreError("store " + db_.path() +
                   ": StaffLists::save_synced_staff is not built yet in the RocksDB engine");
}

std::vector<SyncedStaff> RocksStaffLists::synced_staff() {
  throw StoreError("store " + db_.path() +
                   ": StaffLists::synced_staff is not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks
