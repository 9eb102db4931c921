#include <kpihub/validate.hpp>

#include <kpihub/text.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <type_traits>

namespace kpihub {
namespace {

std::string_view view(kpihub_str s) {
  return s.data ? std::string_view(s.data, s.size) : std::string_view();
}
bool present(kpihub_str s) {
  return s.data != nullptr && s.size > 0;
}

// Thrown inside normalize() and turned into a quarantine entry; never escapes.
struct Invalid {
  Reason reason;
  std::string field;
  std::string message;
};

// Values in messages are quoted and cut, so one absurd field cannot flood a log line.
std::string quoted(std::string_view v) {
  constexpr std::size_t kMax = 80;
  std::string out = "\"";
  if (v.size() > kMax) {
    out.append(v.substr(0, kMax));
    out += "...";
  } else {
    out.append(v);
  }
  out += '"';
  return out;
}

kpihub_value_kind kind_of(const kpihub_record& in, kpihub_field f) {
  if (in.value_kinds == nullptr || static_cast<std::size_t>(f) >= in.value_kind_count) {
    return KPIHUB_VALUE_TEXT;
  }
  const auto k = in.value_kinds[f];
  return k <= KPIHUB_VALUE_BOOLEAN ? static_cast<kpihub_value_kind>(k) : KPIHUB_VALUE_TEXT;
}

// The fields' names in stored field JSON and messages, in kpihub_field order.
constexpr std::string_view kFieldNames[] = {
    "source_id",       "revision",        "retracted",    "staff_code",       "source_staff_id",
    "agency_code",     "task_code",       "work_date",    "declared_minutes", "quantity",
    "product_unit",    "title",           "evidence_ref", "deadline",         "completed_at",
    "approval.status", "approval.rating", "approval.by",  "approval.at",      "changed_at"};
static_assert(std::extent_v<decltype(kFieldNames)> == KPIHUB_FIELD_COUNT);

std::string_view kind_name(kpihub_value_kind k) {
  switch (k) {
    case KPIHUB_VALUE_STRING:
      return "string";
    case KPIHUB_VALUE_NUMBER:
      return "number";
    case KPIHUB_VALUE_BOOLEAN:
      return "boolean";
    default:
      return "text";
  }
}

std::optional<kpihub_value_kind> parse_kind(std::string_view name) {
  for (auto k :
       {KPIHUB_VALUE_TEXT, KPIHUB_VALUE_STRING, KPIHUB_VALUE_NUMBER, KPIHUB_VALUE_BOOLEAN}) {
    if (kind_name(k) == name) return k;
  }
  return std::nullopt;
}

const char* kind_words(kpihub_value_kind k) {
  switch (k) {
    case KPIHUB_VALUE_STRING:
      return "a string";
    case KPIHUB_VALUE_NUMBER:
      return "a number";
    case KPIHUB_VALUE_BOOLEAN:
      return "a boolean";
    default:
      return "text";
  }
}

// kpi-model.md: a field of the wrong type is bad_value. Only a source whose format has
// types (JSON) can get this wrong; text of an untyped format (CSV, XML) is parsed.
void check_kind(const kpihub_record& in, kpihub_str value, kpihub_field f, const char* field,
                kpihub_value_kind expected) {
  const kpihub_value_kind got = kind_of(in, f);
  if (got == KPIHUB_VALUE_TEXT || got == expected || !value.data) return;
  // An id may be a number or a string in the source.
  if (f == KPIHUB_FIELD_SOURCE_ID && got == KPIHUB_VALUE_NUMBER) return;
  std::string shown = quoted(view(value));
  if (got != KPIHUB_VALUE_STRING) shown = shown.substr(1, shown.size() - 2);
  throw Invalid{Reason::bad_value, field,
                std::string(field) + ": " + shown + " is " + kind_words(got) +
                    " in the source, where " + kind_words(expected) + " belongs"};
}

std::string_view required(kpihub_str s, const char* field) {
  if (!present(s))
    throw Invalid{Reason::missing_field, field, std::string(field) + " is missing or empty"};
  return view(s);
}

int64_t parse_int(std::string_view text, const char* field) {
  int64_t v = 0;
  const auto* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec == std::errc() && p == end) return v;
  // "150.0" is an integer written as a JSON number with a fraction part.
  double d = 0;
  auto [p2, ec2] = std::from_chars(text.data(), end, d);
  if (ec2 == std::errc() && p2 == end && std::isfinite(d) && d == std::floor(d) &&
      std::fabs(d) < 9e15) {
    return static_cast<int64_t>(d);
  }
  throw Invalid{Reason::bad_value, field,
                std::string(field) + ": " + quoted(text) + " is not a whole number"};
}

double parse_number(std::string_view text, const char* field) {
  double d = 0;
  const auto* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, d);
  if (ec != std::errc() || p != end) {
    throw Invalid{Reason::bad_value, field,
                  std::string(field) + ": " + quoted(text) + " is not a number"};
  }
  if (!std::isfinite(d)) {
    throw Invalid{Reason::bad_value, field,
                  std::string(field) + ": " + quoted(text) + " is not finite"};
  }
  return d;
}

