#include "sqlite_schema.hpp"

#include "record_columns.hpp"

#include <kpihub/store/types.hpp>

#include <Poco/Data/Binding.h>
#include <Poco/Data/Extraction.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace kpihub::store_detail {

namespace {

using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;

// Columns of a stored record; records holds the current revision, record_revisions every
// revision ever accepted (filled by triggers, so a page write is one statement per table).
const char* const kRecordColumnsDdl = R"(
  source_system TEXT NOT NULL,
  source_id TEXT NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 0),
  retracted INTEGER NOT NULL CHECK (retracted IN (0, 1)),
  staff_code TEXT NOT NULL,
  source_staff_id TEXT NOT NULL,
  agency_code TEXT NOT NULL,
  task_code TEXT NOT NULL,
  work_date INTEGER NOT NULL,
  month TEXT NOT NULL,
  declared_minutes INTEGER NOT NULL,
  quantity REAL NOT NULL,
  product_unit TEXT NOT NULL,
  title TEXT NOT NULL,
  evidence_ref TEXT NOT NULL,
  deadline TEXT,
  completed_at TEXT,
  approval_status TEXT,
  approval_rating TEXT,
  approval_by TEXT NOT NULL,
  approval_at TEXT,
  changed_at TEXT,
  attributes TEXT,
  received_at INTEGER NOT NULL)";

std::string history_trigger(const std::string& event) {
  std::string values;
  std::string columns = record_column_list();
  std::size_t start = 0;
  while (start < columns.size()) {
    std::size_t end = columns.find(", ", start);
    if (end == std::string::npos) end = columns.size();
    if (!values.empty()) values += ", ";
    values += "NEW." + columns.substr(start, end - start);
    start = end + 2;
  }
  std::string lower = event == "INSERT" ? "insert" : "update";
  return "CREATE TRIGGER records_history_on_" + lower + " AFTER " + event +
         " ON records BEGIN INSERT INTO record_revisions (" + columns + ") VALUES (" + values +
         "); END";
}

void migration_1(Poco::Data::Session& s) {
  s << std::string(
           "CREATE TABLE records (record_id TEXT PRIMARY KEY CHECK (length(record_id) > 0),") +
           kRecordColumnsDdl + ")",
      now;
  s << "CREATE INDEX records_by_month_staff ON records (month, staff_code)", now;
  s << std::string("CREATE TABLE record_revisions (record_id TEXT NOT NULL,") + kRecordColumnsDdl +
           ", PRIMARY KEY (record_id, revision))",
      now;
  s << history_trigger("INSERT"), now;
  s << history_trigger("UPDATE"), now;

  s << R"(CREATE TABLE quarantine (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      source TEXT NOT NULL,
      source_system TEXT NOT NULL,
      source_id TEXT NOT NULL,
      record_id TEXT NOT NULL,
      reason TEXT NOT NULL,
      field TEXT NOT NULL,
      message TEXT NOT NULL,
      payload TEXT NOT NULL,
      location TEXT NOT NULL,
      created_at INTEGER NOT NULL))",
      now;
  s << "CREATE INDEX quarantine_by_source_reason ON quarantine (source, reason, id)", now;

  s << R"(CREATE TABLE cursors (
      source TEXT PRIMARY KEY,
      cursor TEXT,
      updated_at INTEGER NOT NULL,
      records INTEGER NOT NULL DEFAULT 0,
      quarantined INTEGER NOT NULL DEFAULT 0,
      pages INTEGER NOT NULL DEFAULT 0))",
      now;

  // generation grows on every re-mark, so clearing a key the scorer read earlier does not
  // lose a mark made while it was scoring.
  s << R"(CREATE TABLE dirty_staff_months (
      staff_code TEXT NOT NULL,
      month TEXT NOT NULL,
      generation INTEGER NOT NULL DEFAULT 1,
      marked_at INTEGER NOT NULL,
      UNIQUE (staff_code, month)))",
      now;

  s << R"(CREATE TABLE record_scores (
      record_id TEXT PRIMARY KEY,
      revision INTEGER NOT NULL,
      sequence INTEGER NOT NULL,
      scoring_json TEXT NOT NULL))",
      now;
  for (const char* table : {"staff_months", "agency_months"}) {
    s << std::string("CREATE TABLE ") + table + R"( (
        month TEXT NOT NULL,
        code TEXT NOT NULL,
        agency_code TEXT NOT NULL,
        revision INTEGER NOT NULL,
        json TEXT NOT NULL,
        PRIMARY KEY (month, code)))",
        now;
  }

  s << R"(CREATE TABLE outbox (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      kind INTEGER NOT NULL CHECK (kind IN (0, 1, 2)),
      key TEXT NOT NULL,
      payload TEXT NOT NULL,
      created_at INTEGER NOT NULL))",
      now;
  s << R"(CREATE TABLE sink_progress (
      sink TEXT PRIMARY KEY,
      last_batched_seq INTEGER NOT NULL))",
      now;
  s << R"(CREATE TABLE batches (
      batch_id TEXT PRIMARY KEY,
      sink TEXT NOT NULL,
      first_seq INTEGER NOT NULL,
      last_seq INTEGER NOT NULL,
      item_count INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
      attempts INTEGER NOT NULL DEFAULT 0,
      not_before INTEGER NOT NULL DEFAULT 0,
      last_error TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL,
      delivered_at INTEGER))",
      now;
  s << "CREATE INDEX batches_by_sink_state ON batches (sink, state, first_seq)", now;
  s << R"(CREATE TABLE dead_letters (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      sink TEXT NOT NULL,
      batch_id TEXT NOT NULL,
      key TEXT NOT NULL,
      code TEXT NOT NULL,
      message TEXT NOT NULL,
      payload TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      replayed INTEGER NOT NULL DEFAULT 0,
      replayed_at INTEGER))",
      now;
  s << "CREATE INDEX dead_letters_by_sink ON dead_letters (sink, id)", now;
  s << R"(CREATE TABLE audit_log (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      at INTEGER NOT NULL,
      actor TEXT NOT NULL,
      action TEXT NOT NULL,
      detail TEXT NOT NULL))",
      now;
}

