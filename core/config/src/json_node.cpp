#include "json_node.hpp"

#include "text_util.hpp"

#include <boost/property_tree/json_parser.hpp>

#include <algorithm>
#include <set>
#include <sstream>

namespace kpihub::config_detail {

namespace pt = boost::property_tree;

pt::ptree read_json_tree(const std::string& path, const std::string& text) {
  check_utf8(text, path);
  std::istringstream in(std::string(strip_bom(text)));
  pt::ptree tree;
  try {
    pt::read_json(in, tree);
  } catch (const pt::json_parser_error& e) {
    throw ConfigError(path + ":" + std::to_string(e.line()) +
                      ": JSON syntax error: " + e.message());
  }
  return tree;
}

ConfigError JsonNode::error(const std::string& problem) const {
  return ConfigError(file_ + ": " + (path_.empty() ? std::string("top level") : path_) + ": " +
                     problem);
}

std::string JsonNode::child_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

const char* JsonNode::kind() const {
  if (is_scalar()) return "a value";
  return tree_->begin()->first.empty() ? "a list" : "an object";
}

void JsonNode::expect_object(const std::vector<std::string>& known) const {
  // PropertyTree reads {} and "" alike: an empty scalar passes as an empty object.
  if (is_scalar() && !tree_->data().empty()) {
    throw error("expected an object, got " + quote_value(tree_->data()));
  }
  std::set<std::string> seen;
  for (const auto& [key, value] : *tree_) {
    if (key.empty()) throw error("expected an object, got a list");
    const std::string key_path = child_path(key);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      const auto suggestion = closest_name(key, known);
      throw ConfigError(file_ + ": " + key_path + ": unknown key" +
                        (suggestion ? " (did you mean " + *suggestion + "?)" : ""));
    }
    if (!seen.insert(key).second) {
      throw ConfigError(file_ + ": " + key_path + ": key appears twice");
    }
  }
}

std::optional<JsonNode> JsonNode::child(const std::string& key) const {
  const auto it = tree_->find(key);
  if (it == tree_->not_found()) return std::nullopt;
  return JsonNode(it->second, file_, child_path(key));
}

JsonNode JsonNode::required(const std::string& key) const {
  auto node = child(key);
  if (!node) throw ConfigError(file_ + ": " + child_path(key) + ": required key is missing");
  return *node;
}

std::vector<JsonNode> JsonNode::list() const {
  if (is_scalar() && !tree_->data().empty()) {
    throw error("expected a list, got " + quote_value(tree_->data()));
  }
  std::vector<JsonNode> elements;
  for (const auto& [key, value] : *tree_) {
    if (!key.empty()) throw error("expected a list, got an object");
    elements.emplace_back(value, file_, path_ + "[" + std::to_string(elements.size()) + "]");
  }
  return elements;
}

std::string JsonNode::string() const {
  if (!is_scalar()) throw error(std::string("expected a string, got ") + kind());
  return tree_->data();
}

std::string JsonNode::non_empty_string() const {
  std::string value = string();
  if (trim(value).empty()) throw error("must not be empty");
  return value;
}

int64_t JsonNode::integer(int64_t min, int64_t max) const {
  if (!is_scalar()) throw error(std::string("expected an integer, got ") + kind());
  const auto value = parse_int(tree_->data());
  if (!value) throw error("expected an integer, got " + quote_value(tree_->data()));
  if (*value < min || *value > max) {
    throw error(tree_->data() + " is outside " + std::to_string(min) + ".." + std::to_string(max));
  }
  return *value;
}

double JsonNode::number(double min, double max) const {
  if (!is_scalar()) throw error(std::string("expected a number, got ") + kind());
  const auto value = parse_double(tree_->data());
  if (!value) throw error("expected a number, got " + quote_value(tree_->data()));
  if (*value < min || *value > max) {
    std::ostringstream range;
    range << min << ".." << max;
    throw error(tree_->data() + " is outside " + range.str());
  }
  return *value;
}

bool JsonNode::boolean() const {
  if (!is_scalar()) throw error(std::string("expected true or false, got ") + kind());
  const auto value = parse_bool(tree_->data());
  if (!value) throw error("expected true or false, got " + quote_value(tree_->data()));
  return *value;
}

std::vector<std::string> JsonNode::string_list() const {
  std::vector<std::string> values;
  for (const auto& element : list()) values.push_back(element.non_empty_string());
  return values;
}

}  // namespace kpihub::config_detail
