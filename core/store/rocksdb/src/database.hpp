// The RocksDB database every seam of the engine shares: its column families, the table
// prefixes of the default family, the counters that number what is appended, and the one write
// path (a WriteBatch, synced) that keeps each seam's commit one atomic write.
//
// Column families (docs/architecture.md, "The RocksDB store"):
//   records     record_id                                   -> RecordLocator (current revision)
//               (revision, staff, date, received at, its key in revisions)
//   staff_days  month NUL staff NUL date(4) record_id       -> encode_scoring_inputs (current)
//   revisions   seq(8)                                      -> encode_record (every revision)
//   scores      month NUL staff NUL record_id               -> last sent score of the record
//   outbox      seq(8)                                      -> outbox item
//   default     one byte naming the table (Table), then its key: the small tables.
#pragma once

#include "codec.hpp"

#include <kpihub/host_services.hpp>
#include <kpihub/store/rocksdb.hpp>
#include <kpihub/store/types.hpp>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kpihub::rocks {

// The tables of the default family, by their key's first byte.
enum class Table : char {
  meta = 'M',                  // name -> value (layout version, counts, the mark counter)
  cursors = 'C',               // source -> cursor state
  quarantine = 'Q',            // id(8) -> quarantine entry
  quarantine_by_record = 'q',  // record_id NUL id(8) -> ""
  dirty = 'D',                 // month NUL staff NUL -> day mask(4) mark(8) first mark(8)
  dirty_order = 'd',           // first mark(8) month NUL staff NUL -> "": dirty keys, oldest first
  months = 'm',                // kind(1) month NUL code -> month row
  day_totals = 'T',            // month NUL staff NUL -> totals
  sinks = 'S',                 // sink -> the sink's place in the outbox
  batches = 'B',               // batch_id -> batch
  batches_by_sink = 'b',       // sink NUL last_seq(8) -> batch_id (the sink's batches in order)
  dead_letters = 'L',          // id(8) -> dead letter
  audit = 'A',                 // id(8) -> audit line
  staff_lists = 'P',           // source NUL staff_code -> synced staff entry
};
// The key of `rest` in `table` of the default family.
std::string table_key(Table table, std::string_view rest = {});

class Database {
  // The last number handed out of each sequence.
  struct Numbers {
    int64_t revision_seq = 0;
    int64_t outbox_seq = 0;
    int64_t quarantine_id = 0;
    int64_t dead_letter_id = 0;
    int64_t audit_id = 0;
  };

 public:
  Database(std::string path, const RocksdbStorageOptions& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }
  rocksdb::DB& db() { return *db_; }
  const Clock& clock() const { return clock_; }
  bool read_only() const { return read_only_; }

  rocksdb::ColumnFamilyHandle* meta() const { return families_[0]; }  // the default family
  rocksdb::ColumnFamilyHandle* records() const { return families_[1]; }
  rocksdb::ColumnFamilyHandle* staff_days() const { return families_[2]; }
  rocksdb::ColumnFamilyHandle* revisions() const { return families_[3]; }
  rocksdb::ColumnFamilyHandle* scores() const { return families_[4]; }
  rocksdb::ColumnFamilyHandle* outbox() const { return families_[5]; }

  // One writer's turn: holds the write mutex (one writer at a time in this process; RocksDB's
  // LOCK keeps other processes out) while a seam reads what it then writes (a page's known
  // revisions, a sink's next batch), and writes its one batch, synced to disk before write()
  // returns. The numbers taken during the turn (next_revision_seq() ...) are given back unless
  // its write succeeds, so a failed page leaves no gap (counts are read from the numbers).
  class WriteScope {
   public:
    explicit WriteScope(Database& db) : db_(db), lock_(db.write_mutex_), saved_(db.numbers_) {}
    ~WriteScope() {
      if (!written_) db_.numbers_ = saved_;
    }
    WriteScope(const WriteScope&) = delete;
    WriteScope& operator=(const WriteScope&) = delete;
    // Throws StoreError "store PATH: <status> while <what>".
    void write(rocksdb::WriteBatch& batch, const std::string& what);

   private:
    Database& db_;
    std::lock_guard<std::mutex> lock_;
    Numbers saved_;
    bool written_ = false;
  };
  // One consistent view for a read of several keys: a snapshot of the store, or, in a reader
  // (a secondary instance, which does not support snapshots), none: a reader does not move
  // after it opened, so every read sees one state.
  class ReadView {
   public:
    explicit ReadView(Database& db)
        : db_(db), snapshot_(db.read_only() ? nullptr : db.db().GetSnapshot()) {}
    ~ReadView() {
      if (snapshot_ != nullptr) db_.db().ReleaseSnapshot(snapshot_);
    }
    ReadView(const ReadView&) = delete;
    ReadView& operator=(const ReadView&) = delete;
    const rocksdb::Snapshot* snapshot() const { return snapshot_; }

   private:
    Database& db_;
    const rocksdb::Snapshot* snapshot_;
  };

  // Throws StoreError naming the store and `what` unless `s` is ok.
  void check(const rocksdb::Status& s, const std::string& what) const;
  // nullopt when `key` is not there.
  std::optional<std::string> get(rocksdb::ColumnFamilyHandle* family, const rocksdb::Slice& key,
                                 const std::string& what,
                                 const rocksdb::Snapshot* snapshot = nullptr);
  // Throws StoreError "store PATH is open read-only ... while <what>" in a read-only store.
  void require_writable(const std::string& what) const;

