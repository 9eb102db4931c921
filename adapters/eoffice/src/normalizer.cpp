#include <kpihub/eoffice/normalizer.hpp>
#include <kpihub/json_keys.hpp>
#include <kpihub/text.hpp>
#include <kpihub/time.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>

namespace kpihub::eoffice {

namespace json = boost::json;

// ------------------------------------------------------------ field map ---

const std::vector<std::string>& FieldMap::model_fields() {
  static const std::vector<std::string> names = {
      "source_id",       "revision",        "retracted",    "staff_code",       "source_staff_id",
      "agency_code",     "task_code",       "work_date",    "declared_minutes", "quantity",
      "product_unit",    "title",           "evidence_ref", "deadline",         "completed_at",
      "approval_status", "approval_rating", "approval_by",  "approval_at",      "changed_at"};
  return names;
}

const std::vector<std::string>& FieldMap::default_attributes() {
  static const std::vector<std::string> names = {"start_time", "end_time", "assigned_by",
                                                 "assigned_at"};
  return names;
}

FieldMap FieldMap::defaults() {
  FieldMap map;
  for (const auto& field : model_fields()) map.fields_.emplace_back(field, field);
  map.set("source_id", "id");
  map.set("declared_minutes", "minutes");
  map.set("evidence_ref", "document_ref");
  map.set("retracted", "deleted");
  map.set("changed_at", "updated_at");
  // E-Office's staff code is the provincial one; the model's example carries
  // it in both places so the directory can check one against the other.
  map.set("source_staff_id", "staff_code");
  map.set("approval_status", "approval.status");
  map.set("approval_rating", "approval.rating");
  map.set("approval_by", "approval.by");
  map.set("approval_at", "approval.at");
  for (const auto& attr : default_attributes()) map.attributes_.emplace_back(attr, attr);
  return map;
}

void FieldMap::set(std::string_view model_field, std::string source_path) {
  constexpr std::string_view kAttributePrefix = "attributes.";
  if (model_field.substr(0, kAttributePrefix.size()) == kAttributePrefix &&
      model_field.size() > kAttributePrefix.size()) {
    const std::string key(model_field.substr(kAttributePrefix.size()));
    for (auto& [name, path] : attributes_) {
      if (name == key) {
        path = std::move(source_path);
        return;
      }
    }
    attributes_.emplace_back(key, std::move(source_path));
    return;
  }
  for (auto& [name, path] : fields_) {
    if (name == model_field) {
      path = std::move(source_path);
      return;
    }
  }
  std::string known;
  for (const auto& f : model_fields()) known += (known.empty() ? "" : ", ") + f;
  throw std::invalid_argument("\"" + std::string(model_field) + "\" is not a model field (known: " +
                              known + ", or attributes.<name>)");
}

const std::string& FieldMap::source_of(std::string_view model_field) const {
  static const std::string none;
  for (const auto& [name, path] : fields_) {
    if (name == model_field) return path;
  }
  constexpr std::string_view kAttributePrefix = "attributes.";
  if (model_field.substr(0, kAttributePrefix.size()) == kAttributePrefix) {
    for (const auto& [name, path] : attributes_) {
      if (name == model_field.substr(kAttributePrefix.size())) return path;
    }
  }
  return none;
}

// ----------------------------------------------------------------- time ---

std::optional<int64_t> parse_rfc3339_ms(std::string_view s) {
  // The SDK's reading, the host's rule (sdk::parse_rfc3339), with the fraction's milliseconds:
  // a feed orders items by them. An E-Office time names its offset.
  const std::optional<sdk::FileTime> t = sdk::parse_rfc3339(s, std::nullopt);
  if (!t) return std::nullopt;
  return t->unix_seconds * 1000 + t->millis;
}

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int compare_ids(std::string_view a, std::string_view b) {
  if (all_digits(a) && all_digits(b)) {
    a.remove_prefix(std::min(a.find_first_not_of('0'), a.size()));
    b.remove_prefix(std::min(b.find_first_not_of('0'), b.size()));
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  }
  const int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace

int compare_keys(const FeedKey& a, const FeedKey& b) {
  const auto ta = parse_rfc3339_ms(a.updated_at);
  const auto tb = parse_rfc3339_ms(b.updated_at);
  if (ta && tb) {
    if (*ta != *tb) return *ta < *tb ? -1 : 1;
  } else {
    const int c = a.updated_at.compare(b.updated_at);
    if (c != 0) return c < 0 ? -1 : 1;
  }
  return compare_ids(a.id, b.id);
}

// ----------------------------------------------------------- normalizer ---

namespace {

// The ABI's index of a model field: FieldMap::model_fields() lists them in kpihub_field order.
kpihub_field field_of(std::string_view name) {
  const auto& names = FieldMap::model_fields();
  const auto it = std::find(names.begin(), names.end(), name);
  return static_cast<kpihub_field>(it - names.begin());
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    out.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::object:
      return "an object";
    case json::kind::array:
      return "an array";
    case json::kind::string:
      return "a string";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::null:
      return "null";
    default:
      return "a number";
  }
}

// Short, valid-UTF-8 excerpt of a JSON value for messages.
std::string excerpt(const json::value& v) {
  std::string text = sdk::replace_invalid_utf8(json::serialize(v));
  constexpr std::size_t kMax = 120;
  if (text.size() > kMax) {
    std::size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut) + "…";
  }
  return text;
}

// The text of a scalar as the source wrote it: strings as they are, numbers
// in their shortest round-trip form, booleans as true/false.
std::optional<std::string> scalar_text(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_: {
      char buf[64];
      const auto res = std::to_chars(buf, buf + sizeof buf, v.get_double());
      return std::string(buf, res.ptr);
    }
    case json::kind::bool_:
      return std::string(v.get_bool() ? "true" : "false");
    default:
      return std::nullopt;
  }
}

