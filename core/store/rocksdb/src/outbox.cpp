// The outbox as a log: items in the outbox family by seq, each sink's place in Table::sinks,
// its batches in Table::batches (and Table::batches_by_sink, in seq order), dead letters in
// Table::dead_letters. A sink takes its batches strictly in seq order and has at most one
// pending batch (next_batch hands it out again until it is completed), so what a sink has
// delivered is every item up to the last seq of its newest delivered batch, and what waits
// is counted from seqs alone: the outbox is one unbroken range of seqs (appends take the next
// seq, compact deletes from the first), never read item by item to be counted.
#include "outbox.hpp"

#include <rocksdb/convenience.h>
#include <rocksdb/snapshot.h>

#include <boost/uuid/uuid_io.hpp>

#include <algorithm>
#include <limits>
#include <set>

namespace kpihub::rocks {

namespace {

std::string seq_key(int64_t seq) {
  std::string key;
  put_key_u64(key, static_cast<uint64_t>(seq));
  return key;
}

std::string id_key(Table table, int64_t id) {
  std::string key = table_key(table);
  put_key_u64(key, static_cast<uint64_t>(id));
  return key;
}

std::string sink_key(const std::string& sink) {
  return table_key(Table::sinks, sink);
}

std::string batch_key(const std::string& batch_id) {
  return table_key(Table::batches, batch_id);
}

// The prefix of a sink's batches in Table::batches_by_sink.
std::string sink_batches_prefix(const std::string& sink) {
  std::string key = table_key(Table::batches_by_sink, sink);
  key.push_back('\0');
  return key;
}

std::string sink_batch_key(const std::string& sink, int64_t last_seq) {
  std::string key = sink_batches_prefix(sink);
  put_key_u64(key, static_cast<uint64_t>(last_seq));
  return key;
}

OutboxKind outbox_kind_of_key(const std::string& key) {
  if (key.rfind("staff:", 0) == 0) return OutboxKind::staff_month;
  if (key.rfind("agency:", 0) == 0) return OutboxKind::agency_month;
  return OutboxKind::record;
}

void put_meta_counter(Database& db, rocksdb::WriteBatch& batch, std::string_view name,
                      int64_t value) {
  std::string bytes;
  Writer(bytes).i64(value);
  batch.Put(db.meta(), table_key(Table::meta, name), bytes);
}

std::unique_ptr<rocksdb::Iterator> iterator(Database& db, rocksdb::ColumnFamilyHandle* family,
                                            const rocksdb::Snapshot* snapshot,
                                            const rocksdb::Slice* upper_bound = nullptr) {
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  read.iterate_upper_bound = upper_bound;
  return std::unique_ptr<rocksdb::Iterator>(db.db().NewIterator(read, family));
}

// The first and last seq in the outbox (0, 0 when it is empty), in `snapshot`, looked for
// above the last seq compact deleted: the deleted items are range tombstones until RocksDB
// compacts them away, which an iterator would otherwise step over one by one.
struct SeqRange {
  int64_t first = 0;
  int64_t last = 0;
};
SeqRange outbox_range(Database& db, const rocksdb::Snapshot* snapshot) {
  const std::string lower = seq_key(read_meta_counter(db, kOutboxCompactedCounter, snapshot) + 1);
  const rocksdb::Slice lower_bound(lower);
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  read.iterate_lower_bound = &lower_bound;
  std::unique_ptr<rocksdb::Iterator> it(db.db().NewIterator(read, db.outbox()));
  SeqRange range;
  it->SeekToLast();
  db.check(it->status(), "reading the outbox's last item");
  if (!it->Valid()) return range;
  range.last = static_cast<int64_t>(key_u64(std::string_view(it->key().data(), it->key().size())));
  it->Seek(lower);
  db.check(it->status(), "reading the outbox's first item");
  if (!it->Valid()) return SeqRange{};
  range.first = static_cast<int64_t>(key_u64(std::string_view(it->key().data(), it->key().size())));
  return range;
}

// How many outbox items have a seq above `after`.
int64_t items_after(const SeqRange& range, int64_t after) {
  if (range.last == 0) return 0;
  return std::max<int64_t>(0, range.last - std::max(after, range.first - 1));
}

std::optional<SinkPlace> sink_place(Database& db, const std::string& sink,
                                    const rocksdb::Snapshot* snapshot = nullptr) {
  const auto value =
      db.get(db.meta(), sink_key(sink), "reading the place of sink " + sink, snapshot);
  if (!value) return std::nullopt;
  return decode_sink_place(*value);
}

// Every sink that took a batch and was not forgotten, by name, with its place.
std::vector<std::pair<std::string, SinkPlace>> sink_places(Database& db,
                                                           const rocksdb::Snapshot* snapshot) {
  const std::string prefix = table_key(Table::sinks);
  const std::string end = prefix_end(prefix);
  const rocksdb::Slice upper(end);
  auto it = iterator(db, db.meta(), snapshot, &upper);
  std::vector<std::pair<std::string, SinkPlace>> out;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    out.emplace_back(
        std::string(it->key().data() + prefix.size(), it->key().size() - prefix.size()),
        decode_sink_place(std::string_view(it->value().data(), it->value().size())));
  }
  db.check(it->status(), "listing the sinks that took batches");
  return out;
}

// Items from seq `first` on (through `last` if given), in order: up to `max_items` of them and
// `max_bytes` of payload, but always the first (a batch of one item too big still goes).
std::vector<OutboxItem> read_items(
    Database& db, int64_t first, std::optional<int64_t> last, std::size_t max_items,
    std::size_t max_bytes = std::numeric_limits<std::size_t>::max()) {
  const std::string end = last ? seq_key(*last + 1) : std::string();
  const rocksdb::Slice upper(end);
  auto it = iterator(db, db.outbox(), nullptr, last ? &upper : nullptr);
  std::vector<OutboxItem> out;
  std::size_t bytes = 0;
  for (it->Seek(seq_key(first)); it->Valid() && out.size() < max_items; it->Next()) {
    const auto seq =
        static_cast<int64_t>(key_u64(std::string_view(it->key().data(), it->key().size())));
    OutboxItem item =
        decode_outbox_item(std::string_view(it->value().data(), it->value().size()), seq);
    bytes += item.payload.size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(std::move(item));
  }
  db.check(it->status(), "reading the outbox from seq " + std::to_string(first));
  return out;
}

}  // namespace

