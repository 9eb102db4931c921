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
#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
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
    if (!f.repeated.empty()) {
      // Each repeated key once, in the order of their names.
      std::sort(f.repeated.begin(), f.repeated.end());
      f.repeated.erase(std::unique(f.repeated.begin(), f.repeated.end()), f.repeated.end());
      for (auto& key : f.repeated) duplicates.push_back({path_to(depth_), std::move(key)});
    }
    return true;
  }
  bool on_string_part(std::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(std::string_view, std::size_t, boost::system::error_code& ec) { return value(ec); }
  bool on_key_part(std::string_view s, std::size_t, boost::system::error_code&) {
    frames_[depth_ - 1].chars.append(s);
    return true;
  }
  bool on_key(std::string_view s, std::size_t, boost::system::error_code&) {
    Frame& f = frames_[depth_ - 1];
    f.chars.append(s);
    const std::string_view key = std::string_view(f.chars).substr(f.key_start);
    // A key is compared with the earlier ones only when one of them has its hash's bit: an
    // object of distinct keys costs a hash per key, and no allocation once the frame's
    // buffers have grown.
    const uint64_t bit = uint64_t{1} << (key_hash(key) >> 58);
    if (f.seen & bit) {
      for (const auto& [start, size] : f.keys) {
        if (std::string_view(f.chars).substr(start, size) == key) {
          f.repeated.emplace_back(key);
          break;
        }
      }
    }
    f.seen |= bit;
    f.keys.emplace_back(f.key_start, key.size());
    f.key_start = f.chars.size();
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
    // Objects: the keys so far, one after the other in `chars` (a key arriving in parts
    // grows at its end from key_start), their (start, size) in `keys`, the bits of their
    // hashes in `seen`, and the keys found a second time.
    std::string chars;
    std::size_t key_start = 0;
    std::vector<std::pair<std::size_t, std::size_t>> keys;
    uint64_t seen = 0;
    std::vector<std::string> repeated;

    // The key of the value being read.
    std::string key() const {
      return keys.empty() ? std::string() : chars.substr(keys.back().first, keys.back().second);
    }
  };

  // A quick hash of a key (its first and last eight bytes and its size): a collision only
  // costs a comparison with the earlier keys.
  static uint64_t key_hash(std::string_view key) {
    uint64_t head = 0, tail = 0;
    if (key.size() >= 8) {
      std::memcpy(&head, key.data(), 8);
      std::memcpy(&tail, key.data() + key.size() - 8, 8);
    } else {
      for (const char c : key) head = (head << 8) | static_cast<unsigned char>(c);
    }
    return (head * 0x9E3779B97F4A7C15u) ^ (tail * 0xC2B2AE3D27D4EB4Fu) ^
           (key.size() * 0x165667B19E3779F9u);
  }

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
    f.chars.clear();
    f.key_start = 0;
    f.keys.clear();
    f.seen = 0;
    f.repeated.clear();
  }
  std::vector<std::string> path_to(std::size_t depth) const {
    std::vector<std::string> path;
    for (std::size_t i = 0; i < depth; ++i) {
      const Frame& f = frames_[i];
      path.push_back(f.object ? f.key() : std::to_string(f.elements - 1));
    }
    return path;
  }

  JsonLimits limits_;
  std::vector<Frame> frames_;
  std::size_t depth_ = 0;
};

// Builds the values as boost::json::stream_parser does (the same value_stack calls) while
// JsonShapeHandler looks at the shape: one pass over the text for both.
class JsonValueShapeHandler {
 public:
  static constexpr std::size_t max_object_size = boost::json::object::max_size();
  static constexpr std::size_t max_array_size = boost::json::array::max_size();
  static constexpr std::size_t max_key_size = boost::json::string::max_size();
  static constexpr std::size_t max_string_size = boost::json::string::max_size();

  JsonValueShapeHandler(JsonLimits limits, boost::json::storage_ptr temp,
                        boost::json::storage_ptr result)
      : shape(limits), st(std::move(temp)) {
    st.reset(std::move(result));
  }

  JsonShapeHandler shape;
  boost::json::value_stack st;

