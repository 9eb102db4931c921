#include <kpihub/sim/province_store.hpp>

#include <sqlite3.h>

#include <mutex>
#include <stdexcept>
#include <utility>

namespace kpihub::sim::province {

namespace {

// records WITHOUT ROWID: one B-tree keyed by record_id, where a rowid table
// with a TEXT key is two (the rows, and an index on the key) written per
// record. A file made before keeps its layout: both answer the same statements.
constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS records ("
    " record_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, sequence INTEGER NOT NULL,"
    " retracted INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS staff_months ("
    " month TEXT NOT NULL, staff_code TEXT NOT NULL, agency_code TEXT NOT NULL,"
    " revision INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (month, staff_code));"
    "CREATE TABLE IF NOT EXISTS agency_months ("
    " month TEXT NOT NULL, agency_code TEXT NOT NULL, revision INTEGER NOT NULL,"
    " body TEXT NOT NULL, PRIMARY KEY (month, agency_code));"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    " key TEXT PRIMARY KEY, body_sha256 TEXT NOT NULL, status INTEGER NOT NULL,"
    " answer TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);";

// Only the newer (revision, sequence) replaces what is held; the WHERE of the
// upsert makes "not newer" a change count of 0, which is how duplicates are
// counted without a read per record.
constexpr const char* kUpsertRecord =
    "INSERT INTO records (record_id, revision, sequence, retracted, body) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (record_id) DO UPDATE SET revision = excluded.revision, "
    "sequence = excluded.sequence, retracted = excluded.retracted, body = excluded.body "
    "WHERE excluded.revision > records.revision OR "
    "(excluded.revision = records.revision AND excluded.sequence > records.sequence)";
constexpr const char* kUpsertStaffMonth =
    "INSERT INTO staff_months (month, staff_code, agency_code, revision, body) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (month, staff_code) DO UPDATE SET "
    "agency_code = excluded.agency_code, revision = excluded.revision, body = excluded.body "
    "WHERE excluded.revision > staff_months.revision";
constexpr const char* kUpsertAgencyMonth =
    "INSERT INTO agency_months (month, agency_code, revision, body) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (month, agency_code) DO UPDATE SET revision = excluded.revision, "
    "body = excluded.body WHERE excluded.revision > agency_months.revision";
constexpr const char* kAddCounter =
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value";
constexpr const char* kInsertAnswer =
    "INSERT INTO idempotency (key, body_sha256, status, answer) VALUES (?, ?, ?, ?)";
constexpr const char* kFindAnswer =
    "SELECT body_sha256, status, answer FROM idempotency WHERE key = ?";
constexpr const char* kFindRecord =
    "SELECT revision, sequence, retracted, body FROM records WHERE record_id = ?";
constexpr const char* kStaffMonths =
    "SELECT body FROM staff_months WHERE month = ?1 AND (?2 = '' OR agency_code = ?2)"
    " ORDER BY staff_code";
constexpr const char* kAgencyMonths =
    "SELECT body FROM agency_months WHERE month = ?1 AND (?2 = '' OR agency_code = ?2)"
    " ORDER BY agency_code";
constexpr const char* kCounter = "SELECT value FROM counters WHERE name = ?";

// One statement prepared once for the life of the store and run again with
// new bindings: SQLite parses and plans it once, not per record (Poco::Data
// prepared its statements again on every execute(), which was half of the
// receiver's CPU).
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const std::string& path) : db_(db), path_(path) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      fail(std::string("preparing \"") + sql + "\"");
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Texts are bound without a copy: they must outlive the next step().
  Statement& text(int index, std::string_view value) {
    check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_STATIC),
          "binding a text");
    return *this;
  }
  Statement& integer(int index, int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value), "binding an integer");
    return *this;
  }

  // Runs a statement that returns no rows and readies it for the next
  // bindings; returns the rows it changed. Throws naming the file.
  int run(const char* doing) {
    const int rc = sqlite3_step(stmt_);
    if (rc != SQLITE_DONE) {
      const std::string why = sqlite3_errmsg(db_);
      sqlite3_reset(stmt_);
      throw std::runtime_error("the receiver's database " + path_ + ": " + why + " (" + doing +
                               ")");
    }
    const int changed = sqlite3_changes(db_);
    sqlite3_reset(stmt_);
    return changed;
  }

  // Steps a query: true while a row is there. Throws naming the file.
  bool row(const char* doing) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail(doing);
    return false;
  }
  int64_t column_integer(int column) { return sqlite3_column_int64(stmt_, column); }
  std::string column_text(int column) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return text == nullptr
               ? std::string()
               : std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }

  // Ends a query (its read) and forgets the bindings.
  void done() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  void check(int rc, const char* doing) {
    if (rc != SQLITE_OK) fail(doing);
  }
  [[noreturn]] void fail(const std::string& doing) {
    const std::string why = sqlite3_errmsg(db_);
    sqlite3_reset(stmt_);
    throw std::runtime_error("the receiver's database " + path_ + ": " + why + " (" + doing + ")");
  }

  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a query when the scope ends, also on an exception.
