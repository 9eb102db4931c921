#include "scoring_state.hpp"

#include <kpihub/store/scoring_digest.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <numeric>
#include <thread>

namespace kpihub::rocks {

namespace {

// ------------------------------------------------------------ helpers ----

// Runs `body`, adding " while <what>" to the StoreError it throws (as the SQLite engine does);
// any other exception becomes a StoreError naming the store.
template <typename F>
auto guarded(const Database& db, const std::string& what, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const StoreError& e) {
    throw StoreError(std::string(e.what()) + " while " + what);
  } catch (const std::exception& e) {
    throw StoreError("store " + db.path() + ": " + e.what() + " while " + what);
  }
}

// An iterator over the keys of `family` from `from` up to `to` (exclusive; "" for no bound),
// in `snapshot` when given. Not movable: the iterator holds a pointer to the bound.
class Range {
 public:
  Range(Database& db, rocksdb::ColumnFamilyHandle* family, const std::string& from, std::string to,
        const rocksdb::Snapshot* snapshot = nullptr, bool fill_cache = true)
      : to_(std::move(to)), upper_(to_) {
    rocksdb::ReadOptions read;
    read.snapshot = snapshot;
    read.fill_cache = fill_cache;
    if (!to_.empty()) read.iterate_upper_bound = &upper_;
    it_.reset(db.db().NewIterator(read, family));
    it_->Seek(from);
  }
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

  rocksdb::Iterator* operator->() { return it_.get(); }
  std::string_view key() const { return {it_->key().data(), it_->key().size()}; }
  std::string_view value() const { return {it_->value().data(), it_->value().size()}; }

