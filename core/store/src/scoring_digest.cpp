#include <kpihub/store/scoring_digest.hpp>

#include <openssl/sha.h>

namespace kpihub {

std::string scoring_digest(std::string_view scoring_text) {
  unsigned char sha[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(scoring_text.data()), scoring_text.size(), sha);
  return std::string(reinterpret_cast<const char*>(sha), kScoringDigestBytes);
}

std::string stored_scoring_digest(std::string stored) {
  // A JSON object with a score's fields is far longer than a digest.
  if (stored.size() == kScoringDigestBytes) return stored;
  return scoring_digest(stored);
}

}  // namespace kpihub
