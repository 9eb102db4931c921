// The SQLite engine: one object behind every seam of the store (kpihub/store/*.hpp), through
// Poco::Data.
//
// Thread-safety: one connection per SqliteStorage; every public method takes the
// store's mutex, so calls from several threads are serialized and each runs
// in its own transaction. Several SqliteStorage objects (or processes) on one file are
// coordinated by SQLite's locking with the busy timeout.
//
// The two hot paths, page commits and the month scan for scoring, use sqlite3
// statements prepared once per store on Poco's own connection (see
// sqlite_statement.hpp for why); the rest goes through Poco::Data, where
// writes of many rows bind column vectors to one statement (Poco re-prepares a
// statement on every execute(), but steps a vector binding on one preparation).
#include <kpihub/store/quarantine.hpp>
#include <kpihub/store/scoring_digest.hpp>
#include <kpihub/store/sqlite.hpp>

#include "record_columns.hpp"
#include "sqlite_schema.hpp"
#include "sqlite_statement.hpp"

#include <Poco/Data/Binding.h>
#include <Poco/Data/Extraction.h>
#include <Poco/Data/SQLite/SessionImpl.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>
#include <Poco/UUIDGenerator.h>

#include <boost/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <unordered_map>

namespace kpihub {

namespace {

using Poco::Data::Session;
using Poco::Data::Statement;
using Poco::Data::Keywords::bind;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;

const char* month_table(OutboxKind kind, const std::string& db_path) {
  switch (kind) {
    case OutboxKind::staff_month:
      return "staff_months";
    case OutboxKind::agency_month:
      return "agency_months";
    case OutboxKind::record:
      break;
  }
  throw StoreError("store " + db_path + ": month rows are staff_month or agency_month, not record");
}

OutboxKind outbox_kind_of_key(const std::string& key) {
  if (key.rfind("staff:", 0) == 0) return OutboxKind::staff_month;
  if (key.rfind("agency:", 0) == 0) return OutboxKind::agency_month;
  return OutboxKind::record;
}

// SQL for how many outbox items have a seq above `after` (an SQL expression), from the first
// and last seq alone: the outbox is one unbroken range of seqs (an append takes the next
// seq, AUTOINCREMENT; compact deletes from the first). Counting the rows read them
// all, under the store's mutex, on every status call and metrics scrape. Two subqueries,
// not MIN and MAX in one: SQLite answers a lone MIN or MAX from the key without a scan.
std::string outbox_items_after(const std::string& after) {
  return "MAX(0, IFNULL((SELECT MAX(seq) FROM outbox), 0) - MAX(" + after +
         ", IFNULL((SELECT MIN(seq) FROM outbox), 1) - 1))";
}

// BEGIN IMMEDIATE takes the write lock up front, so a busy database fails at the start of an
// operation, not halfway; the destructor rolls back anything not committed.
class WriteTransaction {
 public:
  explicit WriteTransaction(Session& session) : session_(session) {
    session_ << "BEGIN IMMEDIATE", now;
  }
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;
  ~WriteTransaction() {
    if (open_) {
      try {
        session_ << "ROLLBACK", now;
      } catch (...) {
        // Already failing; SQLite rolls back on its own when the statement error ended it.
      }
    }
  }
  void commit() {
    session_ << "COMMIT", now;
    open_ = false;
  }

 private:
  Session& session_;
  bool open_ = true;
};

class SqliteStorage final : public Storage,
                            public RecordLog,
                            public ScoringState,
                            public Outbox,
                            public OperatorViews,
                            public StaffLists,
                            public StoreIntegrity {
  // Revisions of the change log turned into dirty marks per transaction: about 10 ms of
  // reading, and at most this many marks written at once.
  static constexpr std::size_t kLoggedRevisionsPerStep = 16384;

 public:
  SqliteStorage(std::string path, const SqliteStorageOptions& options)
      : path_(std::move(path)),
        busy_timeout_ms_(options.busy_timeout_ms),
        before_scan_part_(options.before_scan_part),
        clock_(options.clock != nullptr ? *options.clock : system_clock_),
        session_(open_session(path_, options, clock_)),
        db_(Poco::Data::SQLite::Utility::dbHandle(session_)) {}

  RecordLog& records() override { return *this; }
  ScoringState& scoring() override { return *this; }
  Outbox& outbox() override { return *this; }
  OperatorViews& views() override { return *this; }
  StaffLists& staff_lists() override { return *this; }
  StoreIntegrity& integrity() override { return *this; }

  // SQLite's integrity check, a table (with its indexes) at a time so that it can report
  // progress and stop at a budget: a progress handler interrupts the statement once the budget
  // is spent. Whole-file checks (the freelist) are not made: they need the check of the whole
  // file in one statement.
  IntegrityReport check(std::optional<std::chrono::milliseconds> budget,
                        const std::function<void(const IntegrityProgress&)>& progress) override {
    std::lock_guard lock(mutex_);
    IntegrityReport report;
    report.unit = "tables";
    std::vector<std::string> tables = {"sqlite_schema"};
    {
      sqlite3_stmt* list = nullptr;
      if (sqlite3_prepare_v2(db_,
                             "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
                             -1, &list, nullptr) != SQLITE_OK) {
        store_detail::sqlite_fail(db_, path_, "listing the tables to check");
      }
      while (sqlite3_step(list) == SQLITE_ROW) {
        tables.emplace_back(store_detail::column_text(list, 0));
      }
      sqlite3_finalize(list);
    }
    report.total = tables.size();
    const auto deadline = budget ? std::chrono::steady_clock::now() + *budget
                                 : std::chrono::steady_clock::time_point::max();
    struct Budget {
      std::chrono::steady_clock::time_point deadline;
      bool spent = false;
    } state{deadline};
    sqlite3_progress_handler(
        db_, 10000,
        [](void* p) -> int {
          auto& b = *static_cast<Budget*>(p);
          b.spent = b.spent || std::chrono::steady_clock::now() >= b.deadline;
          return b.spent ? 1 : 0;
        },
        &state);
    struct Unset {
      sqlite3* db;
      ~Unset() { sqlite3_progress_handler(db, 0, nullptr, nullptr); }
    } unset{db_};
    for (const auto& table : tables) {
      if (state.spent) break;
      sqlite3_stmt* stmt = nullptr;
      const std::string sql = "PRAGMA integrity_check(\"" + table + "\")";
      int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
      std::vector<std::string> found;
      if (rc == SQLITE_OK) rc = SQLITE_ROW;
      while (rc == SQLITE_ROW && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        const std::string line = text ? text : "";
        if (line != "ok") found.push_back(line);
      }
      sqlite3_finalize(stmt);
      if (rc == SQLITE_INTERRUPT || state.spent) {
        report.complete = false;
        break;
      }
      if (rc != SQLITE_DONE && rc != SQLITE_OK) found.push_back(sqlite3_errmsg(db_));
      for (const auto& line : found) {
        report.problems.push_back("store " + path_ + ": table " + table + ": " + line);
      }
      ++report.checked;
      if (progress) progress({report.checked, report.total, "table " + table});
    }
    if (report.checked < report.total) report.complete = false;
    std::error_code ec;
    if (report.complete) report.bytes_checked = std::filesystem::file_size(path_, ec);
    return report;
  }

  PageCommitResult commit_page(const PageCommit& page) override {
    return guarded("committing page of source " + page.source, [&] {
      if (page.source.empty()) fail("a page needs a source name");
      PageCommitResult result;
      WriteTransaction tx(session_);

      // Stored revision, staff and month of each record id, looked up once per id (the
      // statement is prepared once per store); ids accepted earlier in this page are known.
      struct Known {
        int64_t revision;
        std::string staff_code;
        std::string month;
        Date work_date;
      };
      std::unordered_map<std::string_view, Known> known;
      known.reserve(page.records.size());
      sqlite3_stmt* lookup = lookup_record_.get(
          db_, "SELECT revision, staff_code, month, work_date FROM records WHERE record_id = ?",
          path_);
      // The record as stored (or as this page stored it), end() when it is not.
      const auto find_known = [&](std::string_view record_id) {
        auto it = known.find(record_id);
        if (it != known.end()) return it;
        store_detail::StatementScope scope(lookup);
        store_detail::bind_text(lookup, 1, record_id);
        const int rc = sqlite3_step(lookup);
        if (rc == SQLITE_ROW) {
          return known
              .emplace(record_id,
                       Known{sqlite3_column_int64(lookup, 0),
                             std::string(store_detail::column_text(lookup, 1)),
                             std::string(store_detail::column_text(lookup, 2)),
                             Date{static_cast<int32_t>(sqlite3_column_int64(lookup, 3))}})
              .first;
        }
        if (rc != SQLITE_DONE) {
          store_detail::sqlite_fail(db_, path_, "looking up record " + std::string(record_id));
        }
        return known.end();
      };
      // Built once per process, not per page: the statement is prepared once per store anyway.
      static const std::string upsert_sql = store_detail::record_upsert_sql();
      sqlite3_stmt* upsert = upsert_record_.get(db_, upsert_sql, path_);

      // Decide in page order against what is stored and what this page already accepted, so
      // the higher revision wins whatever the order within the page.
      const int64_t at =
          page.received_at_unix_ms != 0 ? page.received_at_unix_ms : clock_.now_unix_ms();
      // The staff days records left (their new place is in record_revisions, the scorer's
      // change log; schema 7). Rare: a revision nearly always keeps its staff member and day.
      std::map<std::pair<std::string, std::string>, DayMask> left;
      // The highest revision this page stored of each record, or withdrew of one never stored:
      // the quarantine entries it supersedes go (the source corrected or deleted the record).
      std::unordered_map<std::string_view, int64_t> superseding;
      for (const auto& r : page.records) {
        auto it = find_known(r.record_id);
        if (it != known.end() && r.revision <= it->second.revision) {
          ++result.ignored_stale;
          continue;
        }
        if (is_bare_withdrawal(r)) {
          // Nothing stored: nothing to withdraw. Otherwise the stored record, with its content,
          // becomes the withdrawn revision (the trigger logs it for the scorer).
          int64_t& superseded = superseding[r.record_id];
          superseded = std::max(superseded, r.revision);
          if (it == known.end()) {
            ++result.ignored_stale;
            continue;
          }
          ++result.updated;
          withdraw(r, at);
          it->second.revision = r.revision;
          continue;
        }
        int64_t& superseded = superseding[r.record_id];
        superseded = std::max(superseded, r.revision);
        if (it == known.end()) {
          ++result.inserted;
          it = known.emplace(r.record_id, Known{}).first;
        } else {
          ++result.updated;
          // The staff day the record leaves needs rescoring too, and the record's last
          // score goes with it: its next score must carry on its sequence.
          const Known& was = it->second;
          if (!was.staff_code.empty() &&
              (was.staff_code != r.staff_code || was.work_date != r.work_date)) {
            left[{was.staff_code, was.month}] |= day_bit(was.work_date);
          }
          if (was.staff_code != r.staff_code || was.month != r.work_date.month_str()) {
            move_score(r.record_id, was.staff_code, was.month, r.staff_code,
                       r.work_date.month_str());
          }
        }
        it->second = Known{r.revision, r.staff_code, r.work_date.month_str(), r.work_date};
        {
          store_detail::StatementScope scope(upsert);
          store_detail::bind_record(upsert, r, at, scratch_);
          if (sqlite3_step(upsert) != SQLITE_DONE) {
            store_detail::sqlite_fail(db_, path_, "writing record " + r.record_id);
          }
        }
      }

      // An invalid revision not above the one stored (a revision sent again, or one this page
      // superseded) has nothing left to fix: it is stale, as a valid one would be, and kept out.
      std::vector<const QuarantineEntry*> kept;
      kept.reserve(page.quarantined.size());
      // An entry that names no revision it had stays until resolved, unless the store holds it
      // already.
      const auto stale = [&](const QuarantineEntry& q) {
        if (q.record_id.empty()) return false;
        if (const std::optional<int64_t> revision = quarantined_revision(q.fields)) {
          if (const auto it = superseding.find(q.record_id);
              it != superseding.end() && it->second >= *revision) {
            return true;
          }
          const auto it = find_known(q.record_id);
          if (it != known.end() && it->second.revision >= *revision) return true;
        }
        // The same entry, held since the source was read before (`kpihub source reset`, a
        // store restored from a backup): a second one would count the item twice. Not for a
        // record this page stores: the page resolves the entries held of it.
        if (superseding.count(q.record_id) != 0) return false;
        sqlite3_stmt* held = quarantine_held_.get(
            db_,
            "SELECT 1 FROM quarantine WHERE record_id = ?1 AND source = ?2 AND reason = ?3 "
            "AND fields = ?4 AND field = ?5 AND message = ?6 AND payload = ?7 "
            "AND source_id = ?8 LIMIT 1",
            path_);
        store_detail::StatementScope scope(held);
        store_detail::bind_text(held, 1, q.record_id);
        store_detail::bind_text(held, 2, page.source);
        store_detail::bind_text(held, 3, to_string(q.reason));
        store_detail::bind_text(held, 4, q.fields);
        store_detail::bind_text(held, 5, q.field);
        store_detail::bind_text(held, 6, q.message);
        store_detail::bind_text(held, 7, q.payload);
        store_detail::bind_text(held, 8, q.source_id);
        const int rc = sqlite3_step(held);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
          store_detail::sqlite_fail(db_, path_, "looking up quarantine of " + q.record_id);
        }
        return rc == SQLITE_ROW;
      };
      for (std::size_t i = 0; i < page.quarantined.size(); ++i) {
        const QuarantineEntry& q = page.quarantined[i];
        if (stale(q)) {
          ++result.ignored_stale;
          result.quarantine_not_kept.push_back(i);
        } else {
          kept.push_back(&q);
        }
      }
      // Quarantine entries up to here are older than every item of this page.
      const int64_t quarantined_before_page = superseding.empty() ? 0 : last_quarantine_id();
      if (!kept.empty()) insert_quarantine(page.source, kept, at);
      result.quarantined = kept.size();
      for (int64_t id : page.resolved_quarantine_ids) remove_quarantine_entry(id);

      mark_dirty(left, at);

      sqlite3_stmt* cursor = update_cursor_.get(
          db_,
          "INSERT INTO cursors (source, cursor, updated_at, records, quarantined, pages) "
          "VALUES (?1, ?2, ?3, ?4, ?5, 1) ON CONFLICT (source) DO UPDATE "
          "SET cursor = COALESCE(excluded.cursor, cursors.cursor), "
          "updated_at = excluded.updated_at, records = records + excluded.records, "
          "quarantined = quarantined + excluded.quarantined, pages = pages + 1",
          path_);
      {
        store_detail::StatementScope scope(cursor);
        store_detail::bind_text(cursor, 1, page.source);
        // NULL leaves the stored cursor as it is.
        if (page.cursor) {
          store_detail::bind_text(cursor, 2, *page.cursor);
        } else {
          sqlite3_bind_null(cursor, 2);
        }
        sqlite3_bind_int64(cursor, 3, at);
        sqlite3_bind_int64(cursor, 4, static_cast<int64_t>(result.inserted + result.updated));
        sqlite3_bind_int64(cursor, 5, static_cast<int64_t>(result.quarantined));
        if (sqlite3_step(cursor) != SQLITE_DONE) {
          store_detail::sqlite_fail(db_, path_, "storing the cursor");
        }
      }
      // After the cursor row (whose count they lower) and this page's own entries (a valid
      // revision resolves an invalid older one of the same page).
      for (const auto& [id, revision] : superseding) {
        result.quarantine_resolved +=
            resolve_superseded_quarantine(id, revision, quarantined_before_page);
      }
      tx.commit();
      return result;
    });
  }

