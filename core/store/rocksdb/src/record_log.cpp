#include "record_log.hpp"

#include <kpihub/store/quarantine.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>

namespace kpihub::rocks {

namespace {

// A source's cursor and what its pages brought (Table::cursors).
struct CursorState {
  std::optional<std::string> cursor;
  int64_t updated_at_unix_ms = 0;
  int64_t records = 0;
  int64_t quarantined = 0;
  int64_t pages = 0;
};

std::string encode_cursor(const CursorState& c) {
  std::string out;
  Writer w(out);
  w.boolean(c.cursor.has_value());
  w.str(c.cursor.value_or(""));
  w.i64(c.updated_at_unix_ms);
  w.i64(c.records);
  w.i64(c.quarantined);
  w.i64(c.pages);
  return out;
}

CursorState decode_cursor(std::string_view in) {
  Reader r(in, "a source's cursor");
  CursorState c;
  const bool present = r.boolean();
  const std::string_view text = r.str();
  if (present) c.cursor = std::string(text);
  c.updated_at_unix_ms = r.i64();
  c.records = r.i64();
  c.quarantined = r.i64();
  c.pages = r.i64();
  return c;
}

std::string staff_day_key(const std::string& staff_code, Date work_date,
                          std::string_view record_id) {
  std::string key = staff_month_prefix(work_date.month_str(), staff_code);
  put_key_date(key, work_date);
  key.append(record_id);
  return key;
}

std::string quarantine_key(int64_t id) {
  std::string key = table_key(Table::quarantine);
  put_key_u64(key, static_cast<uint64_t>(id));
  return key;
}

std::string quarantine_by_record_key(std::string_view record_id, int64_t id) {
  std::string key = table_key(Table::quarantine_by_record, record_id);
  key.push_back('\0');
  put_key_u64(key, static_cast<uint64_t>(id));
  return key;
}

// Calls `visit` with each stored quarantine entry of `record_id` (its quarantine_by_record keys),
// in id order, until it returns false.
void for_each_quarantine_of_record(Database& db, std::string_view record_id,
                                   const std::function<bool(const StoredQuarantine&)>& visit) {
  std::string prefix = table_key(Table::quarantine_by_record, record_id);
  prefix.push_back('\0');
  const std::string end = prefix_end(prefix);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> entries(db.db().NewIterator(read, db.meta()));
  for (entries->Seek(prefix); entries->Valid(); entries->Next()) {
    const rocksdb::Slice key = entries->key();
    const auto id = static_cast<int64_t>(
        key_u64(std::string_view(key.data() + prefix.size(), key.size() - prefix.size())));
    const std::optional<std::string> stored =
        db.get(db.meta(), quarantine_key(id), "reading quarantine entry " + std::to_string(id));
    if (!stored) continue;
    if (!visit(decode_quarantine(*stored, id))) break;
  }
  db.check(entries->status(), "reading the quarantine of record " + std::string(record_id));
}

// received_at is the last field encode_record writes: read without decoding the record.
int64_t received_at_of_encoded(const rocksdb::Slice& value) {
  if (value.size() < sizeof(int64_t)) {
    throw StoreError("store: a stored revision is shorter than its format (corrupt store)");
  }
  return Reader(std::string_view(value.data() + value.size() - 8, 8), "a revision's time").i64();
}

}  // namespace

PageCommitResult RocksRecordLog::commit_page(const PageCommit& page) {
  const std::string what = "committing page of source " + page.source;
  if (page.source.empty()) throw StoreError("store " + db_.path() + ": a page needs a source name");
  db_.require_writable(what);
  Database::WriteScope scope(db_);
  PageCommitResult result;
  rocksdb::WriteBatch batch;
  const int64_t at =
      page.received_at_unix_ms != 0 ? page.received_at_unix_ms : db_.clock().now_unix_ms();

  // The stored revision of each record id of the page, looked up at once; ids accepted earlier
  // in this page are known with what this page wrote.
  struct Known {
    RecordLocator locator;
    std::optional<WorkRecord> written;  // the revision this page stored, if it stored one
    // The staff month of the stored revision when this page moves the record out of it: its
    // last score moves once, from there to where the page leaves the record (move_score reads
    // the store, not the batch).
    std::optional<StaffMonthKey> moved_from;
  };
  std::unordered_map<std::string_view, Known> known;
  {
    std::vector<std::string_view> ids;
    ids.reserve(page.records.size());
    for (const auto& r : page.records) {
      if (r.record_id.empty()) {
        throw StoreError("store " + db_.path() + ": a record without record_id (source_id " +
                         r.source_id + ") while " + what);
      }
      if (r.revision < 0) {
        throw StoreError("store " + db_.path() + ": record " + r.record_id + " has revision " +
                         std::to_string(r.revision) + ", below 0, while " + what);
      }
      ids.push_back(r.record_id);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::vector<rocksdb::Slice> keys(ids.begin(), ids.end());
    std::vector<rocksdb::PinnableSlice> values(ids.size());
    std::vector<rocksdb::Status> statuses(ids.size());
    if (!ids.empty()) {
      db_.db().MultiGet(rocksdb::ReadOptions(), db_.records(), keys.size(), keys.data(),
                        values.data(), statuses.data(), /*sorted_input=*/true);
    }
    known.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      db_.check(statuses[i], "looking up record " + std::string(ids[i]));
      known.emplace(ids[i],
                    Known{decode_locator(values[i].ToStringView()), std::nullopt, std::nullopt});
    }
  }

  // The stored revision of a known record, every field: what a bare withdrawal keeps.
  const auto stored_record = [&](Known& k) -> WorkRecord& {
    if (!k.written) k.written = std::move(read_logged_revisions(db_, {k.locator.log_seq}).front());
    return *k.written;
  };

  std::map<StaffMonthKey, DayMask> dirty;
  const auto mark = [&](const std::string& staff_code, Date day) {
    // A record of no known staff member scores nothing until a revision names one.
    if (!staff_code.empty()) dirty[{staff_code, day.month_str()}] |= day_bit(day);
  };
  std::string value;
  // The whole revision goes to the log; what scoring reads of it, to the staff day; where it
  // is, to the locator. Returns the locator.
  const auto store_revision = [&](const WorkRecord& r) {
    const int64_t log_seq = db_.next_revision_seq();
    value.clear();
    encode_record(value, r, at);
    std::string log_key;
    put_key_u64(log_key, static_cast<uint64_t>(log_seq));
    batch.Put(db_.revisions(), log_key, value);
    value.clear();
    encode_scoring_inputs(value, r, at, log_seq);
    batch.Put(db_.staff_days(), staff_day_key(r.staff_code, r.work_date, r.record_id), value);
    RecordLocator locator{r.revision, r.staff_code, r.work_date, at, log_seq};
    batch.Put(db_.records(), r.record_id, encode_locator(locator));
    mark(r.staff_code, r.work_date);
    return locator;
  };

  // Decide in page order against what is stored and what this page already accepted, so the
  // higher revision wins whatever the order within the page.
  // The highest revision this page stored of each record, or withdrew of one never stored:
  // the quarantine entries it supersedes go (the source corrected or deleted the record).
  std::unordered_map<std::string_view, int64_t> superseding;
  int64_t new_records = 0;
  for (const auto& r : page.records) {
    auto it = known.find(r.record_id);
    if (it != known.end() && r.revision <= it->second.locator.revision) {
      ++result.ignored_stale;
      continue;
    }
    int64_t& superseded = superseding[r.record_id];
    superseded = std::max(superseded, r.revision);
    if (is_bare_withdrawal(r)) {
      // Nothing stored: nothing to withdraw. Otherwise the stored record, with its content,
      // becomes the withdrawn revision.
      if (it == known.end()) {
        ++result.ignored_stale;
        continue;
      }
      ++result.updated;
      WorkRecord& withdrawn = stored_record(it->second);
      withdrawn.revision = r.revision;
      withdrawn.retracted = true;
      withdrawn.changed_at = r.changed_at;
      it->second.locator = store_revision(withdrawn);
      continue;
    }
    if (it == known.end()) {
      ++result.inserted;
      ++new_records;
      it = known.emplace(r.record_id, Known{}).first;
    } else {
      ++result.updated;
      // The staff day the record leaves needs rescoring too, and the record's last score goes
      // with it: its next score must carry on its sequence.
      const RecordLocator& was = it->second.locator;
      if (was.staff_code != r.staff_code || was.work_date != r.work_date) {
        mark(was.staff_code, was.work_date);
        batch.Delete(db_.staff_days(), staff_day_key(was.staff_code, was.work_date, r.record_id));
      }
      if (!it->second.moved_from && (was.staff_code != r.staff_code ||
                                     was.work_date.month_str() != r.work_date.month_str())) {
        it->second.moved_from = StaffMonthKey{was.staff_code, was.work_date.month_str()};
      }
    }
    it->second.locator = store_revision(r);
    it->second.written = r;
  }

  // Whether the store holds an entry of the page's source with the record, reason and fields of
  // `q` (a record's entries are few: its quarantine_by_record keys).
  const auto held_already = [&](const QuarantineEntry& q) {
    bool held = false;
    for_each_quarantine_of_record(db_, q.record_id, [&](const StoredQuarantine& entry) {
      const QuarantineEntry& e = entry.row.entry;
      held = entry.source == page.source && e.reason == q.reason && e.fields == q.fields &&
             e.field == q.field && e.message == q.message && e.payload == q.payload &&
             e.source_id == q.source_id;
      return !held;
    });
    return held;
  };

  // An invalid revision not above the one stored (a revision sent again, or one this page
  // superseded) has nothing left to fix: it is stale, as a valid one would be, and kept out.
  // An entry that names no revision it had stays until resolved, unless the store holds it already.
  const auto stale = [&](const QuarantineEntry& q) {
    if (q.record_id.empty()) return false;
    if (const std::optional<int64_t> revision = quarantined_revision(q.fields)) {
      if (const auto s = superseding.find(q.record_id);
          s != superseding.end() && s->second >= *revision) {
        return true;
      }
      if (const auto k = known.find(q.record_id); k != known.end()) {
        if (k->second.locator.revision >= *revision) return true;
      } else {
        // Not in the page: what the store holds.
        const std::optional<std::string> stored =
            db_.get(db_.records(), q.record_id, "looking up record " + q.record_id);
        if (stored && decode_locator(*stored).revision >= *revision) return true;
      }
    }
    // The same entry, held since the source was read before (`kpihub source reset`, a store
    // restored from a backup): a second one would count the item twice. Not for a record this
    // page stores: the page resolves the entries held of it.
    return superseding.count(q.record_id) == 0 && held_already(q);
  };

  // The source's cursor state, with what this page changes of it.
  const std::string cursor_key = table_key(Table::cursors, page.source);
  std::map<std::string, CursorState> cursors;  // by source: removals count out of theirs
  const auto cursor_of = [&](const std::string& source) -> CursorState& {
    auto c = cursors.find(source);
    if (c != cursors.end()) return c->second;
    const std::optional<std::string> stored = db_.get(db_.meta(), table_key(Table::cursors, source),
                                                      "reading the cursor of source " + source);
    return cursors.emplace(source, stored ? decode_cursor(*stored) : CursorState{}).first->second;
  };

  // Quarantine entries up to here are older than every item of this page.
  const int64_t quarantined_before_page = db_.last_quarantine_id();
  int64_t quarantine_change = 0;
  for (std::size_t i = 0; i < page.quarantined.size(); ++i) {
    const QuarantineEntry& q = page.quarantined[i];
    if (stale(q)) {
      ++result.ignored_stale;
      result.quarantine_not_kept.push_back(i);
      continue;
    }
    const int64_t id = db_.next_quarantine_id();
    value.clear();
    encode_quarantine(value, page.source, QuarantineRow{id, q, at});
    batch.Put(db_.meta(), quarantine_key(id), value);
    if (!q.record_id.empty()) batch.Put(db_.meta(), quarantine_by_record_key(q.record_id, id), "");
    ++result.quarantined;
    ++quarantine_change;
  }

  // Removes a stored quarantine entry and counts it out of its source's quarantined items.
  const auto remove_entry = [&](int64_t id, const QuarantineRow& row, const std::string& source) {
    batch.Delete(db_.meta(), quarantine_key(id));
    if (!row.entry.record_id.empty()) {
      batch.Delete(db_.meta(), quarantine_by_record_key(row.entry.record_id, id));
    }
    CursorState& c = cursor_of(source);
    c.quarantined = std::max<int64_t>(0, c.quarantined - 1);
    --quarantine_change;
  };
  std::vector<int64_t> removed;  // ids removed by this page, each once
  for (const int64_t id : page.resolved_quarantine_ids) {
    if (std::find(removed.begin(), removed.end(), id) != removed.end()) continue;
    const std::optional<std::string> stored =
        db_.get(db_.meta(), quarantine_key(id), "reading quarantine entry " + std::to_string(id));
    if (!stored) continue;
    const StoredQuarantine entry = decode_quarantine(*stored, id);
    remove_entry(id, entry.row, entry.source);
    removed.push_back(id);
  }

  CursorState& cursor = cursor_of(page.source);
  if (page.cursor) cursor.cursor = *page.cursor;
  cursor.updated_at_unix_ms = at;
  cursor.records += static_cast<int64_t>(result.inserted + result.updated);
  cursor.quarantined += static_cast<int64_t>(result.quarantined);
  cursor.pages += 1;

  // The stored entries of each record this page stored a higher revision of (or withdrew): an
  // entry of a revision not above that one, or of no readable revision received before the
  // page. This page's own entries are not stored yet (and never superseded: see `stale`).
  for (const auto& [record_id, stored_revision] : superseding) {
    // A copy: a lambda may not capture a structured binding (clang 14, C++20).
    const int64_t revision = stored_revision;
    for_each_quarantine_of_record(db_, record_id, [&](const StoredQuarantine& entry) {
      const int64_t id = entry.row.id;
      if (std::find(removed.begin(), removed.end(), id) != removed.end()) return true;
      const std::optional<int64_t> entry_revision = quarantined_revision(entry.row.entry.fields);
      if (entry_revision ? *entry_revision <= revision : id <= quarantined_before_page) {
        remove_entry(id, entry.row, entry.source);
        removed.push_back(id);
        ++result.quarantine_resolved;
      }
      return true;
    });
  }

  for (const auto& [source, state] : cursors) {
    batch.Put(db_.meta(), table_key(Table::cursors, source), encode_cursor(state));
  }
  for (const auto& [id, k] : known) {
    const StaffMonthKey now{k.locator.staff_code, k.locator.work_date.month_str()};
    if (k.moved_from && *k.moved_from != now) {
      move_score(db_, batch, std::string(id), *k.moved_from, now);
    }
  }
  add_dirty_marks(db_, batch, dirty);
  add_to_meta_counter(db_, batch, kRecordsCounter, new_records);
  add_to_meta_counter(db_, batch, kQuarantinedCounter, quarantine_change);
  if (db_.last_quarantine_id() > quarantined_before_page) {
    std::string last_id;
    Writer(last_id).i64(db_.last_quarantine_id());
    batch.Put(db_.meta(), table_key(Table::meta, kQuarantineLastIdCounter), last_id);
  }
  scope.write(batch, what);
  return result;
}

void RocksRecordLog::set_cursor(const std::string& source,
                                const std::optional<std::string>& cursor) {
  const std::string what = "setting the cursor of source " + source;
  db_.require_writable(what);
  Database::WriteScope scope(db_);
  const std::string key = table_key(Table::cursors, source);
  const std::optional<std::string> stored = db_.get(db_.meta(), key, what);
  CursorState state = stored ? decode_cursor(*stored) : CursorState{};
  state.cursor = cursor;
  state.updated_at_unix_ms = db_.clock().now_unix_ms();
  rocksdb::WriteBatch batch;
  batch.Put(db_.meta(), key, encode_cursor(state));
  scope.write(batch, what);
}

std::size_t RocksRecordLog::dismiss_quarantine(const std::string& source, const std::string& reason,
                                               int64_t id) {
  const std::string what = "dismissing quarantine entries";
  db_.require_writable(what);
  Database::WriteScope scope(db_);
  rocksdb::WriteBatch batch;
  std::map<std::string, int64_t> dismissed_of;  // by source instance
  std::size_t dismissed = 0;
  scan_quarantine(db_, id > 0 ? id - 1 : 0, [&](const StoredQuarantine& q) {
    if (id > 0 && q.row.id != id) return false;  // a negative id: no id filter, as on SQLite
    const bool matches =
        (source.empty() || q.source == source || q.row.entry.source_system == source) &&
        (reason.empty() || to_string(q.row.entry.reason) == reason);
    if (matches) {
      batch.Delete(db_.meta(), quarantine_key(q.row.id));
      if (!q.row.entry.record_id.empty()) {
        batch.Delete(db_.meta(), quarantine_by_record_key(q.row.entry.record_id, q.row.id));
      }
      ++dismissed_of[q.source];
      ++dismissed;
    }
    return id <= 0;
  });
  if (dismissed == 0) return 0;
  for (const auto& [instance, n] : dismissed_of) {
    const std::string key = table_key(Table::cursors, instance);
    const std::optional<std::string> stored = db_.get(db_.meta(), key, what);
    if (!stored) continue;
    CursorState state = decode_cursor(*stored);
    state.quarantined = std::max<int64_t>(0, state.quarantined - n);
    batch.Put(db_.meta(), key, encode_cursor(state));
  }
  add_to_meta_counter(db_, batch, kQuarantinedCounter, -static_cast<int64_t>(dismissed));
  scope.write(batch, what);
  return dismissed;
}

std::optional<std::string> RocksRecordLog::cursor(const std::string& source) {
  const std::optional<std::string> stored = db_.get(db_.meta(), table_key(Table::cursors, source),
                                                    "reading the cursor of source " + source);
  if (!stored) return std::nullopt;
  return decode_cursor(*stored).cursor;
}

std::vector<SourceState> RocksRecordLog::sources() {
  const std::string prefix = table_key(Table::cursors);
  const std::string end = prefix_end(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_.db().NewIterator(read, db_.meta()));
  std::vector<SourceState> out;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const CursorState c = decode_cursor(it->value().ToStringView());
    SourceState& s = out.emplace_back();
    s.source = it->key().ToString().substr(prefix.size());
    s.cursor = c.cursor;
    s.updated_at_unix_ms = c.updated_at_unix_ms;
    s.records = c.records;
    s.quarantined = c.quarantined;
  }
  db_.check(it->status(), "listing sources");
  return out;
}

