// The staff lists the sources synced, kept so that every command, not only the hub that synced
// a list, scores with the same staff directory.
//
// What an engine must keep: save_synced_staff replaces a source's list in one transaction.
#pragma once

#include <kpihub/store/types.hpp>

#include <string>
#include <vector>

namespace kpihub {

class StaffLists {
 public:
  virtual ~StaffLists() = default;

  // One transaction: `entries` are the whole staff list `source` gave (each entry's source is
  // `source`); each replaces the one the source gave before for the same staff code. Staff the
  // list no longer names have left: their entry stays, with what the source said last and when
  // it last listed them, but inactive, as if the source had listed them inactive.
  virtual void save_synced_staff(const std::string& source,
                                 const std::vector<SyncedStaff>& entries) = 0;
  // Every entry, the oldest sync first (then by source and staff code): merged into the
  // directory in this order, the latest list to name a staff member has the last word.
  virtual std::vector<SyncedStaff> synced_staff() = 0;
};

}  // namespace kpihub
