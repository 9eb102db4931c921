#include "codec.hpp"

#include <bit>
#include <cstring>

namespace kpihub::rocks {

namespace {

static_assert(std::endian::native == std::endian::little,
              "values are written in the machine's order, which this build expects little-endian");

template <typename T>
void put_raw(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  out.append(bytes, sizeof(T));
}

}  // namespace

void Writer::u32(uint32_t v) {
  put_raw(out_, v);
}
void Writer::i64(int64_t v) {
  put_raw(out_, v);
}
void Writer::f64(double v) {
  put_raw(out_, v);
}
void Writer::str(std::string_view v) {
  u32(static_cast<uint32_t>(v.size()));
  out_.append(v);
}
void Writer::timestamp(const std::optional<Timestamp>& t) {
  boolean(t.has_value());
  if (!t) return;
  i64(t->unix_seconds);
  u32(static_cast<uint32_t>(t->offset_minutes));
}

void Writer::deadline(const std::optional<Deadline>& d) {
  boolean(d.has_value());
  if (!d) return;
  boolean(d->date.has_value());
  if (d->date) u32(static_cast<uint32_t>(d->date->days));
  timestamp(d->at);
}

std::optional<Deadline> Reader::deadline() {
  if (!boolean()) return std::nullopt;
  Deadline d;
  if (boolean()) d.date = Date{static_cast<int32_t>(u32())};
  d.at = timestamp();
  return d;
}

std::string_view Reader::take(std::size_t n) {
  if (in_.size() < n) {
    throw StoreError(std::string("store: ") + what_ +
                     " is shorter than its format (corrupt store)");
  }
  std::string_view out = in_.substr(0, n);
  in_.remove_prefix(n);
  return out;
}

uint8_t Reader::u8() {
  return static_cast<uint8_t>(take(1)[0]);
}
uint32_t Reader::u32() {
  uint32_t v;
  std::memcpy(&v, take(sizeof v).data(), sizeof v);
  return v;
}
int64_t Reader::i64() {
  int64_t v;
  std::memcpy(&v, take(sizeof v).data(), sizeof v);
  return v;
}
double Reader::f64() {
  double v;
  std::memcpy(&v, take(sizeof v).data(), sizeof v);
  return v;
}
std::string_view Reader::str() {
  return take(u32());
}
std::optional<Timestamp> Reader::timestamp() {
  if (!boolean()) return std::nullopt;
  Timestamp t;
  t.unix_seconds = i64();
  t.offset_minutes = static_cast<int32_t>(u32());
  return t;
}

void put_key_u64(std::string& key, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(v >> shift));
}
uint64_t key_u64(std::string_view bytes) {
  if (bytes.size() < 8) throw StoreError("store: a key is shorter than its format (corrupt store)");
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}
void put_key_date(std::string& key, Date d) {
  const uint32_t v = static_cast<uint32_t>(d.days) ^ 0x80000000u;
  for (int shift = 24; shift >= 0; shift -= 8) key.push_back(static_cast<char>(v >> shift));
}
Date key_date(std::string_view bytes) {
  if (bytes.size() < 4) throw StoreError("store: a key is shorter than its format (corrupt store)");
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return Date{static_cast<int32_t>(v ^ 0x80000000u)};
}

std::string month_prefix(const std::string& month) {
  std::string key = month;
  key.push_back('\0');
  return key;
}
std::string staff_month_prefix(const std::string& month, const std::string& staff_code) {
  std::string key = month_prefix(month);
  key += staff_code;
  key.push_back('\0');
  return key;
}
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last != 0xFF) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

