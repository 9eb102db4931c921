// The hub's durable state behind one interface (SQLite by default; a
// PostgreSQL implementation can stand beside it).
//
// Transactions are per operation: each method that changes state does it in
// exactly one transaction, so a crash leaves either all of it or none.
#pragma once

#include <kpihub/model.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace kpihub {

// Raised for any storage failure; the message names the database file and
// what was being done ("store var/hub.db: database is locked while committing
// page of source eoffice").
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PageCommit {
  std::string source;                 // source instance name
  std::optional<std::string> cursor;  // the cursor after this page; nullopt: unchanged
  std::vector<WorkRecord> records;    // validated and resolved
  std::vector<QuarantineEntry> quarantined;
  int64_t received_at_unix_ms = 0;
  // Quarantine entries this page resolves (a replay after a fix): deleted in
  // the same transaction that stores their records.
  std::vector<int64_t> resolved_quarantine_ids;
};

struct PageCommitResult {
  std::size_t inserted = 0;  // new record ids
  std::size_t updated = 0;   // higher revision of a known record
  // Equal or lower revision than stored, or a bare withdrawal (is_bare_withdrawal) of a record
  // never stored: ignored. Counts the quarantine_not_kept entries too.
  std::size_t ignored_stale = 0;
  // Quarantine entries stored (PageCommit::quarantined less quarantine_not_kept).
  std::size_t quarantined = 0;
  // Indices into PageCommit::quarantined of the entries not stored: their record is stored (or
  // this page stored or withdrew it) at a revision at or above theirs, so nothing is left to fix.
  std::vector<std::size_t> quarantine_not_kept;
  // Quarantine entries of records this page stored a higher revision of (or withdrew, stored or
  // not), removed: an entry of a revision not above that one, or of no readable revision
  // received earlier.
  std::size_t quarantine_resolved = 0;
};

struct StaffMonthKey {
  std::string staff_code;
  std::string month;  // YYYY-MM
  auto operator<=>(const StaffMonthKey&) const = default;
};

// Days of a month as bits, bit d-1 for day d: which days of a staff month changed since the
// scorer last scored them.
using DayMask = uint32_t;
inline constexpr DayMask kWholeMonth = 0xFFFFFFFFu;
inline DayMask day_bit(const Date& d) {
  return DayMask{1} << (static_cast<unsigned>(d.ymd().day()) - 1);
}

struct DirtyStaffMonth {
  StaffMonthKey key;
  DayMask days = kWholeMonth;  // kWholeMonth: rescore all of it (rules, clock, upgrade)
  bool operator==(const DirtyStaffMonth&) const = default;
};

// A record's current scoring as last sent downstream.
struct RecordScoreRow {
  std::string record_id;
  int64_t revision = 0;
  int64_t sequence = 0;      // 1 for the first version sent
  std::string scoring_json;  // the "scoring" object as sent
};

enum class OutboxKind { record = 0, staff_month = 1, agency_month = 2 };

struct OutboxItem {
  int64_t seq = 0;  // assigned by the store, increasing
  OutboxKind kind = OutboxKind::record;
  std::string key;      // record_id, "staff:<month>:<code>", "agency:<month>:<code>"
  std::string payload;  // JSON as the receiver gets it; never changes once stored
};

struct ScoringCommit {
  std::vector<StaffMonthKey> done;            // dirty keys this commit resolves
  std::vector<RecordScoreRow> record_scores;  // upserted
  struct MonthRow {
    OutboxKind kind = OutboxKind::staff_month;  // staff_month or agency_month
    std::string month;
    std::string code;  // staff code or agency code
    std::string agency_code;
    int64_t revision = 0;
    std::string json;
  };
  std::vector<MonthRow> months;    // upserted
  std::vector<OutboxItem> outbox;  // appended (seq ignored)
  // A staff month's day totals as the scorer encodes them (encode_day_totals), replaced whole.
  struct DayTotalsRow {
    StaffMonthKey key;
    std::string totals;
  };
  std::vector<DayTotalsRow> day_totals;
};

struct Batch {
  std::string batch_id;  // UUID, the Idempotency-Key
  std::string sink;
  int64_t first_seq = 0;
  int64_t last_seq = 0;
  std::vector<OutboxItem> items;
  uint32_t attempts = 0;
  int64_t not_before_unix_ms = 0;
  std::string last_error;  // why its last attempt failed (defer_batch); empty before one
};

