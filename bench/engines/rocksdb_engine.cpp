// RocksDB: a column family per concern (log, latest, staff_day, and the default one for the
// cursor and quarantine), one WriteBatch per page written with a synced WAL. Memory is
// capped: one LRU block cache holds data, index and filter blocks, and the memtables are
// charged to it through a WriteBufferManager, so options.cache_mb bounds them together.
#include "engine.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace kpihub::bench::engines {

namespace {

void check(const rocksdb::Status& s, const std::string& what) {
  if (!s.ok()) throw std::runtime_error("rocksdb: " + what + ": " + s.ToString());
}

rocksdb::CompressionType best_compression() {
  const auto supported = rocksdb::GetSupportedCompressions();
  for (auto c : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression}) {
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) return c;
  }
  return rocksdb::kNoCompression;
}

const char* compression_name(rocksdb::CompressionType c) {
  switch (c) {
    case rocksdb::kLZ4Compression:
      return "LZ4";
    case rocksdb::kSnappyCompression:
      return "Snappy";
    default:
      return "none";
  }
}

class RocksEngine final : public Engine {
 public:
  RocksEngine(const EngineOptions& options, const RocksVariant& variant)
      : options_(options), variant_(variant) {
    const std::size_t budget = options.cache_mb << 20;
    // Index and filter blocks in the high-priority half, so data blocks do not evict them.
    rocksdb::LRUCacheOptions lru;
    lru.capacity = budget;
    lru.high_pri_pool_ratio = 0.5;
    cache_ = rocksdb::NewLRUCache(lru);
    rocksdb::DBOptions db;
    db.create_if_missing = true;
    db.create_missing_column_families = true;
    db.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(budget / 2, cache_);
    db.max_background_jobs = 2;
    db.max_total_wal_size = 64 << 20;
    compression_ = variant.compression ? best_compression() : rocksdb::kNoCompression;

    auto family = [&](std::size_t write_buffer, bool filter) {
      rocksdb::ColumnFamilyOptions cf;
      cf.write_buffer_size = write_buffer;
      cf.max_write_buffer_number = 2;
      cf.level_compaction_dynamic_level_bytes = true;
      cf.compression = compression_;
      rocksdb::BlockBasedTableOptions table;
      table.block_cache = cache_;
      table.cache_index_and_filter_blocks = true;
      table.cache_index_and_filter_blocks_with_high_priority = true;
      table.pin_l0_filter_and_index_blocks_in_cache = true;
      // Partitioned index and filters: a lookup loads a 4 KiB partition, not a whole
      // file's index or filter, when the small cache has evicted it.
      table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
      table.partition_filters = filter;
      table.metadata_block_size = 4096;
      table.pin_top_level_index_and_filter = true;
      if (filter) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
      return cf;
    };
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, family(1 << 20, false)},
        {"log", family(budget / 4, false)},
        {"latest", family(budget / 8, variant.bloom_filter)},
        {"staff_day", family(budget / 8, false)},
    };
    rocksdb::DB* raw = nullptr;
    check(rocksdb::DB::Open(db, options.dir, families, &handles_, &raw), "open " + options.dir);
    db_.reset(raw);
    meta_ = handles_[0];
    log_ = handles_[1];
    latest_ = handles_[2];
    staff_day_ = handles_[3];
    write_.sync = true;
  }

  ~RocksEngine() override {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }

  std::string settings() const override {
    return std::string(
               "column families log / latest / staff_day / default (cursor, "
               "quarantine); WriteBatch per page, WAL synced; LRU block cache ") +
           std::to_string(options_.cache_mb) +
           " MiB (half for index and filter blocks, partitioned) holding data, index and filter "
           "blocks and charged with the memtables (write "
           "buffer manager " +
           std::to_string(options_.cache_mb / 2) + " MiB; log " +
           std::to_string(options_.cache_mb / 4) + " MiB, latest and staff_day " +
           std::to_string(options_.cache_mb / 8) + " MiB each, 2 per family); " +
           (variant_.hash_key ? "latest keyed by the 64-bit hash of record_id (the id in the "
                                "value, compared)"
                              : "latest keyed by record_id") +
           (variant_.bloom_filter ? ", whole-key bloom filter 10 bits/key" : ", no bloom filter") +
           (variant_.clustered ? "; staff_day holds the records (clustered)"
                               : "; staff_day holds sequence numbers") +
           "; compression " + compression_name(compression_) +
           "; level compaction, dynamic level bytes; MultiGet per page";
  }

  std::size_t commit_page(const Page& page) override {
    const std::size_t n = page.records.size();
    latest_keys_.resize(n);
    keys_.resize(n);
    values_.resize(n);
    statuses_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      latest_keys_[i].clear();
      if (variant_.hash_key) {
        put_big_endian(latest_keys_[i], id_hash(page.records[i].record_id));
      } else {
        latest_keys_[i] = page.records[i].record_id;
      }
      keys_[i] = latest_keys_[i];
    }
    db_->MultiGet(rocksdb::ReadOptions(), latest_, n, keys_.data(), values_.data(),
                  statuses_.data());
    rocksdb::WriteBatch batch;
    std::size_t appended = 0;
    std::string key, value, record;
    for (std::size_t i = 0; i < n; ++i) {
      const Record& r = page.records[i];
      std::uint32_t stored = 0;
      if (statuses_[i].ok()) {
        const std::string_view v = values_[i].ToStringView();
        std::memcpy(&stored, v.data(), sizeof stored);
        if (variant_.hash_key && v.substr(12) != r.record_id)
          throw std::runtime_error("rocksdb: record " + r.record_id +
                                   " shares its 64-bit hash with " + std::string(v.substr(12)));
      } else if (!statuses_[i].IsNotFound()) {
        check(statuses_[i], "look up " + r.record_id);
      }
      values_[i].Reset();
      if (stored >= r.revision) continue;
      const std::uint64_t seq = next_seq_++;
      key.clear();
      put_big_endian(key, seq);
      record = log_value(r);
      check(batch.Put(log_, key, record), "log " + r.record_id);
      value.assign(reinterpret_cast<const char*>(&r.revision), sizeof r.revision);
      value += key;
      if (variant_.hash_key) value += r.record_id;
      check(batch.Put(latest_, latest_keys_[i], value), "latest " + r.record_id);
      check(batch.Put(staff_day_, staff_day_key(r.staff, r.day, id_hash(r.record_id)),
                      variant_.clustered ? record : key),
            "staff_day " + r.record_id);
      ++appended;
    }
    for (const std::string& q : page.quarantine) {
      key = "q/";
      put_big_endian(key, next_quarantine_++);
      check(batch.Put(meta_, key, q), "quarantine");
    }
    check(batch.Put(meta_, "cursor/eoffice", page.cursor), "cursor");
    check(db_->Write(write_, &batch), "commit page " + page.cursor);
    return appended;
  }

  void settle() override {
    rocksdb::FlushOptions flush;
    flush.wait = true;
    check(db_->Flush(flush, handles_), "flush");
    for (;;) {
      std::uint64_t pending = 0;
      for (auto* h : handles_) {
        std::uint64_t v = 0;
        db_->GetIntProperty(h, "rocksdb.compaction-pending", &v);
        pending += v;
        db_->GetIntProperty(h, "rocksdb.num-running-compactions", &v);
        pending += v;
        db_->GetIntProperty(h, "rocksdb.num-running-flushes", &v);
        pending += v;
      }
      if (pending == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::vector<std::pair<std::string, std::uint64_t>> memory() const override {
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (const char* p : {"rocksdb.estimate-table-readers-mem", "rocksdb.cur-size-all-mem-tables",
                          "rocksdb.size-all-mem-tables", "rocksdb.block-cache-usage",
                          "rocksdb.block-cache-pinned-usage"}) {
      std::uint64_t total = 0;
      for (auto* h : handles_) {
        std::uint64_t v = 0;
        if (db_->GetIntProperty(h, p, &v)) total += v;
        if (std::string_view(p).find("block-cache") != std::string_view::npos) break;  // shared
      }
      out.emplace_back(p, total);
    }
    std::uint64_t files = 0;
    for (auto* h : handles_) {
      rocksdb::ColumnFamilyMetaData meta;
      db_->GetColumnFamilyMetaData(h, &meta);
      for (const auto& level : meta.levels) files += level.files.size();
    }
    out.emplace_back("table files", files);
    return out;
  }

  ReadTotals read_staff_day(std::string_view staff, std::uint8_t day) override {
    const std::string prefix = staff_day_prefix(staff, day);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), staff_day_));
    seqs_.clear();
    ReadTotals t;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (variant_.clustered) {
        t += read_log_value(it->value().ToStringView());
      } else {
        seqs_.emplace_back(it->value().ToString());
      }
    }
    check(it->status(), "staff_day scan");
    return t += fetch_seqs();
  }

  ReadTotals read_month_by_staff() override {
    rocksdb::ReadOptions read;
    read.readahead_size = 2 << 20;
    read.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, staff_day_));
    ReadTotals t;
    seqs_.clear();
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (variant_.clustered) {
        t += read_log_value(it->value().ToStringView());
        continue;
      }
      seqs_.emplace_back(it->value().ToString());
      if (seqs_.size() == 1024) {
        t += fetch_seqs();
        seqs_.clear();
      }
    }
    check(it->status(), "staff_day scan");
    t += fetch_seqs();
    return t;
  }

 private:
  // The log records of seqs_, read with one MultiGet in key order.
  ReadTotals fetch_seqs() {
    if (seqs_.empty()) return {};
    std::sort(seqs_.begin(), seqs_.end());
    const std::size_t n = seqs_.size();
    keys_.assign(seqs_.begin(), seqs_.end());
    values_.resize(n);
    statuses_.resize(n);
    db_->MultiGet(rocksdb::ReadOptions(), log_, n, keys_.data(), values_.data(), statuses_.data(),
                  true);
    ReadTotals t;
    for (std::size_t i = 0; i < n; ++i) {
      check(statuses_[i], "log record " + std::to_string(get_big_endian(seqs_[i])));
      t += read_log_value(values_[i].ToStringView());
      values_[i].Reset();
    }
    return t;
  }

  EngineOptions options_;
  RocksVariant variant_;
  rocksdb::CompressionType compression_ = rocksdb::kNoCompression;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* log_ = nullptr;
  rocksdb::ColumnFamilyHandle* latest_ = nullptr;
  rocksdb::ColumnFamilyHandle* staff_day_ = nullptr;
  rocksdb::WriteOptions write_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t next_quarantine_ = 1;
  std::vector<std::string> latest_keys_;
  std::vector<rocksdb::Slice> keys_;
  std::vector<rocksdb::PinnableSlice> values_;
  std::vector<rocksdb::Status> statuses_;
  std::vector<std::string> seqs_;
};

}  // namespace

std::unique_ptr<Engine> open_rocksdb(const EngineOptions& options, const RocksVariant& variant) {
  return std::make_unique<RocksEngine>(options, variant);
}

}  // namespace kpihub::bench::engines
