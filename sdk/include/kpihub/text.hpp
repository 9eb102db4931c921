// kpihub SDK: UTF-8 as the host checks it, for every plugin (an adapter that checks its text
// before the host does says which field and byte are wrong; the host quarantines what is not
// UTF-8 as bad_encoding).
#ifndef KPIHUB_TEXT_HPP
#define KPIHUB_TEXT_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kpihub::sdk {

namespace detail {

// Length of the valid UTF-8 sequence at text[i], or 0 when it is invalid
// (Unicode 15, table 3-7: no overlongs, no surrogates, nothing past U+10FFFF).
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  const std::size_t left = text.size() - i;
  const auto cont = [&](std::size_t k) { return (byte(i + k) & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return left >= 2 && cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3) return 0;
    const unsigned char b1 = byte(i + 1);
    const bool ok = (b0 == 0xE0)   ? (b1 >= 0xA0 && b1 <= 0xBF)
                    : (b0 == 0xED) ? (b1 >= 0x80 && b1 <= 0x9F)
                                   : cont(1);
    return ok && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4) return 0;
    const unsigned char b1 = byte(i + 1);
    const bool ok = (b0 == 0xF0)   ? (b1 >= 0x90 && b1 <= 0xBF)
                    : (b0 == 0xF4) ? (b1 >= 0x80 && b1 <= 0x8F)
                                   : cont(1);
    return ok && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace detail

// True when `text` is valid UTF-8 (Unicode 15, table 3-7: no overlongs, no surrogates, nothing
// past U+10FFFF); otherwise `bad_offset`, when given, gets the offset of the first invalid byte.
inline bool valid_utf8(std::string_view text, std::size_t* bad_offset = nullptr) {
  std::size_t i = 0;
  while (i < text.size()) {
    // Eight characters at a time while they are ASCII.
    uint64_t word = 0;
    while (i + 8 <= text.size() &&
           (std::memcpy(&word, text.data() + i, 8), (word & 0x8080808080808080u) == 0)) {
      i += 8;
    }
    if (i == text.size()) break;
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = detail::utf8_sequence_length(text, i);
    if (n == 0) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += n;
  }
  return true;
}

// A copy of `text` with every invalid UTF-8 byte replaced by U+FFFD (what a log line or a
// quarantine entry may show of bytes that are not text).
inline std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t n = detail::utf8_sequence_length(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER, one per invalid byte
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace kpihub::sdk

#endif  // KPIHUB_TEXT_HPP