struct DeadLetter {
  int64_t id = 0;
  std::string sink;
  std::string batch_id;
  std::string key;
  std::string code;
  std::string message;
  std::string payload;
  int64_t created_at_unix_ms = 0;
  bool replayed = false;
};

struct QuarantineRow {
  int64_t id = 0;
  QuarantineEntry entry;
  int64_t created_at_unix_ms = 0;
};

struct SourceState {
  std::string source;
  std::optional<std::string> cursor;
  int64_t updated_at_unix_ms = 0;
  int64_t records = 0;
  int64_t quarantined = 0;
};

struct QuarantineCount {
  std::string source;
  std::string reason;
  int64_t count = 0;
};

struct HourCount {
  int64_t hour_start_unix_ms = 0;
  int64_t count = 0;
  bool operator==(const HourCount&) const = default;
};

// A staff member as a source's staff list gave them (a source's list_staff), kept so that every
// command, not only the hub that synced the list, scores with the same staff directory.
struct SyncedStaff {
  std::string source;  // the source instance whose list named them
  std::string staff_code;
  std::string full_name;
  std::string agency_code;
  bool leader = false;
  bool active = true;
  int64_t synced_at_unix_ms = 0;  // when that source last listed them
  bool operator==(const SyncedStaff&) const = default;
};

struct StoreCounts {
  int64_t records = 0;
  int64_t revisions = 0;
  int64_t quarantined = 0;
  int64_t outbox_pending = 0;  // outbox items not yet in a delivered batch of every sink
  int64_t dead_letters = 0;
  // What waits for the scorer: revisions stored that it has not read from the change log yet,
  // and staff months it marked dirty and has not rescored yet. Both 0: everything is scored.
  int64_t revisions_to_read = 0;
  int64_t staff_months_to_score = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // --- ingest ---------------------------------------------------------------
  // One transaction: records (a revision not above the stored one is ignored;
  // each stored revision also goes to the revision history; a bare withdrawal
  // withdraws the stored record, keeping its content), quarantine entries and
  // the new cursor; a stored revision resolves (removes) the quarantine entries
  // it supersedes (PageCommitResult::quarantine_resolved), and an entry of a
  // revision not above the stored one is not kept (quarantine_not_kept). The revision history
  // is the scorer's change log (dirty_staff_days); the page marks dirty only the
  // staff days a revised record leaves, which the history does not name.
  virtual PageCommitResult commit_page(const PageCommit& page) = 0;
  virtual std::optional<std::string> cursor(const std::string& source) = 0;
  virtual std::vector<SourceState> sources() = 0;

  // --- scoring --------------------------------------------------------------
  virtual std::vector<StaffMonthKey> dirty_staff_months(std::size_t limit) = 0;
  // The same, with the days of each that changed (the days records had and have;
  // mark_month_dirty marks kWholeMonth). Both first mark what every revision stored since the
  // last call changed, so a page committed before the call is always listed.
  virtual std::vector<DirtyStaffMonth> dirty_staff_days(std::size_t limit) = 0;
  // Marks every staff-month of `month` dirty (rescore after a rules change).
  virtual std::size_t mark_month_dirty(const std::string& month) = 0;
  // Current revision of every record of the staff member in the month,
  // retracted ones included.
  virtual std::vector<WorkRecord> records_of_staff_month(const StaffMonthKey& key) = 0;
  // The same for the work dates of `days` only, in record_id order: a large staff month is read
  // a few days at a time (issue 18: one lab clinician's month held 290,000 records). The default
  // filters records_of_staff_month.
  virtual std::vector<WorkRecord> records_of_staff_days(const StaffMonthKey& key, DayMask days);
  // How many records (current revisions, retracted ones included) the staff month has on each
  // work date that has any, in date order: what the scorer plans its reads of a staff month
  // with. The default counts records_of_staff_month.
  struct DayCount {
    Date date;
    std::size_t records = 0;
    bool operator==(const DayCount&) const = default;
  };
  virtual std::vector<DayCount> records_per_day(const StaffMonthKey& key);
  // Everything rescoring one staff-month reads, in two range reads: its records
  // in record_id order with the fields scoring reads (Store::ScanBatch's; the
  // others are left empty: record() has them all), and for each (same index)
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
  // When the hub first stored the current revision of each record (unix ms),
  // parallel to `record_ids`; 0 for unknown ids.
  virtual std::vector<int64_t> received_at(const std::vector<std::string>& record_ids) = 0;
  // Staff codes with at least one record in the month.
  virtual std::vector<std::string> staff_of_month(const std::string& month) = 0;
  // Records of a whole month, for recompute from scratch and reports.
  virtual std::vector<WorkRecord> records_of_month(const std::string& month) = 0;
  virtual std::optional<WorkRecord> record(const std::string& record_id) = 0;
  virtual std::vector<RecordScoreRow> record_scores(const std::vector<std::string>& record_ids) = 0;
  virtual std::optional<ScoringCommit::MonthRow> month_row(OutboxKind kind,
                                                           const std::string& month,
                                                           const std::string& code) = 0;
  virtual std::vector<ScoringCommit::MonthRow> month_rows(OutboxKind kind,
                                                          const std::string& month) = 0;
  // One transaction: record scores, month rows, day totals, outbox items, dirty keys cleared.
  virtual void commit_scoring(const ScoringCommit& commit) = 0;

