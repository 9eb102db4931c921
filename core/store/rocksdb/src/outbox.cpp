#include "outbox.hpp"

namespace kpihub::rocks {

std::optional<Batch> RocksOutbox::next_batch(const std::string& /*sink*/, std::size_t /*max_items*/,
                                             std::size_t /*max_bytes*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::next_batch is not built yet in the RocksDB engine");
}

void RocksOutbox::complete_batch(const std::string& /*batch_id*/,
                                 const std::vector<DeadLetter>& /*dead*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::complete_batch is not built yet in the RocksDB engine");
}

void RocksOutbox::defer_batch(const std::string& /*batch_id*/, int64_t /*not_before_unix_ms*/,
                              const std::string& /*last_error*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::defer_batch is not built yet in the RocksDB engine");
}

int64_t RocksOutbox::depth(const std::string& /*sink*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::depth is not built yet in the RocksDB engine");
}

std::size_t RocksOutbox::compact(const std::vector<std::string>& /*sinks*/,
                                 int64_t /*delivered_before_unix_ms*/, std::size_t /*max_items*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::compact is not built yet in the RocksDB engine");
}

bool RocksOutbox::forget_sink(const std::string& /*sink*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::forget_sink is not built yet in the RocksDB engine");
}

std::vector<std::string> RocksOutbox::sinks_with_batches() {
  throw StoreError("store " + db_.path() +
                   ": Outbox::sinks_with_batches is not built yet in the RocksDB engine");
}

std::vector<DeadLetter> RocksOutbox::dead_letters(const std::string& /*sink*/,
                                                  std::size_t /*limit*/, int64_t /*after_id*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::dead_letters is not built yet in the RocksDB engine");
}

bool RocksOutbox::replay_dead_letter(int64_t /*id*/) {
  throw StoreError("store " + db_.path() +
                   ": Outbox::replay_dead_letter is not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks

namespace kpihub::rocks {

int64_t outbox_pending(Database& db, const rocksdb::Snapshot* /*snapshot*/) {
  throw StoreError("store " + db.path() +
                   ": outbox counts are not built yet in the RocksDB engine");
}

int64_t dead_letter_count(Database& db, const rocksdb::Snapshot* /*snapshot*/) {
  throw StoreError("store " + db.path() +
                   ": dead letter counts are not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks

namespace kpihub::rocks {

void append_outbox_items(Database& db, rocksdb::WriteBatch& /*batch*/,
                         const std::vector<OutboxItem>& /*items*/) {
  throw StoreError("store " + db.path() + ": the outbox is not built yet in the RocksDB engine");
}

}  // namespace kpihub::rocks
