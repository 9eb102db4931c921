#include <kpihub/admin.hpp>

#include <Poco/Crypto/ECKey.h>
#include <Poco/Crypto/RSAKey.h>
#include <Poco/Exception.h>
#include <Poco/JWT/JWTException.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace kpihub {
namespace {

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  static const char* const hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xf];
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("admin.jwt: cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Role role_of(const std::string& name) {
  if (name == "operate") return Role::operate;
  if (name == "read") return Role::read;
  return Role::none;
}

}  // namespace

struct Authenticator::Jwt {
  AdminJwt config;
  std::unique_ptr<Poco::JWT::Signer> signer;
};

Authenticator::Authenticator(const AdminConfig& config, const Clock& clock)
    : tokens_(config.tokens), clock_(clock) {
  if (!config.jwt) return;
  jwt_ = std::make_unique<Jwt>();
  jwt_->config = *config.jwt;
  const auto& algorithms = jwt_->config.algorithms;
  try {
    if (!jwt_->config.hmac_secret_file.empty()) {
      jwt_->signer = std::make_unique<Poco::JWT::Signer>(
          read_hmac_secret(jwt_->config.hmac_secret_file, jwt_->config.algorithms));
    } else if (algorithms.front().rfind("ES", 0) == 0) {
      std::istringstream pem(read_file(jwt_->config.public_key_file));
      jwt_->signer = std::make_unique<Poco::JWT::Signer>(
          Poco::SharedPtr<Poco::Crypto::ECKey>(new Poco::Crypto::ECKey(&pem)));
    } else {
      std::istringstream pem(read_file(jwt_->config.public_key_file));
      jwt_->signer = std::make_unique<Poco::JWT::Signer>(
          Poco::SharedPtr<Poco::Crypto::RSAKey>(new Poco::Crypto::RSAKey(&pem)));
    }
  } catch (const Poco::Exception& e) {
    throw ConfigError("admin.jwt: the key in " + jwt_->config.public_key_file +
                      " cannot be read: " + e.displayText());
  }
  // Only what the operator listed; Poco's default (HS256) is replaced.
  jwt_->signer->setAlgorithms(std::set<std::string>(algorithms.begin(), algorithms.end()));
}

Authenticator::~Authenticator() = default;

AuthResult Authenticator::authenticate(const net::Request& request) const {
  AuthResult result;
  const auto header = request.header("authorization");
  if (!header) return result;
  constexpr std::string_view kBearer = "Bearer ";
  if (header->size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header->begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    result.error = "the Authorization header is not \"Bearer <token>\"";
    return result;
  }
  const std::string token = header->substr(kBearer.size());
  const std::string digest = sha256_hex(token);
  for (const auto& t : tokens_) {
    if (t.sha256.size() == digest.size() &&
        CRYPTO_memcmp(t.sha256.data(), digest.data(), digest.size()) == 0) {
      result.role = role_of(t.role);
      result.subject = t.name;
      return result;
    }
  }
  if (!jwt_ || std::count(token.begin(), token.end(), '.') != 2) {
    result.error = "the bearer token is not known";
    return result;
  }
  try {
    Poco::JWT::Token jwt = jwt_->signer->verify(token);
    const int64_t now_s = clock_.now_unix_ms() / 1000;
    const auto& payload = jwt.payload();
    if (!payload.has("exp")) {
      result.error = "the JWT has no expiry (exp)";
      return result;
    }
    // A NumericDate is a JSON number (RFC 7519 2); Poco would read "exp": "9999999999" too.
    for (const char* claim : {"exp", "nbf", "iat"}) {
      // Poco counts a boolean as numeric; JSON does not.
      if (payload.has(claim) &&
          (!payload.get(claim).isNumeric() || payload.get(claim).isBoolean())) {
        result.error = std::string("the JWT's ") + claim + " is not a number (a NumericDate)";
        return result;
      }
    }
    if (jwt.getExpiration().epochTime() <= now_s) {
      result.error = "the JWT has expired";
      return result;
    }
    if (payload.has("nbf") && jwt.getNotBefore().epochTime() > now_s) {
      result.error = "the JWT is not valid yet (nbf)";
      return result;
    }
    if (!jwt_->config.issuer.empty() && jwt.getIssuer() != jwt_->config.issuer) {
      result.error = "the JWT's issuer is not " + jwt_->config.issuer;
      return result;
    }
    if (!jwt_->config.audience.empty()) {
      const auto audience = jwt.getAudience();
      if (std::find(audience.begin(), audience.end(), jwt_->config.audience) == audience.end()) {
        result.error = "the JWT is not for audience " + jwt_->config.audience;
        return result;
      }
    }
    const std::string role = payload.optValue<std::string>(jwt_->config.role_claim, "");
    result.role = role_of(role);
    result.subject = "jwt:" + jwt.getSubject();
    if (result.role == Role::none) {
      result.error = "the JWT's " + jwt_->config.role_claim + " claim is not read or operate";
    }
    return result;
  } catch (const Poco::JWT::UnallowedAlgorithmException& e) {
    result.error = "the JWT's algorithm is not accepted (" + e.message() + ")";
  } catch (const Poco::JWT::SignatureVerificationException&) {
    result.error = "the JWT's signature does not verify";
  } catch (const Poco::Exception& e) {
    result.error = "the JWT cannot be read: " + e.displayText();
  } catch (const std::exception& e) {
    result.error = std::string("the JWT cannot be read: ") + e.what();
  }
  return result;
}

}  // namespace kpihub
