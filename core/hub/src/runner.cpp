// Hub::run: the one runner of `kpihub run` and `kpihub run --once`. One thread per source, one
// scorer, one per sink; the stages talk through the store. The two modes run the same loops,
// with the same retry waits, metrics, summary and stop handling; --once only adds when to end:
// every source caught up (or given up), the scorer with nothing to do, every sink idle (or its
// next try after --forward-timeout).
#include <kpihub/hub.hpp>

#include "hub_runtime.hpp"
#include "thread_cpu.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

namespace kpihub {

namespace {

// Measures one step of a stage into a RunSummary::StageCost; wall() is its wall seconds so far.
class StageTimer {
 public:
  explicit StageTimer(RunSummary::StageCost& into)
      : into_(into), wall_(std::chrono::steady_clock::now()), cpu_(thread_cpu_seconds()) {}
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;
  ~StageTimer() {
    into_.wall_s += wall();
    into_.cpu_s += thread_cpu_seconds() - cpu_;
  }
  double wall() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count();
  }

 private:
  RunSummary::StageCost& into_;
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};

// An idle task looks again this often (a page, a scoring round or a stop wakes it sooner).
constexpr int64_t kIdleMs = 200;
// A wait re-reads the hub's clock and the stop flag this often.
constexpr int64_t kPollMs = 50;
// Outbox compaction: at the start of a run, then hourly.
constexpr int64_t kCompactionIntervalMs = 3600LL * 1000;

}  // namespace

