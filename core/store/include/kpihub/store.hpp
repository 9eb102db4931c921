// The hub's durable state: the engine-neutral seams (kpihub/store/*.hpp) and, for now, the
// SQLite engine behind all of them at once.
#pragma once

#include <kpihub/store/operator_views.hpp>
#include <kpihub/store/outbox.hpp>
#include <kpihub/store/record_log.hpp>
#include <kpihub/store/scoring_state.hpp>
#include <kpihub/store/staff_lists.hpp>
#include <kpihub/store/storage.hpp>
#include <kpihub/store/types.hpp>

#include <functional>
#include <memory>
#include <string>

namespace kpihub {

// Every seam at once, while consumers move to the ones they use.
class Store : public Storage,
              public RecordLog,
              public ScoringState,
              public Outbox,
              public OperatorViews,
              public StaffLists {
 public:
  RecordLog& records() override { return *this; }
  ScoringState& scoring() override { return *this; }
  Outbox& outbox() override { return *this; }
  OperatorViews& views() override { return *this; }
  StaffLists& staff_lists() override { return *this; }
};

// Opens (creating if needed) the SQLite store at `path` in WAL mode with full
// sync on commit, running schema migrations. Throws StoreError naming the
// file when it cannot be opened, is locked, or is not a kpihub database.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

struct SqliteStoreOptions {
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
  // Tests only: called with each part's number before a month scan's part takes its first
  // read, under the store's mutex (so a test can try to commit a page just then).
  std::function<void(std::size_t part)> before_scan_part;
};
std::unique_ptr<Store> open_sqlite_store(const std::string& path,
                                         const SqliteStoreOptions& options);

}  // namespace kpihub
