// How the RocksDB engine writes values and keys: a small binary encoding (fixed-width
// little-endian integers in values, length-prefixed strings), and keys whose byte order is the
// order the engine reads them in (big-endian integers, fixed-width months, NUL after a
// variable-length part). Every value kind the engine stores has its encode/decode pair here, so
// each seam reads what another wrote the same way.
#pragma once

#include <kpihub/model.hpp>
#include <kpihub/store/types.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kpihub::rocks {

// Appends values to a byte string.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v);
  void i64(int64_t v);
  void f64(double v);
  void str(std::string_view v);  // u32 length, then the bytes
  void boolean(bool v) { u8(v ? 1 : 0); }
  void timestamp(const std::optional<Timestamp>& t);
  void deadline(const std::optional<Deadline>& d);

 private:
  std::string& out_;
};

// Reads what a Writer wrote, in the same order; a value shorter than what is read is a
// corrupt store (StoreError naming `what`).
class Reader {
 public:
  Reader(std::string_view in, const char* what) : in_(in), what_(what) {}
  uint8_t u8();
  uint32_t u32();
  int64_t i64();
  double f64();
  std::string_view str();
  bool boolean() { return u8() != 0; }
  std::optional<Timestamp> timestamp();
  std::optional<Deadline> deadline();
  bool done() const { return in_.empty(); }

 private:
  std::string_view take(std::size_t n);
  std::string_view in_;
  const char* what_;
};

// ----------------------------------------------------------------- keys ----

// Big-endian, so that byte order is numeric order (signed values with the sign bit flipped).
void put_key_u64(std::string& key, uint64_t v);
uint64_t key_u64(std::string_view bytes);  // the first 8 bytes
void put_key_date(std::string& key, Date d);
Date key_date(std::string_view bytes);  // the first 4 bytes

// "YYYY-MM" NUL staff_code NUL: the prefix of a staff month in every family keyed by it.
std::string staff_month_prefix(const std::string& month, const std::string& staff_code);
// "YYYY-MM" NUL: the prefix of a month.
std::string month_prefix(const std::string& month);
// The smallest key above every key starting with `prefix` ("" when there is none).
std::string prefix_end(std::string prefix);

// ------------------------------------------------------------- records ----

// A revision as stored: every field of the record and when the hub received it.
struct StoredRecord {
  WorkRecord record;
  int64_t received_at_unix_ms = 0;
};
void encode_record(std::string& out, const WorkRecord& r, int64_t received_at_unix_ms);
void decode_record(std::string_view in, StoredRecord& out);

// What scoring reads of a record's current revision (the staff_days family): the fields
// ScoringState::ScanBatch promises, when the hub received the revision, and where the whole
// revision is in the revisions log. Tens of bytes, not the record's ~1 KB: the family is keyed
// at random, and compaction rewrites what it holds (bench/engines: the whole record there
// doubled the CPU of storing a province-month, docs/architecture.md).
void encode_scoring_inputs(std::string& out, const WorkRecord& r, int64_t received_at_unix_ms,
                           int64_t log_seq);
// Fills `out` with the fields scoring reads and clears the others (its strings keep their
// capacity).
void decode_scoring_inputs(std::string_view in, WorkRecord& out, int64_t& received_at_unix_ms,
                           int64_t& log_seq);
// The log sequence alone (the value's last 8 bytes).
int64_t scoring_inputs_log_seq(std::string_view in);

// Where a record's current revision is (the records family, keyed by record_id): what
// deduplication, a record's lookup and its score's key need without reading the record.
struct RecordLocator {
  int64_t revision = 0;
  std::string staff_code;
  Date work_date;
  int64_t received_at_unix_ms = 0;
  int64_t log_seq = 0;  // the key of the revision in the revisions family
};
std::string encode_locator(const RecordLocator& l);
RecordLocator decode_locator(std::string_view in);

// ---------------------------------------------------------- quarantine ----

// A quarantine entry as stored (Table::quarantine, keyed by its id(8)): the entry, when it was
// stored, and the source instance whose page held it (what quarantine filters and counts by,
// beside the entry's source system). The id is the key's, not in the value.
struct StoredQuarantine {
  std::string source;  // the source instance
  QuarantineRow row;
};
void encode_quarantine(std::string& out, const std::string& source, const QuarantineRow& row);
// `id` is the one the key holds; a reason this build does not know is a corrupt store.
StoredQuarantine decode_quarantine(std::string_view in, int64_t id);

// -------------------------------------------------------------- outbox ----

// An outbox item as stored (the outbox family, keyed by its seq(8)): kind, key, payload and
// when it was appended. The seq is the key's.
void encode_outbox_item(std::string& out, const OutboxItem& item, int64_t created_at_unix_ms);
OutboxItem decode_outbox_item(std::string_view in, int64_t seq);

// A batch as stored (Table::batches, keyed by its id): what it holds of the outbox and where
// its delivery is.
struct StoredBatch {
  std::string sink;
  int64_t first_seq = 0;
  int64_t last_seq = 0;
  int64_t item_count = 0;
  bool delivered = false;
  uint32_t attempts = 0;
  int64_t not_before_unix_ms = 0;
  std::string last_error;
  int64_t created_at_unix_ms = 0;
  int64_t delivered_at_unix_ms = 0;  // 0 while pending
};
std::string encode_batch(const StoredBatch& b);
StoredBatch decode_batch(std::string_view in);

// A sink's place in the outbox (Table::sinks, keyed by the sink's name): the last item it took
// in a batch, the last item of its newest delivered batch, and its pending batch (empty: none).
struct SinkPlace {
  int64_t last_batched_seq = 0;
  int64_t delivered_seq = 0;
  std::string pending_batch;
};
std::string encode_sink_place(const SinkPlace& p);
SinkPlace decode_sink_place(std::string_view in);

// A dead letter as stored (Table::dead_letters, keyed by its id(8)); the id is the key's.
void encode_dead_letter(std::string& out, const DeadLetter& d, int64_t replayed_at_unix_ms);
DeadLetter decode_dead_letter(std::string_view in, int64_t id);

// ------------------------------------------------------ operator views ----

// An audit line (Table::audit, keyed by its id(8)).
struct AuditLine {
  int64_t at_unix_ms = 0;
  std::string actor;
  std::string action;
  std::string detail;
};
std::string encode_audit(const AuditLine& a);
AuditLine decode_audit(std::string_view in);

// A synced staff entry (Table::staff_lists, keyed by source NUL staff_code): the rest of it.
std::string encode_synced_staff(const SyncedStaff& s);
// `source` and `staff_code` are the key's.
SyncedStaff decode_synced_staff(std::string_view in, std::string source, std::string staff_code);

}  // namespace kpihub::rocks