 private:
  std::string to_;
  rocksdb::Slice upper_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

// Every key starting with `prefix`.
class PrefixRange : public Range {
 public:
  PrefixRange(Database& db, rocksdb::ColumnFamilyHandle* family, const std::string& prefix,
              const rocksdb::Snapshot* snapshot = nullptr, bool fill_cache = true)
      : Range(db, family, prefix, prefix_end(prefix), snapshot, fill_cache) {}
};

// The values of `keys` in `family` (nullopt: not there), in one MultiGet.
std::vector<std::optional<std::string>> multi_get(Database& db, rocksdb::ColumnFamilyHandle* family,
                                                  const std::vector<std::string>& keys,
                                                  const std::string& what,
                                                  const rocksdb::Snapshot* snapshot = nullptr) {
  std::vector<std::optional<std::string>> out(keys.size());
  if (keys.empty()) return out;
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  db.db().MultiGet(read, family, keys.size(), slices.data(), values.data(), statuses.data());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    db.check(statuses[i], what);
    out[i].emplace(values[i].data(), values[i].size());
  }
  return out;
}

// The staff month a key of the form "YYYY-MM" NUL staff NUL starts with, and the rest of the
// key after it.
StaffMonthKey parse_staff_month(std::string_view key, std::string_view* rest = nullptr) {
  const std::size_t month_end = key.find('\0');
  const std::size_t staff_end =
      month_end == std::string_view::npos ? month_end : key.find('\0', month_end + 1);
  if (staff_end == std::string_view::npos) {
    throw StoreError("store: a staff month's key has no month and staff code (corrupt store)");
  }
  if (rest != nullptr) *rest = key.substr(staff_end + 1);
  return StaffMonthKey{std::string(key.substr(month_end + 1, staff_end - month_end - 1)),
                       std::string(key.substr(0, month_end))};
}

std::string key_prefix(const StaffMonthKey& key) {
  return staff_month_prefix(key.month, key.staff_code);
}

// The staff month a record's current revision is in.
StaffMonthKey staff_month_of(const RecordLocator& l) {
  return StaffMonthKey{l.staff_code, l.work_date.month_str()};
}

// --------------------------------------------------------- dirty marks ----

const std::string& mark_counter_key() {
  static const std::string key = table_key(Table::meta, "dirty_mark");
  return key;
}

// A dirty key's value: the days that changed, the number of its newest mark (what a scorer's
// listing must still find for its commit to clear the key), and that of the mark that made it
// dirty (its place in Table::dirty_order: a key marked again keeps it, so a busy staff month is
// not put off for ever behind those marked after it).
struct DirtyMark {
  DayMask days = 0;
  int64_t mark = 0;
  int64_t first_mark = 0;
};

std::string encode_dirty(const DirtyMark& d) {
  std::string out;
  Writer w(out);
  w.u32(d.days);
  w.i64(d.mark);
  w.i64(d.first_mark);
  return out;
}

DirtyMark decode_dirty(std::string_view in) {
  Reader rd(in, "a dirty mark");
  DirtyMark d;
  d.days = rd.u32();
  d.mark = rd.i64();
  d.first_mark = rd.i64();
  return d;
}

// The key of a dirty key in Table::dirty_order: by its first mark's number, then staff month.
std::string dirty_order_key(int64_t mark, std::string_view staff_month) {
  std::string key = table_key(Table::dirty_order);
  put_key_u64(key, static_cast<uint64_t>(mark));
  key.append(staff_month);
  return key;
}

// ------------------------------------------------------------- scores ----

std::string score_key(const StaffMonthKey& key, const std::string& record_id) {
  return key_prefix(key) + record_id;
}

std::string encode_score(const RecordScoreRow& row) {
  std::string out;
  Writer w(out);
  w.i64(row.revision);
  w.i64(row.sequence);
  w.str(row.scoring_digest);
  return out;
}

// The sequence of a stored score alone (its digest, or an old text, left unread).
int64_t stored_score_sequence(std::string_view in) {
  Reader rd(in, "a record's score");
  rd.i64();  // revision
  return rd.i64();
}

RecordScoreRow decode_score(std::string record_id, std::string_view in) {
  Reader rd(in, "a record's score");
  RecordScoreRow row;
  row.record_id = std::move(record_id);
  row.revision = rd.i64();
  row.sequence = rd.i64();
  row.scoring_digest = stored_scoring_digest(std::string(rd.str()));
  return row;
}

// --------------------------------------------------------- month rows ----

// Month rows are staff_month or agency_month; throws for any other kind.
char month_kind_byte(OutboxKind kind, const Database& db) {
  if (kind != OutboxKind::staff_month && kind != OutboxKind::agency_month) {
    throw StoreError("store " + db.path() +
                     ": month rows are staff_month or agency_month, not record");
  }
  return static_cast<char>(kind);
}

std::string month_rows_prefix(OutboxKind kind, const std::string& month, const Database& db) {
  std::string key = table_key(Table::months);
  key.push_back(month_kind_byte(kind, db));
  key += month_prefix(month);
  return key;
}

std::string encode_month_row(const ScoringCommit::MonthRow& row) {
  std::string out;
  Writer w(out);
  w.str(row.agency_code);
  w.i64(row.revision);
  w.str(row.json);
  return out;
}

ScoringCommit::MonthRow decode_month_row(OutboxKind kind, std::string month, std::string code,
                                         std::string_view in) {
  Reader rd(in, "a month row");
  ScoringCommit::MonthRow row;
  row.kind = kind;
  row.month = std::move(month);
  row.code = std::move(code);
  row.agency_code = rd.str();
  row.revision = rd.i64();
  row.json = rd.str();
  return row;
}

// ------------------------------------------------------------ records ----

// Decodes a record's scoring inputs into `out` (the fields scoring reads, ScanBatch's; the
// others are cleared, `out`'s strings keep their capacity).
void read_scoring_record(std::string_view value, WorkRecord& out, int64_t& received_at) {
  int64_t log_seq = 0;
  decode_scoring_inputs(value, out, received_at, log_seq);
}

// The key prefix of one work date of a staff month in the staff_days family.
std::string staff_day_prefix(const std::string& staff_month, Date d) {
  std::string key = staff_month;
  put_key_date(key, d);
  return key;
}

Month parse_month(const Database& db, const std::string& month) {
  const auto parsed = Month::parse(month);
  if (!parsed) throw StoreError("store " + db.path() + ": not a month: '" + month + "'");
  return *parsed;
}

// Puts the records of `out` (and received_at with them) in record_id order.
void sort_by_record_id(ScoringState::StaffMonthForScoring& out) {
  std::vector<std::size_t> order(out.records.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return out.records[a].record_id < out.records[b].record_id;
  });
  std::vector<WorkRecord> records(order.size());
  std::vector<int64_t> received_at(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    records[i] = std::move(out.records[order[i]]);
    received_at[i] = out.received_at[order[i]];
  }
  out.records = std::move(records);
  out.received_at = std::move(received_at);
}

