#include "database.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <boost/json.hpp>

#include <stdlib.h>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

namespace kpihub::rocks {

namespace {

// 2: a record's last score is a digest (kpihub/store/scoring_digest.hpp); a store of layout 1
// holds texts, read as their digests, and is marked 2 when a writer opens it, so a kpihub from
// before digests refuses it rather than find every score changed and send it again.
constexpr int kLayoutVersion = 2;
const char* const kFamilyNames[] = {"default",   "records", "staff_days",
                                    "revisions", "scores",  "outbox"};

rocksdb::CompressionType best_compression() {
  const auto supported = rocksdb::GetSupportedCompressions();
  for (auto c : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression}) {
    for (auto s : supported) {
      if (s == c) return c;
    }
  }
  return rocksdb::kNoCompression;
}

// RocksDB's own diagnostics, warnings and worse, as JSON lines on stderr beside the hub's; it
// writes no LOG file of its own into the store. On a full disk, writing that file failed an
// assertion in Debian's librocksdb and aborted the hub (found in review).
class StderrLogger final : public rocksdb::Logger {
 public:
  explicit StderrLogger(std::string store)
      : Logger(rocksdb::InfoLogLevel::WARN_LEVEL), store_(std::move(store)) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char text[1024];
    std::vsnprintf(text, sizeof text, format, ap);
    const boost::json::object line{
        {"level", "warn"}, {"component", "rocksdb"}, {"store", store_}, {"message", text}};
    std::cerr << boost::json::serialize(line) + "\n";
  }

 private:
  std::string store_;
};

}  // namespace

std::string table_key(Table table, std::string_view rest) {
  std::string key;
  key.reserve(1 + rest.size());
  key.push_back(static_cast<char>(table));
  key.append(rest);
  return key;
}

Database::Database(std::string path, const RocksdbStorageOptions& options)
    : path_(std::move(path)),
      clock_(options.clock != nullptr ? *options.clock : system_clock_),
      read_only_(options.read_only) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool exists = fs::exists(path_, ec);
  if (exists && !fs::is_directory(path_, ec)) {
    throw StoreError("store " + path_ + ": not a folder (a RocksDB store is a folder)");
  }
  if (exists && !fs::exists(fs::path(path_) / "CURRENT", ec) && !fs::is_empty(path_, ec)) {
    // RocksDB writes its LOCK and IDENTITY files before CURRENT: a store another process is
    // making right now (or one whose making was cut short) is not a folder of something else.
    const bool being_made =
        fs::exists(fs::path(path_) / "LOCK", ec) || fs::exists(fs::path(path_) / "IDENTITY", ec);
    if (!being_made) {
      throw StoreError("store " + path_ + ": the folder holds files but no RocksDB database");
    }
    if (read_only_) {
      throw StoreError("store " + path_ +
                       ": it is being made (by a hub starting now?): try again in a moment");
    }
  }
  if (!exists && read_only_) throw StoreError("store " + path_ + ": no store there");

  // One cache for every family's blocks, indexes and filters and (charged to it) the write
  // buffers: the engine's memory stays within the budget at any backlog.
  rocksdb::LRUCacheOptions lru;
  lru.capacity = options.memory_budget_bytes;
  lru.num_shard_bits = 4;
  cache_ = rocksdb::NewLRUCache(lru);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = !read_only_;
  db_options.create_missing_column_families = !read_only_;
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memory_budget_bytes / 2, cache_);
  // Two compactions at once, beside a flush: with one, a long compaction of a family keyed at
  // random (staff days, scores) kept the outbox's level 0 waiting until writes stalled, and the
  // memtables queued behind them (a 7.7 M record backlog).
  db_options.max_background_jobs = 4;
  db_options.keep_log_file_num = 5;
  db_options.max_total_wal_size = options.memory_budget_bytes;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.info_log = std::make_shared<StderrLogger>(path_);

  const rocksdb::CompressionType compression = best_compression();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : kFamilyNames) {
    rocksdb::ColumnFamilyOptions family;
    // The upper levels are rewritten soon by compaction: compressing them costs CPU for bytes
    // that do not stay; the lower levels, where the data settles, are compressed.
    family.compression_per_level = {rocksdb::kNoCompression,
                                    rocksdb::kNoCompression,
                                    compression,
                                    compression,
                                    compression,
                                    compression,
                                    compression};
    family.level_compaction_dynamic_level_bytes = true;
    family.write_buffer_size = options.memory_budget_bytes / 8;
    family.max_write_buffer_number = 2;
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache_;
    table.cache_index_and_filter_blocks = true;
    table.cache_index_and_filter_blocks_with_high_priority = true;
    table.pin_l0_filter_and_index_blocks_in_cache = false;
    table.block_size = 16 * 1024;
    // Point lookups (a record's stored revision, a score, a batch) skip files without the key;
    // the logs are only ever read in key order.
    const std::string_view n = name;
    if (n != "revisions" && n != "outbox") {
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      // The same for the memtable: a page's lookups are mostly of ids the store has never seen,
      // which otherwise walk the skip list of every memtable (5.7% of the hub's CPU).
      family.memtable_prefix_bloom_size_ratio = 0.05;
      family.memtable_whole_key_filtering = true;
    }
    family.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    descriptors.emplace_back(name, family);
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (read_only_) {
    // A reader beside the writing hub is a secondary instance: a read-only one reads the file
    // list and then opens files the hub may have retired meanwhile (1 open in 16 failed with
    // "No such file" while the hub wrote). A secondary keeps its own small state in a folder
    // of its own, removed when it closes.
    std::string folder = (fs::temp_directory_path() / "kpihub-reader-XXXXXX").string();
    if (::mkdtemp(folder.data()) == nullptr) {
      throw StoreError("store " + path_ + ": cannot make a reader's folder in " +
                       fs::temp_directory_path().string());
    }
    secondary_folder_ = folder;
    db_options.max_open_files = -1;  // what a secondary instance requires
    s = rocksdb::DB::OpenAsSecondary(db_options, path_, secondary_folder_, descriptors, &families_,
                                     &raw);
  } else {
    s = rocksdb::DB::Open(db_options, path_, descriptors, &families_, &raw);
  }
  if (!s.ok()) {
    if (!secondary_folder_.empty()) {
      std::error_code ignored;
      fs::remove_all(secondary_folder_, ignored);
    }
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      throw StoreError(
          "store " + path_ +
          ": another process has it open for writing (a running hub?): " + s.ToString());
    }
    throw StoreError("store " + path_ + ": cannot open it: " + s.ToString());
  }
  db_.reset(raw);
  try {
    read_what_is_stored();
  } catch (...) {
    // The handles go before the database (RocksDB asserts that none is left when it closes).
    close();
    throw;
  }
}

