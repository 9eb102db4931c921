// The RocksDB engine's Outbox (kpihub/store/outbox.hpp); the layout is in database.hpp.
#pragma once

#include "database.hpp"

#include <kpihub/store/outbox.hpp>

#include <boost/uuid/random_generator.hpp>

namespace kpihub::rocks {

class RocksOutbox final : public Outbox {
 public:
  explicit RocksOutbox(Database& db) : db_(db) {}

  std::optional<Batch> next_batch(const std::string& sink, std::size_t max_items,
                                  std::size_t max_bytes) override;
  void complete_batch(const std::string& batch_id, const std::vector<DeadLetter>& dead) override;
  void defer_batch(const std::string& batch_id, int64_t not_before_unix_ms,
                   const std::string& last_error) override;
  int64_t depth(const std::string& sink) override;
  std::size_t compact(const std::vector<std::string>& sinks, int64_t delivered_before_unix_ms,
                      std::size_t max_items) override;
  bool forget_sink(const std::string& sink) override;
  std::vector<std::string> sinks_with_batches() override;
  std::vector<DeadLetter> dead_letters(const std::string& sink, std::size_t limit,
                                       int64_t after_id) override;
  bool replay_dead_letter(int64_t id) override;

 private:
  Database& db_;
  boost::uuids::random_generator uuid_generator_;  // under db_.write_mutex()
};

}  // namespace kpihub::rocks