void sort_by_record_id(std::vector<WorkRecord>& records) {
  std::sort(records.begin(), records.end(),
            [](const WorkRecord& a, const WorkRecord& b) { return a.record_id < b.record_id; });
}

}  // namespace

// -------------------------------------------------------------- dirty ----

std::vector<DirtyStaffMonth> RocksScoringState::dirty_staff_days(std::size_t limit) {
  return guarded(db_, "listing dirty staff-months", [&] {
    // Marks are written with the page that makes them (add_dirty_marks): nothing to catch up
    // on, every page committed before this call is listed. The keys dirty the longest first.
    Database::ReadView snapshot(db_);
    std::vector<std::string> keys;
    {
      PrefixRange it(db_, db_.meta(), table_key(Table::dirty_order), snapshot.snapshot());
      for (; it->Valid() && keys.size() < limit; it->Next()) {
        keys.push_back(table_key(Table::dirty, it.key().substr(1 + 8)));
      }
      db_.check(it->status(), "reading the dirty marks in order");
    }
    const auto values =
        multi_get(db_, db_.meta(), keys, "reading dirty marks", snapshot.snapshot());
    std::vector<DirtyStaffMonth> out;
    std::vector<int64_t> marks;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (!values[i]) {
        throw StoreError("store " + db_.path() +
                         ": a dirty mark listed in order is not there (corrupt store)");
      }
      const DirtyMark mark = decode_dirty(*values[i]);
      out.push_back(
          DirtyStaffMonth{parse_staff_month(std::string_view(keys[i]).substr(1)), mark.days});
      marks.push_back(mark.mark);
    }
    std::lock_guard lock(listed_mutex_);
    for (std::size_t i = 0; i < out.size(); ++i) listed_marks_[out[i].key] = marks[i];
    return out;
  });
}

std::size_t RocksScoringState::mark_month_dirty(const std::string& month) {
  return guarded(db_, "marking month " + month + " dirty", [&] {
    db_.require_writable("marking month " + month + " dirty");
    Database::WriteScope scope(db_);
    std::map<StaffMonthKey, DayMask> days_of;
    for (std::string& staff : staff_of_month(month)) {
      days_of.emplace(StaffMonthKey{std::move(staff), month}, kWholeMonth);
    }
    if (days_of.empty()) return std::size_t{0};
    rocksdb::WriteBatch batch;
    add_dirty_marks(db_, batch, days_of);
    scope.write(batch, "writing the dirty marks");
    return days_of.size();
  });
}

