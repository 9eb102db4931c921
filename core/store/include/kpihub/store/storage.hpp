// One store as the hub opens it: an engine behind the five seams. The hub's wiring and the
// commands take a Storage and hand each part of the pipeline only the seam it uses (ingest
// the RecordLog, the scorer the ScoringState, a forwarder the Outbox, the directory the
// StaffLists, operators' views the OperatorViews); each seam can move to another engine on its
// own (issue 20, issue 21).
#pragma once

#include <kpihub/store/integrity.hpp>
#include <kpihub/store/operator_views.hpp>
#include <kpihub/store/outbox.hpp>
#include <kpihub/store/record_log.hpp>
#include <kpihub/store/scoring_state.hpp>
#include <kpihub/store/staff_lists.hpp>

namespace kpihub {

class Storage {
 public:
  virtual ~Storage() = default;
  virtual RecordLog& records() = 0;
  virtual ScoringState& scoring() = 0;
  virtual Outbox& outbox() = 0;
  virtual OperatorViews& views() = 0;
  virtual StaffLists& staff_lists() = 0;
  // Not a seam of the pipeline: the check of the files beneath them (check-store, the hub's
  // start).
  virtual StoreIntegrity& integrity() = 0;
};

}  // namespace kpihub
