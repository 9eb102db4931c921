// The receiver's final answers to the requests of batches still being
// retried, so that a retry resends only the requests that are still open.
#pragma once

#include <kpihub/sdk.hpp>

#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpihub::provincial {

// What the receiver answered for good to one request.
struct SettledRequest {
  // The answer holds for these exact bytes only: a batch that changed under
  // the same id is sent again, not answered from memory.
  std::size_t body_hash = 0;
  // Refused whole (400/413) and sent as two halves, which have their own
  // answers; resending it would only be refused again.
  bool split = false;
  std::vector<sdk::ItemResult> results;  // one per item, in the request's order; empty when split
};

// Per batch id, the settled requests by request id, for a bounded number of
// batches. Forgetting a batch is always safe: its requests are resent with
// the same keys and bytes, and the receiver replays its stored answers.
class SettledRequests {
 public:
  using ByRequestId = std::map<std::string, SettledRequest, std::less<>>;

  // A sink's forwarder retries one batch at a time, so a few are plenty; the
  // cap only matters when batches are abandoned (deleted, or a host that
  // moves on), and each one holds one result per item.
  static constexpr std::size_t kDefaultMaxBatches = 16;

  explicit SettledRequests(std::size_t max_batches = kDefaultMaxBatches);

  // The requests of `batch_id` settled so far (none for a new batch). The
  // batch becomes the most recently used; beyond the cap the least recently
  // used one is forgotten. The reference stays valid until that batch is
  // forgotten.
  ByRequestId& of_batch(std::string_view batch_id);
  void forget(std::string_view batch_id);
  std::size_t batch_count() const { return batches_.size(); }

 private:
  std::size_t max_batches_;
  std::list<std::pair<std::string, ByRequestId>> batches_;  // least recently used first
};

}  // namespace kpihub::provincial
