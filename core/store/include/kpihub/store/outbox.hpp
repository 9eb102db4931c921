// What goes downstream: the items the scorer appended (ScoringState::commit_scoring), handed
// to each sink in batches, in order, and what the receivers refused (dead letters).
//
// What an engine must keep: a batch is fixed (its id, items and order) and stored before
// next_batch returns it, so a retry after a crash sends the same batch under the same
// Idempotency-Key; a sink's batches follow the outbox order; complete_batch marks the batch
// delivered and stores its dead letters in one transaction; compact never deletes an item a
// sink (configured or not yet forgotten) has not delivered.
#pragma once

#include <kpihub/store/types.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kpihub {

class Outbox {
 public:
  virtual ~Outbox() = default;

  // The oldest batch of `sink` not yet delivered, if any; otherwise, a new
  // batch of up to `max_items` items and `max_bytes` payload bytes taken in
  // order after the sink's last batch, fixed and stored before it is
  // returned. nullopt when nothing is waiting.
  virtual std::optional<Batch> next_batch(const std::string& sink, std::size_t max_items,
                                          std::size_t max_bytes) = 0;
  // One transaction: the batch is delivered; `dead` items go to dead letters.
  virtual void complete_batch(const std::string& batch_id, const std::vector<DeadLetter>& dead) = 0;
  // The batch stays pending; it is retried (same id, same items) not before the time given.
  virtual void defer_batch(const std::string& batch_id, int64_t not_before_unix_ms,
                           const std::string& last_error) = 0;
  // Items waiting for `sink`: not yet in a batch it delivered.
  virtual int64_t depth(const std::string& sink) = 0;
  // Deletes, oldest first, up to `max_items` outbox items delivered, each in a batch
  // completed before `delivered_before_unix_ms`, to every sink in `sinks` and to every sink that
  // ever took a batch (a sink dropped from the configuration still holds its items, until
  // forget_sink); returns how many (0: nothing left to delete). No item of a pending batch goes,
  // whichever sink it is for. Batches and dead letters stay (a dead letter has its own copy of
  // the payload).
  virtual std::size_t compact(const std::vector<std::string>& sinks,
                              int64_t delivered_before_unix_ms, std::size_t max_items) = 0;
  // Drops a sink's place in the outbox and its pending batch: it no longer holds items back,
  // and if it is configured again it starts from the oldest item left. False if it never took
  // a batch.
  virtual bool forget_sink(const std::string& sink) = 0;
  // Every sink that took a batch and was not forgotten, by name: what holds outbox items back
  // besides the configured sinks.
  virtual std::vector<std::string> sinks_with_batches() = 0;

  // Items receivers refused for good, of `sink` (empty: every sink), after `after_id`.
  virtual std::vector<DeadLetter> dead_letters(const std::string& sink, std::size_t limit,
                                               int64_t after_id) = 0;
  // Re-queues the dead letter's payload in the outbox; returns false if unknown.
  virtual bool replay_dead_letter(int64_t id) = 0;
};

}  // namespace kpihub
