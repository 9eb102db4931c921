// libFuzzer target: what an isolated plugin's process sends the hub (core/host/src/plugin_wire),
// read as the hub reads it. The child is hostile by assumption, so any bytes must end in a
// WireError or in a page, staff list, delivery or batch whose every pointer lies inside the
// bytes read or the reader's own arrays; and a page read must then pass or fail the host's page
// check (check_page) without reading outside them. The first byte picks what is read.
#include <kpihub/plugins.hpp>
#include <kpihub/validate.hpp>

#include "plugin_wire.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace kpihub::plugin_wire;

struct Bounds {
  const char* begin;
  const char* end;
  void check(kpihub_str s) const {
    if (s.data == nullptr) return;
    if (s.data < begin || s.data > end || s.size > static_cast<std::size_t>(end - s.data)) {
      __builtin_trap();
    }
  }
};

template <typename T>
void check_inside(const T* p, std::size_t n, const std::vector<T>& owner) {
  if (n == 0) return;
  if (p < owner.data() || p + n > owner.data() + owner.size()) __builtin_trap();
}

void read_page_bytes(std::string_view payload, const Bounds& b) {
  Reader r(payload);
  PageStorage out;
  DecodeBudget budget(std::size_t{1} << 24);
  read_page(r, out, budget);
  const kpihub_page& page = out.page;
  check_inside(page.records, page.record_count, out.records);
  check_inside(page.rejected, page.rejected_count, out.rejected);
  for (std::size_t i = 0; i < page.record_count; ++i) {
    const kpihub_record& rec = page.records[i];
    for (const auto member : kpihub::kRecordFieldMembers) b.check(rec.*member);
    check_inside(rec.attributes, rec.attribute_count, out.attributes);
    for (std::size_t a = 0; a < rec.attribute_count; ++a) {
      b.check(rec.attributes[a].key);
      b.check(rec.attributes[a].value);
    }
    check_inside(rec.value_kinds, rec.value_kind_count, out.value_kinds);
    b.check(rec.raw);
    b.check(rec.location);
  }
  for (std::size_t i = 0; i < page.rejected_count; ++i) {
    b.check(page.rejected[i].source_id);
    b.check(page.rejected[i].message);
    b.check(page.rejected[i].raw);
  }
  b.check(page.next_cursor);
  b.check(page.progress);
  try {
    kpihub::check_page(page, "fuzz");
  } catch (const kpihub::PluginError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // A copy of exactly the bytes read, so that a read past them is the sanitizer's to see.
  const std::string payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Bounds b{payload.data(), payload.data() + payload.size()};
  try {
    switch (data[0] % 4) {
      case 0:
        read_page_bytes(payload, b);
        break;
      case 1: {
        Reader r(payload);
        StaffStorage out;
        DecodeBudget budget(std::size_t{1} << 24);
        read_staff(r, out, budget);
        for (const auto& e : out.entries) {
          b.check(e.staff_code);
          b.check(e.full_name);
          b.check(e.agency_code);
        }
        break;
      }
      case 2: {
        Reader r(payload);
        DeliveryStorage out;
        DecodeBudget budget(std::size_t{1} << 24);
        read_delivery(r, out, budget);
        check_inside(out.delivery.results, out.delivery.result_count, out.results);
        for (const auto& x : out.results) {
          if (x.outcome > KPIHUB_ITEM_RETRY) __builtin_trap();
          b.check(x.code);
          b.check(x.message);
        }
        break;
      }
      default: {
        Reader r(payload);
        BatchStorage out;
        DecodeBudget budget(std::size_t{1} << 24);
        read_batch(r, out, budget);
        check_inside(out.batch.items, out.batch.item_count, out.items);
        for (const auto& item : out.items) {
          b.check(item.key);
          b.check(item.json);
        }
        break;
      }
    }
  } catch (const WireError&) {
  }
  return 0;
}
