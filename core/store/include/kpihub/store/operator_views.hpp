// What operators read of the store beside the pipeline's own seams (the admin API, the
// dashboard, `kpihub status`), and the audit log of what they did.
//
// What an engine must keep: counts() is one consistent snapshot; audit() is durable when it
// returns. Nothing here is on the data path: reads may be slower than the pipeline's.
#pragma once

#include <kpihub/store/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kpihub {

class OperatorViews {
 public:
  virtual ~OperatorViews() = default;

  // Quarantine entries after `after_id`, in id order, of `source` (the instance or the source
  // system) and `reason`; an empty filter matches everything.
  virtual std::vector<QuarantineRow> quarantine(const std::string& source,
                                                const std::string& reason, std::size_t limit,
                                                int64_t after_id) = 0;
  // Quarantine entries by source and reason (the dashboard's breakdown).
  virtual std::vector<QuarantineCount> quarantine_counts() = 0;
  virtual StoreCounts counts() = 0;
  // Appends an operator action to the audit log.
  virtual void audit(const std::string& actor, const std::string& action,
                     const std::string& detail) = 0;
};

}  // namespace kpihub