struct Lookup {
  const json::value* value = nullptr;  // null: absent (or JSON null)
  std::string blocked_at;              // non-empty: a segment was not an object
};

template <typename PathT>
Lookup lookup(const json::object& item, const PathT& path) {
  Lookup out;
  const json::object* obj = &item;
  std::string walked;
  for (std::size_t i = 0; i < path.segments.size(); ++i) {
    const json::value* v = obj->if_contains(path.segments[i]);
    walked += (i ? "." : "") + path.segments[i];
    if (v == nullptr || v->is_null()) return out;
    if (i + 1 == path.segments.size()) {
      out.value = v;
      return out;
    }
    if (!v->is_object()) {
      out.value = v;
      out.blocked_at = walked;
      return out;
    }
    obj = &v->get_object();
  }
  return out;
}

// Path of the first string (or key) in `v` that is not valid UTF-8.
bool find_bad_utf8(const json::value& v, std::string& path) {
  switch (v.kind()) {
    case json::kind::string:
      return !sdk::valid_utf8(v.get_string());
    case json::kind::array: {
      const auto& arr = v.get_array();
      for (std::size_t i = 0; i < arr.size(); ++i) {
        if (find_bad_utf8(arr[i], path)) {
          path =
              path.empty() ? "[" + std::to_string(i) + "]" : "[" + std::to_string(i) + "]." + path;
          return true;
        }
      }
      return false;
    }
    case json::kind::object:
      for (const auto& kv : v.get_object()) {
        const std::string_view key = kv.key();
        const bool bad_key = !sdk::valid_utf8(key);
        std::string inner;
        if (bad_key || find_bad_utf8(kv.value(), inner)) {
          const std::string name = sdk::replace_invalid_utf8(key);
          path = inner.empty() ? name : name + "." + inner;
          return true;
        }
      }
      return false;
    default:
      return false;
  }
}

}  // namespace

Normalizer::Normalizer(FieldMap map) : map_(std::move(map)) {
  for (const auto& [field, source] : map_.fields()) {
    Path path{source, split_path(source)};
    if (field == "source_id") id_path_ = path;
    if (field == "changed_at") updated_at_path_ = path;
    if (source.empty()) continue;
    targets_.push_back(Target{field, std::move(path), field_of(field)});
  }
  for (const auto& [key, source] : map_.attributes()) {
    if (!source.empty()) attributes_.emplace_back(key, Path{source, split_path(source)});
  }
  if (id_path_.name.empty())
    throw std::invalid_argument("fields.source_id must name a source field");
  if (updated_at_path_.name.empty()) {
    throw std::invalid_argument("fields.changed_at must name a source field (the feed's order)");
  }
  nodes_.emplace_back();
  for (const auto& target : targets_)
    nodes_[add_path(target.path.segments)].fields.push_back(target.field);
  for (std::size_t i = 0; i < attributes_.size(); ++i) {
    nodes_[add_path(attributes_[i].second.segments)].attributes.push_back(i);
  }
}

std::size_t Normalizer::add_path(const std::vector<std::string>& segments) {
  std::size_t at = 0;
  for (const auto& segment : segments) {
    const auto& children = nodes_[at].children;
    const auto it = std::find_if(children.begin(), children.end(),
                                 [&](const auto& c) { return c.first == segment; });
    if (it != children.end()) {
      at = it->second;
      continue;
    }
    nodes_.emplace_back();
    nodes_[at].children.emplace_back(segment, nodes_.size() - 1);
    at = nodes_.size() - 1;
  }
  return at;
}

std::optional<FeedKey> Normalizer::key_of(const json::value& item) const {
  if (!item.is_object()) return std::nullopt;
  const Lookup id = lookup(item.get_object(), id_path_);
  const Lookup at = lookup(item.get_object(), updated_at_path_);
  if (!id.value || !id.blocked_at.empty() || !at.value || !at.blocked_at.empty()) {
    return std::nullopt;
  }
  if (!at.value->is_string() ||
      !(id.value->is_string() || id.value->is_int64() || id.value->is_uint64())) {
    return std::nullopt;
  }
  FeedKey key{sdk::replace_invalid_utf8(at.value->get_string()),
              sdk::replace_invalid_utf8(*scalar_text(*id.value))};
  if (key.id.empty() || !parse_rfc3339_ms(key.updated_at)) return std::nullopt;
  return key;
}

