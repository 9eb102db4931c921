// Opening a kpihub store in tests: on an engine named as hub.json names it ("sqlite",
// "rocksdb"), or the store a hub configuration names (its engine and path), so a test reads
// whatever store the hub it ran wrote. Tests that link it link kpihub_store_sqlite,
// kpihub_store_rocksdb and kpihub_config.
#pragma once

#include <kpihub/host_services.hpp>
#include <kpihub/hub_config.hpp>
#include <kpihub/store/rocksdb.hpp>
#include <kpihub/store/sqlite.hpp>
#include <kpihub/store/storage.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kpihub::test {

// Every engine, for tests parameterized by engine:
//   INSTANTIATE_TEST_SUITE_P(Engines, T, ::testing::ValuesIn(store_engines()), engine_name);
inline std::vector<std::string> store_engines() {
  return {"sqlite", "rocksdb"};
}

// The test name suffix of an engine parameter (".../sqlite", ".../rocksdb").
inline std::string engine_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// The engine of a configuration that names none (HubConfig's default).
inline std::string default_store_engine() {
  return HubConfig{}.store;
}

// The default name of an engine's store under a data_dir, as load_hub_config makes it.
inline std::string store_file_name(const std::string& engine) {
  if (engine == "sqlite") return "hub.db";
  if (engine == "rocksdb") return "hub.rocksdb";
  throw std::invalid_argument("no store engine named \"" + engine + "\"");
}

struct TestStoreOptions {
  // What the store stamps its times with (nullptr: the system clock); it must outlive the store.
  const Clock* clock = nullptr;
  // RocksDB: open for reading only, beside a process that holds the store for writing (a
  // running hub). SQLite shares its file and ignores it.
  bool read_only = false;
  // SQLite: how long a write waits for another connection's lock.
  int busy_timeout_ms = 5000;
};

// The store at `path` on `engine` ("sqlite": a file, "rocksdb": a folder), made if missing.
inline std::unique_ptr<Storage> open_test_store(const std::string& engine,
                                                const std::filesystem::path& path,
                                                const TestStoreOptions& options = {}) {
  if (engine == "rocksdb") {
    RocksdbStorageOptions rocksdb;
    rocksdb.clock = options.clock;
    rocksdb.read_only = options.read_only;
    return open_rocksdb_storage(path.string(), rocksdb);
  }
  if (engine == "sqlite") {
    SqliteStorageOptions sqlite;
    sqlite.clock = options.clock;
    sqlite.busy_timeout_ms = options.busy_timeout_ms;
    return open_sqlite_storage(path.string(), sqlite);
  }
  throw std::invalid_argument("no store engine named \"" + engine + "\"");
}

// The store the hub configuration `hub_json` names: its engine ("store", or the one
// load_hub_config infers) at its store_path.
inline std::unique_ptr<Storage> open_hub_store(const std::filesystem::path& hub_json,
                                               const TestStoreOptions& options = {}) {
  const HubConfig config = load_hub_config(hub_json.string());
  return open_test_store(config.store, config.store_path, options);
}

// The store the hub configuration `hub_json` names, read-only (RocksDB): what a test reads after
// a hub ran, or beside a running one, without holding RocksDB's one writer's lock when the next
// `kpihub` command starts.
inline std::unique_ptr<Storage> read_hub_store(const std::filesystem::path& hub_json) {
  TestStoreOptions options;
  options.read_only = true;
  return open_hub_store(hub_json, options);
}

}  // namespace kpihub::test
