// Sink that forwards scored records and monthly summaries to the provincial
// assessment system (spec/provincial-api.md): OAuth2 client credentials,
// idempotent batch POSTs, splitting of refused batches, Retry-After.
#pragma once

#include "settled_requests.hpp"

#include <kpihub/http_helpers.hpp>
#include <kpihub/sdk.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kpihub::provincial {

struct ProvincialSettings {
  std::string base_url;  // without trailing '/'
  std::string client_id;
  std::string client_secret;  // the value, resolved through the host's secrets
  std::string token_path = "/oauth2/token";
  std::string records_path = "/api/v1/kpi/records:batch";
  std::string months_path = "/api/v1/kpi/months:batch";
  bool basic_auth = false;  // auth: "basic" sends the client credentials as HTTP Basic
  sdk::HttpOptions http;
};

// Reads and checks the settings; secrets come from host.secret() only.
ProvincialSettings read_settings(const sdk::Host& host, sdk::Settings& settings);

class ProvincialSink final : public sdk::Sink {
 public:
  ProvincialSink(sdk::Host& host, sdk::Settings& settings);

  // Sends the batch (two requests when it mixes records and summaries) and
  // maps every answer to a per-item outcome; never sleeps: overload and
  // network trouble come back as RETRY with a retry_after_ms hint. A retry
  // of the batch (attempt > 1) resends only the requests without a final
  // answer yet.
  sdk::Delivery deliver(const sdk::Batch& batch) override;

 private:
  enum class Endpoint { records, months };
  struct DeliveryState;

  void send(const sdk::Batch& batch, Endpoint endpoint, const std::string& request_id,
            std::span<const std::size_t> items, DeliveryState& state);
  void send_halves(const sdk::Batch& batch, Endpoint endpoint, const std::string& request_id,
                   std::span<const std::size_t> items, DeliveryState& state);
  void report_remembered_batches(std::size_t count_before);
  std::string build_body(const sdk::Batch& batch, Endpoint endpoint, const std::string& request_id,
                         std::span<const std::size_t> items) const;
  sdk::HttpResponse post_with_token(const std::string& url, const std::string& request_id,
                                    const std::string& body);
  std::string access_token();
  void fetch_token();

  sdk::Host host_;
  ProvincialSettings settings_;
  std::unique_ptr<sdk::HttpClient> http_;
  std::mutex deliver_mutex_;  // one request at a time on the host's HTTP client; guards settled_
  SettledRequests settled_;
  std::optional<sdk::AccessToken> token_;
};

}  // namespace kpihub::provincial