// Quarantine keeps the record's text fields, so it can be replayed after a fix.
void migration_2(Poco::Data::Session& s) {
  s << "ALTER TABLE quarantine ADD COLUMN fields TEXT NOT NULL DEFAULT ''", now;
}

// record_revisions loses its (record_id, revision) primary key: nothing looks a revision
// up by key (the current one is in records, which the upsert checks), and at province size
// that random-key index cost a page write per record on every commit (issue 7). The table is
// now append-only, in the order revisions were accepted; the upsert still writes a revision
// only when it is higher than the stored one, so (record_id, revision) stays unique.
void migration_3(Poco::Data::Session& s) {
  s << "DROP TRIGGER records_history_on_insert", now;
  s << "DROP TRIGGER records_history_on_update", now;
  s << "ALTER TABLE record_revisions RENAME TO record_revisions_v2", now;
  s << std::string("CREATE TABLE record_revisions (record_id TEXT NOT NULL,") + kRecordColumnsDdl +
           ")",
      now;
  const std::string columns = record_column_list();
  s << "INSERT INTO record_revisions (" + columns + ") SELECT " + columns +
           " FROM record_revisions_v2 ORDER BY received_at, rowid",
      now;
  s << "DROP TABLE record_revisions_v2", now;
  s << history_trigger("INSERT"), now;
  s << history_trigger("UPDATE"), now;
}

// The (month, staff_code) index becomes a covering one: it holds every column scoring reads
// (store_detail::month_scan_sql), so a month recompute reads the index in order instead of a
// table page per record: a store the hub fills from a feed has each staff member's records
// scattered over the whole table (1.5 M records: 8.3 s -> 1.4 s, docs/performance.md).
// Inserts still write one page of this index per record, as they did the old one.
void migration_4(Poco::Data::Session& s) {
  s << "CREATE INDEX records_for_scoring ON records (month, staff_code, record_id, "
       "source_system, revision, retracted, agency_code, task_code, work_date, declared_minutes, "
       "quantity, evidence_ref, deadline, completed_at, approval_status, approval_rating, "
       "received_at)",
      now;
  s << "DROP INDEX records_by_month_staff", now;
}

