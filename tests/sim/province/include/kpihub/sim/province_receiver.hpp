// The provincial assessment system's receiving API (spec/provincial-api.md),
// simulated: OAuth2 token endpoint, idempotent batch endpoints, read-back,
// durable SQLite store, and fault injection for tests. Embeddable in-process
// (tests, benchmarks) and run as `kpihub-sim-province`.
#pragma once

#include <kpihub/net.hpp>
#include <kpihub/sim/province_store.hpp>

#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>

namespace kpihub::sim::province {

// Shares are probabilities in [0, 1] drawn per batch request, from one seeded
// generator, in this order: drop, 500, 503, 429. `slow_share` is drawn apart.
struct Faults {
  double drop = 0;
  double fail_500 = 0;
  double fail_503 = 0;
  double fail_429 = 0;
  int retry_after_seconds = 1;  // sent with 503 and 429
  double slow_share = 0;
  std::chrono::milliseconds slow_delay{0};
};

struct ReceiverOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  std::string db_path = "province.db";
  std::string client_id = "kpihub-hub";
  std::string client_secret = "kpihub-secret";
  int64_t token_ttl_seconds = 3600;
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  std::size_t threads = 2;
  Faults faults;
  uint64_t seed = 1;
  std::set<std::string> poison_record_ids;  // always rejected with code "poison"
  std::optional<std::string> tls_cert_file;
  std::optional<std::string> tls_key_file;
  std::optional<std::string> client_ca_file;  // require client certificates (mTLS)
  // Wall clock for token lifetimes; tests move it to expire tokens.
  std::function<int64_t()> now_unix_ms;
};

class Receiver {
 public:
  explicit Receiver(ReceiverOptions options);
  ~Receiver();  // stops
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  void start();  // binds and serves; throws std::runtime_error naming address and port
  void stop();
  uint16_t port() const;
  std::string base_url() const;  // "http://127.0.0.1:PORT" (https with TLS)

  // The whole API, also callable without a socket.
  net::Reply handle(const net::Request& request);

  void set_faults(const Faults& faults);
  void set_poison(std::set<std::string> record_ids);
  // Forgets every issued token: the next call with one gets invalid_token.
  void revoke_tokens();
  // Sees every request before it is answered (tests capture bodies here).
  void set_observer(std::function<void(const net::Request&)> observer);

  boost::json::object stats();
  std::optional<StoredRecord> record(const std::string& record_id);
  ProvinceStore& store() { return store_; }

 private:
  net::Reply token_endpoint(const net::Request& request);
  std::optional<net::Reply> check_bearer(const net::Request& request);
  struct FaultDecision {
    std::optional<net::Reply> reply;  // answer instead of doing the work
    std::chrono::milliseconds delay{0};
  };
  FaultDecision injected_fault();
  std::optional<net::Reply> replay_or_conflict(const std::string& key,
                                               const std::string& body_sha256);
  net::Reply records_batch(const net::Request& request);
  net::Reply months_batch(const net::Request& request);
  net::Reply get_record(const std::string& record_id);
  net::Reply get_months(const net::Request& request);
  void note_processed(std::size_t items, std::chrono::steady_clock::duration busy);
  int64_t now_ms() const;

  ReceiverOptions options_;
  ProvinceStore store_;
  std::unique_ptr<net::HttpServer> server_;

  std::mutex config_mutex_;  // faults, poison, observer, random generator
  std::mt19937_64 random_;
  std::function<void(const net::Request&)> observer_;

  std::mutex token_mutex_;
  std::map<std::string, int64_t> tokens_;  // token -> expiry (unix ms)
  uint64_t tokens_issued_ = 0;

  std::mutex throughput_mutex_;
  int64_t items_processed_ = 0;
  std::chrono::steady_clock::duration busy_{};
  std::map<int64_t, int64_t> items_per_second_;  // steady second -> items, last few only
  std::atomic<uint64_t> faults_injected_{0};
};

}  // namespace kpihub::sim::province