struct Query {
  explicit Query(Statement& s) : statement(s) {}
  ~Query() { statement.done(); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  Statement& statement;
};

struct Connection {
  explicit Connection(const std::string& path) {
    // Multi-thread mode (no mutex inside SQLite): the store's own mutex
    // serializes every use of the connection.
    const int rc =
        sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
      sqlite3_close_v2(db);
      throw std::runtime_error("cannot open the receiver's database " + path + ": " + why);
    }
  }
  ~Connection() { sqlite3_close_v2(db); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  sqlite3* db = nullptr;
};

}  // namespace

struct ProvinceStore::Impl {
  explicit Impl(std::string db_path)
      : path(std::move(db_path)),
        connection(path),
        db(setup(connection.db, path)),
        begin(db, "BEGIN IMMEDIATE", path),
        commit(db, "COMMIT", path),
        upsert_record(db, kUpsertRecord, path),
        upsert_staff_month(db, kUpsertStaffMonth, path),
        upsert_agency_month(db, kUpsertAgencyMonth, path),
        add_counter_stmt(db, kAddCounter, path),
        insert_answer_stmt(db, kInsertAnswer, path),
        find_answer(db, kFindAnswer, path),
        find_record(db, kFindRecord, path),
        staff_months(db, kStaffMonths, path),
        agency_months(db, kAgencyMonths, path),
        counter_stmt(db, kCounter, path) {}

  static sqlite3* setup(sqlite3* db, const std::string& path) {
    sqlite3_busy_timeout(db, 5000);
    // A batch answered 200 must survive a power cut or a kill -9: one
    // transaction per batch, synced (synchronous=FULL) before the answer.
    // A rollback journal rather than WAL: the records are mostly appended,
    // and appended pages go to the file once instead of to the WAL and again
    // at a checkpoint (the journal keeps only the few pages a batch changes,
    // kept between commits: PERSIST). 64 KiB pages: a twentieth of the
    // system calls of 4 KiB ones for the same bytes (both apply to a new
    // file; an existing one keeps its page size and is switched to the
    // journal here). An 8 MB cache, as the hub's store.
    exec(db, path,
         "PRAGMA page_size=65536; PRAGMA journal_mode=PERSIST; PRAGMA synchronous=FULL;"
         " PRAGMA cache_size=-8192;");
    exec(db, path, kSchema);
    return db;
  }