void add_dirty_marks(Database& db, rocksdb::WriteBatch& batch,
                     const std::map<StaffMonthKey, DayMask>& days_of) {
  std::vector<std::string> keys;
  std::vector<DayMask> days;
  for (const auto& [key, mask] : days_of) {
    // A record of no known staff member scores nothing until a revision names one.
    if (key.staff_code.empty() || mask == 0) continue;
    keys.push_back(table_key(Table::dirty, key_prefix(key)));
    days.push_back(mask);
  }
  if (keys.empty()) return;
  const std::optional<std::string> counter =
      db.get(db.meta(), mark_counter_key(), "reading the dirty mark counter");
  const int64_t mark = (counter ? Reader(*counter, "the dirty mark counter").i64() : 0) + 1;
  std::string counter_value;
  Writer(counter_value).i64(mark);
  batch.Put(db.meta(), mark_counter_key(), counter_value);

  const auto stored = multi_get(db, db.meta(), keys, "reading dirty marks");
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string_view staff_month = std::string_view(keys[i]).substr(1);
    if (stored[i]) {
      const DirtyMark old = decode_dirty(*stored[i]);
      batch.Put(db.meta(), keys[i], encode_dirty({old.days | days[i], mark, old.first_mark}));
    } else {
      batch.Put(db.meta(), keys[i], encode_dirty({days[i], mark, mark}));
      batch.Put(db.meta(), dirty_order_key(mark, staff_month), rocksdb::Slice());
    }
  }
}

int64_t staff_months_to_score(Database& db, const rocksdb::Snapshot* snapshot) {
  int64_t n = 0;
  PrefixRange it(db, db.meta(), table_key(Table::dirty), snapshot);
  for (; it->Valid(); it->Next()) ++n;
  db.check(it->status(), "counting dirty staff months");
  return n;
}

// ------------------------------------------------------------ records ----

std::vector<std::string> RocksScoringState::staff_of_month(const std::string& month) {
  return guarded(db_, "listing staff of month " + month, [&] {
    std::vector<std::string> out;
    const std::string prefix = month_prefix(month);
    PrefixRange it(db_, db_.staff_days(), prefix);
    while (it->Valid()) {
      const StaffMonthKey key = parse_staff_month(it.key());
      if (!key.staff_code.empty()) out.push_back(key.staff_code);
      // On to the next staff code: past every key of this one.
      it->Seek(prefix_end(key_prefix(key)));
    }
    db_.check(it->status(), "reading the staff of the month");
    return out;
  });
}

std::vector<WorkRecord> RocksScoringState::records_of_staff_month(const StaffMonthKey& key) {
  return guarded(db_, "reading records of staff " + key.staff_code + " in " + key.month, [&] {
    std::vector<int64_t> log_seqs;
    Database::ReadView snapshot(db_);
    PrefixRange it(db_, db_.staff_days(), key_prefix(key), snapshot.snapshot());
    for (; it->Valid(); it->Next()) log_seqs.push_back(scoring_inputs_log_seq(it.value()));
    db_.check(it->status(), "reading records");
    std::vector<WorkRecord> out = read_logged_revisions(db_, log_seqs, snapshot.snapshot());
    sort_by_record_id(out);
    return out;
  });
}

std::vector<WorkRecord> RocksScoringState::records_of_staff_days(const StaffMonthKey& key,
                                                                 DayMask days) {
  return guarded(
      db_, "reading records of days of staff " + key.staff_code + " in " + key.month, [&] {
        const Month month = parse_month(db_, key.month);
        const std::string prefix = key_prefix(key);
        std::vector<int64_t> log_seqs;
        Database::ReadView snapshot(db_);
        PrefixRange it(db_, db_.staff_days(), prefix, snapshot.snapshot());
        for (Date d = month.first_day(); d <= month.last_day(); ++d.days) {
          if ((days & day_bit(d)) == 0) continue;
          const std::string day = staff_day_prefix(prefix, d);
          for (it->Seek(day); it->Valid() && it.key().starts_with(day); it->Next()) {
            log_seqs.push_back(scoring_inputs_log_seq(it.value()));
          }
          db_.check(it->status(), "reading records");
        }
        std::vector<WorkRecord> out = read_logged_revisions(db_, log_seqs, snapshot.snapshot());
        sort_by_record_id(out);
        return out;
      });
}

