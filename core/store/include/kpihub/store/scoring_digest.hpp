// What the store keeps of a record's score as last sent: not its text, a digest of it. The
// scorer only ever compares the score it computes with the last one sent (issue 20: "change
// detection by digest"); the text itself went out in the outbox item. A province-month's texts
// were a quarter of the store and of everything its compactions rewrote.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kpihub {

inline constexpr std::size_t kScoringDigestBytes = 16;

// The first 16 bytes of the SHA-256 of the `scoring` object's JSON text as sent, without its
// `sequence` (which changes with every version sent).
std::string scoring_digest(std::string_view scoring_text);

// What an engine stored as a record's last score: a digest, or (a store written before digests)
// the text itself, digested now.
std::string stored_scoring_digest(std::string stored);

}  // namespace kpihub