// The layout version (written into a new store) and the numbers handed out next.
void Database::read_what_is_stored() {
  write_options_.sync = true;

  const std::string version_key = table_key(Table::meta, "layout");
  std::optional<std::string> version = get(meta(), version_key, "reading the layout version");
  if (!version && read_only_) {
    throw StoreError("store " + path_ +
                     ": no layout version: not a kpihub store, or one being made right now");
  }
  const uint32_t stored = version ? Reader(*version, "the layout version").u32() : 0;
  if (stored > static_cast<uint32_t>(kLayoutVersion)) {
    throw StoreError("store " + path_ + ": layout version " + std::to_string(stored) +
                     " is newer than this build's (" + std::to_string(kLayoutVersion) +
                     "): upgrade kpihub");
  }
  // A new store gets this build's version; an older one is marked with it (its data is read as
  // it is), so that no build older than this one opens it again.
  if (stored < static_cast<uint32_t>(kLayoutVersion) && !read_only_) {
    std::string value;
    Writer(value).u32(kLayoutVersion);
    rocksdb::WriteBatch batch;
    batch.Put(meta(), version_key, value);
    write(batch, "writing the layout version " + std::to_string(kLayoutVersion));
  }

  numbers_.revision_seq = last_key_u64(revisions(), {});
  // Compaction can leave the outbox empty: numbering goes on above the last seq it deleted,
  // and the last item is looked for above it (deleted items are range tombstones until RocksDB
  // compacts them away, and an iterator would step over them one by one).
  const int64_t compacted = read_meta_counter(*this, kOutboxCompactedCounter);
  numbers_.outbox_seq =
      std::max(compacted, last_key_u64(outbox(), {}, static_cast<uint64_t>(compacted) + 1));
  numbers_.quarantine_id = std::max(read_meta_counter(*this, kQuarantineLastIdCounter),
                                    last_key_u64(meta(), table_key(Table::quarantine)));
  numbers_.dead_letter_id = last_key_u64(meta(), table_key(Table::dead_letters));
  numbers_.audit_id = last_key_u64(meta(), table_key(Table::audit));
}

void Database::close() {
  if (!db_) return;
  for (auto* family : families_) db_->DestroyColumnFamilyHandle(family);
  families_.clear();
  db_->Close();
  db_.reset();
}

Database::~Database() {
  close();
  if (!secondary_folder_.empty()) {
    std::error_code ignored;  // a leftover reader folder in the temp folder harms nothing
    std::filesystem::remove_all(secondary_folder_, ignored);
  }
}