Date parse_date(std::string_view text, const char* field) {
  auto d = Date::parse(text);
  if (!d) {
    throw Invalid{Reason::bad_value, field,
                  std::string(field) + ": " + quoted(text) + " is not a real date (YYYY-MM-DD)"};
  }
  return *d;
}

std::optional<Timestamp> optional_timestamp(kpihub_str s, const char* field) {
  if (!present(s)) return std::nullopt;
  auto t = Timestamp::parse(view(s));
  if (!t) {
    throw Invalid{Reason::bad_value, field,
                  std::string(field) + ": " + quoted(view(s)) +
                      " is not an RFC 3339 timestamp with offset (e.g. 2025-04-09T15:00:00+07:00)"};
  }
  return t;
}

void check_encoding(kpihub_str s, const char* field) {
  if (s.data && !sdk::valid_utf8(view(s))) {
    throw Invalid{Reason::bad_encoding, field, std::string(field) + ": text is not valid UTF-8"};
  }
}

// Fields [from, to) of kpihub_field: encoding first (every other message quotes values and
// must stay valid UTF-8), then types ("minutes": "195" is not 195 minutes).
void check_fields(const kpihub_record& in, kpihub_field from, kpihub_field to) {
  for (std::size_t f = from; f < static_cast<std::size_t>(to); ++f) {
    check_encoding(in.*kRecordFieldMembers[f], kFieldNames[f].data());
  }
  for (std::size_t f = from; f < static_cast<std::size_t>(to); ++f) {
    const auto field = static_cast<kpihub_field>(f);
    const kpihub_value_kind expected = field == KPIHUB_FIELD_REVISION ||
                                               field == KPIHUB_FIELD_DECLARED_MINUTES ||
                                               field == KPIHUB_FIELD_QUANTITY
                                           ? KPIHUB_VALUE_NUMBER
                                       : field == KPIHUB_FIELD_RETRACTED ? KPIHUB_VALUE_BOOLEAN
                                                                         : KPIHUB_VALUE_STRING;
    check_kind(in, in.*kRecordFieldMembers[f], field, kFieldNames[f].data(), expected);
  }
}

// What every record needs, a withdrawal too: its id, its revision, whether it is withdrawn.
WorkRecord identity(const kpihub_record& in, const ValidationContext& ctx) {
  // Encoding first: every other message quotes values and must stay valid UTF-8.
  check_fields(in, KPIHUB_FIELD_SOURCE_ID, KPIHUB_FIELD_STAFF_CODE);
  WorkRecord r;
  r.source_system = ctx.source_system;
  r.source_id = std::string(required(in.source_id, "source_id"));
  r.record_id = r.source_system + ":" + r.source_id;
  r.revision = parse_int(required(in.revision, "revision"), "revision");
  if (r.revision < 0) {
    throw Invalid{Reason::bad_value, "revision",
                  "revision: " + std::to_string(r.revision) + " is negative"};
  }
  if (present(in.retracted)) {
    const auto v = view(in.retracted);
    if (v == "true" || v == "1") {
      r.retracted = true;
    } else if (v == "false" || v == "0") {
      r.retracted = false;
    } else {
      throw Invalid{Reason::bad_value, "retracted",
                    "retracted: " + quoted(v) + " is not true or false"};
    }
  }
  return r;
}