void encode_record(std::string& out, const WorkRecord& r, int64_t received_at_unix_ms) {
  Writer w(out);
  w.str(r.record_id);
  w.str(r.source_system);
  w.str(r.source_id);
  w.i64(r.revision);
  w.boolean(r.retracted);
  w.str(r.staff_code);
  w.str(r.source_staff_id);
  w.str(r.agency_code);
  w.str(r.task_code);
  w.u32(static_cast<uint32_t>(r.work_date.days));
  w.u32(static_cast<uint32_t>(r.declared_minutes));
  w.f64(r.quantity);
  w.str(r.product_unit);
  w.str(r.title);
  w.str(r.evidence_ref);
  w.deadline(r.deadline);
  w.timestamp(r.completed_at);
  w.boolean(r.approval.has_value());
  if (r.approval) {
    w.u8(static_cast<uint8_t>(r.approval->status));
    w.boolean(r.approval->rating.has_value());
    if (r.approval->rating) w.u8(static_cast<uint8_t>(*r.approval->rating));
    w.str(r.approval->by);
    w.timestamp(r.approval->at);
  }
  w.timestamp(r.changed_at);
  w.u32(static_cast<uint32_t>(r.attributes.size()));
  for (const auto& [name, value] : r.attributes) {
    w.str(name);
    w.str(value);
  }
  w.i64(received_at_unix_ms);
}

void decode_record(std::string_view in, StoredRecord& out) {
  Reader rd(in, "a stored record");
  WorkRecord& r = out.record;
  r.record_id = rd.str();
  r.source_system = rd.str();
  r.source_id = rd.str();
  r.revision = rd.i64();
  r.retracted = rd.boolean();
  r.staff_code = rd.str();
  r.source_staff_id = rd.str();
  r.agency_code = rd.str();
  r.task_code = rd.str();
  r.work_date = Date{static_cast<int32_t>(rd.u32())};
  r.declared_minutes = static_cast<int32_t>(rd.u32());
  r.quantity = rd.f64();
  r.product_unit = rd.str();
  r.title = rd.str();
  r.evidence_ref = rd.str();
  r.deadline = rd.deadline();
  r.completed_at = rd.timestamp();
  r.approval.reset();
  if (rd.boolean()) {
    Approval a;
    a.status = static_cast<ApprovalStatus>(rd.u8());
    if (rd.boolean()) a.rating = static_cast<Rating>(rd.u8());
    a.by = rd.str();
    a.at = rd.timestamp();
    r.approval = std::move(a);
  }
  r.changed_at = rd.timestamp();
  r.attributes.resize(rd.u32());
  for (auto& [name, value] : r.attributes) {
    name = rd.str();
    value = rd.str();
  }
  out.received_at_unix_ms = rd.i64();
}

std::string encode_locator(const RecordLocator& l) {
  std::string out;
  Writer w(out);
  w.i64(l.revision);
  w.str(l.staff_code);
  w.u32(static_cast<uint32_t>(l.work_date.days));
  w.i64(l.received_at_unix_ms);
  w.i64(l.log_seq);
  return out;
}

RecordLocator decode_locator(std::string_view in) {
  Reader rd(in, "a record's locator");
  RecordLocator l;
  l.revision = rd.i64();
  l.staff_code = rd.str();
  l.work_date = Date{static_cast<int32_t>(rd.u32())};
  l.received_at_unix_ms = rd.i64();
  l.log_seq = rd.i64();
  return l;
}

void encode_scoring_inputs(std::string& out, const WorkRecord& r, int64_t received_at_unix_ms,
                           int64_t log_seq) {
  Writer w(out);
  w.str(r.record_id);
  w.str(r.source_system);
  w.i64(r.revision);
  w.boolean(r.retracted);
  w.str(r.staff_code);
  w.str(r.agency_code);
  w.str(r.task_code);
  w.u32(static_cast<uint32_t>(r.work_date.days));
  w.u32(static_cast<uint32_t>(r.declared_minutes));
  w.f64(r.quantity);
  w.str(r.evidence_ref);
  w.deadline(r.deadline);
  w.timestamp(r.completed_at);
  w.boolean(r.approval.has_value());
  if (r.approval) {
    w.u8(static_cast<uint8_t>(r.approval->status));
    w.boolean(r.approval->rating.has_value());
    if (r.approval->rating) w.u8(static_cast<uint8_t>(*r.approval->rating));
  }
  w.timestamp(r.changed_at);
  w.i64(received_at_unix_ms);
  w.i64(log_seq);  // last: scoring_inputs_log_seq reads it without decoding the rest
}

