#include <kpihub/hub.hpp>

#include <algorithm>
#include <random>

namespace kpihub {

Forwarder::Forwarder(Outbox& outbox, PluginInstance& sink, const PluginInstanceConfig& config,
                     std::string hub_id, const Clock& clock, Logger& logger, Metrics& metrics)
    : outbox_(outbox),
      sink_(sink),
      config_(config),
      hub_id_(std::move(hub_id)),
      clock_(clock),
      logger_(logger),
      metrics_(metrics) {
  // The sink's counters exist at 0 from the start: "nothing delivered since the hub started"
  // is a series at 0, which an alert can watch, not a missing one.
  metrics_.declare("kpihub_forwarded_total", MetricType::counter,
                   "Outbox items the sink's receiver took (delivered or held already)");
  metrics_.declare("kpihub_forward_retries_total", MetricType::counter,
                   "Batch deliveries deferred for a later attempt (receiver down, overloaded or "
                   "asking to retry)");
  metrics_.declare("kpihub_dead_letters_total", MetricType::counter,
                   "Outbox items the receiver refused for good (kpihub dead-letters list)");
  const MetricLabels labels{{"sink", config_.name}};
  for (const char* name :
       {"kpihub_forwarded_total", "kpihub_forward_retries_total", "kpihub_dead_letters_total"}) {
    metrics_.add(name, labels, 0);
  }
}

int64_t retry_wait_ms(uint32_t failures, bool transient) {
  const int64_t base = std::min<int64_t>(300000, 1000LL << std::min<uint32_t>(failures, 9));
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> dist(base / 2, base);
  const int64_t wait = dist(rng);
  return transient ? wait : std::max<int64_t>(wait, 30000);
}

namespace {

kpihub_item_kind item_kind(OutboxKind k) {
  switch (k) {
    case OutboxKind::record:
      return KPIHUB_ITEM_RECORD;
    case OutboxKind::staff_month:
      return KPIHUB_ITEM_STAFF_MONTH;
    case OutboxKind::agency_month:
      return KPIHUB_ITEM_AGENCY_MONTH;
  }
  return KPIHUB_ITEM_RECORD;
}

std::string text(kpihub_str s) {
  return s.data ? std::string(s.data, s.size) : std::string();
}

}  // namespace

ForwardStep Forwarder::step() {
  auto batch = outbox_.next_batch(config_.name, config_.batch_max_items, config_.batch_max_bytes);
  if (!batch) return ForwardStep::idle;
  const int64_t now = clock_.now_unix_ms();
  if (batch->not_before_unix_ms > now && !try_at_once_) {
    next_attempt_ms_ = batch->not_before_unix_ms;
    waiting_ = {batch->batch_id, batch->items.size(), batch->attempts, batch->last_error,
                next_attempt_ms_};
    return ForwardStep::deferred;
  }
  try_at_once_ = false;
  const MetricLabels labels{{"sink", config_.name}};
  std::vector<kpihub_batch_item> items;
  items.reserve(batch->items.size());
  for (const auto& it : batch->items) {
    kpihub_batch_item c{};
    c.struct_size = sizeof(c);
    c.kind = item_kind(it.kind);
    c.key = {it.key.data(), it.key.size()};
    c.json = {it.payload.data(), it.payload.size()};
    items.push_back(c);
  }
  kpihub_batch c_batch{};
  c_batch.struct_size = sizeof(c_batch);
  c_batch.batch_id = {batch->batch_id.data(), batch->batch_id.size()};
  c_batch.hub_id = {hub_id_.data(), hub_id_.size()};
  c_batch.items = items.data();
  c_batch.item_count = items.size();
  c_batch.attempt = batch->attempts + 1;

  auto defer = [&](int64_t wait_ms, const std::string& why) {
    next_attempt_ms_ = now + wait_ms;
    outbox_.defer_batch(batch->batch_id, next_attempt_ms_, why);
    waiting_ = {batch->batch_id, items.size(), c_batch.attempt, why, next_attempt_ms_};
    metrics_.add("kpihub_forward_retries_total", labels, 1);
    logger_.warn(config_.name, "batch " + batch->batch_id + " (" + std::to_string(items.size()) +
                                   " items, attempt " + std::to_string(c_batch.attempt) +
                                   ") not delivered: " + why + "; next try in " +
                                   std::to_string(wait_ms / 1000) + " s");
    return ForwardStep::deferred;
  };

  kpihub_delivery delivery{};
  try {
    delivery = sink_.deliver(c_batch);
  } catch (const PluginError& e) {
    // Configuration and credential errors wait longer: an operator must act.
    const int64_t wait = retry_wait_ms(batch->attempts, e.status() == KPIHUB_ERR_TRANSIENT);
    if (e.status() != KPIHUB_ERR_TRANSIENT) logger_.error(config_.name, e.what());
    return defer(wait, e.what());
  }

  std::vector<DeadLetter> dead;
  bool retry = false;
  std::string retry_reason;
  std::size_t settled = 0;
  for (std::size_t i = 0; i < delivery.result_count; ++i) {
    const auto& r = delivery.results[i];
    if (r.outcome != KPIHUB_ITEM_RETRY) ++settled;
    if (r.outcome == KPIHUB_ITEM_RETRY) {
      retry = true;
      if (retry_reason.empty()) retry_reason = text(r.message);
    } else if (r.outcome == KPIHUB_ITEM_REJECTED) {
      DeadLetter d;
      d.sink = config_.name;
      d.batch_id = batch->batch_id;
      d.key = batch->items[i].key;
      d.code = text(r.code);
      d.message = text(r.message);
      d.payload = batch->items[i].payload;
      d.created_at_unix_ms = now;
      dead.push_back(std::move(d));
    }
  }
  if (retry) {
    // The whole batch goes again with the same id and bytes; the receiver's
    // idempotency replays what it already took.
    //
    // A sink that remembers what its receiver already answered (the
    // provincial one does) settles a batch a part at a time under faults. An
    // attempt that settled more items than any before it is progress, not a
    // failure: the backoff counts only the attempts since the last progress.
    // Only a new best counts, so a sink that settles the same items on every
    // attempt backs off as it always did.
    if (batch->batch_id != progress_batch_id_) {
      progress_batch_id_ = batch->batch_id;
      progress_settled_items_ = 0;
      progress_at_attempt_ = 0;
    }
    if (settled > progress_settled_items_) {
      progress_settled_items_ = settled;
      progress_at_attempt_ = batch->attempts;
    }
    const uint32_t attempts_without_progress = batch->attempts - progress_at_attempt_;
    const int64_t wait =
        std::max<int64_t>(delivery.retry_after_ms, retry_wait_ms(attempts_without_progress));
    return defer(wait, retry_reason.empty() ? "receiver asked to retry" : retry_reason);
  }
  outbox_.complete_batch(batch->batch_id, dead);
  metrics_.add("kpihub_forwarded_total", labels, static_cast<double>(items.size() - dead.size()));
  delivered_items_ += items.size() - dead.size();
  logger_.info(config_.name,
               "batch " + batch->batch_id +
                   " delivered: " + std::to_string(items.size() - dead.size()) + " items" +
                   (dead.empty() ? std::string()
                                 : ", " + std::to_string(dead.size()) + " refused (dead letters)") +
                   ", attempt " + std::to_string(c_batch.attempt) + " (" +
                   std::to_string(delivered_items_) + " delivered by this hub)");
  if (!dead.empty()) {
    metrics_.add("kpihub_dead_letters_total", labels, static_cast<double>(dead.size()));
    for (const auto& d : dead) {
      logger_.log(LogLevel::warn, config_.name, "dead letter: " + d.code + ": " + d.message, d.key);
    }
  }
  next_attempt_ms_ = 0;
  return ForwardStep::delivered;
}

}  // namespace kpihub