// The rest of the record, checked into `r`.
void content(const kpihub_record& in, const ValidationContext& ctx, WorkRecord& r) {
  check_fields(in, KPIHUB_FIELD_STAFF_CODE, KPIHUB_FIELD_COUNT);
  for (std::size_t i = 0; i < in.attribute_count; ++i) {
    check_encoding(in.attributes[i].key, "attributes");
    check_encoding(in.attributes[i].value, "attributes");
  }

  r.staff_code = std::string(view(in.staff_code));
  r.source_staff_id = std::string(view(in.source_staff_id));
  if (r.staff_code.empty() && r.source_staff_id.empty()) {
    throw Invalid{Reason::missing_field, "staff_code",
                  "staff_code and source_staff_id are both missing: one of them is required"};
  }
  r.agency_code = std::string(view(in.agency_code));
  r.task_code = std::string(required(in.task_code, "task_code"));
  r.work_date = parse_date(required(in.work_date, "work_date"), "work_date");

  const int64_t minutes =
      parse_int(required(in.declared_minutes, "declared_minutes"), "declared_minutes");
  if (minutes < 0 || minutes > 1440) {
    throw Invalid{Reason::bad_value, "declared_minutes",
                  "declared_minutes: " + std::to_string(minutes) + " is outside 0..1440"};
  }
  r.declared_minutes = static_cast<int32_t>(minutes);
  r.quantity = parse_number(required(in.quantity, "quantity"), "quantity");
  if (r.quantity < 0) {
    throw Invalid{Reason::bad_value, "quantity",
                  "quantity: " + quoted(view(in.quantity)) + " is negative"};
  }
  if (r.quantity > kMaxQuantity) {
    throw Invalid{Reason::bad_value, "quantity",
                  "quantity: " + quoted(view(in.quantity)) + " is more than " +
                      std::to_string(static_cast<int64_t>(kMaxQuantity)) +
                      " products in one record"};
  }
  r.product_unit = std::string(view(in.product_unit));
  r.title = std::string(view(in.title));
  r.evidence_ref = std::string(view(in.evidence_ref));

  if (present(in.deadline)) {
    Deadline d;
    const auto text = view(in.deadline);
    if (auto day = Date::parse(text)) {
      d.date = day;
    } else if (auto at = Timestamp::parse(text)) {
      d.at = at;
    } else {
      throw Invalid{Reason::bad_value, "deadline",
                    "deadline: " + quoted(text) +
                        " is neither a date (YYYY-MM-DD) nor an RFC 3339 timestamp"};
    }
    r.deadline = d;
  }
  r.completed_at = optional_timestamp(in.completed_at, "completed_at");
  r.changed_at = optional_timestamp(in.changed_at, "changed_at");

  if (present(in.approval_status) || present(in.approval_rating) || present(in.approval_by) ||
      present(in.approval_at)) {
    Approval a;
    const auto status_text = required(in.approval_status, "approval.status");
    const auto status = parse_approval_status(status_text);
    if (!status) {
      throw Invalid{Reason::bad_value, "approval.status",
                    "approval.status: " + quoted(status_text) +
                        " is not one of approved, pending, returned, rejected"};
    }
    a.status = *status;
    if (present(in.approval_rating)) {
      a.rating = parse_rating(view(in.approval_rating));
      if (!a.rating) {
        throw Invalid{Reason::bad_value, "approval.rating",
                      "approval.rating: " + quoted(view(in.approval_rating)) +
                          " is not one of excellent, good, fair, poor"};
      }
    }
    a.by = std::string(view(in.approval_by));
    a.at = optional_timestamp(in.approval_at, "approval.at");
    r.approval = a;
  }
  r.attributes.reserve(in.attribute_count);
  for (std::size_t i = 0; i < in.attribute_count; ++i) {
    r.attributes.emplace_back(std::string(view(in.attributes[i].key)),
                              std::string(view(in.attributes[i].value)));
  }

  if (r.work_date > ctx.today) {
    throw Invalid{Reason::future_date, "work_date",
                  "work_date: " + r.work_date.str() + " is after today (" + ctx.today.str() + ")"};
  }
  if (r.work_date.days < ctx.today.days - ctx.retention_days) {
    throw Invalid{Reason::too_old, "work_date",
                  "work_date: " + r.work_date.str() + " is more than " +
                      std::to_string(ctx.retention_days) + " days before today (" +
                      ctx.today.str() + "); widen retention_days to backfill"};
  }
}

