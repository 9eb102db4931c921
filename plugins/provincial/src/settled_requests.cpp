#include "settled_requests.hpp"

#include <algorithm>

namespace kpihub::provincial {

SettledRequests::SettledRequests(std::size_t max_batches)
    : max_batches_(std::max<std::size_t>(max_batches, 1)) {}

SettledRequests::ByRequestId& SettledRequests::of_batch(std::string_view batch_id) {
  // A linear search: there are at most a handful of batches.
  const auto found = std::find_if(batches_.begin(), batches_.end(),
                                  [&](const auto& batch) { return batch.first == batch_id; });
  if (found != batches_.end()) {
    batches_.splice(batches_.end(), batches_, found);
  } else {
    batches_.emplace_back(std::string(batch_id), ByRequestId{});
    while (batches_.size() > max_batches_) batches_.pop_front();
  }
  return batches_.back().second;
}

void SettledRequests::forget(std::string_view batch_id) {
  batches_.remove_if([&](const auto& batch) { return batch.first == batch_id; });
}

}  // namespace kpihub::provincial
