// Turns an adapter's text record (kpihub_record of the ABI) into a typed work
// record, or a quarantine entry whose message names the field and the value.
#pragma once

#include <kpihub/abi.h>
#include <kpihub/model.hpp>

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace kpihub {

struct ValidationContext {
  std::string source_system;
  Date today;                // the hub's local date
  int retention_days = 400;  // older work dates are too_old
};

using Normalized = std::variant<WorkRecord, QuarantineEntry>;

Normalized normalize(const kpihub_record& in, const ValidationContext& ctx);

// The i-th record of a page, whatever ABI minor the plugin was built with: the plugin's
// records are records[0].struct_size bytes apart, and the fields a plugin of an older minor
// does not have read as absent. Throws std::runtime_error for a struct_size smaller than
// ABI 1.0's record.
kpihub_record record_at(const kpihub_page& page, std::size_t i);
// The smallest record a plugin may hand over: ABI 1.0's, which ended before value_kinds.
inline constexpr std::size_t kRecordSizeV1_0 = offsetof(kpihub_record, value_kinds);

// The record's text fields in kpihub_field order: the one list of the ABI record's text fields
// that checking, storing, replaying and carrying a page between processes walk.
inline constexpr kpihub_str kpihub_record::*kRecordFieldMembers[] = {
    &kpihub_record::source_id,        &kpihub_record::revision,
    &kpihub_record::retracted,        &kpihub_record::staff_code,
    &kpihub_record::source_staff_id,  &kpihub_record::agency_code,
    &kpihub_record::task_code,        &kpihub_record::work_date,
    &kpihub_record::declared_minutes, &kpihub_record::quantity,
    &kpihub_record::product_unit,     &kpihub_record::title,
    &kpihub_record::evidence_ref,     &kpihub_record::deadline,
    &kpihub_record::completed_at,     &kpihub_record::approval_status,
    &kpihub_record::approval_rating,  &kpihub_record::approval_by,
    &kpihub_record::approval_at,      &kpihub_record::changed_at};
static_assert(std::extent_v<decltype(kRecordFieldMembers)> == KPIHUB_FIELD_COUNT);

// The largest quantity of one record the hub accepts: products of one day's work, with room
// to spare; beyond it scoring's products would leave the range where every figure is exact.
inline constexpr double kMaxQuantity = 1'000'000;

// The adapter-rejected item as a quarantine entry (unknown reason codes
// become parse_error, with the adapter's code kept in the message).
QuarantineEntry quarantine_from_rejected(const kpihub_rejected_item& in,
                                         const std::string& source_system);

// The record's text fields as JSON, for quarantine payloads when the adapter
// gave no raw item, and for replays: every field as text, and "attributes" as
// [key, value] pairs.
std::string record_fields_json(const kpihub_record& in);

// The inverse of record_fields_json: a record view over owned text (for
// replaying quarantine after a fix), attributes included. Null when `json` is
// not such an object.
class RecordFields {
 public:
  static std::unique_ptr<RecordFields> parse(std::string_view json);
  const kpihub_record& view() const { return record_; }
  RecordFields(const RecordFields&) = delete;
  RecordFields& operator=(const RecordFields&) = delete;

 private:
  RecordFields() = default;
  std::map<std::string, std::string> values_;
  std::array<uint8_t, KPIHUB_FIELD_COUNT> kinds_{};
  std::vector<std::pair<std::string, std::string>> attributes_;
  std::vector<kpihub_attribute> c_attributes_;  // views of attributes_
  kpihub_record record_{};
};

}  // namespace kpihub