// record_scores is keyed by (month, staff_code, record_id), clustered (WITHOUT ROWID), so
// rescoring one staff month reads its last scores as one range instead of a key lookup (and
// a table page) per record: ~660 random page reads per staff month, most of the incremental
// scoring cost (issue 8, docs/performance.md). A score row always sits under its record's
// current staff month: commit_page moves it with the record, commit_scoring writes it where
// the record is at commit time.
void migration_5(Poco::Data::Session& s) {
  s << R"(CREATE TABLE record_scores_v5 (
      month TEXT NOT NULL,
      staff_code TEXT NOT NULL,
      record_id TEXT NOT NULL,
      revision INTEGER NOT NULL,
      sequence INTEGER NOT NULL,
      scoring_json TEXT NOT NULL,
      PRIMARY KEY (month, staff_code, record_id)) WITHOUT ROWID)",
      now;
  // A score whose record is gone (none should be: records are never deleted) is kept, under
  // no staff month, rather than dropped without a word.
  s << "INSERT INTO record_scores_v5 (month, staff_code, record_id, revision, sequence, "
       "scoring_json) SELECT IFNULL(r.month, ''), IFNULL(r.staff_code, ''), s.record_id, "
       "s.revision, s.sequence, s.scoring_json FROM record_scores s "
       "LEFT JOIN records r ON r.record_id = s.record_id "
       "ORDER BY 1, 2, 3",  // in key order: appends, not a random page write per row
      now;
  s << "DROP TABLE record_scores", now;
  s << "ALTER TABLE record_scores_v5 RENAME TO record_scores", now;
}

// Rescoring a changed record reads its staff-day, not its staff month (issue 8, part 3):
// - dirty marks carry the days that changed (bit d-1 for day d; -1, every bit, rescores the
//   whole staff month: every mark made before this schema);
// - the covering scoring index is keyed by work date after staff, so a day is one short range
//   (a whole staff month is still one range; the month scan is unchanged);
// - staff_month_days keeps each staff month's day totals (scoring's encode_day_totals), which
//   the scorer folds with the days it rescored. A staff month without a row is rescored whole.
void migration_6(Poco::Data::Session& s) {
  s << "ALTER TABLE dirty_staff_months ADD COLUMN days INTEGER NOT NULL DEFAULT -1", now;
  s << "DROP INDEX records_for_scoring", now;
  s << "CREATE INDEX records_for_scoring ON records (month, staff_code, work_date, record_id, "
       "source_system, revision, retracted, agency_code, task_code, declared_minutes, quantity, "
       "evidence_ref, deadline, completed_at, approval_status, approval_rating, received_at)",
      now;
  s << R"(CREATE TABLE staff_month_days (
      month TEXT NOT NULL,
      staff_code TEXT NOT NULL,
      totals BLOB NOT NULL,
      PRIMARY KEY (month, staff_code)))",
      now;
}

// The page commit no longer marks the staff months its records touch (issue 8: under 1 us per
// record on the ingest path). record_revisions, which the commit writes anyway, is the change
// log: its rowid grows with every accepted revision and no row is ever deleted. The scorer
// turns the revisions after scoring_position into dirty marks, in one transaction with the
// new position, before it lists the marks. Every revision already in the log was marked by
// the page that wrote it, so an upgraded store starts after the last one. (VACUUM, which may
// renumber the rowids of such a table, has no gap to close in it: the order and numbers stay.)
// marks_written numbers the transactions that write dirty marks: a mark's generation is the
// number of the last one that wrote it, so it never repeats, even for a key cleared and marked
// again (the old `generation + 1` restarted at 1 then, and a second scorer on the same file
// holding generation 1 from before could clear the new mark).
void migration_7(Poco::Data::Session& s) {
  s << R"(CREATE TABLE scoring_position (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      revisions_read INTEGER NOT NULL,
      marks_written INTEGER NOT NULL))",
      now;
  s << "INSERT INTO scoring_position (id, revisions_read, marks_written) "
       "SELECT 1, IFNULL((SELECT MAX(rowid) FROM record_revisions), 0), "
       "IFNULL((SELECT MAX(generation) FROM dirty_staff_months), 0)",
      now;
}

// How far a sink has had everything delivered is the last item of its last delivered batch:
// MAX(last_seq), which the batches_by_sink_state index answered by reading every delivered
// batch of the sink (200,000 batches, about seven province months: 40-60 ms, on every status
// call, metrics scrape and compaction step). This index answers it with one lookup.
void migration_8(Poco::Data::Session& s) {
  s << "CREATE INDEX batches_by_sink_last_item ON batches (sink, state, last_seq)", now;
}

// The staff lists sources synced (a source's list_staff: E-Office's staff with their agency and
// leader flag), which the running hub merged into the staff files' directory and every other
// command left out (issue 18: a leader known only to E-Office was rescored from the command
// line as a non-leader). Each source's latest word on each staff member, and when it said it.
void migration_9(Poco::Data::Session& s) {
  s << R"(CREATE TABLE synced_staff (
      source TEXT NOT NULL,
      staff_code TEXT NOT NULL CHECK (length(staff_code) > 0),
      full_name TEXT NOT NULL,
      agency_code TEXT NOT NULL,
      leader INTEGER NOT NULL CHECK (leader IN (0, 1)),
      active INTEGER NOT NULL CHECK (active IN (0, 1)),
      synced_at INTEGER NOT NULL,
      PRIMARY KEY (source, staff_code)))",
      now;
}