std::vector<ScoringState::DayCount> RocksScoringState::records_per_day(const StaffMonthKey& key,
                                                                       DayMask days) {
  return guarded(db_, "counting records of staff " + key.staff_code + " in " + key.month, [&] {
    const std::string prefix = key_prefix(key);
    std::vector<DayCount> out;
    PrefixRange it(db_, db_.staff_days(), prefix);
    if (days == kWholeMonth) {
      for (; it->Valid(); it->Next()) {
        const Date d = key_date(it.key().substr(prefix.size()));
        if (out.empty() || out.back().date != d) out.push_back({d, 0});
        ++out.back().records;
      }
    } else {
      const Month month = parse_month(db_, key.month);
      for (Date d = month.first_day(); d <= month.last_day(); ++d.days) {
        if ((days & day_bit(d)) == 0) continue;
        const std::string day = staff_day_prefix(prefix, d);
        std::size_t records = 0;
        for (it->Seek(day); it->Valid() && it.key().starts_with(day); it->Next()) ++records;
        if (records > 0) out.push_back({d, records});
        db_.check(it->status(), "counting records per day");
      }
    }
    db_.check(it->status(), "counting records per day");
    return out;
  });
}

ScoringState::StaffMonthForScoring RocksScoringState::staff_month_for_scoring(
    const StaffMonthKey& key) {
  return guarded(db_, "reading staff " + key.staff_code + " in " + key.month + " for scoring", [&] {
    // Two range reads in one snapshot: the staff month's records (in date order, put in
    // record_id order here) and its last scores (in record_id order).
    Database::ReadView snapshot(db_);
    const std::string prefix = key_prefix(key);
    StaffMonthForScoring out;
    {
      PrefixRange it(db_, db_.staff_days(), prefix, snapshot.snapshot());
      for (; it->Valid(); it->Next()) {
        read_scoring_record(it.value(), out.records.emplace_back(), out.received_at.emplace_back());
      }
      db_.check(it->status(), "reading records");
    }
    sort_by_record_id(out);
    out.previous.resize(out.records.size());
    PrefixRange it(db_, db_.scores(), prefix, snapshot.snapshot());
    std::size_t i = 0;
    for (; it->Valid() && i < out.records.size(); it->Next()) {
      const std::string_view id = it.key().substr(prefix.size());
      while (i < out.records.size() && out.records[i].record_id < id) ++i;
      if (i == out.records.size()) break;
      if (out.records[i].record_id != id) continue;  // cannot happen: scores move with records
      out.previous[i] = decode_score(std::string(id), it.value());
    }
    db_.check(it->status(), "reading record scores");
    return out;
  });
}

ScoringState::StaffMonthForScoring RocksScoringState::staff_days_for_scoring(
    const StaffMonthKey& key, DayMask days) {
  return guarded(
      db_, "reading days of staff " + key.staff_code + " in " + key.month + " for scoring", [&] {
        // A range read per day (each in record_id order, days in date order, as the SQLite
        // engine gives them), then the scores and the day totals by key, in one snapshot.
        const Month month = parse_month(db_, key.month);
        Database::ReadView snapshot(db_);
        const std::string prefix = key_prefix(key);
        StaffMonthForScoring out;
        {
          PrefixRange it(db_, db_.staff_days(), prefix, snapshot.snapshot());
          for (Date d = month.first_day(); d <= month.last_day(); ++d.days) {
            if ((days & day_bit(d)) == 0) continue;
            const std::string day = staff_day_prefix(prefix, d);
            for (it->Seek(day); it->Valid() && it.key().starts_with(day); it->Next()) {
              read_scoring_record(it.value(), out.records.emplace_back(),
                                  out.received_at.emplace_back());
            }
            db_.check(it->status(), "reading records");
          }
        }
        std::vector<std::string> keys;
        keys.reserve(out.records.size());
        for (const WorkRecord& r : out.records) keys.push_back(prefix + r.record_id);
        const auto scores =
            multi_get(db_, db_.scores(), keys, "reading record scores", snapshot.snapshot());
        out.previous.resize(out.records.size());
        for (std::size_t i = 0; i < scores.size(); ++i) {
          if (scores[i]) out.previous[i] = decode_score(out.records[i].record_id, *scores[i]);
        }
        out.day_totals = db_.get(db_.meta(), table_key(Table::day_totals, prefix),
                                 "reading the day totals", snapshot.snapshot());
        return out;
      });
}