  std::optional<std::string> cursor(const std::string& source) override {
    return guarded("reading the cursor of source " + source, [&] {
      std::vector<std::string> cursor;
      std::vector<int> present;
      std::string s = source;
      session_ << "SELECT IFNULL(cursor, ''), cursor IS NOT NULL FROM cursors WHERE source = ?",
          into(cursor), into(present), use(s), now;
      std::optional<std::string> out;
      if (!cursor.empty() && present[0]) out = cursor[0];
      return out;
    });
  }

  void set_cursor(const std::string& source, const std::optional<std::string>& cursor) override {
    guarded("setting the cursor of source " + source, [&] {
      WriteTransaction tx(session_);
      // Once, by an operator: not worth a statement kept for the store's life.
      store_detail::PreparedStatement statement;
      sqlite3_stmt* set =
          statement.get(db_,
                        "INSERT INTO cursors (source, cursor, updated_at) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, "
                        "updated_at = excluded.updated_at",
                        path_);
      {
        store_detail::StatementScope scope(set);
        store_detail::bind_text(set, 1, source);
        if (cursor) {
          store_detail::bind_text(set, 2, *cursor);
        } else {
          sqlite3_bind_null(set, 2);
        }
        sqlite3_bind_int64(set, 3, clock_.now_unix_ms());
        if (sqlite3_step(set) != SQLITE_DONE) {
          store_detail::sqlite_fail(db_, path_, "setting the cursor of source " + source);
        }
      }
      tx.commit();
    });
  }

  std::size_t dismiss_quarantine(const std::string& source, const std::string& reason,
                                 int64_t id) override {
    return guarded("dismissing quarantine entries", [&] {
      WriteTransaction tx(session_);
      std::string src = source;
      std::string why = reason;
      int64_t only = id;
      const std::string matching =
          "(? <= 0 OR id = ?) AND (? = '' OR source = ? OR source_system = ?) "
          "AND (? = '' OR reason = ?)";
      // Each source's quarantined items, less its entries that go.
      session_ << "UPDATE cursors SET quarantined = MAX(0, quarantined - "
                  "(SELECT COUNT(*) FROM quarantine q WHERE q.source = cursors.source AND " +
                      matching + "))",
          use(only), use(only), use(src), use(src), use(src), use(why), use(why), now;
      session_ << "DELETE FROM quarantine WHERE " + matching, use(only), use(only), use(src),
          use(src), use(src), use(why), use(why), now;
      const auto dismissed = static_cast<std::size_t>(changes());
      tx.commit();
      return dismissed;
    });
  }

  std::vector<SourceState> sources() override {
    return guarded("listing sources", [&] {
      std::vector<std::string> source, cursor;
      std::vector<int> present;
      std::vector<int64_t> updated_at, records, quarantined;
      session_ << "SELECT source, IFNULL(cursor, ''), cursor IS NOT NULL, updated_at, records, "
                  "quarantined FROM cursors ORDER BY source",
          into(source), into(cursor), into(present), into(updated_at), into(records),
          into(quarantined), now;
      std::vector<SourceState> out(source.size());
      for (std::size_t i = 0; i < source.size(); ++i) {
        out[i].source = source[i];
        if (present[i]) out[i].cursor = cursor[i];
        out[i].updated_at_unix_ms = updated_at[i];
        out[i].records = records[i];
        out[i].quarantined = quarantined[i];
      }
      return out;
    });
  }

  std::vector<DirtyStaffMonth> dirty_staff_days(std::size_t max_keys) override {
    // Every revision logged before this call is marked before the marks are listed, in steps
    // of one transaction each, so a long backlog does not hold ingest back while it is read.
    // A plain read first: an idle scorer polls often, and should not take the write lock.
    int64_t position = 0;
    int64_t last = 0;
    guarded("reading the scorer's change log position", [&] {
      session_ << "SELECT revisions_read, IFNULL((SELECT MAX(rowid) FROM record_revisions), 0) "
                  "FROM scoring_position WHERE id = 1",
          into(position), into(last), now;
    });
    for (int64_t reached = position; reached < last;) {
      reached = guarded("reading the revisions logged since the last scoring",
                        [&] { return mark_logged_revisions(kLoggedRevisionsPerStep, last); });
    }
    return guarded("listing dirty staff-months", [&] {
      std::vector<std::string> staff, month;
      std::vector<int64_t> generation, days;
      int64_t n = static_cast<int64_t>(max_keys);
      session_ << "SELECT staff_code, month, generation, days FROM dirty_staff_months "
                  "ORDER BY rowid LIMIT ?",
          into(staff), into(month), into(generation), into(days), use(n), now;
      std::vector<DirtyStaffMonth> out(staff.size());
      for (std::size_t i = 0; i < staff.size(); ++i) {
        // -1 (every bit, as the column's default) is the whole month.
        out[i] = DirtyStaffMonth{{staff[i], month[i]}, static_cast<DayMask>(days[i])};
        seen_generation_[out[i].key] = generation[i];
      }
      return out;
    });
  }

