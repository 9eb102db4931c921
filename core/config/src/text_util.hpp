// Small text helpers shared by the configuration loaders: reading files,
// UTF-8 checks, strict number parsing and "did you mean" suggestions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::config_detail {

// Reads a whole file; throws ConfigError "<path>: cannot read file (reason)".
std::string read_text_file(const std::string& path);

// Throws ConfigError "<file>:<line>: invalid UTF-8 (byte 0xC3 at column 7)"
// for the first malformed sequence (overlong forms, surrogates and code points
// above U+10FFFF included).
void check_utf8(std::string_view text, const std::string& file);

// Removes a UTF-8 byte order mark at the start, if any.
std::string_view strip_bom(std::string_view text);

std::string_view trim(std::string_view s);
std::vector<std::string> split(std::string_view s, char separator);  // trimmed, empties dropped

// Strict: the whole text must be the number (no spaces, no trailing junk,
// finite values only).
std::optional<double> parse_double(std::string_view s);
std::optional<int64_t> parse_int(std::string_view s);
std::optional<bool> parse_bool(std::string_view s);  // "true" / "false"

// The known name closest to `unknown` by edit distance, when it is close
// enough to be a plausible typo.
std::optional<std::string> closest_name(std::string_view unknown,
                                        const std::vector<std::string>& known);

// `"value"` with control characters escaped and long values shortened, for
// error messages.
std::string quote_value(std::string_view value);

// Joins `base_dir` and a possibly relative `path` into an absolute, lexically
// normal path.
std::string resolve_path(const std::string& base_dir, const std::string& path);

}  // namespace kpihub::config_detail
