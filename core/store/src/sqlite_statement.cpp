#include "sqlite_statement.hpp"

#include <kpihub/store.hpp>

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

void sqlite_fail(sqlite3* db, const std::string& db_path, std::string_view doing) {
  throw StoreError("store " + db_path + ": " + sqlite3_errmsg(db) + " (" + std::string(doing) +
                   ")");
}

}  // namespace kpihub::store_detail
