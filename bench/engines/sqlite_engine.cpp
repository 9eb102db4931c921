// SQLite used as a log: revisions appended under an integer primary key (rowid order is
// arrival order), the latest-revision index as a WITHOUT ROWID table keyed by a 64-bit hash
// of the record id (20-odd bytes a record; a match is confirmed against the log row, so a
// hash collision cannot drop a record) or, for comparison, by the record id itself; the
// staff-day index a WITHOUT ROWID table too. One transaction per page, WAL.
#include "engine.hpp"

#include <sqlite3.h>

#include <stdexcept>
#include <string>

namespace kpihub::bench::engines {

namespace {

class Db {
 public:
  explicit Db(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("sqlite: cannot open " + path + ": " + message);
    }
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }
  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string message = error ? error : "unknown error";
      sqlite3_free(error);
      throw std::runtime_error("sqlite: " + sql + ": " + message);
    }
  }

 private:
  sqlite3* db_ = nullptr;
};

class Stmt {
 public:
  Stmt(Db& db, const char* sql) : db_(db.get()), sql_(sql) {
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: cannot prepare ") + sql + ": " +
                               sqlite3_errmsg(db_));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    return *this;
  }
  // True while a row is available.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("sqlite: ") + sql_ + ": " + sqlite3_errmsg(db_));
  }
  void run() {
    step();
    reset();
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string_view text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return {p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: bind in ") + sql_ + ": " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  const char* sql_;
  sqlite3_stmt* stmt_ = nullptr;
};

Db& configured(Db& db, const EngineOptions& options, bool synchronous_full) {
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(std::string("PRAGMA synchronous = ") + (synchronous_full ? "FULL" : "NORMAL"));
  db.exec("PRAGMA cache_size = -" + std::to_string(options.cache_mb * 1024));
  return db;
}

class SqliteEngine final : public Engine {
 public:
  SqliteEngine(const EngineOptions& options, bool synchronous_full, bool latest_by_text)
      : options_(options),
        full_(synchronous_full),
        by_text_(latest_by_text),
        db_(options.dir + "/records.db"),
        schema_(create_schema(configured(db_, options, synchronous_full), latest_by_text)),
        begin_(db_, "BEGIN"),
        commit_(db_, "COMMIT"),
        lookup_(db_, latest_by_text ? "SELECT revision, seq FROM latest WHERE record_id = ?1"
                                    : "SELECT revision, seq FROM latest WHERE h = ?1"),
        confirm_(db_, "SELECT record_id FROM log WHERE seq = ?1"),
        append_(db_, "INSERT INTO log (seq, record_id, revision, body) VALUES (?1, ?2, ?3, ?4)"),
        latest_(db_, latest_by_text
                         ? "INSERT OR REPLACE INTO latest (record_id, revision, seq) VALUES "
                           "(?1, ?2, ?3)"
                         : "INSERT OR REPLACE INTO latest (h, revision, seq) VALUES (?1, ?2, ?3)"),
        staff_day_(db_,
                   "INSERT OR REPLACE INTO staff_day (staff, day, h, seq) VALUES (?1, ?2, ?3, ?4)"),
        quarantine_(db_, "INSERT INTO quarantine (payload) VALUES (?1)"),
        cursor_(db_, "INSERT OR REPLACE INTO cursors (source, cursor) VALUES ('eoffice', ?1)"),
        read_day_(db_,
                  "SELECT l.revision, l.record_id, l.body FROM staff_day s JOIN log l ON l.seq = "
                  "s.seq WHERE s.staff = ?1 AND s.day = ?2"),
        read_month_(db_,
                    "SELECT l.revision, l.record_id, l.body FROM staff_day s JOIN log l ON l.seq = "
                    "s.seq ORDER BY s.staff, s.day, s.h") {}

  std::string settings() const override {
    return std::string("WAL, synchronous=") + (full_ ? "FULL" : "NORMAL") +
           ", cache_size=" + std::to_string(options_.cache_mb) + " MiB, latest keyed by " +
           (by_text_ ? "record_id (WITHOUT ROWID)"
                     : "64-bit hash of record_id (WITHOUT ROWID), a match confirmed in the log") +
           ", staff_day WITHOUT ROWID (staff, day, hash)";
  }

  std::size_t commit_page(const Page& page) override {
    begin_.run();
    std::size_t appended = 0;
    for (const Record& r : page.records) {
      const auto h = static_cast<std::int64_t>(id_hash(r.record_id));
      if (by_text_) {
        lookup_.bind(1, r.record_id);
      } else {
        lookup_.bind(1, h);
      }
      const bool found = lookup_.step();
      const std::int64_t stored = found ? lookup_.integer(0) : 0;
      const std::int64_t stored_seq = found ? lookup_.integer(1) : 0;
      lookup_.reset();
      if (found && !by_text_) confirm(stored_seq, r.record_id);
      if (found && stored >= r.revision) continue;
      const std::int64_t seq = next_seq_++;
      append_.bind(1, seq).bind(2, r.record_id).bind(3, std::int64_t{r.revision}).bind(4, r.body);
      append_.run();
      if (by_text_) {
        latest_.bind(1, r.record_id);
      } else {
        latest_.bind(1, h);
      }
      latest_.bind(2, std::int64_t{r.revision}).bind(3, seq).run();
      staff_day_.bind(1, r.staff).bind(2, std::int64_t{r.day}).bind(3, h).bind(4, seq).run();
      ++appended;
    }
    for (const std::string& q : page.quarantine) quarantine_.bind(1, q).run();
    cursor_.bind(1, page.cursor).run();
    commit_.run();
    return appended;
  }

  void settle() override { db_.exec("PRAGMA wal_checkpoint(TRUNCATE)"); }

  ReadTotals read_staff_day(std::string_view staff, std::uint8_t day) override {
    read_day_.bind(1, staff).bind(2, std::int64_t{day});
    ReadTotals t = drain(read_day_);
    read_day_.reset();
    return t;
  }

  ReadTotals read_month_by_staff() override {
    ReadTotals t = drain(read_month_);
    read_month_.reset();
    return t;
  }

 private:
  static bool create_schema(Db& db, bool by_text) {
    db.exec(
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL, revision INTEGER "
        "NOT NULL, body TEXT NOT NULL)");
    db.exec(by_text ? "CREATE TABLE latest (record_id TEXT PRIMARY KEY, revision INTEGER NOT "
                      "NULL, seq INTEGER NOT NULL) WITHOUT ROWID"
                    : "CREATE TABLE latest (h INTEGER PRIMARY KEY, revision INTEGER NOT NULL, seq "
                      "INTEGER NOT NULL) WITHOUT ROWID");
    db.exec(
        "CREATE TABLE staff_day (staff TEXT NOT NULL, day INTEGER NOT NULL, h INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, PRIMARY KEY (staff, day, h)) WITHOUT ROWID");
    db.exec("CREATE TABLE quarantine (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)");
    db.exec("CREATE TABLE cursors (source TEXT PRIMARY KEY, cursor TEXT NOT NULL)");
    return true;
  }

  void confirm(std::int64_t seq, std::string_view record_id) {
    confirm_.bind(1, seq);
    const std::string stored(confirm_.step() ? confirm_.text(0) : "");
    confirm_.reset();
    if (stored != record_id)
      throw std::runtime_error("sqlite: record " + std::string(record_id) +
                               " shares its 64-bit hash with the record at seq " +
                               std::to_string(seq) + " (" + stored + ")");
  }

  static ReadTotals drain(Stmt& s) {
    ReadTotals t;
    while (s.step()) {
      ++t.records;
      t.revision_sum += static_cast<std::uint64_t>(s.integer(0));
      t.bytes += 6 + s.text(1).size() + s.text(2).size();
    }
    return t;
  }

  EngineOptions options_;
  bool full_;
  bool by_text_;
  Db db_;
  bool schema_;
  Stmt begin_, commit_, lookup_, confirm_, append_, latest_, staff_day_, quarantine_, cursor_,
      read_day_, read_month_;
  std::int64_t next_seq_ = 1;
};

}  // namespace

std::unique_ptr<Engine> open_sqlite(const EngineOptions& options, bool synchronous_full,
                                    bool latest_by_text) {
  return std::make_unique<SqliteEngine>(options, synchronous_full, latest_by_text);
}

}  // namespace kpihub::bench::engines
