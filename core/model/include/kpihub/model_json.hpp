// The model's JSON form (spec/kpi-model.md field names), with Boost.JSON.
#pragma once

#include <kpihub/model.hpp>

#include <boost/json.hpp>

#include <string>

namespace kpihub {

// The work record as kpi-model.md shows it (absent optional fields omitted), its values in
// `sp`'s memory (a caller that builds one per record passes a monotonic buffer).
boost::json::object to_json(const WorkRecord& r, boost::json::storage_ptr sp = {});
// Inverse of to_json; throws std::invalid_argument naming the field on bad input.
WorkRecord work_record_from_json(const boost::json::value& v);

std::string to_json_text(const WorkRecord& r);

}  // namespace kpihub