void Normalizer::normalize_item(const json::value& item, std::size_t index,
                                std::optional<std::string_view> text, sdk::Page& out) const {
  const std::string location = "item " + std::to_string(index + 1);
  // The item as the page holds it, each byte that is not UTF-8 replaced by U+FFFD.
  std::optional<std::string> raw;
  if (text) raw = sdk::replace_invalid_utf8(*text);
  const auto reject = [&](std::optional<std::string> id, std::string reason,
                          std::optional<std::string> field, std::string message) {
    sdk::RejectedItem r;
    r.source_id = std::move(id);
    r.reason = std::move(reason);
    r.field = std::move(field);
    r.message = std::move(message);
    r.raw = raw;
    r.location = location;
    out.reject(std::move(r));
  };
  const std::string prefix = "eoffice " + location;

  if (!item.is_object()) {
    reject(std::nullopt, "parse_error", std::nullopt,
           prefix + ": expected a JSON object, got " + kind_name(item) + ": " + excerpt(item));
    return;
  }
  const json::object& obj = item.get_object();

  // The id comes first: every later message names it.
  const Lookup id = lookup(obj, id_path_);
  std::optional<std::string> id_text;
  if (id.value && id.blocked_at.empty() &&
      (id.value->is_string() || id.value->is_int64() || id.value->is_uint64())) {
    id_text = sdk::replace_invalid_utf8(*scalar_text(*id.value));
    if (id_text->empty()) id_text.reset();
  }
  const std::string who = id_text ? prefix + " (id " + *id_text + ")" : prefix;

  std::string bad_path;
  if (find_bad_utf8(item, bad_path)) {
    std::string field = bad_path;
    for (const auto& t : targets_) {
      if (t.path.name == bad_path) field = t.model_field;
    }
    for (const auto& [key, path] : attributes_) {
      if (path.name == bad_path) field = "attributes." + key;
    }
    reject(id_text, "bad_encoding", field,
           who + ": field " + field + " (source \"" + bad_path +
               "\") is not valid UTF-8 (invalid bytes shown as U+FFFD in the raw item)");
    return;
  }

  if (!id.value) {
    reject(std::nullopt, "missing_field", "source_id",
           prefix + ": field source_id (source \"" + id_path_.name + "\") is missing");
    return;
  }
  if (!id_text) {
    reject(std::nullopt, id.value->is_string() ? "missing_field" : "bad_value", "source_id",
           prefix + ": field source_id (source \"" + id_path_.name +
               "\") must be a non-empty string or an integer, got " + kind_name(*id.value) + ": " +
               excerpt(*id.value));
    return;
  }

  sdk::Record record;
  record.set(KPIHUB_FIELD_SOURCE_ID, *id_text,
             id.value->is_string() ? KPIHUB_VALUE_STRING : KPIHUB_VALUE_NUMBER);
  for (const auto& target : targets_) {
    if (target.model_field == "source_id") continue;
    const Lookup found = lookup(obj, target.path);
    if (!found.value) continue;
    if (!found.blocked_at.empty() || !record.set_json(target.field, *found.value)) {
      const std::string where = found.blocked_at.empty() ? target.path.name : found.blocked_at;
      reject(id_text, "bad_value", target.model_field,
             who + ": field " + target.model_field + " (source \"" + where + "\") has " +
                 kind_name(*found.value) +
                 " where a single value belongs: " + excerpt(*found.value));
      return;
    }
  }
  for (const auto& [key, path] : attributes_) {
    const Lookup found = lookup(obj, path);
    if (!found.value) continue;
    std::optional<std::string> text;
    if (found.blocked_at.empty()) text = scalar_text(*found.value);
    if (!text) {
      reject(id_text, "bad_value", "attributes." + key,
             who + ": field attributes." + key + " (source \"" + path.name + "\") has " +
                 kind_name(*found.value) +
                 " where a single value belongs: " + excerpt(*found.value));
      return;
    }
    record.attributes.emplace_back(key, std::move(*text));
  }
  record.raw = std::move(raw);
  record.location = location;
  out.add(std::move(record));
}

void Normalizer::reject_repeated_key(const json::value& item, std::size_t index,
                                     std::optional<std::string_view> text, const std::string& key,
                                     sdk::Page& out) const {
  sdk::RejectedItem r;
  r.location = "item " + std::to_string(index + 1);
  std::string who = "eoffice " + *r.location;
  if (key != id_path_.name && item.is_object()) {
    const Lookup id = lookup(item.get_object(), id_path_);
    if (id.value && id.blocked_at.empty()) {
      if (auto text = scalar_text(*id.value); text && !text->empty()) {
        r.source_id = sdk::replace_invalid_utf8(*text);
        who += " (id " + *r.source_id + ")";
      }
    }
  }
  // The first model field read from the key (E-Office's staff_code is read twice).
  r.field = key;
  const auto target = std::find_if(targets_.begin(), targets_.end(),
                                   [&](const Target& t) { return t.path.name == key; });
  const auto attribute = std::find_if(attributes_.begin(), attributes_.end(),
                                      [&](const auto& a) { return a.second.name == key; });
  if (target != targets_.end()) {
    r.field = target->model_field;
  } else if (attribute != attributes_.end()) {
    r.field = "attributes." + attribute->first;
  }
  r.reason = "parse_error";
  r.message = who + ": the key \"" + key +
              "\" appears more than once in the item; which value the source meant is unknown";
  if (text) r.raw = sdk::replace_invalid_utf8(*text);
  out.reject(std::move(r));
}

