// The health source: hospital XML exports from an inbox folder, optionally
// fetched over HTTP from the HIS first (into the same inbox).
#pragma once

#include <kpihub/health/his.hpp>
#include <kpihub/inbox.hpp>

#include <memory>
#include <optional>
#include <string>

namespace kpihub::health {

class HealthSource final : public sdk::Source {
 public:
  HealthSource(sdk::Host& host, sdk::Settings& settings);
  void pull(std::optional<std::string_view> cursor, sdk::Page& page) override;
  // Lists the HIS's exports after `state` (the last name fetched) and fetches
  // the next one into the inbox; returns the new state. Public for tests.
  std::string fetch_next(const std::string& state);

 private:
  sdk::Host& host_;
  Mapping mapping_;
  std::unique_ptr<EpisodeState> state_;
  std::unique_ptr<sdk::Inbox> inbox_;
  std::string base_url_, api_key_ref_;
  std::unique_ptr<sdk::HttpClient> client_;
};

}  // namespace kpihub::health