  std::size_t mark_month_dirty(const std::string& month) override {
    return guarded("marking month " + month + " dirty", [&] {
      WriteTransaction tx(session_);
      std::string m = month;
      int64_t at = clock_.now_unix_ms();
      // "WHERE" before ON CONFLICT resolves SQLite's parsing ambiguity of INSERT ... SELECT.
      int64_t generation = next_mark_generation();
      session_ << "INSERT INTO dirty_staff_months (staff_code, month, marked_at, days, generation) "
                  "SELECT DISTINCT staff_code, month, ?, -1, ? FROM records "
                  "WHERE month = ? AND staff_code <> '' "
                  "ON CONFLICT (staff_code, month) DO UPDATE SET "
                  "generation = excluded.generation, marked_at = excluded.marked_at, days = -1",
          use(at), use(generation), use(m), now;
      const std::size_t changed = changes();
      tx.commit();
      return changed;
    });
  }

  std::vector<WorkRecord> records_of_staff_month(const StaffMonthKey& key) override {
    return guarded("reading records of staff " + key.staff_code + " in " + key.month, [&] {
      return read_records("WHERE month = ? AND staff_code = ? ORDER BY record_id",
                          {key.month, key.staff_code});
    });
  }

  std::vector<WorkRecord> records_of_staff_days(const StaffMonthKey& key, DayMask days) override {
    return guarded("reading records of days of staff " + key.staff_code + " in " + key.month, [&] {
      const auto month = Month::parse(key.month);
      if (!month) fail("not a month: '" + key.month + "'");
      std::vector<WorkRecord> out;
      for (Date d = month->first_day(); d <= month->last_day(); ++d.days) {
        if ((days & day_bit(d)) == 0) continue;
        // work_date is an INTEGER column: the bound text compares as its number.
        std::vector<WorkRecord> day =
            read_records("WHERE month = ? AND staff_code = ? AND work_date = ? ORDER BY record_id",
                         {key.month, key.staff_code, std::to_string(d.days)});
        if (out.empty()) {
          out = std::move(day);
        } else {
          const auto middle = static_cast<std::ptrdiff_t>(out.size());
          out.insert(out.end(), std::make_move_iterator(day.begin()),
                     std::make_move_iterator(day.end()));
          std::inplace_merge(
              out.begin(), out.begin() + middle, out.end(),
              [](const WorkRecord& a, const WorkRecord& b) { return a.record_id < b.record_id; });
        }
      }
      return out;
    });
  }

  std::vector<DayCount> records_per_day(const StaffMonthKey& key, DayMask days) override {
    return guarded("counting records of staff " + key.staff_code + " in " + key.month, [&] {
      // On the covering scoring index (month, staff_code, work_date, ...): no table page.
      sqlite3_stmt* select = records_per_day_.get(
          db_,
          "SELECT work_date, COUNT(*) FROM records WHERE month = ? AND staff_code = ? "
          "GROUP BY work_date ORDER BY work_date",
          path_);
      store_detail::StatementScope scope(select);
      store_detail::bind_text(select, 1, key.month);
      store_detail::bind_text(select, 2, key.staff_code);
      std::vector<DayCount> out;
      int rc;
      while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
        const Date date{static_cast<int32_t>(sqlite3_column_int64(select, 0))};
        if ((days & day_bit(date)) == 0) continue;
        out.push_back({date, static_cast<std::size_t>(sqlite3_column_int64(select, 1))});
      }
      if (rc != SQLITE_DONE) store_detail::sqlite_fail(db_, path_, "counting records per day");
      return out;
    });
  }