PageSummary Normalizer::normalize_page_values(std::string_view body,
                                              const std::optional<FeedKey>& after, sdk::Page& out,
                                              std::size_t max_items) const {
  // Invalid UTF-8 is let through here and caught per item, so that one bad
  // string quarantines its own item and not the whole page.
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  options.max_depth = 64;
  // The values and the page's shape in one pass: its lists are counted as they are read, so a
  // million `{}` items in a 3 MB answer (1.2 GB once parsed, issue 19) stop the parse at the
  // first one too many; and Boost.JSON keeps the last of a repeated key silently, so the pass
  // notes every repeated key. The values live on one arena, released with the page.
  json::monotonic_resource resource(std::min<std::size_t>(body.size() * 2, 32u << 20) + 4096);
  const sdk::ParsedJson parsed =
      sdk::parse_json(body, options, {max_items, kMaxInnerArray}, &resource);
  const sdk::JsonShape& shape = parsed.shape;
  if (shape.too_long) {
    std::string where;
    for (const auto& segment : shape.long_array) where += (where.empty() ? "" : ".") + segment;
    const bool page_list = shape.long_array.size() <= 1;
    throw PageParseError(
        0, page_list ? "the page's \"" + sdk::replace_invalid_utf8(where) + "\" holds more than " +
                           std::to_string(max_items) + " items, the page size asked for"
                     : "\"" + sdk::replace_invalid_utf8(where) + "\" is a list of more than " +
                           std::to_string(kMaxInnerArray) + " elements");
  }
  if (parsed.ended_early) {
    throw PageParseError(body.size(), "the page ends early at byte " + std::to_string(body.size()) +
                                          " (truncated answer?)");
  }
  if (parsed.error) {
    throw PageParseError(parsed.consumed,
                         "not valid JSON at byte " + std::to_string(parsed.consumed) + " of " +
                             std::to_string(body.size()) + ": " + parsed.error.message());
  }
  if (parsed.trailing != std::string_view::npos) {
    throw PageParseError(parsed.trailing, "unexpected data after the page at byte " +
                                              std::to_string(parsed.trailing));
  }
  const json::value& page = parsed.value;
  if (!page.is_object()) {
    throw PageParseError(0, std::string("the page is ") + kind_name(page) + ", not an object");
  }
  // An item with a repeated key is refused, naming the key; a page with one (two
  // next_page_tokens) is not read at all.
  std::map<std::size_t, std::string> repeated_in_item;
  for (const auto& d : shape.duplicates) {
    if (d.path.size() >= 2 && d.path[0] == "items") {
      std::size_t index = 0;
      std::from_chars(d.path[1].data(), d.path[1].data() + d.path[1].size(), index);
      std::string key;
      for (std::size_t i = 2; i < d.path.size(); ++i) key += d.path[i] + ".";
      repeated_in_item.emplace(index, sdk::replace_invalid_utf8(key + d.key));
      continue;
    }
    std::string where;
    for (const auto& segment : d.path) where += segment + ".";
    throw PageParseError(0, "the page has the key \"" + sdk::replace_invalid_utf8(where + d.key) +
                                "\" more than once");
  }
  const json::value* items = page.get_object().if_contains("items");
  if (!items || !items->is_array()) {
    throw PageParseError(0, "the page has no \"items\" list");
  }

  PageSummary summary;
  if (const auto* token = page.get_object().if_contains("next_page_token")) {
    if (token->is_string() && !token->get_string().empty()) {
      summary.next_page_token = std::string(token->get_string());
    } else if (!token->is_null() && !token->is_string()) {
      throw PageParseError(
          0, std::string("next_page_token is ") + kind_name(*token) + ", not a string or null");
    }
  }
  if (const auto* time = page.get_object().if_contains("server_time"); time && time->is_string()) {
    summary.server_time = sdk::replace_invalid_utf8(time->get_string());
  }

  const auto& list = items->get_array();
  summary.items = list.size();
  // Each item's text as the page holds it: the one-pass reading says where each one is.
  const std::vector<std::string_view> texts = item_texts(body, max_items);
  const auto text_of = [&](std::size_t i) -> std::optional<std::string_view> {
    if (texts.size() == list.size()) return texts[i];
    return std::nullopt;
  };
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::optional<FeedKey> key = key_of(list[i]);
    if (key && after && compare_keys(*key, *after) <= 0) {
      ++summary.skipped;
      continue;
    }
    if (const auto repeated = repeated_in_item.find(i); repeated != repeated_in_item.end()) {
      reject_repeated_key(list[i], i, text_of(i), repeated->second, out);
    } else {
      normalize_item(list[i], i, text_of(i), out);
    }
    if (key && (!summary.last_key || compare_keys(*key, *summary.last_key) > 0)) {
      summary.last_key = std::move(key);
    }
  }
  return summary;
}

// ----------------------------------------------------- one-pass reading ---

// The page read in one pass of Boost.JSON's parser, without building values: the root's
// members the page needs, and the events of each item (keys and scalars as views of the page,
// or of an arena for text that held escapes). The shape handler finds repeated keys and
// too-long lists on the way. Each item is read by a parser of its own, which says where the
// item ends: its text in the page is the record's raw text, the item as the source sent it.
// An item is then read straight from its events (read_item), or, when something about it is
// unusual, built into values from them, as the page's values would have held it.
struct Normalizer::PageEvents {
  enum class Type : uint8_t {
    object_begin,
    object_end,
    array_begin,
    array_end,
    key,
    string,
    int64,
    uint64,
    double_,
    bool_,
    null
  };
  struct Event {
    Type type = Type::null;
    bool flag = false;      // bool_: its value
    std::string_view text;  // key and string: the text
    union {
      int64_t i;
      uint64_t u;  // uint64, and object_end and array_end: how many members or elements
      double d;
    };
  };

  std::vector<Event> events;            // every item's, one item after the other
  std::vector<std::size_t> items;       // where each item's events begin, then where the last ends
  std::vector<std::string_view> texts;  // each item's text in the page

  // Repeated keys, and whether a list was longer than the limits (then the parse stopped).
  std::vector<sdk::DuplicateKey> duplicates;
  bool too_long = false;

  // The page's text, and whether all of it is UTF-8: then a key or string that is a view of it
  // needs no check of its own.
  std::string_view body;
  bool body_utf8 = false;
  bool in_body(std::string_view text) const {
    return text.data() >= body.data() && text.data() + text.size() <= body.data() + body.size();
  }
  bool utf8(std::string_view text) const {
    return (body_utf8 && in_body(text)) || sdk::valid_utf8(text);
  }

  // The root object's members, when they are plain: "items" an array, once;
  // "next_page_token" a string or null; "server_time".
  bool root_object = false;
  std::size_t items_members = 0;
  bool items_array = false;
  bool token_plain = true;
  std::optional<std::string> token;
  std::optional<std::string> server_time;

