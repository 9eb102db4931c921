// The staff lists the sources synced: Table::staff_lists, keyed by source NUL staff_code, so a
// source's list is one key range, rewritten in one write.
#include "staff_lists.hpp"

#include <algorithm>
#include <set>

namespace kpihub::rocks {

namespace {

std::string source_prefix(const std::string& source) {
  std::string key = table_key(Table::staff_lists, source);
  key.push_back('\0');
  return key;
}

}  // namespace

void RocksStaffLists::save_synced_staff(const std::string& source,
                                        const std::vector<SyncedStaff>& entries) {
  const std::string what = "saving the staff list of source " + source;
  if (source.empty()) {
    throw StoreError("store " + db_.path() + ": a synced staff list needs its source");
  }
  std::set<std::string> named;
  for (const SyncedStaff& e : entries) {
    if (e.source != source) {
      throw StoreError("store " + db_.path() + ": the staff list of source " + source +
                       " has an entry of source \"" + e.source + "\" (" + e.staff_code + ")");
    }
    named.insert(e.staff_code);
  }
  const std::string prefix = source_prefix(source);
  std::lock_guard lock(db_.write_mutex());
  rocksdb::WriteBatch batch;
  // Whom the list no longer names has left, as far as the source knows: inactive, with what
  // the source said of them last and when.
  const std::string end = prefix_end(prefix);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_.db().NewIterator(read, db_.meta()));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    std::string code(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    if (named.count(code) != 0) continue;
    SyncedStaff left = decode_synced_staff(std::string_view(it->value().data(), it->value().size()),
                                           source, std::move(code));
    if (!left.active) continue;
    left.active = false;
    batch.Put(db_.meta(), it->key(), encode_synced_staff(left));
  }
  db_.check(it->status(), what);
  for (const SyncedStaff& e : entries) {
    batch.Put(db_.meta(), prefix + e.staff_code, encode_synced_staff(e));
  }
  db_.write(batch, what);
}

std::vector<SyncedStaff> RocksStaffLists::synced_staff() {
  const std::string prefix = table_key(Table::staff_lists);
  const std::string end = prefix_end(prefix);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_.db().NewIterator(read, db_.meta()));
  std::vector<SyncedStaff> out;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    const std::size_t nul = key.find('\0');
    if (nul == std::string_view::npos) {
      throw StoreError("store " + db_.path() +
                       ": a synced staff key has no NUL after its source (corrupt store)");
    }
    out.push_back(decode_synced_staff(std::string_view(it->value().data(), it->value().size()),
                                      std::string(key.substr(0, nul)),
                                      std::string(key.substr(nul + 1))));
  }
  db_.check(it->status(), "reading synced staff lists");
  // The oldest sync first, then by source and staff code (the key's order).
  std::stable_sort(out.begin(), out.end(), [](const SyncedStaff& a, const SyncedStaff& b) {
    return a.synced_at_unix_ms < b.synced_at_unix_ms;
  });
  return out;
}

}  // namespace kpihub::rocks
