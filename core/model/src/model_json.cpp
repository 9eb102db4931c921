#include <kpihub/model_json.hpp>

#include <stdexcept>

namespace kpihub {
namespace json = boost::json;

namespace {

void put_if(json::object& o, std::string_view key, const std::string& v) {
  if (!v.empty()) o.emplace(key, v);
}

const json::value* field(const json::object& o, std::string_view key) {
  return o.if_contains(key);
}

std::string string_field(const json::object& o, std::string_view key, bool required) {
  const auto* v = field(o, key);
  if (!v || v->is_null()) {
    if (required) throw std::invalid_argument(std::string(key) + ": missing");
    return {};
  }
  if (!v->is_string()) throw std::invalid_argument(std::string(key) + ": expected a string");
  return std::string(v->as_string());
}

std::optional<Timestamp> timestamp_field(const json::object& o, std::string_view key) {
  const std::string s = string_field(o, key, false);
  if (s.empty()) return std::nullopt;
  auto t = Timestamp::parse(s);
  if (!t) throw std::invalid_argument(std::string(key) + ": not an RFC 3339 timestamp: " + s);
  return t;
}

}  // namespace

json::object to_json(const WorkRecord& r, json::storage_ptr sp) {
  json::object o(std::move(sp));
  o.reserve(24);
  o.emplace("record_id", r.record_id);
  o.emplace("source_system", r.source_system);
  o.emplace("source_id", r.source_id);
  o.emplace("revision", r.revision);
  o.emplace("retracted", r.retracted);
  put_if(o, "staff_code", r.staff_code);
  put_if(o, "source_staff_id", r.source_staff_id);
  put_if(o, "agency_code", r.agency_code);
  o.emplace("task_code", r.task_code);
  o.emplace("work_date", r.work_date.str());
  o.emplace("declared_minutes", r.declared_minutes);
  o.emplace("quantity", r.quantity);
  put_if(o, "product_unit", r.product_unit);
  put_if(o, "title", r.title);
  put_if(o, "evidence_ref", r.evidence_ref);
  if (r.deadline) o.emplace("deadline", r.deadline->str());
  if (r.completed_at) o.emplace("completed_at", r.completed_at->str());
  if (r.approval) {
    json::object a(o.storage());
    a.emplace("status", to_string(r.approval->status));
    if (r.approval->rating) a.emplace("rating", to_string(*r.approval->rating));
    if (!r.approval->by.empty()) a.emplace("by", r.approval->by);
    if (r.approval->at) a.emplace("at", r.approval->at->str());
    o.emplace("approval", std::move(a));
  }
  if (r.changed_at) o.emplace("changed_at", r.changed_at->str());
  json::object attrs(o.storage());
  for (const auto& [k, v] : r.attributes) attrs.emplace(k, v);
  o.emplace("attributes", std::move(attrs));
  return o;
}

std::string to_json_text(const WorkRecord& r) {
  return json::serialize(to_json(r));
}

WorkRecord work_record_from_json(const json::value& v) {
  if (!v.is_object()) throw std::invalid_argument("work record: expected a JSON object");
  const auto& o = v.as_object();
  WorkRecord r;
  r.record_id = string_field(o, "record_id", true);
  r.source_system = string_field(o, "source_system", true);
  r.source_id = string_field(o, "source_id", true);
  if (const auto* rev = field(o, "revision"); rev && rev->is_int64()) {
    r.revision = rev->as_int64();
  } else {
    throw std::invalid_argument("revision: expected an integer");
  }
  if (const auto* ret = field(o, "retracted"); ret && ret->is_bool()) r.retracted = ret->as_bool();
  r.staff_code = string_field(o, "staff_code", false);
  r.source_staff_id = string_field(o, "source_staff_id", false);
  r.agency_code = string_field(o, "agency_code", false);
  r.task_code = string_field(o, "task_code", true);
  const auto date = Date::parse(string_field(o, "work_date", true));
  if (!date) throw std::invalid_argument("work_date: not a date");
  r.work_date = *date;
  const auto* minutes = field(o, "declared_minutes");
  if (!minutes || !minutes->is_int64())
    throw std::invalid_argument("declared_minutes: expected an integer");
  r.declared_minutes = static_cast<int32_t>(minutes->as_int64());
  const auto* qty = field(o, "quantity");
  if (!qty || !(qty->is_number())) throw std::invalid_argument("quantity: expected a number");
  r.quantity = qty->to_number<double>();
  r.product_unit = string_field(o, "product_unit", false);
  r.title = string_field(o, "title", false);
  r.evidence_ref = string_field(o, "evidence_ref", false);
  if (const std::string d = string_field(o, "deadline", false); !d.empty()) {
    Deadline dl;
    if (auto day = Date::parse(d)) {
      dl.date = day;
    } else if (auto at = Timestamp::parse(d)) {
      dl.at = at;
    } else {
      throw std::invalid_argument("deadline: not a date or timestamp: " + d);
    }
    r.deadline = dl;
  }
  r.completed_at = timestamp_field(o, "completed_at");
  if (const auto* a = field(o, "approval"); a && a->is_object()) {
    const auto& ao = a->as_object();
    Approval ap;
    const auto status = parse_approval_status(string_field(ao, "status", true));
    if (!status) throw std::invalid_argument("approval.status: unknown value");
    ap.status = *status;
    if (const std::string rating = string_field(ao, "rating", false); !rating.empty()) {
      ap.rating = parse_rating(rating);
      if (!ap.rating) throw std::invalid_argument("approval.rating: unknown value " + rating);
    }
    ap.by = string_field(ao, "by", false);
    ap.at = timestamp_field(ao, "at");
    r.approval = ap;
  }
  r.changed_at = timestamp_field(o, "changed_at");
  if (const auto* attrs = field(o, "attributes"); attrs && attrs->is_object()) {
    for (const auto& kv : attrs->as_object()) {
      if (!kv.value().is_string())
        throw std::invalid_argument("attributes: values must be strings");
      r.attributes.emplace_back(std::string(kv.key()), std::string(kv.value().as_string()));
    }
  }
  return r;
}

}  // namespace kpihub