void decode_scoring_inputs(std::string_view in, WorkRecord& r, int64_t& received_at_unix_ms,
                           int64_t& log_seq) {
  Reader rd(in, "a record's scoring inputs");
  r.record_id = rd.str();
  r.source_system = rd.str();
  r.revision = rd.i64();
  r.retracted = rd.boolean();
  r.staff_code = rd.str();
  r.agency_code = rd.str();
  r.task_code = rd.str();
  r.work_date = Date{static_cast<int32_t>(rd.u32())};
  r.declared_minutes = static_cast<int32_t>(rd.u32());
  r.quantity = rd.f64();
  r.evidence_ref = rd.str();
  r.deadline = rd.deadline();
  r.completed_at = rd.timestamp();
  r.approval.reset();
  if (rd.boolean()) {
    Approval& a = r.approval.emplace();
    a.status = static_cast<ApprovalStatus>(rd.u8());
    if (rd.boolean()) a.rating = static_cast<Rating>(rd.u8());
  }
  r.changed_at = rd.timestamp();
  received_at_unix_ms = rd.i64();
  log_seq = rd.i64();
  // Not among the inputs: left empty.
  r.source_id.clear();
  r.source_staff_id.clear();
  r.product_unit.clear();
  r.title.clear();
  r.attributes.clear();
}

int64_t scoring_inputs_log_seq(std::string_view in) {
  if (in.size() < sizeof(int64_t)) {
    throw StoreError(
        "store: a record's scoring inputs are shorter than their format (corrupt "
        "store)");
  }
  return Reader(in.substr(in.size() - sizeof(int64_t)), "a record's log sequence").i64();
}

void encode_quarantine(std::string& out, const std::string& source, const QuarantineRow& row) {
  Writer w(out);
  const QuarantineEntry& q = row.entry;
  w.str(source);
  w.i64(row.created_at_unix_ms);
  w.str(q.source_system);
  w.str(q.source_id);
  w.str(q.record_id);
  w.str(to_string(q.reason));
  w.str(q.field);
  w.str(q.message);
  w.str(q.payload);
  w.str(q.location);
  w.str(q.fields);
}

StoredQuarantine decode_quarantine(std::string_view in, int64_t id) {
  Reader rd(in, "a quarantine entry");
  StoredQuarantine out;
  out.source = rd.str();
  out.row.id = id;
  out.row.created_at_unix_ms = rd.i64();
  QuarantineEntry& q = out.row.entry;
  q.source_system = rd.str();
  q.source_id = rd.str();
  q.record_id = rd.str();
  const std::string_view reason = rd.str();
  const std::optional<Reason> parsed = parse_reason(reason);
  if (!parsed) {
    throw StoreError("store: quarantine entry " + std::to_string(id) + " has an unknown reason '" +
                     std::string(reason) + "' (corrupt store)");
  }
  q.reason = *parsed;
  q.field = rd.str();
  q.message = rd.str();
  q.payload = rd.str();
  q.location = rd.str();
  q.fields = rd.str();
  return out;
}

void encode_outbox_item(std::string& out, const OutboxItem& item, int64_t created_at_unix_ms) {
  Writer w(out);
  w.u8(static_cast<uint8_t>(item.kind));
  w.str(item.key);
  w.str(item.payload);
  w.i64(created_at_unix_ms);
}

OutboxItem decode_outbox_item(std::string_view in, int64_t seq) {
  Reader rd(in, "an outbox item");
  OutboxItem item;
  item.seq = seq;
  const uint8_t kind = rd.u8();
  if (kind > static_cast<uint8_t>(OutboxKind::agency_month)) {
    throw StoreError("store: outbox item " + std::to_string(seq) + " has an unknown kind " +
                     std::to_string(kind) + " (corrupt store)");
  }
  item.kind = static_cast<OutboxKind>(kind);
  item.key = rd.str();
  item.payload = rd.str();
  return item;
}