std::optional<WorkRecord> RocksRecordLog::record(const std::string& record_id) {
  const std::optional<std::string> located =
      db_.get(db_.records(), record_id, "reading record " + record_id);
  if (!located) return std::nullopt;
  // The log is never rewritten: the revision the locator names stays where it is.
  return std::move(read_logged_revisions(db_, {decode_locator(*located).log_seq}).front());
}

std::vector<WorkRecord> RocksRecordLog::records_of_month(const std::string& month) {
  const std::string prefix = month_prefix(month);
  const std::string end = prefix_end(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  Database::ReadView snapshot(db_);
  read.snapshot = snapshot.snapshot();
  std::unique_ptr<rocksdb::Iterator> it(db_.db().NewIterator(read, db_.staff_days()));
  std::vector<int64_t> log_seqs;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    log_seqs.push_back(scoring_inputs_log_seq(it->value().ToStringView()));
  }
  db_.check(it->status(), "reading records of month " + month);
  return read_logged_revisions(db_, log_seqs, snapshot.snapshot());
}

std::vector<WorkRecord> read_logged_revisions(Database& db, const std::vector<int64_t>& log_seqs,
                                              const rocksdb::Snapshot* snapshot) {
  std::vector<WorkRecord> out(log_seqs.size());
  // In slices: a month's records are read a few thousand at a time, not all keys at once.
  constexpr std::size_t kSlice = 4096;
  std::vector<std::string> keys;
  std::vector<rocksdb::Slice> slices;
  std::vector<rocksdb::PinnableSlice> values;
  std::vector<rocksdb::Status> statuses;
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  StoredRecord stored;
  for (std::size_t begin = 0; begin < log_seqs.size(); begin += kSlice) {
    const std::size_t n = std::min(kSlice, log_seqs.size() - begin);
    keys.assign(n, std::string());
    slices.clear();
    for (std::size_t i = 0; i < n; ++i) {
      put_key_u64(keys[i], static_cast<uint64_t>(log_seqs[begin + i]));
      slices.emplace_back(keys[i]);
    }
    values = std::vector<rocksdb::PinnableSlice>(n);
    statuses.assign(n, rocksdb::Status());
    db.db().MultiGet(read, db.revisions(), n, slices.data(), values.data(), statuses.data());
    for (std::size_t i = 0; i < n; ++i) {
      if (statuses[i].IsNotFound()) {
        throw StoreError("store " + db.path() + ": revision " +
                         std::to_string(log_seqs[begin + i]) +
                         " is listed but not in the log (corrupt store)");
      }
      db.check(statuses[i], "reading logged revisions");
      decode_record(values[i].ToStringView(), stored);
      out[begin + i] = std::move(stored.record);
    }
  }
  return out;
}