// ------------------------------------------------------ scores, months ----

std::vector<RecordScoreRow> RocksScoringState::record_scores(
    const std::vector<std::string>& record_ids) {
  return guarded(db_, "reading record scores", [&] {
    std::vector<RecordScoreRow> out;
    if (record_ids.empty()) return out;
    // A score is kept under its record's current staff month, which the locator has.
    Database::ReadView snapshot(db_);
    const auto locators =
        multi_get(db_, db_.records(), record_ids, "reading record locators", snapshot.snapshot());
    std::vector<std::string> ids, keys;
    for (std::size_t i = 0; i < record_ids.size(); ++i) {
      if (!locators[i]) continue;
      ids.push_back(record_ids[i]);
      keys.push_back(score_key(staff_month_of(decode_locator(*locators[i])), record_ids[i]));
    }
    const auto scores =
        multi_get(db_, db_.scores(), keys, "reading record scores", snapshot.snapshot());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (scores[i]) out.push_back(decode_score(ids[i], *scores[i]));
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.record_id < b.record_id; });
    return out;
  });
}

std::optional<ScoringCommit::MonthRow> RocksScoringState::month_row(OutboxKind kind,
                                                                    const std::string& month,
                                                                    const std::string& code) {
  return guarded(db_, "reading month row " + month + " " + code, [&] {
    std::optional<ScoringCommit::MonthRow> out;
    const auto value =
        db_.get(db_.meta(), month_rows_prefix(kind, month, db_) + code, "reading a month row");
    if (value) out = decode_month_row(kind, month, code, *value);
    return out;
  });
}

std::vector<ScoringCommit::MonthRow> RocksScoringState::month_rows(OutboxKind kind,
                                                                   const std::string& month) {
  return guarded(db_, "reading month rows of " + month, [&] {
    std::vector<ScoringCommit::MonthRow> out;
    const std::string prefix = month_rows_prefix(kind, month, db_);
    PrefixRange it(db_, db_.meta(), prefix);
    for (; it->Valid(); it->Next()) {
      out.push_back(
          decode_month_row(kind, month, std::string(it.key().substr(prefix.size())), it.value()));
    }
    db_.check(it->status(), "reading month rows");
    return out;
  });
}

namespace {

// About what `commit` takes in a WriteBatch: its values and keys, and a few bytes of framing and
// fields each.
std::size_t batch_bytes(const ScoringCommit& commit) {
  constexpr std::size_t kPerEntry = 64;
  std::size_t bytes = 64;
  for (const auto& row : commit.record_scores) {
    bytes += kPerEntry + 2 * row.record_id.size() + row.scoring_digest.size();
  }
  for (const auto& row : commit.months) bytes += kPerEntry + 2 * row.code.size() + row.json.size();
  for (const auto& row : commit.day_totals) bytes += kPerEntry + row.totals.size();
  for (const auto& item : commit.outbox) bytes += kPerEntry + item.key.size() + item.payload.size();
  bytes += 2 * kPerEntry * commit.done.size();
  return bytes;
}

}  // namespace