  class Handler;
  class ItemHandler;

  // Reads `text`, the page; true when it is plain: one JSON object and nothing after it, its
  // "items" a list (once), each item's text known, "next_page_token" a string or null.
  bool read(std::string_view text, const json::parse_options& options, sdk::JsonLimits limits,
            json::monotonic_resource& arena);

  // The item's text, valid UTF-8: the page's bytes, each invalid one replaced by U+FFFD.
  std::string raw(std::size_t item) const {
    const std::string_view text = texts[item];
    return utf8(text) ? std::string(text) : sdk::replace_invalid_utf8(text);
  }

  // The item's values, as a parse of the page would have held them.
  json::value value_of(std::size_t begin, std::size_t end, json::storage_ptr storage) const {
    json::value_stack st;
    st.reset(std::move(storage));
    for (std::size_t i = begin; i < end; ++i) {
      const Event& e = events[i];
      switch (e.type) {
        case Type::object_begin:
        case Type::array_begin:
          break;
        case Type::object_end:
          st.push_object(e.u);
          break;
        case Type::array_end:
          st.push_array(e.u);
          break;
        case Type::key:
          st.push_key(e.text);
          break;
        case Type::string:
          st.push_string(e.text);
          break;
        case Type::int64:
          st.push_int64(e.i);
          break;
        case Type::uint64:
          st.push_uint64(e.u);
          break;
        case Type::double_:
          st.push_double(e.d);
          break;
        case Type::bool_:
          st.push_bool(e.flag);
          break;
        case Type::null:
          st.push_null();
          break;
      }
    }
    return st.release();
  }
};

class Normalizer::PageEvents::Handler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  Handler(sdk::JsonLimits limits, std::string_view body, PageEvents& page,
          json::monotonic_resource& arena)
      : shape(limits), page_(page), body_(body), arena_(arena) {}

  sdk::detail::JsonShapeHandler shape;

  // Set: the parse stops where the items list opens (`stopped`), before its '['.
  bool stop_at_list = false;
  bool stopped = false;
  // Set: the next null is the one read in place of an item that a parser of its own read.
  bool stand_in = false;
  // The items list is open: the next value in it is an item.
  bool in_list() const { return in_items_; }

  using ec_t = boost::system::error_code;
  bool on_document_begin(ec_t& ec) { return shape.on_document_begin(ec); }
  bool on_document_end(ec_t& ec) { return shape.on_document_end(ec); }
  bool on_object_begin(ec_t& ec) {
    if (!shape.on_object_begin(ec)) return false;
    open(Type::object_begin);
    return true;
  }
  bool on_array_begin(ec_t& ec) {
    if (!shape.on_array_begin(ec)) return false;
    open(Type::array_begin);
    if (stop_at_list && in_items_) {
      stopped = true;
      ec = boost::system::errc::make_error_code(boost::system::errc::operation_canceled);
      return false;
    }
    return true;
  }
  bool on_object_end(std::size_t n, ec_t& ec) {
    close(Type::object_end, n);
    return shape.on_object_end(n, ec);
  }
  bool on_array_end(std::size_t n, ec_t& ec) {
    close(Type::array_end, n);
    return shape.on_array_end(n, ec);
  }
  bool on_string_part(std::string_view s, std::size_t n, ec_t& ec) {
    scratch_.append(s);
    return shape.on_string_part(s, n, ec);
  }
  bool on_string(std::string_view s, std::size_t n, ec_t& ec) {
    if (!shape.on_string(s, n, ec)) return false;
    Event e;
    e.type = Type::string;
    e.text = text(s);
    if (depth_ == 1 && page_.root_object) {
      if (member_ == Member::token && !e.text.empty()) page_.token = std::string(e.text);
      if (member_ == Member::server_time) page_.server_time = sdk::replace_invalid_utf8(e.text);
    }
    scalar(e);
    return true;
  }
  bool on_key_part(std::string_view s, std::size_t n, ec_t& ec) {
    scratch_.append(s);
    return shape.on_key_part(s, n, ec);
  }
  bool on_key(std::string_view s, std::size_t n, ec_t& ec) {
    if (!shape.on_key(s, n, ec)) return false;
    const std::string_view key = text(s);
    if (depth_ == 1) {
      member_ = key == "items"             ? Member::items
                : key == "next_page_token" ? Member::token
                : key == "server_time"     ? Member::server_time
                                           : Member::other;
    } else if (in_items_) {
      Event e;
      e.type = Type::key;
      e.text = key;
      page_.events.push_back(e);
    }
    return true;
  }
  bool on_number_part(std::string_view s, ec_t& ec) { return shape.on_number_part(s, ec); }
  bool on_int64(int64_t v, std::string_view s, ec_t& ec) {
    if (!shape.on_int64(v, s, ec)) return false;
    Event e;
    e.type = Type::int64;
    e.i = v;
    scalar(e);
    return true;
  }
  bool on_uint64(uint64_t v, std::string_view s, ec_t& ec) {
    if (!shape.on_uint64(v, s, ec)) return false;
    Event e;
    e.type = Type::uint64;
    e.u = v;
    scalar(e);
    return true;
  }
  bool on_double(double v, std::string_view s, ec_t& ec) {
    if (!shape.on_double(v, s, ec)) return false;
    Event e;
    e.type = Type::double_;
    e.d = v;
    scalar(e);
    return true;
  }
  bool on_bool(bool v, ec_t& ec) {
    if (!shape.on_bool(v, ec)) return false;
    Event e;
    e.type = Type::bool_;
    e.flag = v;
    scalar(e);
    return true;
  }
  bool on_null(ec_t& ec) {
    if (stand_in) {
      stand_in = false;
      return true;
    }
    if (!shape.on_null(ec)) return false;
    Event e;
    e.type = Type::null;
    scalar(e);
    return true;
  }
  bool on_comment_part(std::string_view s, ec_t& ec) { return shape.on_comment_part(s, ec); }
  bool on_comment(std::string_view s, ec_t& ec) { return shape.on_comment(s, ec); }

 private:
  enum class Member { other, items, token, server_time };

  // The whole text of a key or string: a view of the page, or of a copy in the arena when
  // the parser handed it over in parts or unescaped it.
  std::string_view text(std::string_view last) {
    if (scratch_.empty() && last.data() >= body_.data() &&
        last.data() + last.size() <= body_.data() + body_.size()) {
      return last;
    }
    scratch_.append(last);
    char* copy = static_cast<char*>(arena_.allocate(scratch_.size() + 1, 1));
    std::memcpy(copy, scratch_.data(), scratch_.size());
    const std::string_view out(copy, scratch_.size());
    scratch_.clear();
    return out;
  }
  // A value of the root object's member being read.
  void member(Type type) {
    if (member_ == Member::items) {
      ++page_.items_members;
      page_.items_array = type == Type::array_begin;
    } else if (member_ == Member::token) {
      page_.token_plain = type == Type::string || type == Type::null;
    }
  }
  void scalar(const Event& e) {
    if (depth_ == 0) page_.root_object = false;
    if (depth_ == 1 && page_.root_object) member(e.type);
    if (!in_items_) return;
    if (depth_ == 2) page_.items.push_back(page_.events.size());
    page_.events.push_back(e);
  }
  void open(Type type) {
    if (depth_ == 0) page_.root_object = type == Type::object_begin;
    if (depth_ == 1 && page_.root_object) {
      member(type);
      in_items_ = member_ == Member::items && type == Type::array_begin;
    } else if (in_items_) {
      if (depth_ == 2) page_.items.push_back(page_.events.size());
      Event e;
      e.type = type;
      page_.events.push_back(e);
    }
    ++depth_;
  }
  void close(Type type, std::size_t n) {
    --depth_;
    if (depth_ == 1) {
      in_items_ = false;
    } else if (in_items_) {
      Event e;
      e.type = type;
      e.u = n;
      page_.events.push_back(e);
    }
  }

  PageEvents& page_;
  std::string_view body_;
  json::monotonic_resource& arena_;
  std::string scratch_;
  std::size_t depth_ = 0;
  bool in_items_ = false;
  Member member_ = Member::other;
};

