#include <kpihub/store/quarantine.hpp>

#include <boost/json.hpp>

#include <charconv>

namespace kpihub {

std::optional<int64_t> quarantined_revision(std::string_view fields) {
  if (fields.empty()) return std::nullopt;
  boost::system::error_code ec;
  const auto parsed = boost::json::parse(fields, ec);
  const auto* object = ec ? nullptr : parsed.if_object();
  const auto* text = object ? object->if_contains("revision") : nullptr;
  if (!text || !text->is_string()) return std::nullopt;
  const std::string_view v = text->get_string();
  int64_t out = 0;
  const auto [end, error] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (error != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return out;
}

}  // namespace kpihub
