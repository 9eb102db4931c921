// Typed, path-aware access to a JSON configuration file read with
// Boost.PropertyTree. PropertyTree keeps every value as text, so the accessors
// check that the text is what the key expects; when the same document parsed
// by Boost.JSON is at hand, they also check the JSON type ("60000" in quotes
// is not an integer). Every error names the file and the key path
// ("sources[1].interval_ms").
#pragma once

#include <kpihub/reference.hpp>

#include <boost/json/value.hpp>
#include <boost/property_tree/ptree.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kpihub::config_detail {

// Reads `path` with PropertyTree's JSON reader after checking its UTF-8;
// syntax errors name the file and line.
boost::property_tree::ptree read_json_tree(const std::string& path, const std::string& text);

// The same text parsed with Boost.JSON (after read_json_tree accepted it).
boost::json::value read_json_value(const std::string& path, const std::string& text);

class JsonNode {
 public:
  // `typed` is the same node in the Boost.JSON parse of the file, or null.
  JsonNode(const boost::property_tree::ptree& tree, const boost::json::value* typed,
           std::string file, std::string path)
      : tree_(&tree), typed_(typed), file_(std::move(file)), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  // ConfigError("<file>: <path>: <problem>").
  [[nodiscard]] ConfigError error(const std::string& problem) const;

  // Checks this is an object whose keys are all in `known` (suggesting the
  // closest known key for a typo) and that no key appears twice.
  void expect_object(const std::vector<std::string>& known) const;
  std::optional<JsonNode> child(const std::string& key) const;
  JsonNode required(const std::string& key) const;
  std::vector<JsonNode> list() const;  // elements of an array
  bool is_array() const { return typed_ ? typed_->is_array() : !is_scalar(); }

  std::string string() const;
  std::string non_empty_string() const;
  int64_t integer(int64_t min, int64_t max) const;
  double number(double min, double max) const;
  bool boolean() const;
  std::vector<std::string> string_list() const;

 private:
  bool is_scalar() const { return tree_->empty(); }
  std::string child_path(const std::string& key) const;
  const char* kind() const;
  [[nodiscard]] ConfigError wrong_type(const char* expected) const;

  const boost::property_tree::ptree* tree_;
  const boost::json::value* typed_;
  std::string file_;
  std::string path_;
};

}  // namespace kpihub::config_detail
