// libFuzzer target: the SDK's readers of what a source or receiver sends as text (kpihub/text.hpp,
// time.hpp, http_helpers.hpp), which every plugin runs on bytes from another system. Any bytes
// must give an answer, never a crash, and the answers must agree with each other: text that is
// valid UTF-8 is kept as it is, a replacement is always valid; a time read back from what it
// writes is the same time; a wait is never negative; a token is never empty.
#include <kpihub/http_helpers.hpp>
#include <kpihub/text.hpp>
#include <kpihub/time.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace sdk = kpihub::sdk;

  std::size_t bad = 0;
  const bool valid = sdk::valid_utf8(text, &bad);
  const std::string replaced = sdk::replace_invalid_utf8(text);
  if (!sdk::valid_utf8(replaced)) __builtin_trap();
  if (valid && replaced != text) __builtin_trap();
  if (!valid && (bad >= text.size() || !sdk::valid_utf8(text.substr(0, bad)))) __builtin_trap();

  for (const std::optional<int> local : {std::optional<int>(), std::optional<int>(420)}) {
    if (const auto t = sdk::parse_rfc3339(text, local)) {
      if (t->millis < 0 || t->millis > 999) __builtin_trap();
      const auto again = sdk::parse_rfc3339(t->rfc3339(), std::nullopt);
      if (!again || again->unix_seconds != t->unix_seconds) __builtin_trap();
    }
  }

  if (const auto wait = sdk::retry_after_ms(text, 1'700'000'000'000)) {
    if (*wait < 0) __builtin_trap();
  }
  if (const auto token = sdk::read_token_answer(text, 1'700'000'000'000)) {
    if (token->value.empty() || token->expires_in_s < 0) __builtin_trap();
  }
  (void)sdk::percent_encode(text);
  return 0;
}
