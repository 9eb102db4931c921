// LMDB: one environment, four named databases (log with integer keys appended in order,
// latest keyed by record_id, staff_day, meta for the cursor and quarantine), one write
// transaction per page, committed with an fsync (the default: neither MDB_NOSYNC nor
// MDB_NOMETASYNC). Reads go through the memory map: LMDB has no cache of its own, the
// pages it touches are the page cache's, and they count in the process's RSS (RssFile).
#include "engine.hpp"

#include <lmdb.h>

#include <cstring>
#include <stdexcept>

namespace kpihub::bench::engines {

namespace {

void check(int rc, const std::string& what) {
  if (rc != MDB_SUCCESS) throw std::runtime_error("lmdb: " + what + ": " + mdb_strerror(rc));
}

MDB_val val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

class Txn {
 public:
  Txn(MDB_env* env, unsigned flags) { check(mdb_txn_begin(env, nullptr, flags, &txn_), "begin"); }
  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  MDB_txn* get() const { return txn_; }
  void commit(const std::string& what) {
    const int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    check(rc, "commit " + what);
  }

 private:
  MDB_txn* txn_ = nullptr;
};

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { check(mdb_cursor_open(txn, dbi, &c_), "cursor"); }
  ~Cursor() { mdb_cursor_close(c_); }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  MDB_cursor* get() const { return c_; }

 private:
  MDB_cursor* c_ = nullptr;
};

class LmdbEngine final : public Engine {
 public:
  explicit LmdbEngine(const EngineOptions& options) : options_(options) {
    check(mdb_env_create(&env_), "create");
    check(mdb_env_set_maxdbs(env_, 4), "maxdbs");
    check(mdb_env_set_mapsize(env_, std::size_t{256} << 30), "mapsize");
    check(mdb_env_open(env_, options.dir.c_str(), 0, 0644), "open " + options.dir);
    Txn txn(env_, 0);
    check(mdb_dbi_open(txn.get(), "log", MDB_CREATE | MDB_INTEGERKEY, &log_), "log");
    check(mdb_dbi_open(txn.get(), "latest", MDB_CREATE, &latest_), "latest");
    check(mdb_dbi_open(txn.get(), "staff_day", MDB_CREATE, &staff_day_), "staff_day");
    check(mdb_dbi_open(txn.get(), "meta", MDB_CREATE, &meta_), "meta");
    txn.commit("open");
  }
  ~LmdbEngine() override { mdb_env_close(env_); }

  std::string settings() const override {
    return "named databases log (MDB_INTEGERKEY, MDB_APPEND) / latest (record_id) / staff_day / "
           "meta; a write transaction per page, fsync at commit; map 256 GiB (the file grows as "
           "used); no cache of its own (the memory map)";
  }

  std::size_t commit_page(const Page& page) override {
    Txn txn(env_, 0);
    std::size_t appended = 0;
    std::string value, staff_key;
    for (const Record& r : page.records) {
      MDB_val key = val(r.record_id), found{};
      const int rc = mdb_get(txn.get(), latest_, &key, &found);
      std::uint32_t stored = 0;
      if (rc == MDB_SUCCESS) {
        std::memcpy(&stored, found.mv_data, sizeof stored);
      } else if (rc != MDB_NOTFOUND) {
        check(rc, "look up " + r.record_id);
      }
      if (stored >= r.revision) continue;
      std::size_t seq = next_seq_++;
      MDB_val seq_key{sizeof seq, &seq};
      const std::string record = log_value(r);
      MDB_val record_val = val(record);
      check(mdb_put(txn.get(), log_, &seq_key, &record_val, MDB_APPEND), "log " + r.record_id);
      value.assign(reinterpret_cast<const char*>(&r.revision), sizeof r.revision);
      value.append(reinterpret_cast<const char*>(&seq), sizeof seq);
      MDB_val latest_val = val(value);
      check(mdb_put(txn.get(), latest_, &key, &latest_val, 0), "latest " + r.record_id);
      staff_key = staff_day_key(r.staff, r.day, id_hash(r.record_id));
      MDB_val sk = val(staff_key), sv{sizeof seq, &seq};
      check(mdb_put(txn.get(), staff_day_, &sk, &sv, 0), "staff_day " + r.record_id);
      ++appended;
    }
    std::string qkey;
    for (const std::string& q : page.quarantine) {
      qkey = "q/";
      put_big_endian(qkey, next_quarantine_++);
      MDB_val k = val(qkey), v = val(q);
      check(mdb_put(txn.get(), meta_, &k, &v, 0), "quarantine");
    }
    MDB_val ck = val("cursor/eoffice"), cv = val(page.cursor);
    check(mdb_put(txn.get(), meta_, &ck, &cv, 0), "cursor");
    txn.commit("page " + page.cursor);
    return appended;
  }

  void settle() override {}

  ReadTotals read_staff_day(std::string_view staff, std::uint8_t day) override {
    Txn txn(env_, MDB_RDONLY);
    const std::string prefix = staff_day_prefix(staff, day);
    return scan(txn.get(), prefix);
  }

  ReadTotals read_month_by_staff() override {
    Txn txn(env_, MDB_RDONLY);
    return scan(txn.get(), "");
  }

 private:
  ReadTotals scan(MDB_txn* txn, std::string_view prefix) {
    Cursor c(txn, staff_day_);
    ReadTotals t;
    MDB_val k = val(prefix), v{};
    int rc = mdb_cursor_get(c.get(), &k, &v, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
    for (; rc == MDB_SUCCESS && view(k).substr(0, prefix.size()) == prefix;
         rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
      MDB_val record{};
      check(mdb_get(txn, log_, &v, &record), "log record of staff_day entry");
      t += read_log_value(view(record));
    }
    if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS) check(rc, "staff_day scan");
    return t;
  }

  EngineOptions options_;
  MDB_env* env_ = nullptr;
  MDB_dbi log_ = 0, latest_ = 0, staff_day_ = 0, meta_ = 0;
  std::size_t next_seq_ = 1;
  std::uint64_t next_quarantine_ = 1;
};

}  // namespace

std::unique_ptr<Engine> open_lmdb(const EngineOptions& options) {
  return std::make_unique<LmdbEngine>(options);
}

}  // namespace kpihub::bench::engines
