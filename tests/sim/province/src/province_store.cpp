#include <kpihub/sim/province_store.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>

#include <mutex>
#include <stdexcept>

namespace kpihub::sim::province {

using Poco::Data::Statement;
using namespace Poco::Data::Keywords;

namespace {

constexpr const char* kSchema[] = {
    "CREATE TABLE IF NOT EXISTS records ("
    " record_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, sequence INTEGER NOT NULL,"
    " retracted INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS staff_months ("
    " month TEXT NOT NULL, staff_code TEXT NOT NULL, agency_code TEXT NOT NULL,"
    " revision INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (month, staff_code))",
    "CREATE TABLE IF NOT EXISTS agency_months ("
    " month TEXT NOT NULL, agency_code TEXT NOT NULL, revision INTEGER NOT NULL,"
    " body TEXT NOT NULL, PRIMARY KEY (month, agency_code))",
    "CREATE TABLE IF NOT EXISTS idempotency ("
    " key TEXT PRIMARY KEY, body_sha256 TEXT NOT NULL, status INTEGER NOT NULL,"
    " answer TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
};

// Only the newer (revision, sequence) replaces what is held; the WHERE of the
// upsert makes "not newer" a change count of 0, which is how duplicates are
// counted without a read per record.
constexpr const char* kUpsertRecord =
    "INSERT INTO records (record_id, revision, sequence, retracted, body) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (record_id) DO UPDATE SET revision = excluded.revision, "
    "sequence = excluded.sequence, retracted = excluded.retracted, body = excluded.body "
    "WHERE excluded.revision > records.revision OR "
    "(excluded.revision = records.revision AND excluded.sequence > records.sequence)";
constexpr const char* kUpsertStaffMonth =
    "INSERT INTO staff_months (month, staff_code, agency_code, revision, body) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (month, staff_code) DO UPDATE SET "
    "agency_code = excluded.agency_code, revision = excluded.revision, body = excluded.body "
    "WHERE excluded.revision > staff_months.revision";
constexpr const char* kUpsertAgencyMonth =
    "INSERT INTO agency_months (month, agency_code, revision, body) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (month, agency_code) DO UPDATE SET revision = excluded.revision, "
    "body = excluded.body WHERE excluded.revision > agency_months.revision";
constexpr const char* kAddCounter =
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value";
constexpr const char* kInsertAnswer =
    "INSERT INTO idempotency (key, body_sha256, status, answer) VALUES (?, ?, ?, ?)";

}  // namespace

struct ProvinceStore::Impl {
  explicit Impl(const std::string& path) : session("SQLite", path) {
    session << "PRAGMA journal_mode=WAL", now;
    // A batch answered 200 must survive a power cut: fsync on every commit.
    session << "PRAGMA synchronous=FULL", now;
    session << "PRAGMA busy_timeout=5000", now;
    // The hub's own settings (kpihub/store.hpp): a receiver that checkpoints every 4 MB and
    // reads through a 2 MB cache becomes the bottleneck of bench/run.
    session << "PRAGMA cache_size=-8192", now;
    session << "PRAGMA wal_autocheckpoint=10000", now;
    for (const char* ddl : kSchema) session << ddl, now;
  }

  std::mutex mutex;  // one writer; Poco sessions are not thread-safe
  Poco::Data::Session session;

  void add_counter(const std::string& name, int64_t delta) {
    if (delta == 0) return;
    Poco::Int64 value = delta;
    std::string key = name;
    session << kAddCounter, use(key), use(value), now;
  }

  void insert_answer(const std::string& key, const std::string& sha, const std::string& answer) {
    std::string k = key, s = sha, a = answer;
    int status = 200;
    session << kInsertAnswer, use(k), use(s), use(status), use(a), now;
  }

  int64_t counter(const std::string& name) {
    std::vector<Poco::Int64> values;
    std::string key = name;
    session << "SELECT value FROM counters WHERE name = ?", use(key), into(values), now;
    return values.empty() ? 0 : values.front();
  }

  int64_t count(const std::string& sql) {
    Poco::Int64 value = 0;
    session << sql, into(value), now;
    return value;
  }

  template <typename Body>
  std::string in_transaction(Body&& body) {
    session.begin();
    try {
      std::string answer = body();
      session.commit();
      return answer;
    } catch (...) {
      session.rollback();
      throw;
    }
  }
};

ProvinceStore::ProvinceStore(const std::string& db_path) {
  static std::once_flag registered;
  std::call_once(registered, [] { Poco::Data::SQLite::Connector::registerConnector(); });
  try {
    impl_ = std::make_unique<Impl>(db_path);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot open the receiver's database " + db_path + ": " +
                             e.displayText());
  }
}

ProvinceStore::~ProvinceStore() = default;

std::optional<StoredAnswer> ProvinceStore::find_answer(const std::string& idempotency_key) {
  std::lock_guard lock(impl_->mutex);
  std::string key = idempotency_key;
  std::vector<std::string> sha, answer;
  std::vector<int> status;
  impl_->session << "SELECT body_sha256, status, answer FROM idempotency WHERE key = ?", use(key),
      into(sha), into(status), into(answer), now;
  if (sha.empty()) return std::nullopt;
  return StoredAnswer{sha.front(), status.front(), answer.front()};
}

