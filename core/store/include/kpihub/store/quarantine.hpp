// What every engine reads the same way from a quarantine entry.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kpihub {

// The revision a quarantine entry's fields (QuarantineEntry::fields, record_fields_json) name,
// if they name a whole one: what tells whether a stored revision supersedes the entry.
std::optional<int64_t> quarantined_revision(std::string_view fields);

}  // namespace kpihub
