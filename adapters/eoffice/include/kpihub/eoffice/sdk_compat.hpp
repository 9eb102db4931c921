// Include before <kpihub/sdk.hpp>. SDK 0.1.0 declares detail::view for
// std::string_view and for std::optional<std::string>, so a std::string
// argument matches both and its inline wrappers do not compile. This exact
// match resolves it; being a template, it yields to a plain overload once the
// SDK has its own, so it is safe to keep until then.
#pragma once

#include <kpihub/abi.h>

#include <string>
#include <type_traits>

namespace kpihub::sdk::detail {
template <typename S, std::enable_if_t<std::is_same_v<S, std::string>, int> = 0>
inline kpihub_str view(const S& s) {
  return kpihub_str{s.data(), s.size()};
}
}  // namespace kpihub::sdk::detail
