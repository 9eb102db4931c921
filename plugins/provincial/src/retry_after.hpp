// Parsing of the Retry-After header (RFC 9110, 10.2.3): either a number of
// seconds or an HTTP date. Kept apart from the sink so tests can check it
// alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kpihub::provincial {

// Milliseconds to wait, counted from `now_unix_ms`; nullopt when the value is
// neither a non-negative number of seconds nor an HTTP date (IMF-fixdate,
// RFC 850 or asctime form). A date in the past gives 0. The result is capped
// at `cap_ms` so that a hostile or broken server cannot park the outbox for
// weeks.
std::optional<uint32_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_ms,
                                             uint32_t cap_ms = 3'600'000);

}  // namespace kpihub::provincial