// An item read by a parser of its own: its events go to the page's handler, as if the page's
// parser had read them.
class Normalizer::PageEvents::ItemHandler {
 public:
  static constexpr std::size_t max_object_size = Handler::max_object_size;
  static constexpr std::size_t max_array_size = Handler::max_array_size;
  static constexpr std::size_t max_key_size = Handler::max_key_size;
  static constexpr std::size_t max_string_size = Handler::max_string_size;

  explicit ItemHandler(Handler& page) : page_(page) {}

  std::size_t events = 0;  // how many were passed on

  using ec_t = boost::system::error_code;
  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t& ec) { return ++events, page_.on_object_begin(ec); }
  bool on_array_begin(ec_t& ec) { return ++events, page_.on_array_begin(ec); }
  bool on_object_end(std::size_t n, ec_t& ec) { return ++events, page_.on_object_end(n, ec); }
  bool on_array_end(std::size_t n, ec_t& ec) { return ++events, page_.on_array_end(n, ec); }
  bool on_string_part(std::string_view s, std::size_t n, ec_t& ec) {
    return ++events, page_.on_string_part(s, n, ec);
  }
  bool on_string(std::string_view s, std::size_t n, ec_t& ec) {
    return ++events, page_.on_string(s, n, ec);
  }
  bool on_key_part(std::string_view s, std::size_t n, ec_t& ec) {
    return ++events, page_.on_key_part(s, n, ec);
  }
  bool on_key(std::string_view s, std::size_t n, ec_t& ec) {
    return ++events, page_.on_key(s, n, ec);
  }
  bool on_number_part(std::string_view s, ec_t& ec) {
    return ++events, page_.on_number_part(s, ec);
  }
  bool on_int64(int64_t v, std::string_view s, ec_t& ec) {
    return ++events, page_.on_int64(v, s, ec);
  }
  bool on_uint64(uint64_t v, std::string_view s, ec_t& ec) {
    return ++events, page_.on_uint64(v, s, ec);
  }
  bool on_double(double v, std::string_view s, ec_t& ec) {
    return ++events, page_.on_double(v, s, ec);
  }
  bool on_bool(bool v, ec_t& ec) { return ++events, page_.on_bool(v, ec); }
  bool on_null(ec_t& ec) { return ++events, page_.on_null(ec); }
  bool on_comment_part(std::string_view s, ec_t& ec) {
    return ++events, page_.on_comment_part(s, ec);
  }
  bool on_comment(std::string_view s, ec_t& ec) { return ++events, page_.on_comment(s, ec); }

 private:
  Handler& page_;
};