  StaffMonthForScoring staff_month_for_scoring(const StaffMonthKey& key) override {
    return guarded("reading staff " + key.staff_code + " in " + key.month + " for scoring", [&] {
      // Two range reads, both in record_id order: the covering records_for_scoring index and
      // record_scores' key (schema 5). No table page per record: a store filled from a feed
      // has a staff member's records scattered over the whole table.
      // Built once per process, not per staff-month (7,000 calls for a province month).
      static const std::string scan_sql = store_detail::staff_month_scan_sql();
      static const std::string scores_sql = store_detail::staff_month_scores_sql();
      StaffMonthForScoring out;
      {
        sqlite3_stmt* select = staff_month_scan_.get(db_, scan_sql, path_);
        store_detail::StatementScope scope(select);
        store_detail::bind_text(select, 1, key.month);
        store_detail::bind_text(select, 2, key.staff_code);
        append_scoring_rows(select, out);
      }
      out.previous.resize(out.records.size());
      sqlite3_stmt* scores = staff_month_scores_.get(db_, scores_sql, path_);
      store_detail::StatementScope scope(scores);
      store_detail::bind_text(scores, 1, key.month);
      store_detail::bind_text(scores, 2, key.staff_code);
      std::size_t i = 0;
      int rc;
      while ((rc = sqlite3_step(scores)) == SQLITE_ROW) {
        const std::string_view id = store_detail::column_text(scores, 0);
        while (i < out.records.size() && out.records[i].record_id < id) ++i;
        if (i == out.records.size()) break;
        if (out.records[i].record_id != id) continue;  // cannot happen: scores move with records
        out.previous[i] = RecordScoreRow{
            std::string(id), sqlite3_column_int64(scores, 1), sqlite3_column_int64(scores, 2),
            stored_scoring_digest(std::string(store_detail::column_text(scores, 3)))};
      }
      if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        store_detail::sqlite_fail(db_, path_, "reading record scores");
      }
      return out;
    });
  }

  StaffMonthForScoring staff_days_for_scoring(const StaffMonthKey& key, DayMask days) override {
    return guarded(
        "reading days of staff " + key.staff_code + " in " + key.month + " for scoring", [&] {
          static const std::string day_sql = store_detail::staff_day_scan_sql();
          static const std::string score_sql = store_detail::record_score_sql();
          const auto month = Month::parse(key.month);
          if (!month) fail("not a month: '" + key.month + "'");
          StaffMonthForScoring out;
          sqlite3_stmt* select = staff_day_scan_.get(db_, day_sql, path_);
          for (Date d = month->first_day(); d <= month->last_day(); ++d.days) {
            if ((days & day_bit(d)) == 0) continue;
            store_detail::StatementScope scope(select);
            store_detail::bind_text(select, 1, key.month);
            store_detail::bind_text(select, 2, key.staff_code);
            sqlite3_bind_int64(select, 3, d.days);
            append_scoring_rows(select, out);
          }
          out.previous.resize(out.records.size());
          sqlite3_stmt* score = record_score_.get(db_, score_sql, path_);
          for (std::size_t i = 0; i < out.records.size(); ++i) {
            store_detail::StatementScope scope(score);
            store_detail::bind_text(score, 1, key.month);
            store_detail::bind_text(score, 2, key.staff_code);
            store_detail::bind_text(score, 3, out.records[i].record_id);
            const int rc = sqlite3_step(score);
            if (rc == SQLITE_ROW) {
              out.previous[i] = RecordScoreRow{
                  out.records[i].record_id, sqlite3_column_int64(score, 0),
                  sqlite3_column_int64(score, 1),
                  stored_scoring_digest(std::string(store_detail::column_text(score, 2)))};
            } else if (rc != SQLITE_DONE) {
              store_detail::sqlite_fail(db_, path_,
                                        "reading the score of " + out.records[i].record_id);
            }
          }
          sqlite3_stmt* totals = read_day_totals_.get(
              db_, "SELECT totals FROM staff_month_days WHERE month = ? AND staff_code = ?", path_);
          store_detail::StatementScope scope(totals);
          store_detail::bind_text(totals, 1, key.month);
          store_detail::bind_text(totals, 2, key.staff_code);
          const int rc = sqlite3_step(totals);
          if (rc == SQLITE_ROW) {
            const auto* bytes = static_cast<const char*>(sqlite3_column_blob(totals, 0));
            out.day_totals.emplace(bytes == nullptr
                                       ? ""
                                       : std::string(bytes, static_cast<std::size_t>(
                                                                sqlite3_column_bytes(totals, 0))));
          } else if (rc != SQLITE_DONE) {
            store_detail::sqlite_fail(db_, path_, "reading the day totals");
          }
          return out;
        });
  }

  std::vector<int64_t> received_at(const std::vector<std::string>& record_ids) override {
    return guarded("reading received_at of records", [&] {
      std::vector<int64_t> out(record_ids.size(), 0);
      if (record_ids.empty()) return out;
      sqlite3_stmt* select =
          read_received_.get(db_, "SELECT received_at FROM records WHERE record_id = ?", path_);
      for (std::size_t i = 0; i < record_ids.size(); ++i) {
        store_detail::StatementScope scope(select);
        store_detail::bind_text(select, 1, record_ids[i]);
        const int rc = sqlite3_step(select);
        if (rc == SQLITE_ROW) {
          out[i] = sqlite3_column_int64(select, 0);
        } else if (rc != SQLITE_DONE) {
          store_detail::sqlite_fail(db_, path_, "reading received_at of " + record_ids[i]);
        }
      }
      return out;
    });
  }

  std::vector<std::string> staff_of_month(const std::string& month) override {
    return guarded("listing staff of month " + month, [&] {
      std::string m = month;
      std::vector<std::string> staff;
      session_ << "SELECT DISTINCT staff_code FROM records WHERE month = ? AND staff_code <> '' "
                  "ORDER BY staff_code",
          use(m), into(staff), now;
      return staff;
    });
  }

  std::vector<WorkRecord> records_of_month(const std::string& month) override {
    return guarded("reading records of month " + month, [&] {
      // Counting on the month index first lets the result be allocated once.
      std::string m = month;
      int64_t count = 0;
      session_ << "SELECT COUNT(*) FROM records WHERE month = ?", use(m), into(count), now;
      return read_records("WHERE month = ?", {month}, static_cast<std::size_t>(count));
    });
  }

  std::optional<WorkRecord> record(const std::string& record_id) override {
    return guarded("reading record " + record_id, [&] {
      auto rows = read_records("WHERE record_id = ?", {record_id});
      std::optional<WorkRecord> out;
      if (!rows.empty()) out = std::move(rows.front());
      return out;
    });
  }

  std::vector<RecordScoreRow> record_scores(const std::vector<std::string>& record_ids) override {
    return guarded("reading record scores", [&] {
      std::vector<RecordScoreRow> out;
      if (record_ids.empty()) return out;
      // record_scores is keyed by the record's staff month (schema 5), which records knows.
      sqlite3_stmt* select = read_score_.get(
          db_,
          "SELECT s.revision, s.sequence, s.scoring_json FROM records r JOIN record_scores s "
          "ON s.month = r.month AND s.staff_code = r.staff_code AND s.record_id = r.record_id "
          "WHERE r.record_id = ?",
          path_);
      // One lookup per id on the primary key: cheaper than building and scanning a json_each
      // list, and the statement is prepared once.
      for (const auto& id : record_ids) {
        store_detail::StatementScope scope(select);
        store_detail::bind_text(select, 1, id);
        const int rc = sqlite3_step(select);
        if (rc == SQLITE_ROW) {
          out.push_back(RecordScoreRow{
              id, sqlite3_column_int64(select, 0), sqlite3_column_int64(select, 1),
              stored_scoring_digest(std::string(store_detail::column_text(select, 2)))});
        } else if (rc != SQLITE_DONE) {
          store_detail::sqlite_fail(db_, path_, "reading the score of " + id);
        }
      }
      std::sort(out.begin(), out.end(),
                [](const auto& a, const auto& b) { return a.record_id < b.record_id; });
      return out;
    });
  }

  std::optional<ScoringCommit::MonthRow> month_row(OutboxKind kind, const std::string& month,
                                                   const std::string& code) override {
    return guarded("reading month row " + month + " " + code, [&] {
      // A point lookup on the (month, code) key, once per staff-month scored: the month-wide
      // query below scanned every row of the month for it (quadratic in the staff count).
      const char* table = month_table(kind, path_);
      store_detail::PreparedStatement& prepared =
          kind == OutboxKind::staff_month ? staff_month_row_ : agency_month_row_;
      sqlite3_stmt* select = prepared.get(db_, store_detail::month_row_sql(table), path_);
      store_detail::StatementScope scope(select);
      store_detail::bind_text(select, 1, month);
      store_detail::bind_text(select, 2, code);
      std::optional<ScoringCommit::MonthRow> out;
      const int rc = sqlite3_step(select);
      if (rc == SQLITE_ROW) {
        out = ScoringCommit::MonthRow{kind,
                                      month,
                                      code,
                                      std::string(store_detail::column_text(select, 0)),
                                      sqlite3_column_int64(select, 1),
                                      std::string(store_detail::column_text(select, 2))};
      } else if (rc != SQLITE_DONE) {
        store_detail::sqlite_fail(db_, path_, "reading month row " + month + " " + code);
      }
      return out;
    });
  }

  std::vector<ScoringCommit::MonthRow> month_rows(OutboxKind kind,
                                                  const std::string& month) override {
    return guarded("reading month rows of " + month, [&] { return read_month_rows(kind, month); });
  }

  void commit_scoring(const ScoringCommit& commit) override {
    guarded("committing scoring results", [&] {
      WriteTransaction tx(session_);
      if (!commit.record_scores.empty()) {
        // Under the staff month the record has now, not the one the scorer read: a page
        // committed in between may have moved it, and its next score must find this one.
        sqlite3_stmt* upsert = upsert_score_.get(
            db_,
            "INSERT INTO record_scores (month, staff_code, record_id, revision, sequence, "
            "scoring_json) SELECT month, staff_code, record_id, ?2, ?3, ?4 FROM records "
            "WHERE record_id = ?1 ON CONFLICT (month, staff_code, record_id) DO UPDATE SET "
            "revision = excluded.revision, sequence = excluded.sequence, "
            "scoring_json = excluded.scoring_json WHERE excluded.sequence > sequence",
            path_);
        for (const auto& row : commit.record_scores) {
          store_detail::StatementScope scope(upsert);
          store_detail::bind_text(upsert, 1, row.record_id);
          sqlite3_bind_int64(upsert, 2, row.revision);
          sqlite3_bind_int64(upsert, 3, row.sequence);
          // The column keeps its name: a store written before digests holds texts there, each
          // digested when read (stored_scoring_digest).
          sqlite3_bind_blob(upsert, 4, row.scoring_digest.data(),
                            static_cast<int>(row.scoring_digest.size()), SQLITE_STATIC);
          if (sqlite3_step(upsert) != SQLITE_DONE) {
            store_detail::sqlite_fail(db_, path_, "storing the score of " + row.record_id);
          }
          // Nothing written: no such record, or a sequence that does not grow. The receiver
          // takes a record's sequence once; sending one again with other content would be
          // a conflict, so the whole commit is refused instead.
          if (sqlite3_changes(db_) != 1) {
            throw StoreError("store " + path_ + ": storing the score of " + row.record_id +
                             " (sequence " + std::to_string(row.sequence) +
                             "): no such record, or its stored sequence is not lower");
          }
        }
      }
      for (OutboxKind kind : {OutboxKind::staff_month, OutboxKind::agency_month}) {
        std::vector<std::string> month, code, agency, json;
        std::vector<int64_t> revision;
        for (const auto& row : commit.months) {
          if (row.kind == OutboxKind::record) month_table(row.kind, path_);  // throws
          if (row.kind != kind) continue;
          month.push_back(row.month);
          code.push_back(row.code);
          agency.push_back(row.agency_code);
          revision.push_back(row.revision);
          json.push_back(row.json);
        }
        if (month.empty()) continue;
        session_ << std::string("INSERT INTO ") + month_table(kind, path_) +
                        " (month, code, agency_code, revision, json) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (month, code) DO UPDATE SET agency_code = "
                        "excluded.agency_code, revision = excluded.revision, json = excluded.json",
            use(month), use(code), use(agency), use(revision), use(json), now;
      }
      if (!commit.day_totals.empty()) {
        sqlite3_stmt* upsert = upsert_day_totals_.get(
            db_,
            "INSERT INTO staff_month_days (month, staff_code, totals) VALUES (?, ?, ?) "
            "ON CONFLICT (month, staff_code) DO UPDATE SET totals = excluded.totals",
            path_);
        for (const auto& row : commit.day_totals) {
          store_detail::StatementScope scope(upsert);
          store_detail::bind_text(upsert, 1, row.key.month);
          store_detail::bind_text(upsert, 2, row.key.staff_code);
          sqlite3_bind_blob(upsert, 3, row.totals.data(), static_cast<int>(row.totals.size()),
                            SQLITE_STATIC);
          if (sqlite3_step(upsert) != SQLITE_DONE) {
            store_detail::sqlite_fail(
                db_, path_,
                "storing the day totals of staff " + row.key.staff_code + " in " + row.key.month);
          }
        }
      }
      append_outbox(commit.outbox);
      // Prepared once: a run of changed days clears up to 1,024 keys.
      sqlite3_stmt* clear = clear_dirty_.get(db_,
                                             "DELETE FROM dirty_staff_months WHERE staff_code = ?1 "
                                             "AND month = ?2 AND (?3 < 0 OR generation = ?3)",
                                             path_);
      for (const auto& key : commit.done) {
        auto seen = seen_generation_.find(key);
        // Only the mark the scorer saw is cleared; a newer one (same key re-marked by a page
        // committed meanwhile) stays dirty.
        const int64_t generation = seen == seen_generation_.end() ? -1 : seen->second;
        store_detail::StatementScope scope(clear);
        store_detail::bind_text(clear, 1, key.staff_code);
        store_detail::bind_text(clear, 2, key.month);
        sqlite3_bind_int64(clear, 3, generation);
        if (sqlite3_step(clear) != SQLITE_DONE) {
          store_detail::sqlite_fail(
              db_, path_,
              "clearing the dirty mark of staff " + key.staff_code + " in " + key.month);
        }
      }
      tx.commit();
      for (const auto& key : commit.done) seen_generation_.erase(key);
    });
  }

  std::optional<Batch> next_batch(const std::string& sink, std::size_t max_items,
                                  std::size_t max_bytes) override {
    return guarded("forming the next batch of sink " + sink, [&] {
      WriteTransaction tx(session_);
      std::string s = sink;
      std::optional<Batch> batch;
      {
        std::vector<std::string> id, last_error;
        std::vector<int64_t> first, last, attempts, not_before;
        session_ << "SELECT batch_id, first_seq, last_seq, attempts, not_before, "
                    "IFNULL(last_error, '') FROM batches "
                    "WHERE sink = ? AND state = 'pending' ORDER BY first_seq LIMIT 1",
            use(s), into(id), into(first), into(last), into(attempts), into(not_before),
            into(last_error), now;
        if (!id.empty()) {
          batch.emplace();
          batch->batch_id = id[0];
          batch->sink = sink;
          batch->first_seq = first[0];
          batch->last_seq = last[0];
          batch->attempts = static_cast<uint32_t>(attempts[0]);
          batch->not_before_unix_ms = not_before[0];
          batch->last_error = last_error[0];
          batch->items = read_outbox("WHERE seq BETWEEN ? AND ? ORDER BY seq", first[0], last[0]);
          tx.commit();
          return batch;
        }
      }
      int64_t last_batched = 0;
      {
        std::vector<int64_t> found;
        session_ << "SELECT last_batched_seq FROM sink_progress WHERE sink = ?", use(s),
            into(found), now;
        if (!found.empty()) last_batched = found[0];
      }
      const int64_t max_rows = static_cast<int64_t>(std::max<std::size_t>(max_items, 1));
      auto items = read_outbox("WHERE seq > ? ORDER BY seq LIMIT ?", last_batched, max_rows);
      std::size_t bytes = 0;
      std::size_t keep = 0;
      for (; keep < items.size(); ++keep) {
        bytes += items[keep].payload.size();
        if (keep > 0 && bytes > max_bytes)
          break;  // the first item goes even if it alone is too big
      }
      items.resize(keep);
      if (items.empty()) {
        tx.commit();
        return batch;
      }
      batch.emplace();
      batch->batch_id = uuid_generator_.createRandom().toString();
      batch->sink = sink;
      batch->first_seq = items.front().seq;
      batch->last_seq = items.back().seq;
      batch->items = std::move(items);
      int64_t count = static_cast<int64_t>(batch->items.size());
      int64_t created_at = clock_.now_unix_ms();
      session_ << "INSERT INTO batches (batch_id, sink, first_seq, last_seq, item_count, state, "
                  "created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
          use(batch->batch_id), use(s), use(batch->first_seq), use(batch->last_seq), use(count),
          use(created_at), now;
      session_ << "INSERT INTO sink_progress (sink, last_batched_seq) VALUES (?, ?) "
                  "ON CONFLICT (sink) DO UPDATE SET last_batched_seq = excluded.last_batched_seq",
          use(s), use(batch->last_seq), now;
      tx.commit();
      return batch;
    });
  }

  void complete_batch(const std::string& batch_id, const std::vector<DeadLetter>& dead) override {
    guarded("completing batch " + batch_id, [&] {
      WriteTransaction tx(session_);
      const auto [sink, state] = batch_state(batch_id);
      if (state == "delivered") {
        tx.commit();  // completing twice is harmless: the dead letters are already stored
        return;
      }
      std::string id = batch_id;
      int64_t at = clock_.now_unix_ms();
      session_ << "UPDATE batches SET state = 'delivered', delivered_at = ? WHERE batch_id = ?",
          use(at), use(id), now;
      if (!dead.empty()) {
        std::vector<std::string> sinks, batches, keys, codes, messages, payloads;
        std::vector<int64_t> created;
        for (const auto& d : dead) {
          sinks.push_back(d.sink.empty() ? sink : d.sink);
          batches.push_back(d.batch_id.empty() ? batch_id : d.batch_id);
          keys.push_back(d.key);
          codes.push_back(d.code);
          messages.push_back(d.message);
          payloads.push_back(d.payload);
          created.push_back(d.created_at_unix_ms != 0 ? d.created_at_unix_ms : at);
        }
        session_ << "INSERT INTO dead_letters (sink, batch_id, key, code, message, payload, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            use(sinks), use(batches), use(keys), use(codes), use(messages), use(payloads),
            use(created), now;
      }
      tx.commit();
    });
  }

  void defer_batch(const std::string& batch_id, int64_t not_before_unix_ms,
                   const std::string& last_error) override {
    guarded("deferring batch " + batch_id, [&] {
      WriteTransaction tx(session_);
      const auto [sink, state] = batch_state(batch_id);
      if (state != "pending")
        fail("batch " + batch_id + " of sink " + sink + " is already delivered");
      std::string id = batch_id;
      std::string error = last_error;
      int64_t not_before = not_before_unix_ms;
      session_ << "UPDATE batches SET attempts = attempts + 1, not_before = ?, last_error = ? "
                  "WHERE batch_id = ?",
          use(not_before), use(error), use(id), now;
      tx.commit();
    });
  }

  int64_t depth(const std::string& sink) override {
    return guarded("measuring the outbox depth of sink " + sink, [&] {
      std::string s = sink;
      int64_t after_last_batch = 0;
      int64_t in_pending = 0;
      // A dead receiver's outbox grows to millions of items, and every scrape measures it.
      static const std::string sql =
          "SELECT " + outbox_items_after(
                          "IFNULL((SELECT last_batched_seq FROM sink_progress WHERE sink = ?), 0)");
      session_ << sql, use(s), into(after_last_batch), now;
      session_ << "SELECT IFNULL(SUM(item_count), 0) FROM batches "
                  "WHERE sink = ? AND state = 'pending'",
          use(s), into(in_pending), now;
      return after_last_batch + in_pending;
    });
  }

  std::size_t compact(const std::vector<std::string>& sinks, int64_t delivered_before_unix_ms,
                      std::size_t max_items) override {
    return guarded("compacting the outbox", [&]() -> std::size_t {
      if (max_items == 0) return 0;
      WriteTransaction tx(session_);
      // The sinks named and every sink that ever took a batch (until forget_sink): a sink
      // dropped from the configuration for a while must find its items when it comes back.
      std::set<std::string> waiting(sinks.begin(), sinks.end());
      {
        std::vector<std::string> known;
        session_ << "SELECT sink FROM sink_progress", into(known), now;
        waiting.insert(known.begin(), known.end());
      }
      if (waiting.empty()) return 0;
      // A sink takes its batches strictly in order, so every item up to the last one of its
      // last batch completed in time is delivered to it.
      int64_t through = std::numeric_limits<int64_t>::max();
      for (const std::string& sink : waiting) {
        std::string name = sink;
        int64_t before = delivered_before_unix_ms;
        int64_t last = 0;
        // Newest first on batches_by_sink_last_item: batches are delivered in order, so this
        // reads only the batches delivered since the cutoff.
        session_ << "SELECT IFNULL((SELECT last_seq FROM batches "
                    "WHERE sink = ? AND state = 'delivered' AND delivered_at < ? "
                    "ORDER BY last_seq DESC LIMIT 1), 0)",
            use(name), use(before), into(last), now;
        through = std::min(through, last);
      }
      // A pending batch is retried with the same items, whoever it belongs to.
      int64_t first_pending = 0;
      session_ << "SELECT IFNULL(MIN(first_seq), 0) FROM batches WHERE state = 'pending'",
          into(first_pending), now;
      if (first_pending > 0) through = std::min(through, first_pending - 1);
      int64_t first = 0;
      session_ << "SELECT IFNULL(MIN(seq), 0) FROM outbox", into(first), now;
      if (first == 0 || first > through) return 0;
      // One bounded range of the rowid per call: the write lock is held briefly.
      int64_t last = std::min(through, first + static_cast<int64_t>(max_items) - 1);
      session_ << "DELETE FROM outbox WHERE seq BETWEEN ? AND ?", use(first), use(last), now;
      const std::size_t deleted = changes();
      tx.commit();
      return deleted;
    });
  }

  bool forget_sink(const std::string& sink) override {
    return guarded("forgetting sink " + sink, [&] {
      WriteTransaction tx(session_);
      std::string name = sink;
      session_ << "DELETE FROM batches WHERE sink = ? AND state = 'pending'", use(name), now;
      session_ << "DELETE FROM sink_progress WHERE sink = ?", use(name), now;
      const bool known = changes() > 0;
      tx.commit();
      return known;
    });
  }

  std::vector<std::string> sinks_with_batches() override {
    return guarded("listing the sinks that took batches", [&] {
      std::vector<std::string> names;
      session_ << "SELECT sink FROM sink_progress ORDER BY sink", into(names), now;
      return names;
    });
  }

  void save_synced_staff(const std::string& list_source,
                         const std::vector<SyncedStaff>& entries) override {
    guarded("saving the staff list of source " + list_source, [&] {
      if (list_source.empty()) fail("a synced staff list needs its source");
      std::vector<std::string> source, code, name, agency;
      std::vector<int> leader, active;
      std::vector<int64_t> at;
      for (const auto& e : entries) {
        if (e.source != list_source) {
          fail("the staff list of source " + list_source + " has an entry of source \"" + e.source +
               "\" (" + e.staff_code + ")");
        }
        source.push_back(e.source);
        code.push_back(e.staff_code);
        name.push_back(e.full_name);
        agency.push_back(e.agency_code);
        leader.push_back(e.leader ? 1 : 0);
        active.push_back(e.active ? 1 : 0);
        at.push_back(e.synced_at_unix_ms);
      }
      WriteTransaction tx(session_);
      // Whom the list no longer names has left, as far as the source knows: inactive, with what
      // the source said of them last and when. Those it names get their entry back below.
      std::string s = list_source;
      session_ << "UPDATE synced_staff SET active = 0 WHERE source = ? AND active = 1", use(s), now;
      if (!entries.empty()) {
        session_ << "INSERT INTO synced_staff (source, staff_code, full_name, agency_code, "
                    "leader, active, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (source, staff_code) DO UPDATE SET "
                    "full_name = excluded.full_name, agency_code = excluded.agency_code, "
                    "leader = excluded.leader, active = excluded.active, "
                    "synced_at = excluded.synced_at",
            use(source), use(code), use(name), use(agency), use(leader), use(active), use(at), now;
      }
      tx.commit();
    });
  }

  std::vector<SyncedStaff> synced_staff() override {
    return guarded("reading synced staff lists", [&] {
      std::vector<std::string> source, code, name, agency;
      std::vector<int> leader, active;
      std::vector<int64_t> at;
      session_ << "SELECT source, staff_code, full_name, agency_code, leader, active, synced_at "
                  "FROM synced_staff ORDER BY synced_at, source, staff_code",
          into(source), into(code), into(name), into(agency), into(leader), into(active), into(at),
          now;
      std::vector<SyncedStaff> out(source.size());
      for (std::size_t i = 0; i < source.size(); ++i) {
        out[i] = SyncedStaff{std::move(source[i]),
                             std::move(code[i]),
                             std::move(name[i]),
                             std::move(agency[i]),
                             leader[i] != 0,
                             active[i] != 0,
                             at[i]};
      }
      return out;
    });
  }

  std::vector<QuarantineRow> quarantine(const std::string& source, const std::string& reason,
                                        std::size_t max_rows, int64_t after_id) override {
    return guarded("reading quarantine", [&] {
      std::string src = source;
      std::string why = reason;
      int64_t after = after_id;
      int64_t n = static_cast<int64_t>(max_rows);
      std::vector<int64_t> id, created;
      std::vector<std::string> system, source_id, record_id, reasons, field, message, payload,
          location, fields;
      // An empty filter matches everything; source matches the instance or the source system.
      session_ << "SELECT id, source_system, source_id, record_id, reason, field, message, "
                  "payload, location, created_at, fields FROM quarantine "
                  "WHERE id > ? AND (? = '' OR source = ? OR source_system = ?) "
                  "AND (? = '' OR reason = ?) ORDER BY id LIMIT ?",
          use(after), use(src), use(src), use(src), use(why), use(why), use(n), into(id),
          into(system), into(source_id), into(record_id), into(reasons), into(field), into(message),
          into(payload), into(location), into(created), into(fields), now;
      std::vector<QuarantineRow> out(id.size());
      for (std::size_t i = 0; i < id.size(); ++i) {
        auto parsed = parse_reason(reasons[i]);
        if (!parsed) {
          fail("quarantine row " + std::to_string(id[i]) + " has an unknown reason '" + reasons[i] +
               "'");
        }
        out[i].id = id[i];
        out[i].created_at_unix_ms = created[i];
        out[i].entry = QuarantineEntry{system[i],  source_id[i], record_id[i], *parsed,  field[i],
                                       message[i], payload[i],   location[i],  fields[i]};
      }
      return out;
    });
  }

  std::vector<DeadLetter> dead_letters(const std::string& sink, std::size_t max_rows,
                                       int64_t after_id) override {
    return guarded("reading dead letters", [&] {
      std::string s = sink;
      int64_t after = after_id;
      int64_t n = static_cast<int64_t>(max_rows);
      std::vector<int64_t> id, created, replayed;
      std::vector<std::string> sinks, batch, key, code, message, payload;
      session_ << "SELECT id, sink, batch_id, key, code, message, payload, created_at, replayed "
                  "FROM dead_letters WHERE id > ? AND (? = '' OR sink = ?) ORDER BY id LIMIT ?",
          use(after), use(s), use(s), use(n), into(id), into(sinks), into(batch), into(key),
          into(code), into(message), into(payload), into(created), into(replayed), now;
      std::vector<DeadLetter> out(id.size());
      for (std::size_t i = 0; i < id.size(); ++i) {
        out[i] = DeadLetter{id[i],      sinks[i],   batch[i],   key[i],          code[i],
                            message[i], payload[i], created[i], replayed[i] != 0};
      }
      return out;
    });
  }

  bool replay_dead_letter(int64_t id) override {
    return guarded("replaying dead letter " + std::to_string(id), [&] {
      WriteTransaction tx(session_);
      int64_t letter_id = id;
      std::vector<std::string> key, payload;
      std::vector<int64_t> replayed;
      session_ << "SELECT key, payload, replayed FROM dead_letters WHERE id = ?", use(letter_id),
          into(key), into(payload), into(replayed), now;
      if (key.empty() || replayed[0] != 0) {
        tx.commit();
        return false;
      }
      append_outbox({OutboxItem{0, outbox_kind_of_key(key[0]), key[0], payload[0]}});
      int64_t at = clock_.now_unix_ms();
      session_ << "UPDATE dead_letters SET replayed = 1, replayed_at = ? WHERE id = ?", use(at),
          use(letter_id), now;
      tx.commit();
      return true;
    });
  }

  void audit(const std::string& actor, const std::string& action,
             const std::string& detail) override {
    guarded("writing the audit log (" + action + ")", [&] {
      std::string a = actor, what = action, d = detail;
      int64_t at = clock_.now_unix_ms();
      session_ << "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)", use(at),
          use(a), use(what), use(d), now;
    });
  }

  std::vector<QuarantineCount> quarantine_counts() override {
    return guarded("counting quarantine", [&] {
      std::vector<std::string> sources, reasons;
      std::vector<int64_t> counts;
      session_ << "SELECT source, reason, COUNT(*) FROM quarantine GROUP BY source, reason "
                  "ORDER BY source, reason",
          into(sources), into(reasons), into(counts), now;
      std::vector<QuarantineCount> out;
      for (std::size_t i = 0; i < sources.size(); ++i)
        out.push_back({sources[i], reasons[i], counts[i]});
      return out;
    });
  }

  std::vector<HourCount> stored_per_hour(int64_t since_unix_ms) override {
    return guarded("counting stored records", [&] {
      // The history is kept in the order revisions were stored, so the newest are read first
      // and the read stops well past the first one older than `since`: the dashboard's chart
      // of the last day no longer reads the whole history under the store's mutex (3.5 s,
      // pages waiting, for 2 M revisions). The margin covers a clock set back meanwhile.
      constexpr int kOlderRowsBeforeStopping = 10000;
      sqlite3_stmt* newest = newest_revisions_.get(
          db_, "SELECT received_at FROM record_revisions ORDER BY rowid DESC", path_);
      store_detail::StatementScope scope(newest);
      std::map<int64_t, int64_t> per_hour;
      int older = 0;
      int rc;
      while ((rc = sqlite3_step(newest)) == SQLITE_ROW) {
        const int64_t at = sqlite3_column_int64(newest, 0);
        if (at < since_unix_ms) {
          if (++older >= kOlderRowsBeforeStopping) break;
          continue;
        }
        ++per_hour[at / 3600000 * 3600000];
      }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        store_detail::sqlite_fail(db_, path_, "reading the newest revisions");
      }
      std::vector<HourCount> out;
      out.reserve(per_hour.size());
      for (const auto& [hour, count] : per_hour) out.push_back({hour, count});
      return out;
    });
  }

  StoreCounts counts() override {
    return guarded("counting", [&] {
      StoreCounts c;
      // One read transaction so the counts agree with each other.
      session_ << "BEGIN", now;
      try {
        // records, record_revisions and the outbox are counted from their first and last
        // rowid, not row by row: a province's tables are gigabytes, and every status call
        // and metrics scrape counted them under the store's mutex (0.8 s with a warm page
        // cache and 6 s cold for 1.5 M records, all that time no page committed). Exact
        // because nothing deletes from records or record_revisions and every insert takes
        // the last rowid + 1 (a rolled-back one leaves no gap), and for the outbox see
        // outbox_items_after. StoreTest.CountsAgreeWithCountingRows.
        session_ << "SELECT IFNULL(MAX(rowid), 0) FROM records", into(c.records), now;
        session_ << "SELECT IFNULL(MAX(rowid), 0) FROM record_revisions", into(c.revisions), now;
        session_ << "SELECT COUNT(*) FROM quarantine", into(c.quarantined), now;
        session_ << "SELECT COUNT(*) FROM dead_letters WHERE replayed = 0", into(c.dead_letters),
            now;
        // Batches are delivered in seq order, so a sink has everything up to the last seq of
        // its newest delivered batch; the slowest sink decides what is still pending.
        static const std::string pending_sql =
            "SELECT " + outbox_items_after(
                            "IFNULL((SELECT MIN(done) FROM "
                            "(SELECT p.sink, IFNULL((SELECT MAX(b.last_seq) FROM batches b WHERE "
                            "b.sink = p.sink AND b.state = 'delivered'), 0) AS done "
                            "FROM sink_progress p)), 0)");
        session_ << pending_sql, into(c.outbox_pending), now;
        // c.revisions is the change log's last rowid (above).
        int64_t revisions_read = 0;
        session_ << "SELECT revisions_read FROM scoring_position WHERE id = 1",
            into(revisions_read), now;
        c.revisions_to_read = c.revisions - revisions_read;
        session_ << "SELECT COUNT(*) FROM dirty_staff_months", into(c.staff_months_to_score), now;
        session_ << "COMMIT", now;
      } catch (...) {
        session_ << "ROLLBACK", now;
        throw;
      }
      return c;
    });
  }

  void scan_month_for_scoring(const std::string& month,
                              const std::vector<std::string>& split_before,
                              const PartVisitor& visit) override {
    const std::string what = "scanning month " + month + " for scoring";
    // The parts' connections and batches are the store's, kept from scan to scan.
    std::lock_guard scan_lock(scan_mutex_);
    const std::size_t parts = split_before.size() + 1;
    while (scan_parts_.size() < parts) scan_parts_.push_back(std::make_unique<ScanPart>());
    // Whatever happens, no part keeps a read open: an open read pins its snapshot in the WAL.
    struct ResetParts {
      std::vector<std::unique_ptr<ScanPart>>& parts;
      ~ResetParts() {
        for (auto& p : parts) {
          if (p->open != nullptr) sqlite3_reset(p->open);
          p->open = nullptr;
          // The batch is reused from staff to staff, not kept between scans (issue 18).
          p->batch = ScanBatch{};
        }
      }
    } reset_parts{scan_parts_};

    // Each part's first step under the store's mutex: a read's snapshot is taken at its first
    // step, and no commit of this store can come between them, so every part reads the same one.
    std::vector<int> first_step(parts);
    guarded(what, [&] {
      for (std::size_t i = 0; i < parts; ++i) {
        // A small page cache: the scan reads the index once, in order, and never comes back to
        // a page, so a bigger one would only add to the hub's RSS (issue 7: < 100 MB).
        constexpr int kScanCacheKib = 1024;
        ScanPart& part = *scan_parts_[i];
        sqlite3* reader = part.connection.get(path_, busy_timeout_ms_, kScanCacheKib);
        const bool bounded = i + 1 < parts;
        sqlite3_stmt* s = (bounded ? part.bounded : part.unbounded)
                              .get(reader, store_detail::month_scan_sql(bounded), path_);
        part.open = s;
        store_detail::bind_text(s, 1, month);
        // Bound without a copy (SQLITE_STATIC): the text must outlive the scan, so no temporary.
        // The literal's "" binds empty text, not NULL (which no staff code is >=).
        const std::string_view from = i == 0 ? std::string_view("") : split_before[i - 1];
        store_detail::bind_text(s, 2, from);
        if (bounded) store_detail::bind_text(s, 3, split_before[i]);
        if (before_scan_part_) before_scan_part_(i);
        first_step[i] = sqlite3_step(s);
      }
    });

    struct Failure {
      std::exception_ptr error;
      bool from_visitor = false;
    };
    std::vector<Failure> failures(parts);
    std::atomic<bool> stop{false};
    const auto read_part = [&](std::size_t i) {
      ScanPart& part = *scan_parts_[i];
      sqlite3_stmt* s = part.open;
      ScanBatch& batch = part.batch;
      std::string staff;
      std::size_t& n = batch.count;
      n = 0;
      const auto flush = [&](bool more) {
        if (n == 0) return;
        batch.more = more;
        try {
          visit(i, staff, batch);
        } catch (...) {
          failures[i] = {std::current_exception(), true};
          stop = true;
        }
        n = 0;
      };
      try {
        for (int rc = first_step[i]; rc != SQLITE_DONE; rc = sqlite3_step(s)) {
          if (rc != SQLITE_ROW) {
            store_detail::sqlite_fail(sqlite3_db_handle(s), path_, "reading records");
          }
          const std::string_view row_staff = store_detail::column_text(s, 0);
          if (row_staff != staff) {
            if (stop.load(std::memory_order_relaxed)) return;  // another part failed
            flush(false);
            staff.assign(row_staff);
          } else if (n >= kScanBatchRecords &&
                     sqlite3_column_int64(s, 7) != batch.records[n - 1].work_date.days) {
            // A large staff month goes in batches of whole days (rows come in date order).
            if (stop.load(std::memory_order_relaxed)) return;
            flush(true);
          }
          if (n >= batch.records.size()) batch.records.resize(n + 1);
          if (n >= batch.received_at.size()) batch.received_at.resize(n + 1);
          store_detail::read_scoring_row(s, batch.records[n], batch.received_at[n], path_);
          ++n;
        }
        if (!stop.load(std::memory_order_relaxed)) flush(false);
      } catch (...) {
        failures[i] = {std::current_exception(), false};
        stop = true;
      }
    };
    {
      std::vector<std::jthread> others;
      try {
        others.reserve(parts - 1);
        for (std::size_t i = 1; i < parts; ++i) others.emplace_back(read_part, i);
      } catch (...) {  // no thread to be had: the parts started stop, and this one is not read
        failures[0] = {std::current_exception(), false};
        stop = true;
      }
      if (!stop) read_part(0);
    }  // joined

    for (const Failure& f : failures) {
      if (!f.error) continue;
      if (f.from_visitor) std::rethrow_exception(f.error);
      try {
        std::rethrow_exception(f.error);
      } catch (const StoreError& e) {
        throw StoreError(std::string(e.what()) + " while " + what);
      } catch (const std::exception& e) {
        throw StoreError("store " + path_ + ": " + e.what() + " while " + what);
      }
    }
  }

 private:
  // A store's file is never empty: a new one is made under another name and renamed into place
  // with its schema (make_store). So an empty file was wiped or truncated (a restore that copied
  // nothing, a full disk), and taking it as a new store would start from nothing.
  static Session open_session(const std::string& path, const SqliteStorageOptions& options,
                              const Clock& clock) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec && size == 0) {
      throw StoreError("store " + path +
                       " is empty (0 bytes), which a kpihub store never is: the file was wiped "
                       "or cut short. Restore it from a backup (docs/operations.md); to start a "
                       "new store instead, delete the file");
    }
    if (ec && !std::filesystem::exists(path, ec)) make_store(path, options, clock);
    return configure(path, options, clock);
  }

  // Makes the store under a fresh name of its own (`path` + ".creating.XXXXXX", made with
  // O_EXCL: no other process, even one of the same pid in another container, has it), complete
  // with its schema and its WAL folded in, and links it to `path`: the store appears whole or
  // not at all. Another process may make the same store at the same moment (`kpihub status`
  // while the hub starts): link() never replaces a store another process put in place first
  // (rename() would, and that process would go on writing into a deleted file). A crash leaves
  // at most a `.creating.*` file beside the store, which nothing reads (docs/operations.md).
  static void make_store(const std::string& path, const SqliteStorageOptions& options,
                         const Clock& clock) {
    std::string creating = path + ".creating.XXXXXX";
    const int fd = ::mkstemp(creating.data());
    if (fd < 0) {
      throw StoreError("store " + path + ": cannot open: a new store cannot be made beside it (" +
                       creating + "): " + std::strerror(errno));
    }
    ::close(fd);  // SQLite takes an empty file as a new database
    const auto remove_creating = [&] {
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        std::error_code ignored;
        std::filesystem::remove(creating + suffix, ignored);
      }
    };
    try {
      Session session = configure(creating, options, clock);
      // The schema must be in the file itself before it gets the store's name: the WAL stays
      // with the temporary name.
      int busy = 1;
      session << "PRAGMA wal_checkpoint(TRUNCATE)", into(busy), now;
      if (busy != 0) {
        throw StoreError("store " + path + ": the new store's schema could not be written into " +
                         creating + " (checkpoint busy)");
      }
      session.close();
    } catch (...) {
      remove_creating();
      throw;
    }
    const bool linked = ::link(creating.c_str(), path.c_str()) == 0;
    const int link_error = errno;
    remove_creating();
    if (!linked && link_error != EEXIST) {
      throw StoreError("store " + path + ": cannot put the new store in place from " + creating +
                       ": " + std::strerror(link_error));
    }
    // The new name must survive a power cut.
    const std::string folder = std::filesystem::path(path).parent_path().string();
    const int dir = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY);
    if (dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
  }

  static Session configure(const std::string& path, const SqliteStorageOptions& options,
                           const Clock& clock) {
    const std::string where = "store " + path + ": ";
    try {
      // Poco retries a failed open until its login timeout (60 s by default); for a local file
      // a failure is final, so the shortest timeout is used.
      constexpr std::size_t kOpenTimeoutSeconds = 1;
      Session session(new Poco::Data::SQLite::SessionImpl(path, kOpenTimeoutSeconds));
      int64_t busy_ms = options.busy_timeout_ms;
      session << "PRAGMA busy_timeout = " + std::to_string(busy_ms), now;
      std::string mode;
      session << "PRAGMA journal_mode = WAL", into(mode), now;
      if (mode != "wal") {
        throw StoreError(where + "cannot switch to WAL journal mode (got '" + mode + "')");
      }
      session << "PRAGMA synchronous = FULL", now;
      session << "PRAGMA foreign_keys = ON", now;
      session << "PRAGMA cache_size = -" + std::to_string(options.cache_kib), now;
      session << "PRAGMA wal_autocheckpoint = " + std::to_string(options.wal_autocheckpoint_pages),
          now;
      store_detail::migrate(session, path, clock.now_unix_ms(), options.on_migration);
      return session;
    } catch (const StoreError&) {
      throw;
    } catch (const Poco::Exception& e) {
      throw StoreError(where + "cannot open: " + e.displayText());
    } catch (const std::exception& e) {
      throw StoreError(where + "cannot open: " + e.what());
    }
  }

  template <typename F>
  std::invoke_result_t<F&> guarded(const std::string& what, F&& body) {
    std::lock_guard lock(mutex_);
    try {
      return body();
    } catch (const StoreError& e) {
      throw StoreError(std::string(e.what()) + " while " + what);
    } catch (const Poco::Exception& e) {
      throw StoreError("store " + path_ + ": " + e.displayText() + " while " + what);
    } catch (const std::exception& e) {
      throw StoreError("store " + path_ + ": " + e.what() + " while " + what);
    }
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw StoreError("store " + path_ + ": " + problem);
  }

  std::size_t changes() {
    int64_t n = 0;
    session_ << "SELECT changes()", into(n), now;
    return static_cast<std::size_t>(n);
  }

  // Keeps a record's last score under its current staff month (record_scores' key).
  // Steps `select` (a scoring_select_sql() query, bound) to its end, appending each row's
  // record and received_at to `out`.
  void append_scoring_rows(sqlite3_stmt* select, StaffMonthForScoring& out) {
    int rc;
    while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
      store_detail::read_scoring_row(select, out.records.emplace_back(),
                                     out.received_at.emplace_back(), path_);
    }
    if (rc != SQLITE_DONE) store_detail::sqlite_fail(db_, path_, "reading records");
  }

  // The generation of the marks this transaction writes: greater than any written before
  // (scoring_position.marks_written, migration 7), so a scorer clears only a mark nobody
  // wrote since it listed it (commit_scoring).
  int64_t next_mark_generation() {
    int64_t generation = 0;
    session_ << "UPDATE scoring_position SET marks_written = marks_written + 1 WHERE id = 1 "
                "RETURNING marks_written",
        into(generation), now;
    return generation;
  }

  // Marks the staff days of `days_of` dirty: a new mark, or the days added to the mark there
  // is, with a new generation either way, so the scorer keeps a mark it is working on.
  void mark_dirty(const std::map<std::pair<std::string, std::string>, DayMask>& days_of,
                  int64_t at) {
    if (days_of.empty()) return;
    const int64_t generation = next_mark_generation();
    sqlite3_stmt* mark = mark_dirty_.get(
        db_,
        "INSERT INTO dirty_staff_months (staff_code, month, marked_at, days, generation) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (staff_code, month) DO UPDATE SET "
        "generation = excluded.generation, marked_at = excluded.marked_at, "
        "days = days | excluded.days",
        path_);
    for (const auto& [key, days] : days_of) {
      store_detail::StatementScope scope(mark);
      store_detail::bind_text(mark, 1, key.first);
      store_detail::bind_text(mark, 2, key.second);
      sqlite3_bind_int64(mark, 3, at);
      sqlite3_bind_int64(mark, 4, static_cast<int64_t>(days));
      sqlite3_bind_int64(mark, 5, generation);
      if (sqlite3_step(mark) != SQLITE_DONE) {
        store_detail::sqlite_fail(db_, path_,
                                  "marking staff " + key.first + " in " + key.second + " dirty");
      }
    }
  }

  // One transaction: marks the staff days of up to `max_revisions` revisions logged after
  // scoring_position and up to `last`, and moves the position past them. Returns the new
  // position (`last` or beyond when another process has read that far meanwhile).
  int64_t mark_logged_revisions(std::size_t max_revisions, int64_t last) {
    WriteTransaction tx(session_);
    int64_t position = 0;
    session_ << "SELECT revisions_read FROM scoring_position WHERE id = 1", into(position), now;
    if (position >= last) return position;
    sqlite3_stmt* read = read_log_.get(db_,
                                       "SELECT rowid, staff_code, month, work_date "
                                       "FROM record_revisions WHERE rowid > ?1 AND rowid <= ?3 "
                                       "ORDER BY rowid LIMIT ?2",
                                       path_);
    std::map<std::pair<std::string, std::string>, DayMask> changed;
    std::size_t read_count = 0;
    {
      store_detail::StatementScope scope(read);
      sqlite3_bind_int64(read, 1, position);
      sqlite3_bind_int64(read, 2, static_cast<int64_t>(max_revisions));
      sqlite3_bind_int64(read, 3, last);
      int rc;
      while ((rc = sqlite3_step(read)) == SQLITE_ROW) {
        ++read_count;
        position = sqlite3_column_int64(read, 0);
        const std::string_view staff = store_detail::column_text(read, 1);
        // A record of no known staff member scores nothing until a revision names one.
        if (staff.empty()) continue;
        changed[{std::string(staff), std::string(store_detail::column_text(read, 2))}] |=
            day_bit(Date{static_cast<int32_t>(sqlite3_column_int64(read, 3))});
      }
      if (rc != SQLITE_DONE) {
        store_detail::sqlite_fail(db_, path_,
                                  "reading record_revisions after row " + std::to_string(position));
      }
    }
    // The rows up to `last` are there (nothing is deleted from the log): none read means the
    // file changed under us, and the caller's loop must not spin on it.
    if (read_count == 0) {
      fail("record_revisions has no row after " + std::to_string(position) + " up to " +
           std::to_string(last) + ", which it had a moment ago");
    }
    mark_dirty(changed, clock_.now_unix_ms());
    session_ << "UPDATE scoring_position SET revisions_read = ? WHERE id = 1", use(position), now;
    tx.commit();
    return position;
  }

  void move_score(const std::string& record_id, const std::string& old_staff,
                  const std::string& old_month, const std::string& new_staff,
                  const std::string& new_month) {
    sqlite3_stmt* update =
        move_score_.get(db_,
                        "UPDATE OR REPLACE record_scores SET month = ?1, staff_code = ?2 "
                        "WHERE month = ?3 AND staff_code = ?4 AND record_id = ?5",
                        path_);
    store_detail::StatementScope scope(update);
    store_detail::bind_text(update, 1, new_month);
    store_detail::bind_text(update, 2, new_staff);
    store_detail::bind_text(update, 3, old_month);
    store_detail::bind_text(update, 4, old_staff);
    store_detail::bind_text(update, 5, record_id);
    if (sqlite3_step(update) != SQLITE_DONE) {
      store_detail::sqlite_fail(db_, path_, "moving the score of " + record_id);
    }
  }

  std::vector<WorkRecord> read_records(const std::string& where,
                                       const std::vector<std::string>& params,
                                       std::size_t expected_rows = 0) {
    const std::string sql = store_detail::record_select_sql() + where;
    sqlite3_stmt* select = record_reads_[sql].get(db_, sql, path_);
    store_detail::StatementScope scope(select);
    for (std::size_t i = 0; i < params.size(); ++i) {
      store_detail::bind_text(select, static_cast<int>(i + 1), params[i]);
    }
    std::vector<WorkRecord> out;
    out.reserve(expected_rows);
    int rc;
    while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
      store_detail::read_record_row(select, out.emplace_back(), path_);
    }
    if (rc != SQLITE_DONE) store_detail::sqlite_fail(db_, path_, "reading records " + where);
    return out;
  }

  std::vector<OutboxItem> read_outbox(const std::string& where, int64_t a, int64_t b) {
    std::vector<int64_t> seq, kind;
    std::vector<std::string> key, payload;
    session_ << "SELECT seq, kind, key, payload FROM outbox " + where, use(a), use(b), into(seq),
        into(kind), into(key), into(payload), now;
    std::vector<OutboxItem> out(seq.size());
    for (std::size_t i = 0; i < seq.size(); ++i) {
      out[i] = OutboxItem{seq[i], static_cast<OutboxKind>(kind[i]), key[i], payload[i]};
    }
    return out;
  }

  void append_outbox(const std::vector<OutboxItem>& items) {
    if (items.empty()) return;
    sqlite3_stmt* insert = append_outbox_.get(db_,
                                              "INSERT INTO outbox (kind, key, payload, created_at) "
                                              "VALUES (?, ?, ?, ?)",
                                              path_);
    const int64_t at = clock_.now_unix_ms();
    for (const auto& item : items) {
      store_detail::StatementScope scope(insert);
      sqlite3_bind_int64(insert, 1, static_cast<int64_t>(item.kind));
      store_detail::bind_text(insert, 2, item.key);
      store_detail::bind_text(insert, 3, item.payload);
      sqlite3_bind_int64(insert, 4, at);
      if (sqlite3_step(insert) != SQLITE_DONE) {
        store_detail::sqlite_fail(db_, path_, "appending " + item.key + " to the outbox");
      }
    }
  }

  int64_t last_quarantine_id() {
    int64_t id = 0;
    session_ << "SELECT IFNULL(MAX(id), 0) FROM quarantine", into(id), now;
    return id;
  }

  // Deletes a quarantine entry and counts it out of its source's quarantined items.
  void remove_quarantine_entry(int64_t id) {
    session_ << "UPDATE cursors SET quarantined = MAX(0, quarantined - 1) "
                "WHERE source = (SELECT source FROM quarantine WHERE id = ?)",
        use(id), now;
    session_ << "DELETE FROM quarantine WHERE id = ?", use(id), now;
  }

  // Removes the quarantine entries of `record_id` that its stored revision `revision`
  // supersedes: those of a revision not above it, and those of no readable revision that are
  // older than the page (id up to `older_up_to`). Returns how many.
  std::size_t resolve_superseded_quarantine(std::string_view record_id, int64_t revision,
                                            int64_t older_up_to) {
    sqlite3_stmt* find = quarantine_of_record_.get(
        db_, "SELECT id, fields FROM quarantine WHERE record_id = ?", path_);
    std::vector<int64_t> superseded;
    {
      store_detail::StatementScope scope(find);
      store_detail::bind_text(find, 1, record_id);
      int rc = 0;
      while ((rc = sqlite3_step(find)) == SQLITE_ROW) {
        const int64_t id = sqlite3_column_int64(find, 0);
        const std::optional<int64_t> entry_revision =
            quarantined_revision(store_detail::column_text(find, 1));
        if (entry_revision ? *entry_revision <= revision : id <= older_up_to) {
          superseded.push_back(id);
        }
      }
      if (rc != SQLITE_DONE) {
        store_detail::sqlite_fail(db_, path_,
                                  "reading the quarantine of record " + std::string(record_id));
      }
    }
    for (const int64_t id : superseded) remove_quarantine_entry(id);
    return superseded.size();
  }

  // The stored record `w` names becomes its revision w.revision, withdrawn, content unchanged.
  void withdraw(const WorkRecord& w, int64_t at) {
    sqlite3_stmt* update = withdraw_record_.get(
        db_,
        "UPDATE records SET revision = ?2, retracted = 1, changed_at = NULLIF(?3, ''), "
        "received_at = ?4 WHERE record_id = ?1",
        path_);
    store_detail::StatementScope scope(update);
    store_detail::bind_text(update, 1, w.record_id);
    sqlite3_bind_int64(update, 2, w.revision);
    const std::string changed_at = w.changed_at ? w.changed_at->str() : std::string();
    store_detail::bind_text(update, 3, changed_at);
    sqlite3_bind_int64(update, 4, at);
    if (sqlite3_step(update) != SQLITE_DONE) {
      store_detail::sqlite_fail(db_, path_, "withdrawing record " + w.record_id);
    }
  }

  void insert_quarantine(const std::string& source, const std::vector<const QuarantineEntry*>& in,
                         int64_t at) {
    std::vector<std::string> system, source_id, record_id, reason, field, message, payload,
        location, fields;
    for (const QuarantineEntry* q : in) {
      system.push_back(q->source_system);
      source_id.push_back(q->source_id);
      record_id.push_back(q->record_id);
      reason.push_back(std::string(to_string(q->reason)));
      field.push_back(q->field);
      message.push_back(q->message);
      payload.push_back(q->payload);
      location.push_back(q->location);
      fields.push_back(q->fields);
    }
    const std::size_t n = system.size();
    session_ << "INSERT INTO quarantine (source, source_system, source_id, record_id, reason, "
                "field, message, payload, location, created_at, fields) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        bind(std::vector<std::string>(n, source)), use(system), use(source_id), use(record_id),
        use(reason), use(field), use(message), use(payload), use(location),
        bind(std::vector<int64_t>(n, at)), use(fields), now;
  }

  std::pair<std::string, std::string> batch_state(const std::string& batch_id) {
    std::string id = batch_id;
    std::vector<std::string> sink, state;
    session_ << "SELECT sink, state FROM batches WHERE batch_id = ?", use(id), into(sink),
        into(state), now;
    if (sink.empty()) fail("unknown batch " + batch_id);
    return {sink[0], state[0]};
  }

  std::vector<ScoringCommit::MonthRow> read_month_rows(OutboxKind kind, const std::string& month) {
    std::string m = month;
    std::vector<std::string> months, codes, agency, json;
    std::vector<int64_t> revision;
    session_ << std::string("SELECT month, code, agency_code, revision, json FROM ") +
                    month_table(kind, path_) + " WHERE month = ? ORDER BY code",
        use(m), into(months), into(codes), into(agency), into(revision), into(json), now;
    std::vector<ScoringCommit::MonthRow> out(months.size());
    for (std::size_t i = 0; i < months.size(); ++i) {
      out[i] = ScoringCommit::MonthRow{kind, months[i], codes[i], agency[i], revision[i], json[i]};
    }
    return out;
  }

  const std::string path_;
  const int busy_timeout_ms_;
  const std::function<void(std::size_t)> before_scan_part_;
  SystemClock system_clock_;  // the clock when the options give none
  const Clock& clock_;
  std::mutex mutex_;
  Session session_;
  sqlite3* db_;  // session_'s connection, for the prepared statements below
  // Declared after session_, so they are finalized before the connection closes.
  store_detail::PreparedStatement staff_month_row_, agency_month_row_;
  store_detail::PreparedStatement lookup_record_, upsert_record_, mark_dirty_, update_cursor_,
      append_outbox_, upsert_score_, read_score_, read_received_, staff_month_scan_,
      staff_month_scores_, move_score_, staff_day_scan_, records_per_day_, record_score_,
      read_day_totals_, upsert_day_totals_, clear_dirty_, read_log_, newest_revisions_,
      withdraw_record_, quarantine_of_record_, quarantine_held_;
  std::map<std::string, store_detail::PreparedStatement> record_reads_;  // by SQL text
  store_detail::RecordScratch scratch_;
  // One part of a month scan: its read connection, its two statements (the last part has no
  // upper bound), the statement a scan has open on it, its batch.
  struct ScanPart {
    store_detail::ReadConnection connection;
    // Declared after the connection, so they are finalized before it closes.
    store_detail::PreparedStatement bounded, unbounded;
    sqlite3_stmt* open = nullptr;
    ScanBatch batch;
  };
  std::mutex scan_mutex_;
  std::vector<std::unique_ptr<ScanPart>> scan_parts_;
  Poco::UUIDGenerator uuid_generator_;
  // Generation of each dirty key as last handed to the scorer (see commit_scoring).
  std::map<StaffMonthKey, int64_t> seen_generation_;
};

}  // namespace

int sqlite_schema_version() {
  return store_detail::latest_schema_version();
}

std::string sqlite_library_version() {
  return sqlite3_libversion();
}

std::unique_ptr<Storage> open_sqlite_storage(const std::string& path,
                                             const SqliteStorageOptions& options) {
  return std::make_unique<SqliteStorage>(path, options);
}

}  // namespace kpihub