std::string ProvinceStore::apply_records(
    const std::string& idempotency_key, const std::string& body_sha256,
    const std::vector<RecordVersion>& records, int64_t rejected,
    const std::function<std::string(const ApplyCounts&)>& make_answer) {
  std::lock_guard lock(impl_->mutex);
  return impl_->in_transaction([&] {
    ApplyCounts counts;
    if (!records.empty()) {
      // Bound by reference once, executed per record: one prepared statement.
      std::string id, body;
      Poco::Int64 revision = 0, sequence = 0;
      int retracted = 0;
      Statement upsert(impl_->session);
      upsert << kUpsertRecord, use(id), use(revision), use(sequence), use(retracted), use(body);
      for (const RecordVersion& r : records) {
        id = r.record_id;
        revision = r.revision;
        sequence = r.sequence;
        retracted = r.retracted ? 1 : 0;
        body = r.json;
        if (upsert.execute() > 0) {
          ++counts.accepted;
        } else {
          ++counts.duplicates;
        }
      }
    }
    std::string answer = make_answer(counts);
    impl_->insert_answer(idempotency_key, body_sha256, answer);
    impl_->add_counter("batches", 1);
    impl_->add_counter("revisions_received", static_cast<int64_t>(records.size()));
    impl_->add_counter("rejected_items", rejected);
    return answer;
  });
}

std::string ProvinceStore::apply_months(
    const std::string& idempotency_key, const std::string& body_sha256,
    const std::vector<MonthVersion>& months, int64_t rejected,
    const std::function<std::string(const ApplyCounts&)>& make_answer) {
  std::lock_guard lock(impl_->mutex);
  return impl_->in_transaction([&] {
    ApplyCounts counts;
    std::string month, code, agency, body;
    Poco::Int64 revision = 0;
    Statement staff(impl_->session);
    staff << kUpsertStaffMonth, use(month), use(code), use(agency), use(revision), use(body);
    Statement agency_stmt(impl_->session);
    agency_stmt << kUpsertAgencyMonth, use(month), use(code), use(revision), use(body);
    for (const MonthVersion& m : months) {
      month = m.month;
      code = m.code;
      agency = m.agency_code;
      revision = m.revision;
      body = m.json;
      const std::size_t changed = m.agency ? agency_stmt.execute() : staff.execute();
      if (changed > 0) {
        ++counts.accepted;
      } else {
        ++counts.duplicates;
      }
    }
    std::string answer = make_answer(counts);
    impl_->insert_answer(idempotency_key, body_sha256, answer);
    impl_->add_counter("batches", 1);
    impl_->add_counter("month_revisions_received", static_cast<int64_t>(months.size()));
    impl_->add_counter("rejected_items", rejected);
    return answer;
  });
}

void ProvinceStore::count_duplicate_batch() {
  std::lock_guard lock(impl_->mutex);
  impl_->add_counter("duplicate_batches", 1);
}

void ProvinceStore::count_conflict() {
  std::lock_guard lock(impl_->mutex);
  impl_->add_counter("conflicts_409", 1);
}

std::optional<StoredRecord> ProvinceStore::record(const std::string& record_id) {
  std::lock_guard lock(impl_->mutex);
  std::string id = record_id;
  std::vector<Poco::Int64> revision, sequence;
  std::vector<int> retracted;
  std::vector<std::string> body;
  impl_->session << "SELECT revision, sequence, retracted, body FROM records WHERE record_id = ?",
      use(id), into(revision), into(sequence), into(retracted), into(body), now;
  if (body.empty()) return std::nullopt;
  return StoredRecord{revision.front(), sequence.front(), retracted.front() != 0, body.front()};
}

std::vector<std::string> ProvinceStore::staff_months(const std::string& month,
                                                     const std::string& agency_code) {
  std::lock_guard lock(impl_->mutex);
  std::string m = month, a = agency_code;
  std::vector<std::string> bodies;
  impl_->session << "SELECT body FROM staff_months WHERE month = ? AND (? = '' OR agency_code = ?)"
                    " ORDER BY staff_code",
      use(m), use(a), use(a), into(bodies), now;
  return bodies;
}

std::vector<std::string> ProvinceStore::agency_months(const std::string& month,
                                                      const std::string& agency_code) {
  std::lock_guard lock(impl_->mutex);
  std::string m = month, a = agency_code;
  std::vector<std::string> bodies;
  impl_->session << "SELECT body FROM agency_months WHERE month = ? AND (? = '' OR agency_code = ?)"
                    " ORDER BY agency_code",
      use(m), use(a), use(a), into(bodies), now;
  return bodies;
}

StoreCounters ProvinceStore::counters() {
  std::lock_guard lock(impl_->mutex);
  StoreCounters c;
  c.records = impl_->count("SELECT COUNT(*) FROM records WHERE retracted = 0");
  c.retracted = impl_->count("SELECT COUNT(*) FROM records WHERE retracted = 1");
  c.staff_months = impl_->count("SELECT COUNT(*) FROM staff_months");
  c.agency_months = impl_->count("SELECT COUNT(*) FROM agency_months");
  c.revisions_received = impl_->counter("revisions_received");
  c.month_revisions_received = impl_->counter("month_revisions_received");
  c.batches = impl_->counter("batches");
  c.duplicate_batches = impl_->counter("duplicate_batches");
  c.conflicts_409 = impl_->counter("conflicts_409");
  c.rejected_items = impl_->counter("rejected_items");
  return c;
}

}  // namespace kpihub::sim::province