std::vector<int64_t> RocksRecordLog::received_at(const std::vector<std::string>& record_ids) {
  std::vector<int64_t> out(record_ids.size(), 0);
  if (record_ids.empty()) return out;
  std::vector<rocksdb::Slice> keys(record_ids.begin(), record_ids.end());
  std::vector<rocksdb::PinnableSlice> values(record_ids.size());
  std::vector<rocksdb::Status> statuses(record_ids.size());
  db_.db().MultiGet(rocksdb::ReadOptions(), db_.records(), keys.size(), keys.data(), values.data(),
                    statuses.data());
  for (std::size_t i = 0; i < record_ids.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    db_.check(statuses[i], "reading received_at of " + record_ids[i]);
    out[i] = decode_locator(values[i].ToStringView()).received_at_unix_ms;
  }
  return out;
}

std::vector<HourCount> RocksRecordLog::stored_per_hour(int64_t since_unix_ms) {
  // The log is in the order revisions were stored: read from the newest back, and stop well
  // past the first one older than `since` (the margin covers a clock set back meanwhile).
  constexpr int kOlderRevisionsBeforeStopping = 10000;
  std::unique_ptr<rocksdb::Iterator> it(
      db_.db().NewIterator(rocksdb::ReadOptions(), db_.revisions()));
  std::map<int64_t, int64_t> per_hour;
  int older = 0;
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    const int64_t stored_at = received_at_of_encoded(it->value());
    if (stored_at < since_unix_ms) {
      if (++older >= kOlderRevisionsBeforeStopping) break;
      continue;
    }
    ++per_hour[stored_at / 3600000 * 3600000];
  }
  db_.check(it->status(), "reading the newest revisions");
  std::vector<HourCount> out;
  out.reserve(per_hour.size());
  for (const auto& [hour, count] : per_hour) out.push_back({hour, count});
  return out;
}

}  // namespace kpihub::rocks
