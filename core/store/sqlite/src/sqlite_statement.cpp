#include "sqlite_statement.hpp"

#include <kpihub/store/types.hpp>

namespace kpihub::store_detail {

sqlite3_stmt* PreparedStatement::get(sqlite3* db, const std::string& sql,
                                     const std::string& db_path) {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return stmt_;
  }
  if (sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &stmt_, nullptr) != SQLITE_OK) {
    stmt_ = nullptr;
    sqlite_fail(db, db_path, "preparing a statement");
  }
  return stmt_;
}

sqlite3* ReadConnection::get(const std::string& db_path, int busy_timeout_ms, int cache_kib) {
  if (db_ != nullptr) return db_;
  sqlite3* db = nullptr;
  const auto give_up = [&] {
    const std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    throw StoreError("store " + db_path + ": " + why + " (opening a read connection)");
  };
  // SQLITE_OPEN_URI: the same file as the main connection, which Poco opens with it.
  if (sqlite3_open_v2(db_path.c_str(), &db,
                      SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                      nullptr) != SQLITE_OK) {
    give_up();
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  const std::string cache = "PRAGMA cache_size = -" + std::to_string(cache_kib);
  if (sqlite3_exec(db, cache.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) give_up();
  db_ = db;
  return db_;
}

void sqlite_fail(sqlite3* db, const std::string& db_path, std::string_view doing) {
  throw StoreError("store " + db_path + ": " + sqlite3_errmsg(db) + " (" + std::string(doing) +
                   ")");
}

}  // namespace kpihub::store_detail