WorkRecord convert(const kpihub_record& in, const ValidationContext& ctx) {
  WorkRecord r = identity(in, ctx);
  if (!r.retracted) {
    content(in, ctx, r);
    return r;
  }
  // A withdrawal needs only its id and revision. The content a tombstone may carry (the last
  // the source had) is kept when it is valid, and set aside when not: an invalid last edit
  // must not keep a record the source deleted counting.
  WorkRecord full = r;
  try {
    content(in, ctx, full);
    return full;
  } catch (const Invalid&) {
  }
  try {
    r.changed_at = optional_timestamp(in.changed_at, "changed_at");
  } catch (const Invalid&) {
  }
  return r;
}

}  // namespace

kpihub_record record_at(const kpihub_page& page, std::size_t i) {
  const std::size_t stride = page.record_count > 0 ? page.records[0].struct_size : 0;
  if (stride < kRecordSizeV1_0) {
    throw std::runtime_error("the page's records are " + std::to_string(stride) +
                             " bytes, ABI 1.0 needs at least " + std::to_string(kRecordSizeV1_0));
  }
  kpihub_record out{};
  const auto* at = reinterpret_cast<const unsigned char*>(page.records) + stride * i;
  std::memcpy(&out, at, std::min(stride, sizeof out));
  out.struct_size = sizeof out;
  return out;
}

std::string record_fields_json(const kpihub_record& in) {
  boost::json::object o;
  // Invalid bytes are kept visible but harmless in the stored payload.
  auto text = [](kpihub_str s) -> boost::json::string {
    const auto v = view(s);
    if (sdk::valid_utf8(v)) return boost::json::string(v);
    std::string hex;
    static const char* digits = "0123456789abcdef";
    for (unsigned char c : v) {
      if (c >= 0x20 && c < 0x7f) {
        hex += static_cast<char>(c);
      } else {
        hex += "\\x";
        hex += digits[c >> 4];
        hex += digits[c & 15];
      }
    }
    return boost::json::string(hex);
  };
  auto put = [&](const char* k, kpihub_str s) {
    if (s.data) o.emplace(k, text(s));
  };
  for (std::size_t f = 0; f < KPIHUB_FIELD_COUNT; ++f) {
    put(kFieldNames[f].data(), in.*kRecordFieldMembers[f]);
  }
  // What a typed source gave, so that a replay refuses "minutes": "195" as the first try did.
  boost::json::object kinds;
  for (std::size_t f = 0; f < KPIHUB_FIELD_COUNT; ++f) {
    const auto kind = kind_of(in, static_cast<kpihub_field>(f));
    if (kind != KPIHUB_VALUE_TEXT) kinds.emplace(kFieldNames[f], kind_name(kind));
  }
  if (!kinds.empty()) o.emplace("value_kinds", std::move(kinds));
  if (in.attribute_count > 0) {
    // [key, value] pairs: order and repeats as the adapter gave them.
    boost::json::array attributes;
    attributes.reserve(in.attribute_count);
    for (std::size_t i = 0; i < in.attribute_count; ++i) {
      attributes.push_back(
          boost::json::array{text(in.attributes[i].key), text(in.attributes[i].value)});
    }
    o.emplace("attributes", std::move(attributes));
  }
  return boost::json::serialize(o);
}

