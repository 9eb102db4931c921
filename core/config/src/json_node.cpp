#include "json_node.hpp"

#include "text_util.hpp"

#include <boost/json.hpp>
#include <boost/property_tree/json_parser.hpp>

#include <algorithm>
#include <set>
#include <sstream>

namespace kpihub::config_detail {

namespace pt = boost::property_tree;
namespace json = boost::json;

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

json::value read_json_value(const std::string& path, const std::string& text) {
  boost::system::error_code ec;
  json::value value = json::parse(strip_bom(text), ec);
  if (ec) throw ConfigError(path + ": not valid JSON: " + ec.message());
  return value;
}

namespace {

// A JSON value as written, shortened for an error message.
std::string shown(const json::value& value) {
  constexpr std::size_t max_shown = 80;
  std::string text = json::serialize(value);
  if (text.size() <= max_shown) return text;
  std::size_t cut = max_shown;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

}  // namespace

ConfigError JsonNode::error(const std::string& problem) const {
  return ConfigError(file_ + ": " + (path_.empty() ? std::string("top level") : path_) + ": " +
                     problem);
}

ConfigError JsonNode::wrong_type(const char* expected) const {
  // Scalars are shown as written (Boost.JSON would print 400.5 as 4.005E2).
  if (typed_ && (typed_->is_structured() || typed_->is_string())) {
    return error(std::string("expected ") + expected + ", got " + shown(*typed_));
  }
  if (typed_ && is_scalar()) {
    return error(std::string("expected ") + expected + ", got " + tree_->data());
  }
  if (is_scalar()) {
    return error(std::string("expected ") + expected + ", got " + quote_value(tree_->data()));
  }
  return error(std::string("expected ") + expected + ", got " + kind());
}

std::string JsonNode::child_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

const char* JsonNode::kind() const {
  if (is_scalar()) return "a value";
  return tree_->begin()->first.empty() ? "a list" : "an object";
}

void JsonNode::expect_object(const std::vector<std::string>& known) const {
  if (typed_ && !typed_->is_object()) throw wrong_type("an object");
  // PropertyTree reads {} and "" alike: an empty scalar passes as an empty object.
  if (is_scalar() && !tree_->data().empty()) throw wrong_type("an object");
  std::set<std::string> seen;
  for (const auto& [key, value] : *tree_) {
    if (key.empty()) throw wrong_type("an object");
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
  const json::value* typed =
      typed_ && typed_->is_object() ? typed_->get_object().if_contains(key) : nullptr;
  return JsonNode(it->second, typed, file_, child_path(key));
}

JsonNode JsonNode::required(const std::string& key) const {
  auto node = child(key);
  if (!node) throw ConfigError(file_ + ": " + child_path(key) + ": required key is missing");
  return *node;
}

std::vector<JsonNode> JsonNode::list() const {
  if (typed_ && !typed_->is_array()) throw wrong_type("a list");
  if (is_scalar() && !tree_->data().empty()) throw wrong_type("a list");
  std::vector<JsonNode> elements;
  for (const auto& [key, value] : *tree_) {
    if (!key.empty()) throw wrong_type("a list");
    const std::size_t index = elements.size();
    const json::value* typed =
        typed_ && index < typed_->get_array().size() ? &typed_->get_array()[index] : nullptr;
    elements.emplace_back(value, typed, file_, path_ + "[" + std::to_string(index) + "]");
  }
  return elements;
}

std::string JsonNode::string() const {
  if ((typed_ && !typed_->is_string()) || !is_scalar()) throw wrong_type("a string");
  return tree_->data();
}

std::string JsonNode::non_empty_string() const {
  std::string value = string();
  if (trim(value).empty()) throw error("must not be empty");
  return value;
}

int64_t JsonNode::integer(int64_t min, int64_t max) const {
  if ((typed_ && !typed_->is_int64() && !typed_->is_uint64()) || !is_scalar()) {
    throw wrong_type("an integer");
  }
  const auto value = parse_int(tree_->data());
  if (!value) throw wrong_type("an integer");
  if (*value < min || *value > max) {
    throw error(tree_->data() + " is outside " + std::to_string(min) + ".." + std::to_string(max));
  }
  return *value;
}

double JsonNode::number(double min, double max) const {
  if ((typed_ && !typed_->is_number()) || !is_scalar()) throw wrong_type("a number");
  const auto value = parse_double(tree_->data());
  if (!value) throw wrong_type("a number");
  if (*value < min || *value > max) {
    std::ostringstream range;
    range << min << ".." << max;
    throw error(tree_->data() + " is outside " + range.str());
  }
  return *value;
}

bool JsonNode::boolean() const {
  if ((typed_ && !typed_->is_bool()) || !is_scalar()) throw wrong_type("true or false");
  const auto value = parse_bool(tree_->data());
  if (!value) throw wrong_type("true or false");
  return *value;
}

std::vector<std::string> JsonNode::string_list() const {
  std::vector<std::string> values;
  for (const auto& element : list()) values.push_back(element.non_empty_string());
  return values;
}

}  // namespace kpihub::config_detail
