#include "plugin_wire.hpp"

#include <kpihub/validate.hpp>

namespace kpihub::plugin_wire {
namespace {

// The fewest bytes an item can take on the wire: what a forged count is checked against.
constexpr std::size_t kMinString = 1;  // an absent text is its presence byte
// The text fields, the attribute count, raw, location and the value kinds (a text).
constexpr std::size_t kMinRecord = KPIHUB_FIELD_COUNT * kMinString + 8 + 3 * kMinString;
constexpr std::size_t kMinAttribute = 2 * kMinString;
constexpr std::size_t kMinRejected = 6 * kMinString;
constexpr std::size_t kMinStaff = 3 * kMinString + 8;
constexpr std::size_t kMinBatchItem = 4 + 2 * kMinString;
constexpr std::size_t kMinResult = 4 + 2 * kMinString;

}  // namespace

void DecodeBudget::take(std::size_t count, std::size_t bytes_each, const char* what) {
  const std::size_t bytes = count * bytes_each;  // count <= frame size: no overflow
  if (bytes > left_) {
    throw WireError(std::to_string(count) + " " + what + " would take " + std::to_string(bytes) +
                    " bytes of the hub's memory, more than the " + std::to_string(left_) +
                    " left for this message");
  }
  left_ -= bytes;
}

void write_page(Writer& w, const kpihub_page& page) {
  w.u64(page.record_count);
  for (std::size_t i = 0; i < page.record_count; ++i) {
    const kpihub_record r = record_at(page, i);
    for (const auto member : kRecordFieldMembers) w.str(r.*member);
    w.u64(r.attribute_count);
    for (std::size_t a = 0; a < r.attribute_count; ++a) {
      w.str(r.attributes[a].key);
      w.str(r.attributes[a].value);
    }
    w.str(r.raw);
    w.str(r.location);
    const std::size_t kinds = r.value_kinds ? r.value_kind_count : 0;
    w.str(kpihub_str{reinterpret_cast<const char*>(r.value_kinds), kinds});
  }
  w.u64(page.rejected_count);
  for (std::size_t i = 0; i < page.rejected_count; ++i) {
    const kpihub_rejected_item& item = page.rejected[i];
    w.str(item.source_id);
    w.str(item.reason);
    w.str(item.field);
    w.str(item.message);
    w.str(item.raw);
    w.str(item.location);
  }
  w.str(page.next_cursor);
  w.i32(page.caught_up);
  w.str(page.progress);
}

void read_page(Reader& r, PageStorage& out, DecodeBudget& budget) {
  out = PageStorage{};
  const std::size_t records = r.count(kMinRecord);
  budget.take(records, sizeof(kpihub_record) + 3 * sizeof(std::size_t), "records");
  out.records.resize(records);
  // Where each record's attributes and value kinds start in the shared arrays: the arrays grow
  // while reading, so the records point into them only once every record is read.
  std::vector<std::pair<std::size_t, std::size_t>> kinds_at(records);
  std::vector<std::size_t> attributes_at(records);
  for (std::size_t i = 0; i < records; ++i) {
    kpihub_record& rec = out.records[i];
    rec.struct_size = sizeof rec;
    for (const auto member : kRecordFieldMembers) rec.*member = r.str();
    rec.attribute_count = r.count(kMinAttribute);
    budget.take(rec.attribute_count, 2 * sizeof(kpihub_attribute), "attributes");
    attributes_at[i] = out.attributes.size();
    for (std::size_t a = 0; a < rec.attribute_count; ++a) {
      kpihub_attribute attribute{};
      attribute.key = r.str();
      attribute.value = r.str();
      out.attributes.push_back(attribute);
    }
    rec.raw = r.str();
    rec.location = r.str();
    const kpihub_str kinds = r.str();
    budget.take(kinds.data ? kinds.size : 0, 2, "value kinds");
    kinds_at[i] = {out.value_kinds.size(), kinds.data ? kinds.size : 0};
    if (kinds.data)
      out.value_kinds.insert(out.value_kinds.end(), kinds.data, kinds.data + kinds.size);
  }
  for (std::size_t i = 0; i < records; ++i) {
    kpihub_record& rec = out.records[i];
    rec.attributes = rec.attribute_count ? out.attributes.data() + attributes_at[i] : nullptr;
    rec.value_kinds = kinds_at[i].second ? out.value_kinds.data() + kinds_at[i].first : nullptr;
    rec.value_kind_count = kinds_at[i].second;
  }
  const std::size_t rejected = r.count(kMinRejected);
  budget.take(rejected, sizeof(kpihub_rejected_item), "rejected items");
  out.rejected.resize(rejected);
  for (auto& item : out.rejected) {
    item.struct_size = sizeof item;
    item.source_id = r.str();
    item.reason = r.str();
    item.field = r.str();
    item.message = r.str();
    item.raw = r.str();
    item.location = r.str();
  }
  kpihub_page& page = out.page;
  page.struct_size = sizeof page;
  page.records = records ? out.records.data() : nullptr;
  page.record_count = records;
  page.rejected = rejected ? out.rejected.data() : nullptr;
  page.rejected_count = rejected;
  page.next_cursor = r.str();
  page.caught_up = r.i32();
  page.progress = r.str();
}

void write_staff(Writer& w, const kpihub_staff_entry* entries, std::size_t count) {
  w.u8(entries != nullptr ? 1 : 0);
  if (entries == nullptr) return;
  w.u64(count);
  for (std::size_t i = 0; i < count; ++i) {
    w.str(entries[i].staff_code);
    w.str(entries[i].full_name);
    w.str(entries[i].agency_code);
    w.i32(entries[i].leader);
    w.i32(entries[i].active);
  }
}

void read_staff(Reader& r, StaffStorage& out, DecodeBudget& budget) {
  out = StaffStorage{};
  out.listed = r.u8() != 0;
  if (!out.listed) return;
  const std::size_t entries = r.count(kMinStaff);
  budget.take(entries, sizeof(kpihub_staff_entry), "staff entries");
  out.entries.resize(entries);
  for (auto& e : out.entries) {
    e.struct_size = sizeof e;
    e.staff_code = r.str();
    e.full_name = r.str();
    e.agency_code = r.str();
    e.leader = r.i32();
    e.active = r.i32();
  }
}

void write_batch(Writer& w, const kpihub_batch& batch) {
  w.str(batch.batch_id);
  w.str(batch.hub_id);
  w.u32(batch.attempt);
  w.u64(batch.item_count);
  for (std::size_t i = 0; i < batch.item_count; ++i) {
    w.u32(static_cast<uint32_t>(batch.items[i].kind));
    w.str(batch.items[i].key);
    w.str(batch.items[i].json);
  }
}

void read_batch(Reader& r, BatchStorage& out, DecodeBudget& budget) {
  out = BatchStorage{};
  kpihub_batch& b = out.batch;
  b.struct_size = sizeof b;
  b.batch_id = r.str();
  b.hub_id = r.str();
  b.attempt = r.u32();
  const std::size_t items = r.count(kMinBatchItem);
  budget.take(items, sizeof(kpihub_batch_item), "batch items");
  out.items.resize(items);
  for (auto& item : out.items) {
    item.struct_size = sizeof item;
    item.kind = static_cast<kpihub_item_kind>(r.u32());
    item.key = r.str();
    item.json = r.str();
  }
  b.items = out.items.data();
  b.item_count = out.items.size();
}

void write_delivery(Writer& w, const kpihub_delivery& delivery) {
  w.u32(delivery.retry_after_ms);
  // The host checks that there is one result per item; a plugin that returned another count is
  // passed on as it is, so the hub's own check names it.
  const std::size_t n = delivery.results ? delivery.result_count : 0;
  w.u64(n);
  for (std::size_t i = 0; i < n; ++i) {
    w.u32(static_cast<uint32_t>(delivery.results[i].outcome));
    w.str(delivery.results[i].code);
    w.str(delivery.results[i].message);
  }
}

void read_delivery(Reader& r, DeliveryStorage& out, DecodeBudget& budget) {
  out = DeliveryStorage{};
  kpihub_delivery& d = out.delivery;
  d.struct_size = sizeof d;
  d.retry_after_ms = r.u32();
  const std::size_t results = r.count(kMinResult);
  budget.take(results, sizeof(kpihub_item_result), "delivery results");
  out.results.resize(results);
  for (auto& result : out.results) {
    const uint32_t outcome = r.u32();
    if (outcome > KPIHUB_ITEM_RETRY) {
      throw WireError("an item's delivery outcome is " + std::to_string(outcome));
    }
    result.outcome = static_cast<kpihub_item_outcome>(outcome);
    result.code = r.str();
    result.message = r.str();
  }
  d.results = out.results.empty() ? nullptr : out.results.data();
  d.result_count = out.results.size();
}

}  // namespace kpihub::plugin_wire
