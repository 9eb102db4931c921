// The SQLite engine: one database file behind every seam of the store (kpihub/store/storage.hpp),
// in WAL mode with full sync on commit. Several processes may open one file (the hub, the
// commands beside it); SQLite's locking and the busy timeout coordinate their writes.
#pragma once

#include <kpihub/host_services.hpp>
#include <kpihub/store/storage.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace kpihub {

struct SqliteStorageOptions {
  // How long an operation waits for another connection's write lock before
  // failing with "database is locked".
  int busy_timeout_ms = 5000;
  // Page cache per connection. SQLite's default (2 MB) is smaller than the
  // records' indexes of one province-month, so commits and the scorer's reads
  // went to the kernel for pages they had just used (bench/run, 2026-11-23:
  // 8 MB with the checkpoint below took a third off the hub's CPU).
  int cache_kib = 8192;
  // WAL pages before SQLite copies the WAL back into the database. The
  // default (1,000 pages, 4 MB) checkpoints every few pages of records, and
  // each checkpoint rewrites the same index pages again.
  int wal_autocheckpoint_pages = 10000;
  // Told, while the store opens, of each schema upgrade it applies, before and after (what it
  // does, how long it took): one can take minutes on a large store, and the hub reads nothing
  // meanwhile. Not kept after open.
  std::function<void(const std::string&)> on_migration;
  // What the store stamps its times with (a page's received-at when it gives none, a batch's
  // delivery, a dead letter, a dirty mark, an audit line, a schema upgrade); it must outlive the
  // store. nullptr: the system clock. The hub's delivery-time cutoff for compaction (Hub's
  // clock) and the store's delivery times must come from one clock.
  const Clock* clock = nullptr;
  // Tests only: called with each part's number before a month scan's part takes its first
  // read, under the store's mutex (so a test can try to commit a page just then).
  std::function<void(std::size_t part)> before_scan_part;
};

// The schema version this build writes (a store of a higher one is refused).
int sqlite_schema_version();
// The SQLite library the engine runs on ("3.40.1").
std::string sqlite_library_version();

// Opens (creating if needed) the SQLite store at `path`, running schema migrations. Throws
// StoreError naming the file when it cannot be opened, is locked, or is not a kpihub database.
std::unique_ptr<Storage> open_sqlite_storage(const std::string& path,
                                             const SqliteStorageOptions& options = {});

}  // namespace kpihub