  using ec_t = boost::system::error_code;
  bool on_document_begin(ec_t& ec) { return shape.on_document_begin(ec); }
  bool on_document_end(ec_t& ec) { return shape.on_document_end(ec); }
  bool on_array_begin(ec_t& ec) { return shape.on_array_begin(ec); }
  bool on_array_end(std::size_t n, ec_t& ec) {
    st.push_array(n);
    return shape.on_array_end(n, ec);
  }
  bool on_object_begin(ec_t& ec) { return shape.on_object_begin(ec); }
  bool on_object_end(std::size_t n, ec_t& ec) {
    st.push_object(n);
    return shape.on_object_end(n, ec);
  }
  bool on_string_part(std::string_view s, std::size_t n, ec_t& ec) {
    st.push_chars(s);
    return shape.on_string_part(s, n, ec);
  }
  bool on_string(std::string_view s, std::size_t n, ec_t& ec) {
    if (!shape.on_string(s, n, ec)) return false;
    st.push_string(s);
    return true;
  }
  bool on_key_part(std::string_view s, std::size_t n, ec_t& ec) {
    st.push_chars(s);
    return shape.on_key_part(s, n, ec);
  }
  bool on_key(std::string_view s, std::size_t n, ec_t& ec) {
    st.push_key(s);
    return shape.on_key(s, n, ec);
  }
  bool on_number_part(std::string_view s, ec_t& ec) { return shape.on_number_part(s, ec); }
  bool on_int64(int64_t v, std::string_view s, ec_t& ec) {
    if (!shape.on_int64(v, s, ec)) return false;
    st.push_int64(v);
    return true;
  }
  bool on_uint64(uint64_t v, std::string_view s, ec_t& ec) {
    if (!shape.on_uint64(v, s, ec)) return false;
    st.push_uint64(v);
    return true;
  }
  bool on_double(double v, std::string_view s, ec_t& ec) {
    if (!shape.on_double(v, s, ec)) return false;
    st.push_double(v);
    return true;
  }
  bool on_bool(bool v, ec_t& ec) {
    if (!shape.on_bool(v, ec)) return false;
    st.push_bool(v);
    return true;
  }
  bool on_null(ec_t& ec) {
    if (!shape.on_null(ec)) return false;
    st.push_null();
    return true;
  }
  bool on_comment_part(std::string_view s, ec_t& ec) { return shape.on_comment_part(s, ec); }
  bool on_comment(std::string_view s, ec_t& ec) { return shape.on_comment(s, ec); }
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

// The values of `json` and its shape (inspect_json's), in one pass.
struct ParsedJson {
  // Null unless the whole text is one JSON value (whitespace may follow it).
  boost::json::value value;
  JsonShape shape;
  // Why the text is not one JSON value (array_too_large when shape.too_long), and where:
  // `consumed` is the byte the parser stopped at. `ended_early`: the text ends inside the
  // value (truncated). `trailing`: the offset of what follows the value, when anything does.
  boost::system::error_code error;
  std::size_t consumed = 0;
  bool ended_early = false;
  std::size_t trailing = std::string_view::npos;
};

// Parses `json` into values on `storage` (temporary data on `temp`), as boost::json::parse
// with `options` would, and finds its repeated keys and too-long arrays on the way. A value
// is returned only when the text holds nothing else (and no array too long).
inline ParsedJson parse_json(std::string_view json, const boost::json::parse_options& options,
                             JsonLimits limits, boost::json::storage_ptr storage,
                             boost::json::storage_ptr temp = {}) {
  boost::json::basic_parser<detail::JsonValueShapeHandler> parser(options, limits, std::move(temp),
                                                                  std::move(storage));
  ParsedJson out;
  out.consumed = parser.write_some(true, json.data(), json.size(), out.error);
  auto& h = parser.handler();
  if (!out.error && !parser.done()) {
    parser.write_some(false, nullptr, 0, out.error);
    out.ended_early = out.error || !parser.done();
  }
  if (!out.error && !out.ended_early) {
    out.trailing = json.find_first_not_of(" \t\r\n", out.consumed);
    if (out.trailing == std::string_view::npos) out.value = h.st.release();
  }
  out.shape =
      JsonShape{std::move(h.shape.duplicates), h.shape.too_long, std::move(h.shape.long_array)};
  return out;
}

}  // namespace kpihub::sdk

#endif  // KPIHUB_JSON_KEYS_HPP