// A batch is stored before it is returned, and the sink's place moves past it in the same
// write: a retry after a crash finds the same batch, never a reshaped one.
std::optional<Batch> RocksOutbox::next_batch(const std::string& sink, std::size_t max_items,
                                             std::size_t max_bytes) {
  const std::string what = "forming the next batch of sink " + sink;
  Database::WriteScope scope(db_);
  SinkPlace place = sink_place(db_, sink).value_or(SinkPlace{});
  if (!place.pending_batch.empty()) {
    const auto value = db_.get(db_.meta(), batch_key(place.pending_batch), what);
    if (!value) {
      throw StoreError("store " + db_.path() + ": the pending batch " + place.pending_batch +
                       " of sink " + sink + " is missing (corrupt store) while " + what);
    }
    const StoredBatch stored = decode_batch(*value);
    Batch batch;
    batch.batch_id = place.pending_batch;
    batch.sink = sink;
    batch.first_seq = stored.first_seq;
    batch.last_seq = stored.last_seq;
    batch.attempts = stored.attempts;
    batch.not_before_unix_ms = stored.not_before_unix_ms;
    batch.last_error = stored.last_error;
    batch.items =
        read_items(db_, stored.first_seq, stored.last_seq, std::numeric_limits<std::size_t>::max());
    if (static_cast<int64_t>(batch.items.size()) != stored.item_count) {
      throw StoreError("store " + db_.path() + ": batch " + batch.batch_id + " of sink " + sink +
                       " holds " + std::to_string(stored.item_count) + " items of seqs " +
                       std::to_string(stored.first_seq) + ".." + std::to_string(stored.last_seq) +
                       " but the outbox has " + std::to_string(batch.items.size()) +
                       " of them (corrupt store) while " + what);
    }
    return batch;
  }

  const int64_t compacted = read_meta_counter(db_, kOutboxCompactedCounter);
  std::vector<OutboxItem> items =
      read_items(db_, std::max(place.last_batched_seq, compacted) + 1, std::nullopt,
                 std::max<std::size_t>(max_items, 1), max_bytes);
  if (items.empty()) return std::nullopt;

  Batch batch;
  batch.batch_id = boost::uuids::to_string(uuid_generator_());
  batch.sink = sink;
  batch.first_seq = items.front().seq;
  batch.last_seq = items.back().seq;
  batch.items = std::move(items);
  StoredBatch stored;
  stored.sink = sink;
  stored.first_seq = batch.first_seq;
  stored.last_seq = batch.last_seq;
  stored.item_count = static_cast<int64_t>(batch.items.size());
  stored.created_at_unix_ms = db_.clock().now_unix_ms();
  place.last_batched_seq = batch.last_seq;
  place.pending_batch = batch.batch_id;

  rocksdb::WriteBatch write;
  write.Put(db_.meta(), batch_key(batch.batch_id), encode_batch(stored));
  write.Put(db_.meta(), sink_batch_key(sink, batch.last_seq), batch.batch_id);
  write.Put(db_.meta(), sink_key(sink), encode_sink_place(place));
  scope.write(write, what);
  return batch;
}