// A stored revision resolves the quarantine entries of its record that it supersedes (issue
// 18): the page commit looks them up by record id, one index probe per record it stores.
void migration_10(Poco::Data::Session& s) {
  s << "CREATE INDEX quarantine_by_record ON quarantine (record_id)", now;
}

// Scoring reads when the source recorded a revision (scoring.md 5.4, 2026-12-07: a revision is
// submitted at its changed_at), so the covering index of the scoring reads holds it too.
void migration_11(Poco::Data::Session& s) {
  s << "DROP INDEX records_for_scoring", now;
  s << "CREATE INDEX records_for_scoring ON records (month, staff_code, work_date, record_id, "
       "source_system, revision, retracted, agency_code, task_code, declared_minutes, quantity, "
       "evidence_ref, deadline, completed_at, approval_status, approval_rating, received_at, "
       "changed_at)",
      now;
}

// Last scores are kept as digests (kpihub/store/scoring_digest.hpp) from this version on; the
// texts stored before stay and are digested when read. Nothing to rewrite: the version is what
// keeps a kpihub from before digests from opening the store and finding every score changed.
void migration_12(Poco::Data::Session&) {}

struct Migration {
  void (*apply)(Poco::Data::Session&);
  const char* what;  // for the operator's log while a store is upgraded
};

// Append new migrations here; never edit a released one.
const std::vector<Migration>& migrations() {
  static const std::vector<Migration> all{
      {migration_1, "the first schema"},
      {migration_2, "quarantined records keep their fields, for replay"},
      {migration_3, "record history without its key index, rewritten in full"},
      {migration_4, "covering index for month scoring, built over every record"},
      {migration_5, "last scores keyed by staff month, rewritten in full"},
      {migration_6, "scoring index keyed by work date, rebuilt over every record"},
      {migration_7, "revision history read as the scorer's change log"},
      {migration_8, "index of batches by their last item, built over every batch"},
      {migration_9, "staff lists synced from the sources"},
      {migration_10, "index of quarantine entries by record, built over every entry"},
      {migration_11, "scoring index with when the source changed each record, rebuilt"},
      {migration_12, "last scores kept as digests (those stored before are read as theirs)"}};
  return all;
}

}  // namespace

int latest_schema_version() {
  return static_cast<int>(migrations().size());
}

void migrate(Poco::Data::Session& s, const std::string& db_path, int64_t now_unix_ms,
             const std::function<void(const std::string&)>& progress) {
  s << "BEGIN IMMEDIATE", now;
  try {
    int has_version_table = 0;
    int table_count = 0;
    s << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        into(has_version_table), now;
    s << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", into(table_count), now;
    int current = 0;
    if (has_version_table) {
      s << "SELECT IFNULL(MAX(version), 0) FROM schema_version", into(current), now;
    } else if (table_count > 0) {
      throw StoreError("store " + db_path +
                       ": is a SQLite database but not a kpihub store (no schema_version table)");
    } else {
      s << "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
          now;
    }
    const int latest = latest_schema_version();
    if (current > latest) {
      throw StoreError("store " + db_path + ": schema version " + std::to_string(current) +
                       " is newer than this build supports (" + std::to_string(latest) +
                       "); it was written by a newer kpihub");
    }
    for (int version = current + 1; version <= latest; ++version) {
      const Migration& migration = migrations()[static_cast<std::size_t>(version - 1)];
      const std::string step = "store " + db_path + ": schema " + std::to_string(version - 1) +
                               " -> " + std::to_string(version);
      // A new store runs every step in milliseconds; only an upgrade is worth a line.
      const bool tell = current > 0 && progress;
      if (tell) progress(step + ": upgrading (" + migration.what + ")");
      const auto started = std::chrono::steady_clock::now();
      migration.apply(s);
      if (tell) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        char took[32];
        std::snprintf(took, sizeof took, "%.1f", seconds);
        progress(step + ": done in " + took + " s");
      }
      int64_t applied_at = now_unix_ms;
      s << "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", use(version),
          use(applied_at), now;
    }
    s << "COMMIT", now;
  } catch (...) {
    try {
      s << "ROLLBACK", now;
    } catch (...) {
      // The original error says more than a failed rollback.
    }
    throw;
  }
}

}  // namespace kpihub::store_detail