  // --- outbox and delivery --------------------------------------------------
  // The oldest batch of `sink` not yet delivered, if any; otherwise, a new
  // batch of up to `max_items` items and `max_bytes` payload bytes taken in
  // order after the sink's last batch, fixed and stored before it is
  // returned. nullopt when nothing is waiting.
  virtual std::optional<Batch> next_batch(const std::string& sink, std::size_t max_items,
                                          std::size_t max_bytes) = 0;
  // One transaction: the batch is delivered; `dead` items go to dead letters.
  virtual void complete_batch(const std::string& batch_id, const std::vector<DeadLetter>& dead) = 0;
  // The batch stays pending; it is retried (same id, same items) not before the time given.
  virtual void defer_batch(const std::string& batch_id, int64_t not_before_unix_ms,
                           const std::string& last_error) = 0;
  virtual int64_t outbox_depth(const std::string& sink) = 0;
  // Deletes, oldest first, up to `max_items` outbox items delivered, each in a batch
  // completed before `delivered_before_unix_ms`, to every sink in `sinks` and to every sink that
  // ever took a batch (a sink dropped from the configuration still holds its items, until
  // forget_sink); returns how many (0: nothing left to delete). No item of a pending batch goes,
  // whichever sink it is for. Batches and dead letters stay (a dead letter has its own copy of
  // the payload).
  virtual std::size_t compact_outbox(const std::vector<std::string>& sinks,
                                     int64_t delivered_before_unix_ms, std::size_t max_items) = 0;
  // Drops a sink's place in the outbox and its pending batch: it no longer holds items back,
  // and if it is configured again it starts from the oldest item left. False if it never took
  // a batch.
  virtual bool forget_sink(const std::string& sink) = 0;
  // Every sink that took a batch and was not forgotten, by name: what holds outbox items back
  // besides the configured sinks.
  virtual std::vector<std::string> sinks_with_batches() = 0;

  // --- operator views -------------------------------------------------------
  virtual std::vector<QuarantineRow> quarantine(const std::string& source,
                                                const std::string& reason, std::size_t limit,
                                                int64_t after_id) = 0;
  virtual std::vector<DeadLetter> dead_letters(const std::string& sink, std::size_t limit,
                                               int64_t after_id) = 0;
  // Re-queues the dead letter's payload in the outbox; returns false if unknown.
  virtual bool replay_dead_letter(int64_t id) = 0;
  virtual void audit(const std::string& actor, const std::string& action,
                     const std::string& detail) = 0;
  virtual StoreCounts counts() = 0;
  // Quarantine entries by source and reason (the dashboard's breakdown).
  virtual std::vector<QuarantineCount> quarantine_counts() = 0;
  // Record revisions stored per hour since `since_unix_ms`, oldest hour first; hours with none
  // are left out. Reads from the newest revision back, so its cost is that of the window.
  virtual std::vector<HourCount> stored_per_hour(int64_t since_unix_ms) = 0;

  // --- staff lists the sources synced ----------------------------------------
  // One transaction: `entries` are the whole staff list `source` gave (each entry's source is
  // `source`); each replaces the one the source gave before for the same staff code. Staff the
  // list no longer names have left: their entry stays, with what the source said last and when
  // it last listed them, but inactive, as if the source had listed them inactive.
  virtual void save_synced_staff(const std::string& source,
                                 const std::vector<SyncedStaff>& entries) = 0;
  // Every entry, the oldest sync first (then by source and staff code): merged into the
  // directory in this order, the latest list to name a staff member has the last word.
  virtual std::vector<SyncedStaff> synced_staff() = 0;