bool Normalizer::PageEvents::read(std::string_view text, const json::parse_options& options,
                                  sdk::JsonLimits limits, json::monotonic_resource& arena) {
  body = text;
  body_utf8 = sdk::valid_utf8(body);
  events.reserve(body.size() / 8);
  constexpr std::string_view kSpace = " \t\r\n";  // JSON's whitespace (RFC 8259, section 2)
  using error_code = boost::system::error_code;

  // Where the items list opens: a first parser is stopped there by its handler, before the '['
  // (it says how far it read). Only the text before the list is read twice.
  std::size_t list = std::string_view::npos;
  {
    PageEvents scout;
    scout.body = body;
    json::basic_parser<Handler> parser(options, limits, body, scout, arena);
    parser.handler().stop_at_list = true;
    error_code ec;
    const std::size_t read = parser.write_some(false, body.data(), body.size(), ec);
    if (parser.handler().stopped && read < body.size() && body[read] == '[') list = read;
  }

  json::basic_parser<Handler> parser(options, limits, body, *this, arena);
  Handler& handler = parser.handler();
  error_code ec;
  std::size_t at = 0;  // how far the page's parser read
  const auto feed = [&](std::size_t end, bool last) {
    at += parser.write_some(!last, body.data() + at, end - at, ec);
  };
  bool items_read = true;  // false: an item's parser stopped inside it
  if (list != std::string_view::npos) feed(list + 1, false);
  if (!ec && handler.in_list() && items.empty()) {
    // Each item is read by a parser of its own: it stops where the item (and the space after
    // it) ends. The page's parser reads a null in its place, then the comma or the bracket
    // after it. The items are at depth 2 of the page: as deep inside them as the page allows.
    json::parse_options item_options = options;
    item_options.max_depth = options.max_depth - 2;
    json::basic_parser<ItemHandler> item_parser(item_options, handler);
    while (true) {
      const std::size_t events_before = item_parser.handler().events;
      error_code item_ec;
      item_parser.reset();
      const std::size_t read =
          item_parser.write_some(false, body.data() + at, body.size() - at, item_ec);
      if (item_ec) {
        // No item here (the list ends, or is not JSON): the page's parser says which. An item
        // begun and not finished is a page not plain: read again into values, it says why.
        items_read = item_parser.handler().events == events_before;
        break;
      }
      std::string_view item = body.substr(at, read);
      item.remove_prefix(std::min(item.find_first_not_of(kSpace), item.size()));
      item = item.substr(0, item.find_last_not_of(kSpace) + 1);
      texts.push_back(item);
      handler.stand_in = true;
      parser.write_some(true, "null", 4, ec);
      if (ec || handler.stand_in) {
        items_read = false;
        break;
      }
      at += read;
      const std::size_t next = body.find_first_not_of(kSpace, at);
      if (next == std::string_view::npos) break;
      feed(next + 1, false);
      if (ec || !handler.in_list()) break;
    }
  }
  // The rest of the page (all of it when no list was found).
  if (!ec && items_read) feed(body.size(), true);
  duplicates = std::move(handler.shape.duplicates);
  too_long = handler.shape.too_long;
  return !ec && items_read && parser.done() && !too_long &&
         body.find_first_not_of(kSpace, at) == std::string_view::npos && root_object &&
         items_members == 1 && items_array && token_plain && texts.size() == items.size();
}

namespace {

// compare_keys with the instants of the two updated_at read already.
int compare_keys_at(const FeedKey& a, std::optional<int64_t> ta, const FeedKey& b,
                    std::optional<int64_t> tb) {
  if (ta && tb) {
    if (*ta != *tb) return *ta < *tb ? -1 : 1;
  } else {
    const int c = a.updated_at.compare(b.updated_at);
    if (c != 0) return c < 0 ? -1 : 1;
  }
  return compare_ids(a.id, b.id);
}

// A field's text from a scalar's event, as Record::set_json and scalar_text write it.
template <typename Event>
std::string scalar_event_text(const Event& e) {
  using Type = decltype(e.type);
  char buf[64];
  switch (e.type) {
    case Type::string:
      return std::string(e.text);
    case Type::int64:
      return std::string(buf, std::to_chars(buf, buf + sizeof buf, e.i).ptr);
    case Type::uint64:
      return std::string(buf, std::to_chars(buf, buf + sizeof buf, e.u).ptr);
    case Type::double_:
      return std::string(buf, std::to_chars(buf, buf + sizeof buf, e.d).ptr);
    default:
      return e.flag ? "true" : "false";
  }
}

}  // namespace

std::vector<std::string_view> Normalizer::item_texts(std::string_view body,
                                                     std::size_t max_items) const {
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  options.max_depth = 64;
  json::monotonic_resource arena;
  PageEvents page;
  if (!page.read(body, options, {max_items, kMaxInnerArray}, arena)) return {};
  return std::move(page.texts);
}