  static void exec(sqlite3* db, const std::string& path, const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string why = error != nullptr ? error : sqlite3_errmsg(db);
      sqlite3_free(error);
      throw std::runtime_error("cannot open the receiver's database " + path + ": " + why);
    }
  }

  const std::string path;
  std::mutex mutex;  // one user of the connection at a time
  Connection connection;
  sqlite3* db;
  Statement begin, commit;
  Statement upsert_record, upsert_staff_month, upsert_agency_month;
  Statement add_counter_stmt, insert_answer_stmt;
  Statement find_answer, find_record, staff_months, agency_months, counter_stmt;

  void add_counter(std::string_view name, int64_t delta) {
    if (delta == 0) return;
    add_counter_stmt.text(1, name).integer(2, delta).run("counting");
  }

  int64_t counter(std::string_view name) {
    Query q(counter_stmt);
    counter_stmt.text(1, name);
    return counter_stmt.row("reading a counter") ? counter_stmt.column_integer(0) : 0;
  }

  int64_t count(const char* sql) {
    Statement s(db, sql, path);
    return s.row("counting") ? s.column_integer(0) : 0;
  }

  std::vector<std::string> bodies(Statement& s, const std::string& month,
                                  const std::string& agency_code) {
    Query q(s);
    s.text(1, month).text(2, agency_code);
    std::vector<std::string> out;
    while (s.row("reading months")) out.push_back(s.column_text(0));
    return out;
  }

  // Runs `body` in one transaction, committed (and synced) before the answer
  // it returns is given; rolled back when it throws.
  template <typename Body>
  std::string in_transaction(Body&& body) {
    begin.run("beginning a batch");
    try {
      std::string answer = body();
      commit.run("committing a batch");
      return answer;
    } catch (...) {
      if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void finish_batch(const std::string& key, const std::string& sha, const std::string& answer,
                    std::string_view received_counter, int64_t received, int64_t rejected) {
    insert_answer_stmt.text(1, key).text(2, sha).integer(3, 200).text(4, answer).run(
        "keeping the batch's answer");
    add_counter("batches", 1);
    add_counter(received_counter, received);
    add_counter("rejected_items", rejected);
  }
};

ProvinceStore::ProvinceStore(const std::string& db_path) : impl_(std::make_unique<Impl>(db_path)) {}

ProvinceStore::~ProvinceStore() = default;

std::optional<StoredAnswer> ProvinceStore::find_answer(const std::string& idempotency_key) {
  std::lock_guard lock(impl_->mutex);
  Statement& s = impl_->find_answer;
  Query q(s);
  s.text(1, idempotency_key);
  if (!s.row("looking up an Idempotency-Key")) return std::nullopt;
  return StoredAnswer{s.column_text(0), static_cast<int>(s.column_integer(1)), s.column_text(2)};
}

std::string ProvinceStore::apply_records(
    const std::string& idempotency_key, const std::string& body_sha256,
    const std::vector<RecordVersion>& records, int64_t rejected,
    const std::function<std::string(const ApplyCounts&)>& make_answer) {
  std::lock_guard lock(impl_->mutex);
  return impl_->in_transaction([&] {
    ApplyCounts counts;
    Statement& upsert = impl_->upsert_record;
    for (const RecordVersion& r : records) {
      upsert.text(1, r.record_id)
          .integer(2, r.revision)
          .integer(3, r.sequence)
          .integer(4, r.retracted ? 1 : 0)
          .text(5, r.json);
      if (upsert.run("keeping a record") > 0) {
        ++counts.accepted;
      } else {
        ++counts.duplicates;
      }
    }
    std::string answer = make_answer(counts);
    impl_->finish_batch(idempotency_key, body_sha256, answer, "revisions_received",
                        static_cast<int64_t>(records.size()), rejected);
    return answer;
  });
}

std::string ProvinceStore::apply_months(
    const std::string& idempotency_key, const std::string& body_sha256,
    const std::vector<MonthVersion>& months, int64_t rejected,
    const std::function<std::string(const ApplyCounts&)>& make_answer) {
  std::lock_guard lock(impl_->mutex);
  return impl_->in_transaction([&] {
    ApplyCounts counts;
    for (const MonthVersion& m : months) {
      int changed = 0;
      if (m.agency) {
        changed = impl_->upsert_agency_month.text(1, m.month)
                      .text(2, m.code)
                      .integer(3, m.revision)
                      .text(4, m.json)
                      .run("keeping an agency month");
      } else {
        changed = impl_->upsert_staff_month.text(1, m.month)
                      .text(2, m.code)
                      .text(3, m.agency_code)
                      .integer(4, m.revision)
                      .text(5, m.json)
                      .run("keeping a staff month");
      }
      if (changed > 0) {
        ++counts.accepted;
      } else {
        ++counts.duplicates;
      }
    }
    std::string answer = make_answer(counts);
    impl_->finish_batch(idempotency_key, body_sha256, answer, "month_revisions_received",
                        static_cast<int64_t>(months.size()), rejected);
    return answer;
  });
}

void ProvinceStore::count_duplicate_batch() {
  std::lock_guard lock(impl_->mutex);
  impl_->add_counter("duplicate_batches", 1);
}

void ProvinceStore::count_conflict() {
  std::lock_guard lock(impl_->mutex);
  impl_->add_counter("conflicts_409", 1);
}

std::optional<StoredRecord> ProvinceStore::record(const std::string& record_id) {
  std::lock_guard lock(impl_->mutex);
  Statement& s = impl_->find_record;
  Query q(s);
  s.text(1, record_id);
  if (!s.row("reading a record")) return std::nullopt;
  return StoredRecord{s.column_integer(0), s.column_integer(1), s.column_integer(2) != 0,
                      s.column_text(3)};
}

std::vector<std::string> ProvinceStore::staff_months(const std::string& month,
                                                     const std::string& agency_code) {
  std::lock_guard lock(impl_->mutex);
  return impl_->bodies(impl_->staff_months, month, agency_code);
}

std::vector<std::string> ProvinceStore::agency_months(const std::string& month,
                                                      const std::string& agency_code) {
  std::lock_guard lock(impl_->mutex);
  return impl_->bodies(impl_->agency_months, month, agency_code);
}

StoreCounters ProvinceStore::counters() {
  std::lock_guard lock(impl_->mutex);
  StoreCounters c;
  c.records = impl_->count("SELECT COUNT(*) FROM records WHERE retracted = 0");
  c.retracted = impl_->count("SELECT COUNT(*) FROM records WHERE retracted = 1");
  c.staff_months = impl_->count("SELECT COUNT(*) FROM staff_months");
  c.agency_months = impl_->count("SELECT COUNT(*) FROM agency_months");
  c.revisions_received = impl_->counter("revisions_received");
  c.month_revisions_received = impl_->counter("month_revisions_received");
  c.batches = impl_->counter("batches");
  c.duplicate_batches = impl_->counter("duplicate_batches");
  c.conflicts_409 = impl_->counter("conflicts_409");
  c.rejected_items = impl_->counter("rejected_items");
  return c;
}

}  // namespace kpihub::sim::province
