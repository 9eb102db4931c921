// What the scorer reads and writes: which staff days changed, the records of a staff month as
// scoring reads them, the scores and month results last sent, and the commit that sends new
// ones (record scores, month rows, day totals and outbox items at once).
//
// What an engine must keep: commit_scoring is one transaction (record scores, month rows, day
// totals, outbox items appended and the dirty keys it resolves cleared), so what went to the
// outbox and what the scorer compares the next result with never disagree, and a crash leaves
// the staff month dirty to be scored again. A page committed (RecordLog::commit_page) before
// dirty_staff_days is called is always listed by it, and a key marked again after it was
// listed stays dirty through the commit that resolves the earlier listing.
#pragma once

#include <kpihub/store/types.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kpihub {

class ScoringState {
 public:
  virtual ~ScoringState() = default;

  // The staff months to rescore, with the days of each that changed (the days records had and
  // have; mark_month_dirty marks kWholeMonth). Both first mark what every revision stored since
  // the last call changed, so a page committed before the call is always listed.
  virtual std::vector<DirtyStaffMonth> dirty_staff_days(std::size_t limit) = 0;
  // Marks every staff-month of `month` dirty (rescore after a rules change).
  virtual std::size_t mark_month_dirty(const std::string& month) = 0;

  // Current revision of every record of the staff member in the month,
  // retracted ones included, every field.
  virtual std::vector<WorkRecord> records_of_staff_month(const StaffMonthKey& key) = 0;
  // The same for the work dates of `days` only, in record_id order: a large staff month is read
  // a few days at a time (issue 18: one lab clinician's month held 290,000 records).
  virtual std::vector<WorkRecord> records_of_staff_days(const StaffMonthKey& key, DayMask days) = 0;
  // How many records (current revisions, retracted ones included) the staff month has on each
  // work date of `days` that has any, in date order: what the scorer plans its reads of a staff
  // month with. A few days are counted without reading the rest of the month (rescoring a
  // change counts the days it changed: on RocksDB, counting a whole staff month was a sixth of
  // rescoring a revised record).
  struct DayCount {
    Date date;
    std::size_t records = 0;
    bool operator==(const DayCount&) const = default;
  };
  virtual std::vector<DayCount> records_per_day(const StaffMonthKey& key, DayMask days) = 0;
  // Everything rescoring one staff-month reads, in two range reads: its records
  // in record_id order with the fields scoring reads (ScanBatch's; the
  // others are left empty: RecordLog::record has them all), and for each (same index)
  // when the hub received it and its score as last sent (none: never sent).
  struct StaffMonthForScoring {
    std::vector<WorkRecord> records;
    std::vector<int64_t> received_at;
    std::vector<std::optional<RecordScoreRow>> previous;
    // staff_days_for_scoring only: the day totals last committed for the staff month
    // (ScoringCommit::day_totals); nullopt when none were.
    std::optional<std::string> day_totals;
  };
  virtual StaffMonthForScoring staff_month_for_scoring(const StaffMonthKey& key) = 0;
  // The same for the records of some days only (a range read per day, a key lookup per last
  // score), with the staff month's stored day totals: what rescoring a changed day reads.
  virtual StaffMonthForScoring staff_days_for_scoring(const StaffMonthKey& key, DayMask days) = 0;
  // Staff codes with at least one record in the month.
  virtual std::vector<std::string> staff_of_month(const std::string& month) = 0;

  // The score as last sent of each record that has one, in record_id order; ids never scored
  // are left out.
  virtual std::vector<RecordScoreRow> record_scores(const std::vector<std::string>& record_ids) = 0;
  virtual std::optional<ScoringCommit::MonthRow> month_row(OutboxKind kind,
                                                           const std::string& month,
                                                           const std::string& code) = 0;
  virtual std::vector<ScoringCommit::MonthRow> month_rows(OutboxKind kind,
                                                          const std::string& month) = 0;
  // One transaction: record scores, month rows, day totals, outbox items, dirty keys cleared.
  virtual void commit_scoring(const ScoringCommit& commit) = 0;

  // Reads every staff month of `month` for a recompute, cut into parts by staff code, read at
  // once: part i holds the codes from split_before[i - 1] (inclusive) up to split_before[i]
  // (exclusive); part 0 starts at the first code and the last part (split_before.size()) ends
  // at the last; empty split_before: one part. split_before must be sorted, without repeats.
  //
  // `visit` is called once per staff member with records in the month, in staff code order
  // within a part, with the part's number and a batch holding the current revision of each
  // record (retracted ones included; in no particular order) and, parallel to it, when the hub
  // stored that revision (unix ms). Only the fields scoring reads are filled: record_id,
  // source_system, revision, retracted, staff_code, agency_code, task_code, work_date,
  // declared_minutes, quantity, evidence_ref, deadline, completed_at, changed_at (5.4: when
  // the source recorded the revision) and approval status and rating (not approval.by/at); the
  // other fields are empty. `visit` may be called from several
  // threads at once (never twice at once for one part). An exception it throws stops every part
  // (each calls the visitor no more) and is rethrown. The visitor must not start another month
  // scan (the SQLite store runs one at a time: it would wait for itself); other calls are
  // allowed but wait for the store's mutex.
  //
  // The first `count` entries of `records` and `received_at` are the staff
  // member's. The visitor may take both vectors (swap them with vectors of its
  // own, of any size: the scan reuses whatever it is left, strings' capacity
  // included), e.g. to score them on another thread without a copy.
  //
  // A staff member with many records in the month comes in several batches of whole work dates
  // (no date is cut in two), in date order, each but the last with `more` set: the SQLite store
  // holds about kScanBatchRecords records per part at a time, whatever a staff month holds
  // (issue 18).
  //
  // The SQLite store reads each part on a thread and read connection of its own, every part in
  // the snapshot of one commit of this store (a writer in another process can commit between the
  // parts' first reads); one such scan runs at a time.
  struct ScanBatch {
    std::vector<WorkRecord> records;
    std::vector<int64_t> received_at;
    std::size_t count = 0;
    bool more = false;  // the staff member's next work dates come in the next call
  };
  static constexpr std::size_t kScanBatchRecords = 4096;
  using PartVisitor =
      std::function<void(std::size_t part, const std::string& staff_code, ScanBatch& batch)>;
  virtual void scan_month_for_scoring(const std::string& month,
                                      const std::vector<std::string>& split_before,
                                      const PartVisitor& visit) = 0;
};

}  // namespace kpihub