StopRelay::StopRelay(const std::atomic<bool>& stop, std::function<void()> on_stop)
    : thread_([this, &stop, on_stop = std::move(on_stop)] {
        while (!stop.load() && !done_.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (stop.load()) on_stop();
      }) {}

StopRelay::~StopRelay() {
  done_ = true;
  thread_.join();
}

bool Hub::pull_one(SourceRuntime& s, RunSummary& summary) {
  // When the records say they arrived: the records' clock (moved to hub.json's `today`).
  const int64_t received_at = record_clock_.now_unix_ms();
  ingestor_->set_today(hub_today(config_, clock_, reference_.rules));
  // The summary's stage timers also give the stage histograms their samples.
  const double pull_before = summary.pull.wall_s;
  const double store_before = summary.store.wall_s;
  kpihub_page page = [&] {
    StageTimer timer(summary.pull);
    return s.instance->pull(s.cursor);
  }();
  IngestResult r = [&] {
    StageTimer timer(summary.store);
    return ingestor_->ingest(s.config.name, page, received_at);
  }();
  metrics_.observe("kpihub_stage_seconds", {{"source", s.config.name}, {"stage", "pull"}},
                   summary.pull.wall_s - pull_before);
  metrics_.observe("kpihub_stage_seconds", {{"source", s.config.name}, {"stage", "store"}},
                   summary.store.wall_s - store_before);
  if (page.next_cursor.data) s.cursor = std::string(page.next_cursor.data, page.next_cursor.size);
  summary.pages++;
  summary.records += r.records_in_page;
  summary.inserted += r.commit.inserted;
  summary.updated += r.commit.updated;
  summary.stale += r.commit.ignored_stale;
  summary.quarantined += r.commit.quarantined;
  const MetricLabels labels{{"source", s.config.name}};
  metrics_.add("kpihub_pages_total", labels, 1);
  metrics_.add("kpihub_records_pulled_total", labels, static_cast<double>(r.records_in_page));
  metrics_.add("kpihub_records_stored_total", labels,
               static_cast<double>(r.commit.inserted + r.commit.updated));
  for (const auto& [reason, n] : r.quarantined_by_reason) {
    metrics_.add("kpihub_records_quarantined_total",
                 {{"source", s.config.name}, {"reason", reason}}, static_cast<double>(n));
  }
  std::string progress =
      page.progress.data ? std::string(page.progress.data, page.progress.size) : std::string();
  {
    // What an operator reads (status, lag) is on the hub's clock, as the admin API's "now" and
    // last_error_ms are: never the records' clock, which a back-fill moves by months.
    const int64_t now = clock_.now_unix_ms();
    std::lock_guard lock(status_mutex_);
    s.status.state = page.caught_up ? "caught_up" : "pulling";
    s.status.cursor = s.cursor;
    s.status.last_success_ms = now;
    if (page.caught_up) s.status.last_caught_up_ms = now;
    s.status.progress = progress;
    s.status.pages++;
    s.status.records += r.records_in_page;
  }
  logger_.info(s.config.name, "page stored: " + std::to_string(r.records_in_page) + " items, " +
                                  std::to_string(r.commit.inserted) + " new, " +
                                  std::to_string(r.commit.updated) + " updated, " +
                                  std::to_string(r.commit.quarantined) + " quarantined" +
                                  (r.commit.quarantine_resolved == 0
                                       ? ""
                                       : ", " + std::to_string(r.commit.quarantine_resolved) +
                                             " quarantine entries resolved by newer revisions") +
                                  (progress.empty() ? "" : " (" + progress + ")"));
  return page.caught_up == 0;
}

// A 7.7 M record backlog pulls for minutes before the first scoring round, and glibc held
// 100 MB for 46 MB in use by then: freed memory goes back after pages and rounds, not only at
// the end.
void Hub::give_back_memory() {
  if (!options_.return_free_memory) return;
  const int64_t t = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
  int64_t due = next_memory_return_ms_.load();
  if (t < due || !next_memory_return_ms_.compare_exchange_strong(due, t + 1000)) return;
  options_.return_free_memory();
}

std::size_t Hub::compact_outbox(const std::atomic<bool>& stop) {
  if (config_.outbox_retention_days == 0) return 0;
  // Every configured sink, running or not (disabled, or its plugin failed to load), still has
  // to get what it has not delivered yet; the store adds the sinks no longer configured.
  // The cutoff is the hub's clock, the delivery times the store's: both the system clock
  // outside tests.
  std::vector<std::string> sinks;
  for (const auto& sink : config_.sinks) sinks.push_back(sink.name);
  constexpr int64_t kDayMs = 86400000;
  const int64_t cutoff = clock_.now_unix_ms() - config_.outbox_retention_days * kDayMs;
  // Small transactions: ingest and scoring wait for the write lock meanwhile.
  constexpr std::size_t kItemsPerTransaction = 10000;
  std::size_t deleted = 0;
  while (!stop.load()) {
    const std::size_t n = storage_.outbox().compact(sinks, cutoff, kItemsPerTransaction);
    if (n == 0) break;
    deleted += n;
    // The store's mutex is not fair: without a pause, pages and batches could wait for the
    // whole pass (millions of items the first time on an old store).
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (deleted > 0) {
    logger_.info("outbox", "deleted " + std::to_string(deleted) +
                               " items every sink had delivered before " +
                               Timestamp{cutoff / 1000, reference_.rules.utc_offset_minutes}.str() +
                               " (outbox_retention_days " +
                               std::to_string(config_.outbox_retention_days) + ")");
    metrics_.add("kpihub_outbox_compacted_total", {}, static_cast<double>(deleted));
  }
  return deleted;
}

// One call of Hub::run: its threads and what they tell each other.
class Hub::Runner {
 public:
  Runner(Hub& hub, const std::atomic<bool>& stop, RunMode mode)
      : hub_(hub), stop_(stop), mode_(mode) {}

  RunSummary run() {
    // Plugins blocked in a retry wait (sleep_ms) return early once asked to stop.
    const StopRelay relay(stop_, [this] { hub_.request_stop(); });
    std::vector<RunSummary> parts(hub_.sources_.size() + 1 + hub_.sinks_.size());
    std::vector<std::thread> threads;
    std::size_t part = 0;
    for (auto& s : hub_.sources_) {
      threads.emplace_back(
          [this, src = s.get(), out = &parts[part++]] { source_loop(*src, *out); });
    }
    threads.emplace_back([this, out = &parts[part++]] { scorer_loop(*out); });
    for (auto& s : hub_.sinks_) {
      threads.emplace_back(
          [this, sink = s.get(), out = &parts[part++]] { sink_loop(*sink, *out); });
    }
    for (auto& t : threads) t.join();
    RunSummary summary;
    for (const auto& p : parts) summary += p;
    try {
      for (auto& s : hub_.sinks_)
        summary.outbox_waiting += hub_.storage_.outbox().depth(s->config.name);
    } catch (const std::exception& e) {
      summary.errors.push_back(std::string("outbox: ") + e.what());
    }
    return summary;
  }

 private:
  bool once() const { return mode_ == RunMode::once; }
  bool stopping() const { return stop_.load() || hub_.stop_signal_.requested(); }
  int64_t now() const { return hub_.clock_.now_unix_ms(); }
  void event() {
    events_.fetch_add(1);
    cv_.notify_all();
  }
  bool any_source_catching_up() const {
    return std::any_of(hub_.sources_.begin(), hub_.sources_.end(),
                       [](const auto& s) { return s->catching_up.load(); });
  }

  // Waits `ms` on the hub's clock (or as long in real time, for a test clock standing still),
  // returning early on a stop or once `woken` says so.
  void nap(int64_t ms, const std::function<bool()>& woken) {
    const int64_t until = now() + ms;
    const auto real_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    std::unique_lock lock(mutex_);
    while (!stopping() && !woken()) {
      const int64_t real_left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    real_until - std::chrono::steady_clock::now())
                                    .count();
      const int64_t left = std::min(until - now(), real_left);
      if (left <= 0) return;
      cv_.wait_for(lock, std::chrono::milliseconds(std::min(left, kPollMs)));
    }
  }
  // Until the next event (a page stored, a scoring round, a task done) or `ms`.
  void nap_until_event(int64_t ms) {
    const uint64_t seen = events_.load();
    nap(ms, [&] { return events_.load() != seen; });
  }

  // After the `failures`-th failure in a row of `task`: logs it and returns how long to wait
  // before the next try, or nullopt when a run --once gives up on the task (the caller reports
  // it). The same for every task and both modes.
  std::optional<int64_t> after_failure(const std::string& task, uint32_t failures, bool transient,
                                       const std::string& what) {
    if (once() && (!transient || failures >= static_cast<uint32_t>(hub_.options_.max_failures))) {
      hub_.logger_.error(task, what + "; not tried again in this run");
      return std::nullopt;
    }
    const int64_t wait = retry_wait_ms(failures - 1, transient);
    hub_.logger_.log(transient ? LogLevel::warn : LogLevel::error, task,
                     what + "; next try in " + std::to_string((wait + 999) / 1000) + " s");
    return wait;
  }

  void source_loop(SourceRuntime& s, RunSummary& out) {
    uint32_t failures = 0;
    while (!stopping()) {
      std::string failure;
      bool transient = true;
      try {
        if (!s.staff_ready) s.staff_ready = hub_.sync_staff(s);
        if (s.staff_ready) {
          s.catching_up = true;
          const bool more = hub_.pull_one(s, out);
          s.catching_up = more;
          failures = 0;
          hub_.give_back_memory();
          event();
          if (more) continue;
          if (once()) break;
          nap(s.config.interval_ms, [&] { return s.pull_now.exchange(false); });
          continue;
        }
        failure = "staff list not read: " + s.staff_error;
        transient = s.staff_error_transient;
      } catch (const PluginError& e) {
        failure = e.what();
        transient = e.status() == KPIHUB_ERR_TRANSIENT;
      } catch (const std::exception& e) {  // StoreError and the like: an operator must look
        failure = e.what();
        transient = false;
      }
      s.catching_up = false;
      if (stopping()) break;  // a pull cut short by the stop is no failure
      hub_.metrics_.add("kpihub_pull_errors_total", {{"source", s.config.name}}, 1);
      hub_.note_error(s, failure, s.staff_ready ? "failing" : "waiting_for_staff_list");
      const auto wait = after_failure(s.config.name, ++failures, transient, failure);
      if (!wait) {
        out.errors.push_back(s.staff_ready ? failure
                                           : "source " + s.config.name +
                                                 ": not pulled, because its staff list could "
                                                 "not be read (" +
                                                 s.staff_error + ")");
        break;
      }
      nap(*wait, [&] { return s.pull_now.exchange(false); });
    }
    s.catching_up = false;
    sources_done_.fetch_add(1);
    event();
  }

  void scorer_loop(RunSummary& out) {
    Scorer& scorer = *hub_.scorer_;
    uint32_t failures = 0, compaction_failures = 0;
    int64_t next_compaction = now();
    bool holding = false;  // since held_since, while sources catch up
    int64_t held_since = 0;
    bool draining = false;
    while (!stopping()) {
      // Outbox compaction shares the scorer's thread: both are the store's housekeeping, and
      // the scorer is what fills the outbox.
      if (now() >= next_compaction) {
        try {
          out.outbox_compacted += hub_.compact_outbox(stop_);
          compaction_failures = 0;
          next_compaction = now() + kCompactionIntervalMs;
        } catch (const std::exception& e) {
          if (stopping()) break;
          const auto wait = after_failure("outbox", ++compaction_failures, false, e.what());
          if (!wait) out.errors.push_back(std::string("outbox: ") + e.what());
          next_compaction = wait ? now() + *wait : std::numeric_limits<int64_t>::max();
        }
      }
      // Read before the round: a round that finds nothing after every source was done is the
      // last one a run --once needs.
      const bool sources_done = sources_done_.load() == hub_.sources_.size();
      if (!draining && !sources_done && any_source_catching_up()) {
        if (!holding) held_since = now();
        holding = true;
        if (now() - held_since < hub_.options_.max_scoring_hold_ms) {
          nap_until_event(kIdleMs);
          continue;
        }
      }
      holding = false;
      try {
        ScoringRunResult r;
        {
          StageTimer timer(out.score);
          // A month whose due date passed is rescored (overdue flags, agency status), whether or
          // not records came for it.
          scorer.refresh_time_dependent();
          r = scorer.score_pending();
          if (r.staff_months > 0) {
            hub_.metrics_.observe("kpihub_stage_seconds", {{"stage", "score"}}, timer.wall());
          }
        }
        // A month recompute's other threads: the timer counts this one only.
        out.score.cpu_s += scorer.take_helper_cpu_seconds();
        failures = 0;
        out.scored_staff_months += r.staff_months;
        hub_.metrics_.add("kpihub_staff_months_scored_total", {},
                          static_cast<double>(r.staff_months));
        if (r.staff_months > 0) {
          // Progress an operator can follow through a long run (issue 23: scoring printed
          // nothing).
          hub_.logger_.info("scorer",
                            "scored " + std::to_string(r.staff_months) +
                                " staff months: " + std::to_string(r.records_sent) + " records, " +
                                std::to_string(r.staff_months_sent) + " staff months and " +
                                std::to_string(r.agency_months_sent) + " agency months to send (" +
                                std::to_string(out.scored_staff_months) +
                                " staff months scored in this run)");
        }
        draining = r.staff_months > 0;
        if (draining) {
          hub_.give_back_memory();
          event();
          continue;
        }
        if (once() && sources_done) break;
        nap_until_event(kIdleMs);
      } catch (const std::exception& e) {
        draining = false;
        if (stopping()) break;
        const auto wait = after_failure("scorer", ++failures, false, e.what());
        if (!wait) {
          out.errors.push_back(std::string("scorer: ") + e.what());
          break;
        }
        nap(*wait, [] { return false; });
      }
    }
    scorer_done_at_ms_ = now();
    scorer_done_ = true;
    event();
  }

  void sink_loop(SinkRuntime& s, RunSummary& out) {
    // Every run tries the sink's pending batch at once, whatever wait an earlier run saved for
    // it (minutes after a few failures): an operator's run --once, or a hub restarted after the
    // receiver was fixed, would otherwise wait it out having sent nothing. The waits of this
    // run's own failures apply as usual.
    s.forwarder->try_at_once();
    uint32_t failures = 0;
    while (!stopping()) {
      try {
        // Read before stepping: a sink found idle after the scorer is done is idle for good.
        const bool last_round = scorer_done_.load();
        ForwardStep step;
        {
          StageTimer timer(out.forward);
          step = s.forwarder->step();
          if (step == ForwardStep::delivered) {
            hub_.metrics_.observe("kpihub_stage_seconds",
                                  {{"sink", s.config.name}, {"stage", "forward"}}, timer.wall());
          }
        }
        failures = 0;
        if (step == ForwardStep::delivered) {
          out.forwarded_batches++;
          continue;
        }
        if (step == ForwardStep::idle) {
          if (once() && last_round) break;
          nap_until_event(kIdleMs);
          continue;
        }
        const int64_t next = s.forwarder->next_attempt_ms();
        if (once() && last_round) {
          const int64_t deadline = scorer_done_at_ms_.load() + hub_.options_.forward_timeout_ms;
          if (next > deadline) {
            // What waits, why, and until when: the next run can tell whether to wait for it.
            const Forwarder::Waiting& w = s.forwarder->waiting();
            out.errors.push_back(
                "sink " + s.config.name + ": batch " + w.batch_id + " (" + std::to_string(w.items) +
                " items, " + std::to_string(w.attempts) + " attempts) not delivered (" + w.reason +
                "); next try at " +
                Timestamp{w.next_attempt_ms / 1000, hub_.reference_.rules.utc_offset_minutes}
                    .str() +
                ", " + std::to_string((w.next_attempt_ms - now() + 999) / 1000) +
                " s from now, after --forward-timeout (" +
                std::to_string(hub_.options_.forward_timeout_ms / 1000) +
                " s): it waits in the outbox for the next run");
            break;
          }
        }
        // A run --once whose scorer finishes meanwhile checks the timeout at once.
        nap(std::max<int64_t>(10, next - now()),
            [&] { return once() && !last_round && scorer_done_.load(); });
      } catch (const std::exception& e) {
        if (stopping()) break;
        const auto wait = after_failure(s.config.name, ++failures, false, e.what());
        if (!wait) {
          out.errors.push_back("sink " + s.config.name + ": " + e.what());
          break;
        }
        nap(*wait, [] { return false; });
      }
    }
  }

  Hub& hub_;
  const std::atomic<bool>& stop_;
  const RunMode mode_;
  std::mutex mutex_;  // for cv_ only
  std::condition_variable cv_;
  std::atomic<uint64_t> events_{0};
  std::atomic<std::size_t> sources_done_{0};
  std::atomic<bool> scorer_done_{false};
  std::atomic<int64_t> scorer_done_at_ms_{0};
};

RunSummary Hub::run(const std::atomic<bool>& stop, RunMode mode) {
  return Runner(*this, stop, mode).run();
}

}  // namespace kpihub
