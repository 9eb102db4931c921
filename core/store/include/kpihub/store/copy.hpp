// Copying one store into another through the seams only (`kpihub store copy`): a SQLite store
// into a RocksDB one and back, whatever the engines, with nothing engine-specific here.
//
// What the seams let a copy carry: every record at its current revision with when the hub
// received it, each source's cursor, the quarantine, each record's score as last sent, the
// month rows (staff and agency), the staff months' day totals, which staff months wait to be
// rescored, and the synced staff lists. What they do not (no seam reads it): the revision
// history (older revisions), the outbox and each sink's place in it (a copy refuses a source
// whose outbox is not delivered to every sink), the batch history, dead letters and the audit
// log. docs/operations.md, "Move a store to another engine".
#pragma once

#include <kpihub/store/storage.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kpihub {

struct StoreCopyProgress {
  int64_t records_copied = 0;
  int64_t records_total = 0;  // the source's count when the copy started
};

struct StoreCopyOptions {
  // How the stores are named in messages ("sqlite:/var/lib/kpihub/hub.db").
  std::string from_name = "source";
  std::string to_name = "destination";
  // The months whose records, scores and month rows are looked for, both included: no seam
  // lists the months a store holds. A record outside them is not copied, and the final check
  // (StoreCopyResult::mismatches) says so.
  Month first_month{1990, 1};
  Month last_month{2100, 12};
  // Records per page committed to the destination (a page is one transaction).
  std::size_t page_records = 2000;
  // Records read before they are committed: a page holds records received at one time (the
  // destination stamps them with the page's), so the more are read first, the fewer and the
  // fuller the pages (a province month was received in some 1,500 pages).
  std::size_t buffer_records = 50000;
  // Called after each page committed, from the copying thread.
  std::function<void(const StoreCopyProgress&)> on_progress;
};

struct StoreCopyResult {
  int64_t records = 0;
  int64_t quarantined = 0;
  int64_t cursors = 0;
  int64_t record_scores = 0;
  int64_t month_rows = 0;
  int64_t day_totals = 0;
  int64_t synced_staff = 0;
  int64_t staff_months_to_score = 0;  // carried as still waiting to be rescored
  // Months marked for a whole rescore in the destination: a staff month of theirs waited to be
  // rescored on days the destination's own marks do not cover (days its records left).
  std::vector<std::string> months_marked_whole;
  // Staff months that waited to be rescored in the source and hold no record any more: the
  // destination cannot mark them (no seam marks one staff month), so their month row stays as
  // last sent until a record of theirs comes again.
  std::vector<StaffMonthKey> dirty_without_records;
  // Both stores' counts once the copy is done.
  StoreCounts from;
  StoreCounts to;
  // The counts the copy must carry that differ (records, quarantined, outbox_pending,
  // revisions_to_read; fewer staff months to score in the destination): empty when the copy is
  // whole. Revisions and dead letters are not carried, and not compared.
  std::vector<std::string> mismatches;
};

// Copies `from` into `to`, which must be empty (no record, quarantine entry, cursor, outbox
// item, dead letter or synced staff list); throws StoreError naming the store otherwise, or
// when `from` has outbox items not yet delivered to every sink. Neither store may be written
// by anyone else meanwhile (`kpihub store copy` holds both stores' run locks). Reads `from`
// only, but for ScoringState::dirty_staff_days, which marks what the change log holds (as any
// scorer's listing does).
StoreCopyResult copy_store(Storage& from, Storage& to, const StoreCopyOptions& options = {});

}  // namespace kpihub
