// Versioned schema migrations of the SQLite store.
#pragma once

#include <Poco/Data/Session.h>

#include <functional>
#include <string>

namespace kpihub::store_detail {

// The newest schema this build knows. A database stamped with a higher
// version was written by a newer build and is refused.
int latest_schema_version();

// Brings the database up to latest_schema_version() inside one write
// transaction (BEGIN IMMEDIATE, so a database locked by another writer fails
// here, at open). Throws StoreError naming `db_path` for a database from the
// future or one that is SQLite but not a kpihub store.
// `progress` (may be empty) is told of each version before and after it is applied.
void migrate(Poco::Data::Session& session, const std::string& db_path, int64_t now_unix_ms,
             const std::function<void(const std::string&)>& progress);

}  // namespace kpihub::store_detail