void RocksOutbox::complete_batch(const std::string& batch_id, const std::vector<DeadLetter>& dead) {
  const std::string what = "completing batch " + batch_id;
  Database::WriteScope scope(db_);
  const auto value = db_.get(db_.meta(), batch_key(batch_id), what);
  if (!value)
    throw StoreError("store " + db_.path() + ": unknown batch " + batch_id + " while " + what);
  StoredBatch stored = decode_batch(*value);
  if (stored.delivered) return;  // completing twice is harmless: the dead letters are stored

  const int64_t at = db_.clock().now_unix_ms();
  stored.delivered = true;
  stored.delivered_at_unix_ms = at;
  rocksdb::WriteBatch write;
  write.Put(db_.meta(), batch_key(batch_id), encode_batch(stored));
  if (std::optional<SinkPlace> place = sink_place(db_, stored.sink)) {
    if (place->pending_batch == batch_id) place->pending_batch.clear();
    place->delivered_seq = std::max(place->delivered_seq, stored.last_seq);
    write.Put(db_.meta(), sink_key(stored.sink), encode_sink_place(*place));
  }
  for (const DeadLetter& d : dead) {
    DeadLetter letter = d;
    if (letter.sink.empty()) letter.sink = stored.sink;
    if (letter.batch_id.empty()) letter.batch_id = batch_id;
    if (letter.created_at_unix_ms == 0) letter.created_at_unix_ms = at;
    letter.replayed = false;
    std::string bytes;
    encode_dead_letter(bytes, letter, 0);
    write.Put(db_.meta(), id_key(Table::dead_letters, db_.next_dead_letter_id()), bytes);
  }
  if (!dead.empty()) {
    add_to_meta_counter(db_, write, kDeadLettersCounter, static_cast<int64_t>(dead.size()));
  }
  scope.write(write, what);
}

void RocksOutbox::defer_batch(const std::string& batch_id, int64_t not_before_unix_ms,
                              const std::string& last_error) {
  const std::string what = "deferring batch " + batch_id;
  Database::WriteScope scope(db_);
  const auto value = db_.get(db_.meta(), batch_key(batch_id), what);
  if (!value)
    throw StoreError("store " + db_.path() + ": unknown batch " + batch_id + " while " + what);
  StoredBatch stored = decode_batch(*value);
  if (stored.delivered) {
    throw StoreError("store " + db_.path() + ": batch " + batch_id + " of sink " + stored.sink +
                     " is already delivered while " + what);
  }
  ++stored.attempts;
  stored.not_before_unix_ms = not_before_unix_ms;
  stored.last_error = last_error;
  rocksdb::WriteBatch write;
  write.Put(db_.meta(), batch_key(batch_id), encode_batch(stored));
  scope.write(write, what);
}