int64_t Database::last_key_u64(rocksdb::ColumnFamilyHandle* family, std::string_view prefix,
                               uint64_t at_least) {
  std::string lower(prefix);
  put_key_u64(lower, at_least);
  const rocksdb::Slice lower_bound(lower);
  rocksdb::ReadOptions read;
  if (at_least > 0) read.iterate_lower_bound = &lower_bound;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, family));
  const std::string end = prefix_end(std::string(prefix));
  if (end.empty()) {
    it->SeekToLast();
  } else {
    it->SeekForPrev(end);
  }
  // SeekForPrev lands on `end` itself if it is a key: step back from it.
  if (it->Valid() && !end.empty() && it->key() == rocksdb::Slice(end)) it->Prev();
  check(it->status(), "reading the last key");
  // An empty prefix (a whole family) may have no data pointer: Slice::starts_with would pass it
  // to memcmp (UBSan: null argument).
  if (!it->Valid() ||
      (!prefix.empty() && !it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size())))) {
    return 0;
  }
  const rocksdb::Slice key = it->key();
  return static_cast<int64_t>(
      key_u64(std::string_view(key.data() + prefix.size(), key.size() - prefix.size())));
}

void Database::check(const rocksdb::Status& s, const std::string& what) const {
  if (!s.ok()) throw StoreError("store " + path_ + ": " + s.ToString() + " while " + what);
}

void Database::require_writable(const std::string& what) const {
  if (read_only_) {
    throw StoreError("store " + path_ + " is open read-only (a hub is running on it) while " +
                     what + ": do this through the hub's admin API, or stop the hub first");
  }
}

void Database::WriteScope::write(rocksdb::WriteBatch& batch, const std::string& what) {
  db_.write(batch, what);
  written_ = true;
}

void Database::write(rocksdb::WriteBatch& batch, const std::string& what) {
  require_writable(what);
  // After a failed write (a full disk) RocksDB refuses every write until it is told to resume:
  // the hub's retry would fail for ever once space was freed (found in review).
  if (resume_before_writing_) {
    // Busy: RocksDB's own recovery (from a full disk it retries by itself) is under way.
    rocksdb::Status resumed = db_->Resume();
    for (int tries = 0; resumed.IsBusy() && tries < 20; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      resumed = db_->Resume();
    }
    if (!resumed.ok()) {
      throw StoreError("store " + path_ + ": still failing since an earlier write failed (" +
                       resumed.ToString() + ") while " + what +
                       ": free disk space on its volume; the hub tries again");
    }
    resume_before_writing_ = false;
  }
  const rocksdb::Status s = db_->Write(write_options_, &batch);
  if (!s.ok()) resume_before_writing_ = true;
  check(s, what);
}

std::optional<std::string> Database::get(rocksdb::ColumnFamilyHandle* family,
                                         const rocksdb::Slice& key, const std::string& what,
                                         const rocksdb::Snapshot* snapshot) {
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  std::string value;
  const rocksdb::Status s = db_->Get(read, family, key, &value);
  if (s.IsNotFound()) return std::nullopt;
  check(s, what);
  return value;
}

int64_t read_meta_counter(Database& db, std::string_view name, const rocksdb::Snapshot* snapshot) {
  const std::string what = "reading the " + std::string(name) + " counter";
  const std::optional<std::string> value =
      db.get(db.meta(), table_key(Table::meta, name), what, snapshot);
  if (!value) return 0;
  return Reader(*value, "a counter").i64();
}

void scan_quarantine(Database& db, int64_t after_id,
                     const std::function<bool(StoredQuarantine)>& visit) {
  const std::string prefix = table_key(Table::quarantine);
  const std::string end = prefix_end(prefix);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db.db().NewIterator(read, db.meta()));
  std::string start = prefix;
  put_key_u64(start, static_cast<uint64_t>(std::max<int64_t>(after_id, 0) + 1));
  for (it->Seek(start); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    const auto id = static_cast<int64_t>(
        key_u64(std::string_view(key.data() + prefix.size(), key.size() - prefix.size())));
    if (!visit(decode_quarantine(std::string_view(it->value().data(), it->value().size()), id))) {
      break;
    }
  }
  db.check(it->status(), "reading the quarantine");
}

void add_to_meta_counter(Database& db, rocksdb::WriteBatch& batch, std::string_view name,
                         int64_t delta) {
  std::string value;
  Writer(value).i64(read_meta_counter(db, name) + delta);
  batch.Put(db.meta(), table_key(Table::meta, name), value);
}

}  // namespace kpihub::rocks