  // Numbers handed out in order, each above every one stored (read at open from the last key
  // of its log). Take them in a WriteScope: the numbers a scope took are given back when its
  // write fails or never happens, so what is stored has no gaps.
  int64_t next_revision_seq() { return ++numbers_.revision_seq; }
  int64_t next_outbox_seq() { return ++numbers_.outbox_seq; }
  int64_t next_quarantine_id() { return ++numbers_.quarantine_id; }
  int64_t next_dead_letter_id() { return ++numbers_.dead_letter_id; }
  int64_t next_audit_id() { return ++numbers_.audit_id; }
  int64_t last_revision_seq() const { return numbers_.revision_seq; }
  int64_t last_outbox_seq() const { return numbers_.outbox_seq; }
  int64_t last_quarantine_id() const { return numbers_.quarantine_id; }

 private:
  // The last key of `family` under `prefix` as a number (0: none), looked for from `at_least`.
  int64_t last_key_u64(rocksdb::ColumnFamilyHandle* family, std::string_view prefix,
                       uint64_t at_least = 0);

  std::string path_;
  std::string secondary_folder_;  // a reader's own folder (secondary instance), removed at close
  bool resume_before_writing_ = false;  // the last write failed: RocksDB must resume first
  SystemClock system_clock_;
  const Clock& clock_;
  bool read_only_ = false;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::vector<rocksdb::ColumnFamilyHandle*> families_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_options_;
  void read_what_is_stored();
  // Destroys the column family handles, then closes the database (what the destructor does,
  // and a constructor that fails after opening).
  void close();
  // Writes `batch` (WriteScope::write, and the layout version at open).
  void write(rocksdb::WriteBatch& batch, const std::string& what);

  std::mutex write_mutex_;
  Numbers numbers_;
};

// Counters of Table::meta (an int64 under the name): kept by the seam that writes what they
// count, in the same batch, so counts() reads a number instead of counting rows.
//   "records"      records stored (record ids), kept by RecordLog::commit_page
//   "quarantined"  quarantine entries stored, kept by RecordLog::commit_page
//   "outbox_compacted"  the last outbox seq Outbox::compact deleted (every item up to it is gone)
//   "dead_letters"      dead letters not replayed, kept by the Outbox
inline constexpr std::string_view kRecordsCounter = "records";
inline constexpr std::string_view kQuarantinedCounter = "quarantined";
inline constexpr std::string_view kOutboxCompactedCounter = "outbox_compacted";
inline constexpr std::string_view kDeadLettersCounter = "dead_letters";
// The highest quarantine id handed out: entries are deleted when resolved, and an id must not
// be handed out again after a reopen (pages compare ids with the ones before them, operators
// page through the quarantine by id).
inline constexpr std::string_view kQuarantineLastIdCounter = "quarantine_last_id";
// 0 when the counter was never written.
int64_t read_meta_counter(Database& db, std::string_view name,
                          const rocksdb::Snapshot* snapshot = nullptr);
// Calls `visit(entry)` for each quarantine entry after `after_id` (Table::quarantine), in id
// order, until it returns false.
void scan_quarantine(Database& db, int64_t after_id,
                     const std::function<bool(StoredQuarantine)>& visit);
// Puts the counter's stored value plus `delta` in `batch`. Reads the stored value, not what
// `batch` holds: add to a counter once per batch (sum the deltas first). In a WriteScope.
void add_to_meta_counter(Database& db, rocksdb::WriteBatch& batch, std::string_view name,
                         int64_t delta);

// ------------------------------------------------- between the seams ----
// What one seam writes for another in the same batch (implemented by the seam that reads it).

// scoring_state.cpp: marks the days of each staff month dirty in `batch` (added to the mark
// there is, with a new mark number so a scorer keeps a mark it is working on); staff months
// without a staff code are left out. Reads the marks stored, not `batch`: call it once per
// batch, with every staff month the batch changes. In a WriteScope.
void add_dirty_marks(Database& db, rocksdb::WriteBatch& batch,
                     const std::map<StaffMonthKey, DayMask>& days_of);
// scoring_state.cpp: the last sent score of `record_id` moves from one staff month to another
// (a revision moved the record), so its next score carries on its sequence; nothing when it has
// none. Reads the score stored, not `batch`: call it once per record and batch, from the staff
// month stored to the one the batch leaves it in. In a WriteScope.
void move_score(Database& db, rocksdb::WriteBatch& batch, const std::string& record_id,
                const StaffMonthKey& from, const StaffMonthKey& to);

// outbox.cpp: appends `items` to the outbox in `batch`, each with the next outbox sequence
// number (what ScoringState::commit_scoring and a replayed dead letter add). Under
// write_mutex().
void append_outbox_items(Database& db, rocksdb::WriteBatch& batch,
                         const std::vector<OutboxItem>& items);

// record_log.cpp: the revisions stored under `log_seqs` (the revisions family), every field, in
// that order: what a read of whole records takes after finding them in the staff_days family.
std::vector<WorkRecord> read_logged_revisions(Database& db, const std::vector<int64_t>& log_seqs,
                                              const rocksdb::Snapshot* snapshot = nullptr);

// What StoreCounts needs of each seam, read in `snapshot` (OperatorViews::counts is one
// consistent snapshot):
// scoring_state.cpp: staff months marked dirty and not yet rescored.
int64_t staff_months_to_score(Database& db, const rocksdb::Snapshot* snapshot);
// outbox.cpp: outbox items not yet in a delivered batch of every sink, and dead letters.
int64_t outbox_pending(Database& db, const rocksdb::Snapshot* snapshot);
int64_t dead_letter_count(Database& db, const rocksdb::Snapshot* snapshot);

}  // namespace kpihub::rocks