std::string encode_batch(const StoredBatch& b) {
  std::string out;
  Writer w(out);
  w.str(b.sink);
  w.i64(b.first_seq);
  w.i64(b.last_seq);
  w.i64(b.item_count);
  w.boolean(b.delivered);
  w.u32(b.attempts);
  w.i64(b.not_before_unix_ms);
  w.str(b.last_error);
  w.i64(b.created_at_unix_ms);
  w.i64(b.delivered_at_unix_ms);
  return out;
}

StoredBatch decode_batch(std::string_view in) {
  Reader rd(in, "a batch");
  StoredBatch b;
  b.sink = rd.str();
  b.first_seq = rd.i64();
  b.last_seq = rd.i64();
  b.item_count = rd.i64();
  b.delivered = rd.boolean();
  b.attempts = rd.u32();
  b.not_before_unix_ms = rd.i64();
  b.last_error = rd.str();
  b.created_at_unix_ms = rd.i64();
  b.delivered_at_unix_ms = rd.i64();
  return b;
}

std::string encode_sink_place(const SinkPlace& p) {
  std::string out;
  Writer w(out);
  w.i64(p.last_batched_seq);
  w.i64(p.delivered_seq);
  w.str(p.pending_batch);
  return out;
}

SinkPlace decode_sink_place(std::string_view in) {
  Reader rd(in, "a sink's place in the outbox");
  SinkPlace p;
  p.last_batched_seq = rd.i64();
  p.delivered_seq = rd.i64();
  p.pending_batch = rd.str();
  return p;
}

void encode_dead_letter(std::string& out, const DeadLetter& d, int64_t replayed_at_unix_ms) {
  Writer w(out);
  w.str(d.sink);
  w.str(d.batch_id);
  w.str(d.key);
  w.str(d.code);
  w.str(d.message);
  w.str(d.payload);
  w.i64(d.created_at_unix_ms);
  w.boolean(d.replayed);
  w.i64(replayed_at_unix_ms);
}

DeadLetter decode_dead_letter(std::string_view in, int64_t id) {
  Reader rd(in, "a dead letter");
  DeadLetter d;
  d.id = id;
  d.sink = rd.str();
  d.batch_id = rd.str();
  d.key = rd.str();
  d.code = rd.str();
  d.message = rd.str();
  d.payload = rd.str();
  d.created_at_unix_ms = rd.i64();
  d.replayed = rd.boolean();
  rd.i64();  // replayed at
  return d;
}

std::string encode_audit(const AuditLine& a) {
  std::string out;
  Writer w(out);
  w.i64(a.at_unix_ms);
  w.str(a.actor);
  w.str(a.action);
  w.str(a.detail);
  return out;
}

AuditLine decode_audit(std::string_view in) {
  Reader rd(in, "an audit line");
  AuditLine a;
  a.at_unix_ms = rd.i64();
  a.actor = rd.str();
  a.action = rd.str();
  a.detail = rd.str();
  return a;
}

std::string encode_synced_staff(const SyncedStaff& s) {
  std::string out;
  Writer w(out);
  w.str(s.full_name);
  w.str(s.agency_code);
  w.boolean(s.leader);
  w.boolean(s.active);
  w.i64(s.synced_at_unix_ms);
  return out;
}

SyncedStaff decode_synced_staff(std::string_view in, std::string source, std::string staff_code) {
  Reader rd(in, "a synced staff entry");
  SyncedStaff s;
  s.source = std::move(source);
  s.staff_code = std::move(staff_code);
  s.full_name = rd.str();
  s.agency_code = rd.str();
  s.leader = rd.boolean();
  s.active = rd.boolean();
  s.synced_at_unix_ms = rd.i64();
  return s;
}

}  // namespace kpihub::rocks