int64_t RocksOutbox::depth(const std::string& sink) {
  const std::string what = "measuring the outbox depth of sink " + sink;
  Database::ReadView managed(db_);
  const rocksdb::Snapshot* snapshot = managed.snapshot();
  const SinkPlace place = sink_place(db_, sink, snapshot).value_or(SinkPlace{});
  int64_t in_pending = 0;
  if (!place.pending_batch.empty()) {
    const auto value = db_.get(db_.meta(), batch_key(place.pending_batch), what, snapshot);
    if (value) in_pending = decode_batch(*value).item_count;
  }
  return items_after(outbox_range(db_, snapshot), place.last_batched_seq) + in_pending;
}

std::size_t RocksOutbox::compact(const std::vector<std::string>& sinks,
                                 int64_t delivered_before_unix_ms, std::size_t max_items) {
  const std::string what = "compacting the outbox";
  if (max_items == 0) return 0;
  Database::WriteScope scope(db_);
  // The sinks named and every sink that took a batch (until forget_sink): a sink dropped from
  // the configuration for a while must find its items when it comes back.
  std::set<std::string> waiting(sinks.begin(), sinks.end());
  int64_t through = std::numeric_limits<int64_t>::max();
  for (const auto& [sink, place] : sink_places(db_, nullptr)) {
    waiting.insert(sink);
    // A pending batch is retried with the same items, whoever it belongs to.
    if (!place.pending_batch.empty()) {
      const auto value = db_.get(db_.meta(), batch_key(place.pending_batch), what);
      if (value) through = std::min(through, decode_batch(*value).first_seq - 1);
    }
  }
  if (waiting.empty()) return 0;
  // A sink takes its batches strictly in order, so every item up to the last one of its last
  // batch delivered in time is delivered to it. Newest first: batches are delivered in order,
  // so this reads only the batches delivered since the cutoff.
  for (const std::string& sink : waiting) {
    const std::string prefix = sink_batches_prefix(sink);
    const std::string end = prefix_end(prefix);
    const rocksdb::Slice upper(end);
    auto it = iterator(db_, db_.meta(), nullptr, &upper);
    int64_t delivered = 0;
    for (it->SeekToLast(); it->Valid() && it->key().starts_with(prefix); it->Prev()) {
      const auto value = db_.get(db_.meta(), batch_key(it->value().ToString()), what);
      if (!value) continue;
      const StoredBatch b = decode_batch(*value);
      if (b.delivered && b.delivered_at_unix_ms < delivered_before_unix_ms) {
        delivered = b.last_seq;
        break;
      }
    }
    db_.check(it->status(), "reading the batches of sink " + sink);
    through = std::min(through, delivered);
  }
  const SeqRange range = outbox_range(db_, nullptr);
  if (range.first == 0 || range.first > through) return 0;
  // One bounded range per call: a DeleteRange, whatever its size, is one small write.
  const int64_t last =
      std::min({through, range.last, range.first + static_cast<int64_t>(max_items) - 1});
  rocksdb::WriteBatch write;
  db_.check(write.DeleteRange(db_.outbox(), seq_key(range.first), seq_key(last + 1)), what);
  put_meta_counter(db_, write, kOutboxCompactedCounter, last);
  scope.write(write, what);
  // The log's files wholly deleted go now, not when compaction next reaches them: the outbox
  // is written in order, so its files are moved down the levels unread and a range tombstone
  // alone would keep them (and their disk space, and a table reader each) for good.
  // Deleting a file can drop an older range tombstone while a file it covered stays (one that
  // reaches past `last`): its compacted items are then visible again to a read from the first
  // key; but every read of the outbox starts above the compacted counter (outbox_range,
  // read_items' callers), and that file goes in a later call. A failure is not an error here:
  // the next call covers these files again, from the first key.
  const std::string through_key = seq_key(last);
  const rocksdb::Slice end(through_key);
  (void)rocksdb::DeleteFilesInRange(&db_.db(), db_.outbox(), nullptr, &end, true);
  return static_cast<std::size_t>(last - range.first + 1);
}