  // --- added for month recompute (append-only: existing methods above stay) --
  // Called once per staff member with records in the month, in staff code
  // order, with the current revision of each record (retracted ones included;
  // in no particular order) and, parallel to it, when the hub stored that revision (unix ms).
  // Only the fields scoring reads are filled: record_id, source_system,
  // revision, retracted, staff_code, agency_code, task_code, work_date,
  // declared_minutes, quantity, evidence_ref, deadline, completed_at and
  // approval status and rating (not approval.by/at); the other fields are
  // empty. The visitor must not start another month scan (the SQLite store
  // runs one at a time: it would wait for itself); other calls are allowed
  // but wait for the store's mutex. An exception it throws ends the scan and
  // is rethrown.
  //
  // The first `count` entries of `records` and `received_at` are the staff
  // member's. The visitor may take both vectors (swap them with vectors of its
  // own, of any size: the scan reuses whatever it is left, strings' capacity
  // included), e.g. to score them on another thread without a copy.
  //
  // A staff member with many records in the month comes in several batches of whole work dates
  // (no date is cut in two), in date order, each but the last with `more` set: the SQLite store
  // holds about kScanBatchRecords records per part at a time, whatever a staff month holds
  // (issue 18). The default reads a staff month in one batch.
  struct ScanBatch {
    std::vector<WorkRecord> records;
    std::vector<int64_t> received_at;
    std::size_t count = 0;
    bool more = false;  // the staff member's next work dates come in the next call
  };
  static constexpr std::size_t kScanBatchRecords = 4096;
  using ScoringVisitor = std::function<void(const std::string& staff_code, ScanBatch& batch)>;
  // The default reads staff by staff through the methods above; the SQLite
  // store reads the whole month in one query.
  virtual void scan_month_for_scoring(const std::string& month, const ScoringVisitor& visit);

  // The same scan cut into parts by staff code, read at once: part i holds the codes from
  // split_before[i - 1] (inclusive) up to split_before[i] (exclusive); part 0 starts at the
  // first code and the last part (split_before.size()) ends at the last. split_before must be
  // sorted, without repeats. Each part is visited in staff code order, but `visit` may be called
  // from several threads at once (never twice at once for one part), with the part's number and
  // that part's batch. An exception the visitor throws stops every part (each calls the
  // visitor no more) and is rethrown. The visitor must not start another month scan.
  //
  // The SQLite store reads each part on a thread and read connection of its own, every part in
  // the snapshot of one commit of this store (a writer in another process can commit between the
  // parts' first reads); one such scan runs at a time. The default reads the parts one after the
  // other through the scan above.
  using PartVisitor =
      std::function<void(std::size_t part, const std::string& staff_code, ScanBatch& batch)>;
  virtual void scan_month_for_scoring(const std::string& month,
                                      const std::vector<std::string>& split_before,
                                      const PartVisitor& visit);
};

// Opens (creating if needed) the SQLite store at `path` in WAL mode with full
// sync on commit, running schema migrations. Throws StoreError naming the
// file when it cannot be opened, is locked, or is not a kpihub database.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

struct SqliteStoreOptions {
  // How long an operation waits for another connection's write lock before
  // failing with "database is locked".
  int busy_timeout_ms = 5000;
  // Page cache per connection. SQLite's default (2 MB) is smaller than the
  // records' indexes of one province-month, so commits and the scorer's reads
  // went to the kernel for pages they had just used (bench/run, 2026-11-23:
  // 8 MB with the checkpoint below took a third off the hub's CPU).
  int cache_kib = 8192;
  // WAL pages before SQLite copies the WAL back into the database. The
  // default (1,000 pages, 4 MB) checkpoints every few pages of records, and
  // each checkpoint rewrites the same index pages again.
  int wal_autocheckpoint_pages = 10000;
  // Told, while the store opens, of each schema upgrade it applies, before and after (what it
  // does, how long it took): one can take minutes on a large store, and the hub reads nothing
  // meanwhile. Not kept after open.
  std::function<void(const std::string&)> on_migration;
  // Tests only: called with each part's number before a month scan's part takes its first
  // read, under the store's mutex (so a test can try to commit a page just then).
  std::function<void(std::size_t part)> before_scan_part;
};
std::unique_ptr<Store> open_sqlite_store(const std::string& path,
                                         const SqliteStoreOptions& options);

}  // namespace kpihub
