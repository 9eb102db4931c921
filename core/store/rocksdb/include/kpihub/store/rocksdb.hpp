// The RocksDB engine: every seam of the store (kpihub/store/storage.hpp) in one RocksDB
// database, a folder. Accepted revisions, scores and outbox items are appended to keyed logs
// (an LSM tree: sequential writes, no random B-tree pages), within a fixed memory budget.
//
// One process at a time opens a database for writing (RocksDB's LOCK file); commands beside a
// running hub open it read-only (RocksdbStorageOptions::read_only) and see it as of their open.
#pragma once

#include <kpihub/host_services.hpp>
#include <kpihub/store/storage.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace kpihub {

struct RocksdbStorageOptions {
  // Memory the engine may use for its block cache and write buffers together (the write
  // buffers are charged to the cache): what keeps the hub's memory flat at any backlog.
  std::size_t memory_budget_bytes = std::size_t{16} << 20;
  // Open for reading only, beside the process that writes (`kpihub status`, `report` while
  // the hub runs). Every write fails with StoreError naming the store.
  bool read_only = false;
  // What the store stamps its times with (a page's received-at when it gives none, a batch's
  // delivery, a dead letter, a dirty mark, an audit line); it must outlive the store. nullptr:
  // the system clock.
  const Clock* clock = nullptr;
};

// The layout version this build writes (a store of a higher one is refused).
int rocksdb_layout_version();
// The RocksDB library the engine runs on ("7.8.3").
std::string rocksdb_library_version();

// Opens (creating if needed) the RocksDB store in the folder `path`. Throws StoreError naming
// the folder when it cannot be opened, is locked by another writer, or is not a kpihub store.
std::unique_ptr<Storage> open_rocksdb_storage(const std::string& path,
                                              const RocksdbStorageOptions& options = {});

}  // namespace kpihub
