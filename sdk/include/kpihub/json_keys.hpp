// Looks at the shape of a JSON text before it is parsed into values: object keys that appear
// twice in one object, and arrays longer than a limit.
//
// RFC 8259 leaves an object with a repeated name undefined, and Boost.JSON keeps the last
// value silently: {"minutes": 30, "minutes": 480} would be read as 480 minutes. A source
// adapter runs this over the text it parsed and refuses what holds a repeated key, naming it.
// And a source answering a million `{}` items to a request for a page of 100 would take a GB
// once parsed into values: the length limit stops the pass at the first element too many.
// One pass with Boost.JSON's SAX parser; it allocates only for the keys of the open objects.
#ifndef KPIHUB_JSON_KEYS_HPP
#define KPIHUB_JSON_KEYS_HPP

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse_options.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::sdk {

struct DuplicateKey {
  // Where the object is: its keys and array indexes from the document's root
  // ({"items", "17"} for the 18th element of the root's "items").
  std::vector<std::string> path;
  std::string key;  // the key that appears more than once
};

// How long an array may be: a page's list (an array member of the root object, or the root
// array itself) and any array inside it.
struct JsonLimits {
  std::size_t page_array_elements = std::size_t(-1);
  std::size_t inner_array_elements = std::size_t(-1);
};

struct JsonShape {
  std::vector<DuplicateKey> duplicates;
  // The path of the first array found longer than the limit (the pass stops there); empty
  // when `too_long` is false.
  bool too_long = false;
  std::vector<std::string> long_array;
};

namespace detail {

class JsonShapeHandler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  explicit JsonShapeHandler(JsonLimits limits) : limits_(limits) {}

  std::vector<DuplicateKey> duplicates;
  bool too_long = false;
  std::vector<std::string> long_array;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code& ec) {
    if (!value(ec)) return false;
    open(false);
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    --depth_;
    return true;
  }
  bool on_object_begin(boost::system::error_code& ec) {
    if (!value(ec)) return false;
    open(true);
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    Frame& f = frames_[--depth_];
    if (f.keys.size() > 1) {
      std::sort(f.keys.begin(), f.keys.end());
      for (auto it = f.keys.begin(); (it = std::adjacent_find(it, f.keys.end())) != f.keys.end();) {
        duplicates.push_back({path_to(depth_), *it});
        it = std::upper_bound(it, f.keys.end(), *it);
      }
    }
    return true;
  }
  bool on_string_part(std::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(std::string_view, std::size_t, boost::system::error_code& ec) { return value(ec); }
  bool on_key_part(std::string_view s, std::size_t, boost::system::error_code&) {
    frames_[depth_ - 1].pending.append(s);
    return true;
  }
  bool on_key(std::string_view s, std::size_t, boost::system::error_code&) {
    Frame& f = frames_[depth_ - 1];
    f.pending.append(s);
    f.keys.push_back(f.pending);
    f.key.swap(f.pending);
    f.pending.clear();
    return true;
  }
  bool on_number_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_int64(int64_t, std::string_view, boost::system::error_code& ec) { return value(ec); }
  bool on_uint64(uint64_t, std::string_view, boost::system::error_code& ec) { return value(ec); }
  bool on_double(double, std::string_view, boost::system::error_code& ec) { return value(ec); }
  bool on_bool(bool, boost::system::error_code& ec) { return value(ec); }
  bool on_null(boost::system::error_code& ec) { return value(ec); }
  bool on_comment_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_comment(std::string_view, boost::system::error_code&) { return true; }

 private:
  struct Frame {
    bool object = false;
    std::size_t elements = 0;  // arrays: values begun so far
    std::string key;           // objects: the key of the value being read
    std::string pending;       // a key arriving in parts
    std::vector<std::string> keys;
  };

  // A value begins: in an array it takes the next index, unless that is one too many.
  bool value(boost::system::error_code& ec) {
    if (depth_ == 0 || frames_[depth_ - 1].object) return true;
    // The root array is at depth 1, a member of the root object at depth 2.
    const bool page_array = depth_ == 1 || (depth_ == 2 && frames_[0].object);
    const std::size_t limit =
        page_array ? limits_.page_array_elements : limits_.inner_array_elements;
    if (++frames_[depth_ - 1].elements > limit) {
      too_long = true;
      long_array = path_to(depth_ - 1);
      ec = boost::json::error::array_too_large;
      return false;
    }
    return true;
  }
  // Frames are reused by depth, so their vectors keep their capacity.
  void open(bool object) {
    if (depth_ == frames_.size()) frames_.emplace_back();
    Frame& f = frames_[depth_++];
    f.object = object;
    f.elements = 0;
    f.key.clear();
    f.pending.clear();
    f.keys.clear();
  }
  std::vector<std::string> path_to(std::size_t depth) const {
    std::vector<std::string> path;
    for (std::size_t i = 0; i < depth; ++i) {
      const Frame& f = frames_[i];
      path.push_back(f.object ? f.key : std::to_string(f.elements - 1));
    }
    return path;
  }

  JsonLimits limits_;
  std::vector<Frame> frames_;
  std::size_t depth_ = 0;
};

}  // namespace detail

// Every repeated key of every object in `json`, in the order the objects end, and whether an
// array is longer than `limits` allow (then the pass stops there). Text that is not
// valid JSON under `options` gives what was found before the error; the caller's own parse
// reports the error.
inline JsonShape inspect_json(std::string_view json, const boost::json::parse_options& options,
                              JsonLimits limits = {}) {
  boost::json::basic_parser<detail::JsonShapeHandler> parser(options, limits);
  boost::system::error_code ec;
  parser.write_some(false, json.data(), json.size(), ec);
  auto& h = parser.handler();
  return JsonShape{std::move(h.duplicates), h.too_long, std::move(h.long_array)};
}

}  // namespace kpihub::sdk

#endif  // KPIHUB_JSON_KEYS_HPP
