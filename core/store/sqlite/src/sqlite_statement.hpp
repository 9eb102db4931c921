// A prepared sqlite3 statement kept for the life of the store, on the
// connection Poco::Data opened (Poco::Data::SQLite::Utility::dbHandle).
//
// Why raw sqlite3 here: Poco's SQLite binding prepares a statement again on
// every execute() and extracts every column into a std::vector of its own type,
// allocating a std::string per text cell. For the two hot paths (page commits,
// thousands of rows per second, and the month scan, 1.5 million rows at once)
// that costs more than SQLite's own work. Everything else stays on Poco::Data.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace kpihub::store_detail {

class PreparedStatement {
 public:
  PreparedStatement() = default;
  PreparedStatement(const PreparedStatement&) = delete;
  PreparedStatement& operator=(const PreparedStatement&) = delete;
  ~PreparedStatement() { sqlite3_finalize(stmt_); }

  // Prepares `sql` on `db` the first time; later calls return the same statement, reset and
  // with its bindings cleared. Throws StoreError (naming `db_path`) when SQLite refuses.
  sqlite3_stmt* get(sqlite3* db, const std::string& sql, const std::string& db_path);

  // Finalizes the statement (before the connection closes).
  void release() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// A second, read-only connection to the store's file, opened on first use, in SQLite's
// multi-thread mode (SQLITE_OPEN_NOMUTEX): no mutex taken and released around every
// sqlite3_column_* call, which cost a tenth of a month scan's CPU (`perf`, 2026-11-24). That
// is safe because the store uses each such connection from one thread at a time (a month
// scan's parts each have their own). In WAL mode it reads the last committed state, as the
// main connection does outside a transaction.
class ReadConnection {
 public:
  ReadConnection() = default;
  ReadConnection(const ReadConnection&) = delete;
  ReadConnection& operator=(const ReadConnection&) = delete;
  ~ReadConnection() { sqlite3_close_v2(db_); }

  // Opens it the first time (busy timeout and page cache as given). Throws StoreError.
  sqlite3* get(const std::string& db_path, int busy_timeout_ms, int cache_kib);

 private:
  sqlite3* db_ = nullptr;
};

// Resets the statement when the scope ends, so no read stays open on the connection.
class StatementScope {
 public:
  explicit StatementScope(sqlite3_stmt* s) : s_(s) {}
  StatementScope(const StatementScope&) = delete;
  StatementScope& operator=(const StatementScope&) = delete;
  ~StatementScope() { sqlite3_reset(s_); }

 private:
  sqlite3_stmt* s_;
};

// Throws StoreError with SQLite's message for `db`.
[[noreturn]] void sqlite_fail(sqlite3* db, const std::string& db_path, std::string_view doing);

// Text of a column as a view (valid until the next step); "" for NULL.
inline std::string_view column_text(sqlite3_stmt* s, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, column));
  if (text == nullptr) return {};
  return {text, static_cast<std::size_t>(sqlite3_column_bytes(s, column))};
}

// Binds a text that outlives the step (SQLITE_STATIC: no copy).
inline int bind_text(sqlite3_stmt* s, int index, std::string_view text) {
  return sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

// Binds NULL for an empty text (the optional columns store '' as NULL).
inline int bind_optional_text(sqlite3_stmt* s, int index, std::string_view text) {
  return text.empty() ? sqlite3_bind_null(s, index) : bind_text(s, index, text);
}

}  // namespace kpihub::store_detail
