// Works around sdk.hpp 0.1.0, which does not compile: detail::view(std::string)
// is ambiguous between its string_view and optional<string> overloads. This
// constrained template is an exact match, so it wins while the SDK is broken
// and quietly loses to a non-template view(const std::string&) once the SDK
// adds one. Include it before <kpihub/sdk.hpp>; delete it when the SDK is fixed.
#pragma once

#include <kpihub/abi.h>

#include <concepts>
#include <string>

namespace kpihub::sdk::detail {
template <typename Text>
requires std::same_as<Text, std::string> kpihub_str view(const Text& text) {
  return kpihub_str{text.data(), text.size()};
}
}  // namespace kpihub::sdk::detail