void RocksScoringState::commit_scoring(const ScoringCommit& commit) {
  guarded(db_, "committing scoring results", [&] {
    db_.require_writable("committing scoring results");
    Database::WriteScope scope(db_);
    // Sized once: a run's commit holds thousands of outbox payloads, and a batch grown by
    // doubling held up to twice that (34 MB of a 700-staff bench/run's 84 MB heap peak).
    rocksdb::WriteBatch batch(batch_bytes(commit));

    if (!commit.record_scores.empty()) {
      // Under the staff month the record has now, not the one the scorer read: a page
      // committed in between may have moved it, and its next score must find this one.
      std::vector<std::string> ids;
      ids.reserve(commit.record_scores.size());
      for (const auto& row : commit.record_scores) ids.push_back(row.record_id);
      const auto locators = multi_get(db_, db_.records(), ids, "reading record locators");
      std::vector<std::string> keys(ids.size());
      const auto refuse = [&](const RecordScoreRow& row) {
        // The receiver takes a record's sequence once; sending one again with other content
        // would be a conflict, so the whole commit is refused instead.
        throw StoreError("store " + db_.path() + ": storing the score of " + row.record_id +
                         " (sequence " + std::to_string(row.sequence) +
                         "): no such record, or its stored sequence is not lower");
      };
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (!locators[i]) refuse(commit.record_scores[i]);
        keys[i] = score_key(staff_month_of(decode_locator(*locators[i])), ids[i]);
      }
      const auto stored = multi_get(db_, db_.scores(), keys, "reading record scores");
      std::map<std::string_view, int64_t> sequence_of;  // as this commit leaves it
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (stored[i]) sequence_of.try_emplace(keys[i], stored_score_sequence(*stored[i]));
      }
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const RecordScoreRow& row = commit.record_scores[i];
        auto [at, fresh] = sequence_of.try_emplace(keys[i], row.sequence);
        if (!fresh) {
          if (at->second >= row.sequence) refuse(row);
          at->second = row.sequence;
        }
        batch.Put(db_.scores(), keys[i], encode_score(row));
      }
    }

    for (const auto& row : commit.months) {
      batch.Put(db_.meta(), month_rows_prefix(row.kind, row.month, db_) + row.code,
                encode_month_row(row));
    }
    for (const auto& row : commit.day_totals) {
      batch.Put(db_.meta(), table_key(Table::day_totals, key_prefix(row.key)), row.totals);
    }
    if (!commit.outbox.empty()) append_outbox_items(db_, batch, commit.outbox);

    // Only the mark the scorer listed is cleared; a newer one (the key marked again by a page
    // committed meanwhile) stays dirty.
    if (!commit.done.empty()) {
      std::vector<std::string> keys;
      keys.reserve(commit.done.size());
      for (const auto& key : commit.done) {
        keys.push_back(table_key(Table::dirty, key_prefix(key)));
      }
      const auto marks = multi_get(db_, db_.meta(), keys, "reading dirty marks");
      std::lock_guard listed_lock(listed_mutex_);
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (!marks[i]) continue;
        const DirtyMark mark = decode_dirty(*marks[i]);
        const auto listed = listed_marks_.find(commit.done[i]);
        if (listed != listed_marks_.end() && listed->second != mark.mark) continue;
        batch.Delete(db_.meta(), keys[i]);
        batch.Delete(db_.meta(),
                     dirty_order_key(mark.first_mark, std::string_view(keys[i]).substr(1)));
      }
    }

    if (batch.Count() > 0) scope.write(batch, "writing the scoring results");
    std::lock_guard listed_lock(listed_mutex_);
    for (const auto& key : commit.done) listed_marks_.erase(key);
  });
}

void move_score(Database& db, rocksdb::WriteBatch& batch, const std::string& record_id,
                const StaffMonthKey& from, const StaffMonthKey& to) {
  if (from == to) return;
  const std::string from_key = score_key(from, record_id);
  const auto score = db.get(db.scores(), from_key, "reading the score of " + record_id);
  if (!score) return;
  batch.Delete(db.scores(), from_key);
  batch.Put(db.scores(), score_key(to, record_id), *score);
}

// --------------------------------------------------------- month scan ----

