// The RocksDB database every seam of the engine shares: its column families, the table
// prefixes of the default family, the counters that number what is appended, and the one write
// path (a WriteBatch, synced) that keeps each seam's commit one atomic write.
//
// Column families (docs/architecture.md, "The RocksDB store"):
//   records     record_id                                   -> RecordLocator (current revision)
//   staff_days  month NUL staff NUL date(4) record_id       -> encode_record (current revision)
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

  // Every write of the engine is one batch written here, synced to disk before it returns; the
  // caller holds write_mutex(). Throws StoreError "store PATH: <status> while <what>".
  void write(rocksdb::WriteBatch& batch, const std::string& what);
  // Throws StoreError naming the store and `what` unless `s` is ok.
  void check(const rocksdb::Status& s, const std::string& what) const;
  // nullopt when `key` is not there.
  std::optional<std::string> get(rocksdb::ColumnFamilyHandle* family, const rocksdb::Slice& key,
                                 const std::string& what,
                                 const rocksdb::Snapshot* snapshot = nullptr);
  // Throws StoreError "store PATH is open read-only ... while <what>" in a read-only store.
  void require_writable(const std::string& what) const;

  // Held by every seam while it reads what it then writes (a page's known revisions, a sink's
  // next batch): one writer at a time in this process; RocksDB's LOCK keeps other processes out.
  std::mutex& write_mutex() { return write_mutex_; }

  // Numbers handed out in order, each above every one stored (read at open from the last key
  // of its log). Take them under write_mutex(); a number taken by a batch that then fails is
  // skipped, never reused in a way that matters (keys stay increasing).
  int64_t next_revision_seq() { return ++last_revision_seq_; }
  int64_t next_outbox_seq() { return ++last_outbox_seq_; }
  int64_t next_quarantine_id() { return ++last_quarantine_id_; }
  int64_t next_dead_letter_id() { return ++last_dead_letter_id_; }
  int64_t next_audit_id() { return ++last_audit_id_; }
  int64_t last_revision_seq() const { return last_revision_seq_; }
  int64_t last_outbox_seq() const { return last_outbox_seq_; }
  int64_t last_quarantine_id() const { return last_quarantine_id_; }

 private:
  // The last key of `family` under `prefix` as a number (0: none), looked for from `at_least`.
  int64_t last_key_u64(rocksdb::ColumnFamilyHandle* family, std::string_view prefix,
                       uint64_t at_least = 0);

  std::string path_;
  SystemClock system_clock_;
  const Clock& clock_;
  bool read_only_ = false;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::vector<rocksdb::ColumnFamilyHandle*> families_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_options_;
  std::mutex write_mutex_;
  int64_t last_revision_seq_ = 0;
  int64_t last_outbox_seq_ = 0;
  int64_t last_quarantine_id_ = 0;
  int64_t last_dead_letter_id_ = 0;
  int64_t last_audit_id_ = 0;
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
// 0 when the counter was never written.
int64_t read_meta_counter(Database& db, std::string_view name,
                          const rocksdb::Snapshot* snapshot = nullptr);
// Puts the counter's stored value plus `delta` in `batch`. Reads the stored value, not what
// `batch` holds: add to a counter once per batch (sum the deltas first). Under write_mutex().
void add_to_meta_counter(Database& db, rocksdb::WriteBatch& batch, std::string_view name,
                         int64_t delta);

// ------------------------------------------------- between the seams ----
// What one seam writes for another in the same batch (implemented by the seam that reads it).

// scoring_state.cpp: marks the days of each staff month dirty in `batch` (added to the mark
// there is, with a new mark number so a scorer keeps a mark it is working on); staff months
// without a staff code are left out. Reads the marks stored, not `batch`: call it once per
// batch, with every staff month the batch changes. Under write_mutex().
void add_dirty_marks(Database& db, rocksdb::WriteBatch& batch,
                     const std::map<StaffMonthKey, DayMask>& days_of);
// scoring_state.cpp: the last sent score of `record_id` moves from one staff month to another
// (a revision moved the record), so its next score carries on its sequence; nothing when it has
// none. Reads the score stored, not `batch`: call it once per record and batch, from the staff
// month stored to the one the batch leaves it in. Under write_mutex().
void move_score(Database& db, rocksdb::WriteBatch& batch, const std::string& record_id,
                const StaffMonthKey& from, const StaffMonthKey& to);

// outbox.cpp: appends `items` to the outbox in `batch`, each with the next outbox sequence
// number (what ScoringState::commit_scoring and a replayed dead letter add). Under
// write_mutex().
void append_outbox_items(Database& db, rocksdb::WriteBatch& batch,
                         const std::vector<OutboxItem>& items);

// What StoreCounts needs of each seam, read in `snapshot` (OperatorViews::counts is one
// consistent snapshot):
// scoring_state.cpp: staff months marked dirty and not yet rescored.
int64_t staff_months_to_score(Database& db, const rocksdb::Snapshot* snapshot);
// outbox.cpp: outbox items not yet in a delivered batch of every sink, and dead letters.
int64_t outbox_pending(Database& db, const rocksdb::Snapshot* snapshot);
int64_t dead_letter_count(Database& db, const rocksdb::Snapshot* snapshot);

}  // namespace kpihub::rocks
