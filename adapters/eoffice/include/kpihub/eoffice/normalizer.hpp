// E-Office work-diary normalization (spec/sources.md, section 1), without any
// HTTP: bytes of one diary page in, SDK records and rejected items out. The
// adapter uses it for every page; tests and the benchmark use it directly.
#pragma once

#include <kpihub/sdk.hpp>

#include <boost/json.hpp>

#include <cstddef>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpihub::eoffice {

// Where each model field comes from in a source item. A source name may be a
// dotted path into nested objects ("approval.status"); an empty name leaves
// the model field unmapped.
class FieldMap {
 public:
  // The model fields a map can name, in kpihub_record order.
  static const std::vector<std::string>& model_fields();
  // Attributes the spec maps by default (start_time, end_time, ...).
  static const std::vector<std::string>& default_attributes();

  // The mapping of spec/sources.md section 1.
  static FieldMap defaults();

  // Overrides one entry: `model_field` is a name of model_fields() or
  // "attributes.<name>" (which adds an attribute). Throws
  // std::invalid_argument for any other name.
  void set(std::string_view model_field, std::string source_path);

  // The source path of a model field or attribute ("" when unmapped).
  const std::string& source_of(std::string_view model_field) const;

  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }
  const std::vector<std::pair<std::string, std::string>>& attributes() const { return attributes_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;      // model field -> source path
  std::vector<std::pair<std::string, std::string>> attributes_;  // attribute key -> source path
};

// The adapter's position in the feed: the (updated_at, id) of the last item
// it handed over. `updated_since` is inclusive, so items at or before this
// key come again and are skipped.
struct FeedKey {
  std::string updated_at;
  std::string id;
};

// Orders two keys as the feed does: by the instant of `updated_at` (offsets
// honoured), then by id (numeric ids numerically). Returns <0, 0 or >0.
int compare_keys(const FeedKey& a, const FeedKey& b);

// Parses an RFC 3339 timestamp ("2025-04-09T16:00:00+07:00", fraction and
// "Z" allowed) into milliseconds since the epoch; nullopt when it is not one
// or names a date that does not exist.
std::optional<int64_t> parse_rfc3339_ms(std::string_view text);

// The page could not be read at all (not JSON, truncated, not a page).
class PageParseError : public std::runtime_error {
 public:
  PageParseError(std::size_t offset, const std::string& what)
      : std::runtime_error(what), offset_(offset) {}
  std::size_t offset() const { return offset_; }

 private:
  std::size_t offset_;
};

struct PageSummary {
  std::size_t items = 0;            // items in the page, skipped ones included
  std::size_t skipped = 0;          // at or before the cursor: seen already
  std::optional<FeedKey> last_key;  // of the last item with a readable key
  std::optional<std::string> next_page_token;
  std::optional<std::string> server_time;
};

// Turns diary pages into records. Stateless after construction; safe to use
// from several threads.
class Normalizer {
 public:
  explicit Normalizer(FieldMap map = FieldMap::defaults());

  // Parses `body` ({"items": [...], "next_page_token": ..., "server_time":
  // ...}) and appends one record or one rejected item per item after
  // `after` to `out`. Invalid UTF-8 does not stop the page: each item with
  // such text becomes a bad_encoding rejection naming the field. Throws
  // PageParseError with the byte offset when the page cannot be read, and when it holds
  // more than `max_items` items (the page size asked for) or an array of more than
  // kMaxInnerArray elements: such a page is refused before it is parsed into values.
  PageSummary normalize_page(std::string_view body, const std::optional<FeedKey>& after,
                             sdk::Page& out,
                             std::size_t max_items = std::numeric_limits<std::size_t>::max()) const;

  // The same, with the page parsed into values first: what normalize_page does for a page
  // that is not plain (it throws the PageParseError that says why), and the reference its
  // one-pass reading is tested against.
  PageSummary normalize_page_values(
      std::string_view body, const std::optional<FeedKey>& after, sdk::Page& out,
      std::size_t max_items = std::numeric_limits<std::size_t>::max()) const;

  // The longest array an item may hold (E-Office items hold none).
  static constexpr std::size_t kMaxInnerArray = 1000;

  // Normalizes one parsed item (`index` is 0-based within its page; `text`, the item as the
  // page holds it, is the raw text of its record or rejection, absent when not known).
  void normalize_item(const boost::json::value& item, std::size_t index,
                      std::optional<std::string_view> text, sdk::Page& out) const;
  // An item with a key that appears twice: which value the source meant is unknown.
  void reject_repeated_key(const boost::json::value& item, std::size_t index,
                           std::optional<std::string_view> text, const std::string& key,
                           sdk::Page& out) const;

  // The (updated_at, id) of an item, when both are readable.
  std::optional<FeedKey> key_of(const boost::json::value& item) const;

  const FieldMap& field_map() const { return map_; }

 private:
  struct Path {
    std::string name;                   // the source path as configured, for messages
    std::vector<std::string> segments;  // split at '.'
  };
  struct Target {
    std::string model_field;
    Path path;
    kpihub_field field = KPIHUB_FIELD_SOURCE_ID;
  };
  // The source paths of the fields and attributes as a tree of names: an item is read from
  // the parser's events by walking it, without building the item's values.
  struct PathNode {
    std::vector<kpihub_field> fields;                   // model fields read from this path
    std::vector<std::size_t> attributes;                // indexes into attributes_
    using Child = std::pair<std::string, std::size_t>;  // name, index into nodes_
    std::vector<Child> children;
  };
  struct PageEvents;

  // Each item's text in `body`, as the one-pass reading finds it; none when it cannot tell.
  std::vector<std::string_view> item_texts(std::string_view body, std::size_t max_items) const;

  // An item read from its events into a record; false when it needs a closer look (then
  // normalize_item says what is wrong with it).
  bool read_item(const PageEvents& page, std::size_t begin, std::size_t end, std::size_t index,
                 sdk::Record& record, std::vector<std::size_t>& attribute_events,
                 std::vector<const PathNode::Child*>& guesses) const;
  std::size_t add_path(const std::vector<std::string>& segments);

  FieldMap map_;
  std::vector<Target> targets_;
  std::vector<std::pair<std::string, Path>> attributes_;
  Path id_path_;
  Path updated_at_path_;
  std::vector<PathNode> nodes_;  // nodes_[0]: the item
};

}  // namespace kpihub::eoffice
