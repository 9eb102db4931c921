// What operators read: the quarantine (Table::quarantine, written by RecordLog::commit_page),
// the store's counts from counters and seq ranges kept by the seams that write them, and the
// audit log (Table::audit).
#include "operator_views.hpp"

#include <rocksdb/snapshot.h>

#include <map>

namespace kpihub::rocks {

namespace {

// The last key of `family` as a seq(8) (0 when it is empty), in `snapshot`.
int64_t last_seq(Database& db, rocksdb::ColumnFamilyHandle* family,
                 const rocksdb::Snapshot* snapshot, const std::string& what) {
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db.db().NewIterator(read, family));
  it->SeekToLast();
  db.check(it->status(), what);
  if (!it->Valid()) return 0;
  return static_cast<int64_t>(key_u64(std::string_view(it->key().data(), it->key().size())));
}

}  // namespace

std::vector<QuarantineRow> RocksOperatorViews::quarantine(const std::string& source,
                                                          const std::string& reason,
                                                          std::size_t limit, int64_t after_id) {
  std::vector<QuarantineRow> out;
  if (limit == 0) return out;
  // An empty filter matches everything; source matches the instance or the source system.
  scan_quarantine(db_, after_id, [&](StoredQuarantine q) {
    if (!source.empty() && q.source != source && q.row.entry.source_system != source) return true;
    if (!reason.empty() && to_string(q.row.entry.reason) != reason) return true;
    out.push_back(std::move(q.row));
    return out.size() < limit;
  });
  return out;
}

std::vector<QuarantineCount> RocksOperatorViews::quarantine_counts() {
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  scan_quarantine(db_, 0, [&](const StoredQuarantine& q) {
    ++counts[{q.source, std::string(to_string(q.row.entry.reason))}];
    return true;
  });
  std::vector<QuarantineCount> out;
  out.reserve(counts.size());
  for (const auto& [key, count] : counts) out.push_back({key.first, key.second, count});
  return out;
}

// One snapshot; every number is a counter or a seq range the seams keep, nothing is counted
// row by row. The scorer reads no change log here: a page marks its staff days dirty in its
// own write, so nothing stored waits to be read (revisions_to_read stays 0).
StoreCounts RocksOperatorViews::counts() {
  Database::ReadView managed(db_);
  const rocksdb::Snapshot* snapshot = managed.snapshot();
  StoreCounts c;
  c.records = read_meta_counter(db_, kRecordsCounter, snapshot);
  c.revisions = last_seq(db_, db_.revisions(), snapshot, "reading the last revision");
  c.quarantined = read_meta_counter(db_, kQuarantinedCounter, snapshot);
  c.outbox_pending = outbox_pending(db_, snapshot);
  c.dead_letters = dead_letter_count(db_, snapshot);
  c.revisions_to_read = 0;
  c.staff_months_to_score = staff_months_to_score(db_, snapshot);
  return c;
}

void RocksOperatorViews::audit(const std::string& actor, const std::string& action,
                               const std::string& detail) {
  const std::string what = "writing the audit log (" + action + ")";
  Database::WriteScope scope(db_);
  std::string key = table_key(Table::audit);
  put_key_u64(key, static_cast<uint64_t>(db_.next_audit_id()));
  rocksdb::WriteBatch batch;
  batch.Put(db_.meta(), key,
            encode_audit(AuditLine{db_.clock().now_unix_ms(), actor, action, detail}));
  scope.write(batch, what);  // synced: durable when it returns
}

}  // namespace kpihub::rocks