Normalized normalize(const kpihub_record& in, const ValidationContext& ctx) {
  try {
    return convert(in, ctx);
  } catch (const Invalid& e) {
    QuarantineEntry q;
    q.source_system = ctx.source_system;
    if (in.source_id.data && sdk::valid_utf8(view(in.source_id))) {
      q.source_id = std::string(view(in.source_id));
      if (!q.source_id.empty()) q.record_id = ctx.source_system + ":" + q.source_id;
    }
    q.reason = e.reason;
    q.field = e.field;
    q.message = e.message;
    q.fields = record_fields_json(in);
    q.payload =
        present(in.raw) && sdk::valid_utf8(view(in.raw)) ? std::string(view(in.raw)) : q.fields;
    q.location = std::string(view(in.location));
    return q;
  }
}

QuarantineEntry quarantine_from_rejected(const kpihub_rejected_item& in,
                                         const std::string& source_system) {
  QuarantineEntry q;
  q.source_system = source_system;
  if (in.source_id.data && sdk::valid_utf8(view(in.source_id))) {
    q.source_id = std::string(view(in.source_id));
    if (!q.source_id.empty()) q.record_id = source_system + ":" + q.source_id;
  }
  const auto reason = parse_reason(view(in.reason));
  q.reason = reason ? *reason : Reason::parse_error;
  q.field = std::string(view(in.field));
  q.message = std::string(view(in.message));
  if (!reason) q.message += " (adapter reason code \"" + std::string(view(in.reason)) + "\")";
  if (!sdk::valid_utf8(q.message)) q.message = "adapter message is not valid UTF-8";
  const auto raw = view(in.raw);
  if (sdk::valid_utf8(raw)) {
    q.payload = std::string(raw);
  } else {
    q.payload = "(original item is not valid UTF-8; " + std::to_string(raw.size()) +
                " bytes not kept as text)";
  }
  q.location = std::string(view(in.location));
  return q;
}

}  // namespace kpihub

namespace kpihub {

std::unique_ptr<RecordFields> RecordFields::parse(std::string_view json) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return nullptr;
  auto out = std::unique_ptr<RecordFields>(new RecordFields());
  for (const auto& kv : v.as_object()) {
    if (kv.key() == "value_kinds" && kv.value().is_object()) {
      for (const auto& kind : kv.value().as_object()) {
        const auto* name = std::find(std::begin(kFieldNames), std::end(kFieldNames), kind.key());
        if (name == std::end(kFieldNames) || !kind.value().is_string()) return nullptr;
        const auto parsed = parse_kind(kind.value().as_string());
        if (!parsed) return nullptr;
        out->kinds_[static_cast<std::size_t>(name - std::begin(kFieldNames))] =
            static_cast<uint8_t>(*parsed);
      }
      continue;
    }
    if (kv.key() == "attributes") {
      if (!kv.value().is_array()) return nullptr;
      for (const auto& pair : kv.value().get_array()) {
        const auto* kv_pair = pair.if_array();
        if (!kv_pair || kv_pair->size() != 2 || !(*kv_pair)[0].is_string() ||
            !(*kv_pair)[1].is_string()) {
          return nullptr;
        }
        out->attributes_.emplace_back(std::string((*kv_pair)[0].get_string()),
                                      std::string((*kv_pair)[1].get_string()));
      }
      continue;
    }
    if (!kv.value().is_string()) return nullptr;
    out->values_.emplace(std::string(kv.key()), std::string(kv.value().as_string()));
  }
  // The pairs are in place: the views point into them.
  out->c_attributes_.reserve(out->attributes_.size());
  for (const auto& [key, value] : out->attributes_) {
    out->c_attributes_.push_back({{key.data(), key.size()}, {value.data(), value.size()}});
  }
  auto field = [&](const char* key) -> kpihub_str {
    auto it = out->values_.find(key);
    if (it == out->values_.end()) return {nullptr, 0};
    return {it->second.data(), it->second.size()};
  };
  kpihub_record& r = out->record_;
  r.struct_size = sizeof r;
  for (std::size_t f = 0; f < KPIHUB_FIELD_COUNT; ++f)
    r.*kRecordFieldMembers[f] = field(kFieldNames[f].data());
  r.value_kinds = out->kinds_.data();
  r.value_kind_count = out->kinds_.size();
  r.attributes = out->c_attributes_.data();
  r.attribute_count = out->c_attributes_.size();
  return out;
}

}  // namespace kpihub
