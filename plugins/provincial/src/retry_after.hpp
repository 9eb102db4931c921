// The Retry-After wait the provincial sink honours: the SDK's parser (kpihub/http_helpers.hpp),
// capped. Kept apart from the sink so tests can check it alone.
#pragma once

#include <kpihub/http_helpers.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kpihub::provincial {

// Milliseconds to wait, counted from `now_unix_ms` (sdk::retry_after_ms), capped at `cap_ms` so
// that a hostile or broken server cannot park the outbox for weeks; nullopt when the value is
// neither a number of seconds nor an HTTP date.
inline std::optional<uint32_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_ms,
                                                    uint32_t cap_ms = 3'600'000) {
  const std::optional<int64_t> wait = sdk::retry_after_ms(value, now_unix_ms);
  if (!wait) return std::nullopt;
  return static_cast<uint32_t>(std::min<int64_t>(*wait, cap_ms));
}

}  // namespace kpihub::provincial