// The sink's place and pending batch go, and with them its list of batches: configured again,
// it starts from the oldest item left and holds items back by what it delivers from then on.
// Its delivered batches stay (as dead letters name them).
bool RocksOutbox::forget_sink(const std::string& sink) {
  const std::string what = "forgetting sink " + sink;
  Database::WriteScope scope(db_);
  const std::optional<SinkPlace> place = sink_place(db_, sink);
  if (!place) return false;
  rocksdb::WriteBatch write;
  if (!place->pending_batch.empty()) write.Delete(db_.meta(), batch_key(place->pending_batch));
  const std::string prefix = sink_batches_prefix(sink);
  db_.check(write.DeleteRange(db_.meta(), prefix, prefix_end(prefix)), what);
  write.Delete(db_.meta(), sink_key(sink));
  scope.write(write, what);
  return true;
}

std::vector<std::string> RocksOutbox::sinks_with_batches() {
  std::vector<std::string> names;
  for (auto& [sink, place] : sink_places(db_, nullptr)) names.push_back(sink);
  return names;
}

std::vector<DeadLetter> RocksOutbox::dead_letters(const std::string& sink, std::size_t limit,
                                                  int64_t after_id) {
  const std::string prefix = table_key(Table::dead_letters);
  const std::string end = prefix_end(prefix);
  const rocksdb::Slice upper(end);
  auto it = iterator(db_, db_.meta(), nullptr, &upper);
  std::vector<DeadLetter> out;
  for (it->Seek(id_key(Table::dead_letters, std::max<int64_t>(after_id, 0) + 1));
       it->Valid() && out.size() < limit; it->Next()) {
    const auto id = static_cast<int64_t>(key_u64(
        std::string_view(it->key().data() + prefix.size(), it->key().size() - prefix.size())));
    DeadLetter letter =
        decode_dead_letter(std::string_view(it->value().data(), it->value().size()), id);
    if (!sink.empty() && letter.sink != sink) continue;
    out.push_back(std::move(letter));
  }
  db_.check(it->status(), "reading dead letters");
  return out;
}

bool RocksOutbox::replay_dead_letter(int64_t id) {
  const std::string what = "replaying dead letter " + std::to_string(id);
  Database::WriteScope scope(db_);
  const std::string key = id_key(Table::dead_letters, id);
  const auto value = db_.get(db_.meta(), key, what);
  if (!value) return false;
  DeadLetter letter = decode_dead_letter(*value, id);
  if (letter.replayed) return false;
  letter.replayed = true;
  rocksdb::WriteBatch write;
  std::string bytes;
  encode_dead_letter(bytes, letter, db_.clock().now_unix_ms());
  write.Put(db_.meta(), key, bytes);
  add_to_meta_counter(db_, write, kDeadLettersCounter, -1);
  // Last before the write: a seq taken and then not written would be a gap in the outbox's
  // seqs, which its counts take as an item.
  append_outbox_items(db_, write,
                      {OutboxItem{0, outbox_kind_of_key(letter.key), letter.key, letter.payload}});
  scope.write(write, what);
  return true;
}

// ------------------------------------------------- between the seams ----

void append_outbox_items(Database& db, rocksdb::WriteBatch& batch,
                         const std::vector<OutboxItem>& items) {
  if (items.empty()) return;
  const int64_t at = db.clock().now_unix_ms();
  std::string value;
  for (const OutboxItem& item : items) {
    value.clear();
    encode_outbox_item(value, item, at);
    batch.Put(db.outbox(), seq_key(db.next_outbox_seq()), value);
  }
}

// Batches are delivered in seq order, so a sink has everything up to the last seq of its newest
// delivered batch; the slowest sink that took a batch decides what is still pending (with no
// such sink, every item is).
int64_t outbox_pending(Database& db, const rocksdb::Snapshot* snapshot) {
  int64_t after = std::numeric_limits<int64_t>::max();
  for (const auto& [sink, place] : sink_places(db, snapshot)) {
    after = std::min(after, place.delivered_seq);
  }
  if (after == std::numeric_limits<int64_t>::max()) after = 0;
  return items_after(outbox_range(db, snapshot), after);
}

int64_t dead_letter_count(Database& db, const rocksdb::Snapshot* snapshot) {
  return read_meta_counter(db, kDeadLettersCounter, snapshot);
}

}  // namespace kpihub::rocks