bool Normalizer::read_item(const PageEvents& page, std::size_t begin, std::size_t end,
                           std::size_t index, sdk::Record& record,
                           std::vector<std::size_t>& attribute_events,
                           std::vector<const PathNode::Child*>& guesses) const {
  using Type = PageEvents::Type;
  constexpr std::size_t kNone = std::size_t(-1);
  if (page.events[begin].type != Type::object_begin) return false;
  attribute_events.assign(attributes_.size(), kNone);
  if (guesses.size() < end - begin) guesses.resize(end - begin);
  // The path node of each open object (kNone: no field is read below it).
  std::array<std::size_t, 80> open{};
  std::size_t depth = 0;
  open[0] = 0;
  std::size_t pending = kNone;  // the node of the value after a key
  bool has_id = false;
  for (std::size_t i = begin + 1; i + 1 < end; ++i) {
    const PageEvents::Event& e = page.events[i];
    if (e.type == Type::key) {
      if (!page.utf8(e.text)) return false;
      pending = kNone;
      if (open[depth] == kNone) continue;
      // Items have their keys in the same places, mostly: the child found at this place in
      // the last item is tried first.
      const PathNode::Child*& guess = guesses[i - begin];
      if (guess && guess->first == e.text) {
        pending = guess->second;
        continue;
      }
      for (const auto& child : nodes_[open[depth]].children) {
        if (child.first == e.text) {
          pending = child.second;
          guess = &child;
          break;
        }
      }
      continue;
    }
    if (e.type == Type::object_end || e.type == Type::array_end) {
      --depth;
      continue;
    }
    const std::size_t at = pending;
    pending = kNone;
    const PathNode* node = at == kNone ? nullptr : &nodes_[at];
    if (e.type == Type::object_begin || e.type == Type::array_begin) {
      // An object or a list where a single value belongs, or a list on a field's path.
      if (node && (!node->fields.empty() || !node->attributes.empty() ||
                   (e.type == Type::array_begin && !node->children.empty()))) {
        return false;
      }
      if (++depth == open.size()) return false;
      open[depth] = e.type == Type::object_begin ? at : kNone;
      continue;
    }
    if (e.type == Type::string && !page.utf8(e.text)) return false;
    if (!node || e.type == Type::null) continue;  // null is absent
    if (!node->children.empty()) return false;    // a single value on a field's path
    for (const kpihub_field field : node->fields) {
      if (field == KPIHUB_FIELD_SOURCE_ID) {
        // A non-empty string or an integer.
        if (e.type == Type::string ? e.text.empty()
                                   : e.type != Type::int64 && e.type != Type::uint64) {
          return false;
        }
        has_id = true;
      }
      record.set(field, scalar_event_text(e),
                 e.type == Type::string  ? KPIHUB_VALUE_STRING
                 : e.type == Type::bool_ ? KPIHUB_VALUE_BOOLEAN
                                         : KPIHUB_VALUE_NUMBER);
    }
    for (const std::size_t a : node->attributes) attribute_events[a] = i;
  }
  if (!has_id) return false;
  record.attributes.reserve(attributes_.size());
  for (std::size_t a = 0; a < attributes_.size(); ++a) {
    if (attribute_events[a] != kNone) {
      record.attributes.emplace_back(attributes_[a].first,
                                     scalar_event_text(page.events[attribute_events[a]]));
    }
  }
  record.raw = page.raw(index);
  record.location = "item " + std::to_string(index + 1);
  return true;
}

PageSummary Normalizer::normalize_page(std::string_view body, const std::optional<FeedKey>& after,
                                       sdk::Page& out, std::size_t max_items) const {
  // Invalid UTF-8 is let through here and caught per item, so that one bad
  // string quarantines its own item and not the whole page.
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  options.max_depth = 64;
  json::monotonic_resource arena;  // text that held escapes, and items built into values
  PageEvents page;
  bool plain = page.read(body, options, sdk::JsonLimits{max_items, kMaxInnerArray}, arena);
  // An item with a repeated key is refused, naming the key; a page with one is not read.
  std::map<std::size_t, std::string> repeated_in_item;
  for (const auto& d : page.duplicates) {
    if (!plain) break;
    if (d.path.size() >= 2 && d.path[0] == "items") {
      std::size_t index = 0;
      std::from_chars(d.path[1].data(), d.path[1].data() + d.path[1].size(), index);
      std::string key;
      for (std::size_t i = 2; i < d.path.size(); ++i) key += d.path[i] + ".";
      repeated_in_item.emplace(index, sdk::replace_invalid_utf8(key + d.key));
    } else {
      plain = false;
    }
  }
  // Anything else about the page is said by reading it into values.
  if (!plain) return normalize_page_values(body, after, out, max_items);
  page.items.push_back(page.events.size());

  PageSummary summary;
  summary.next_page_token = std::move(page.token);
  summary.server_time = std::move(page.server_time);
  summary.items = page.items.size() - 1;
  const std::optional<int64_t> after_ms =
      after ? parse_rfc3339_ms(after->updated_at) : std::nullopt;
  std::optional<int64_t> last_ms;
  std::vector<std::size_t> attribute_events;
  std::vector<const PathNode::Child*> guesses;
  out.reserve_records(out.records().size() + page.items.size() - 1);
  for (std::size_t i = 0; i + 1 < page.items.size(); ++i) {
    const std::size_t begin = page.items[i], end = page.items[i + 1];
    const auto repeated = repeated_in_item.find(i);
    sdk::Record record;
    const bool read = repeated == repeated_in_item.end() &&
                      read_item(page, begin, end, i, record, attribute_events, guesses);
    std::optional<json::value> value;
    std::optional<FeedKey> key;
    if (read) {
      // key_of: a string updated_at that is a timestamp, and the id.
      if (record.changed_at && record.value_kinds[KPIHUB_FIELD_CHANGED_AT] == KPIHUB_VALUE_STRING) {
        key = FeedKey{*record.changed_at, record.source_id};
      }
    } else {
      value = page.value_of(begin, end, &arena);
      key = key_of(*value);
    }
    const std::optional<int64_t> key_ms = key ? parse_rfc3339_ms(key->updated_at) : std::nullopt;
    if (read && !key_ms) key.reset();
    if (key && after && compare_keys_at(*key, key_ms, *after, after_ms) <= 0) {
      ++summary.skipped;
      continue;
    }
    if (read) {
      out.add(std::move(record));
    } else if (repeated != repeated_in_item.end()) {
      reject_repeated_key(*value, i, page.texts[i], repeated->second, out);
    } else {
      normalize_item(*value, i, page.texts[i], out);
    }
    if (key &&
        (!summary.last_key || compare_keys_at(*key, key_ms, *summary.last_key, last_ms) > 0)) {
      summary.last_key = std::move(key);
      last_ms = key_ms;
    }
  }
  return summary;
}

}  // namespace kpihub::eoffice
