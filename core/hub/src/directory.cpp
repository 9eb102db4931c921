// The staff directory every command scores with: the staff files of hub.json and the staff lists
// the sources synced, kept in the store (issue 18).
#include <kpihub/hub.hpp>

namespace kpihub {

void merge_synced_staff(Directory& directory, const std::vector<SyncedStaff>& entries) {
  for (const SyncedStaff& e : entries) {
    StaffInfo info;
    info.staff_code = e.staff_code;
    info.full_name = e.full_name;
    info.agency_code = e.agency_code;
    info.leader = e.leader;
    info.active = e.active;
    // Sources know no sector: the staff files' stays (and their identifiers, kept apart).
    if (const StaffInfo* known = directory.staff(e.staff_code)) info.sector = known->sector;
    directory.add_staff(std::move(info));
  }
}

ReferenceData load_reference(const HubConfig& config, StaffLists& staff_lists) {
  ReferenceData reference = load_reference(config);
  merge_synced_staff(reference.directory, staff_lists.synced_staff());
  return reference;
}

}  // namespace kpihub