void RocksScoringState::scan_month_for_scoring(const std::string& month,
                                               const std::vector<std::string>& split_before,
                                               const PartVisitor& visit) {
  const std::string what = "scanning month " + month + " for scoring";
  const std::size_t parts = split_before.size() + 1;
  // Every part reads this one snapshot: a page committed while they read shows in none.
  Database::ReadView snapshot(db_);
  const std::string prefix = month_prefix(month);
  // Records of no staff member (an empty code, the lowest key of the month) are in no part.
  const std::string first_staff = prefix + '\x01';

  struct Failure {
    std::exception_ptr error;
    bool from_visitor = false;
  };
  std::vector<Failure> failures(parts);
  std::atomic<bool> stop{false};
  const auto read_part = [&](std::size_t i) {
    ScanBatch batch;
    std::string staff;
    std::size_t& n = batch.count;
    const auto flush = [&](bool more) {
      if (n == 0) return;
      batch.more = more;
      try {
        visit(i, staff, batch);
      } catch (...) {
        failures[i] = {std::current_exception(), true};
        stop = true;
      }
      n = 0;
    };
    try {
      std::string from = prefix + (i == 0 ? std::string() : split_before[i - 1]);
      if (from < first_staff) from = first_staff;
      std::string to = i + 1 < parts ? prefix + split_before[i] : prefix_end(prefix);
      // The scan reads the month once, in key order: its blocks would only push the hot ones
      // out of the shared cache.
      Range it(db_, db_.staff_days(), from, std::move(to), snapshot.snapshot(),
               /*fill_cache=*/false);
      Date last_date;
      for (; it->Valid(); it->Next()) {
        const std::string_view key = it.key();
        const std::size_t staff_end = key.find('\0', prefix.size());
        if (staff_end == std::string_view::npos || key.size() < staff_end + 1 + 4) {
          throw StoreError("store " + db_.path() +
                           ": a staff day's key is shorter than its format (corrupt store)");
        }
        const std::string_view row_staff = key.substr(prefix.size(), staff_end - prefix.size());
        const Date date = key_date(key.substr(staff_end + 1));
        if (row_staff != staff) {
          if (stop.load(std::memory_order_relaxed)) return;  // another part failed
          flush(false);
          staff.assign(row_staff);
        } else if (n >= kScanBatchRecords && date != last_date) {
          // A large staff month goes in batches of whole days (keys come in date order).
          if (stop.load(std::memory_order_relaxed)) return;
          flush(true);
        }
        if (n >= batch.records.size()) batch.records.resize(n + 1);
        if (n >= batch.received_at.size()) batch.received_at.resize(n + 1);
        read_scoring_record(it.value(), batch.records[n], batch.received_at[n]);
        last_date = date;
        ++n;
      }
      db_.check(it->status(), "reading records");
      if (!stop.load(std::memory_order_relaxed)) flush(false);
    } catch (...) {
      failures[i] = {std::current_exception(), false};
      stop = true;
    }
  };
  {
    // A thread per part but the first, which this one reads (issue 8: a recompute on 2 cores).
    std::vector<std::jthread> others;
    try {
      others.reserve(parts - 1);
      for (std::size_t i = 1; i < parts; ++i) others.emplace_back(read_part, i);
    } catch (...) {  // no thread to be had: the parts started stop, and this one is not read
      failures[0] = {std::current_exception(), false};
      stop = true;
    }
    if (!stop) read_part(0);
  }  // joined

  for (const Failure& f : failures) {
    if (!f.error) continue;
    if (f.from_visitor) std::rethrow_exception(f.error);
    try {
      std::rethrow_exception(f.error);
    } catch (const StoreError& e) {
      throw StoreError(std::string(e.what()) + " while " + what);
    } catch (const std::exception& e) {
      throw StoreError("store " + db_.path() + ": " + e.what() + " while " + what);
    }
  }
}

}  // namespace kpihub::rocks
