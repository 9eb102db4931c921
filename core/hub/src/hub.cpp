#include <kpihub/hub.hpp>

#include "thread_cpu.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <iomanip>
#include <limits>
#include <mutex>
#include <sstream>
#include <thread>

namespace kpihub {

struct Hub::SourceRuntime {
  PluginInstanceConfig config;
  std::unique_ptr<PluginInstance> instance;
  std::optional<std::string> cursor;
  int failures = 0;
  // False while the source keeps a staff list the hub could not read yet:
  // pulling then would quarantine its people as unknown_staff.
  bool staff_ready = true;
  std::string staff_error;
  SourceStatus status;  // guarded by Hub::status_mutex_
  std::atomic<bool> pull_now{false};
};

struct Hub::SinkRuntime {
  PluginInstanceConfig config;
  std::unique_ptr<PluginInstance> instance;
  std::unique_ptr<Forwarder> forwarder;
};

std::string RunSummary::line() const {
  std::ostringstream s;
  s << "run: " << pages << " pages, " << records << " items: " << inserted << " new, " << updated
    << " updated, " << stale << " unchanged, " << quarantined << " quarantined; "
    << scored_staff_months << " staff-months scored; " << forwarded_batches
    << " batches forwarded; " << outbox_waiting << " items waiting in the outbox; "
    << (errors.empty() ? std::string("no errors") : std::to_string(errors.size()) + " errors");
  if (outbox_compacted > 0) {
    s << "; " << outbox_compacted << " delivered items deleted from the outbox";
  }
  return s.str();
}

std::string RunSummary::stages_line() const {
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << "stages:";
  const std::pair<const char*, const StageCost*> stages[] = {
      {"pull", &pull}, {"store", &store}, {"score", &score}, {"forward", &forward}};
  for (const auto& [name, cost] : stages) {
    s << (name == stages[0].first ? " " : ", ") << name << " " << cost->wall_s << " s (cpu "
      << cost->cpu_s << " s)";
  }
  return s.str();
}

namespace {
// Measures one stage of run_once into a RunSummary::StageCost.
class StageTimer {
 public:
  explicit StageTimer(RunSummary::StageCost& into)
      : into_(into), wall_(std::chrono::steady_clock::now()), cpu_(thread_cpu_seconds()) {}
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;
  ~StageTimer() {
    into_.wall_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count();
    into_.cpu_s += thread_cpu_seconds() - cpu_;
  }

 private:
  RunSummary::StageCost& into_;
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};
}  // namespace

Hub::Hub(const HubConfig& config, Store& store, ReferenceData& reference, Logger& logger,
         const Clock& clock, Metrics& metrics, HubOptions options)
    : config_(config),
      store_(store),
      reference_(reference),
      logger_(logger),
      clock_(clock),
      record_clock_(config, clock, reference.rules.utc_offset_minutes),
      metrics_(metrics),
      options_(options),
      secrets_(config.base_dir) {
  metrics_.declare("kpihub_pages_total", MetricType::counter, "Pages pulled and stored, by source");
  metrics_.declare("kpihub_records_pulled_total", MetricType::counter,
                   "Items in the pages pulled, by source");
  metrics_.declare("kpihub_records_stored_total", MetricType::counter,
                   "Records stored new or as a newer revision, by source");
  metrics_.declare("kpihub_records_quarantined_total", MetricType::counter,
                   "Items quarantined, by source and reason code");
  metrics_.declare("kpihub_pull_errors_total", MetricType::counter,
                   "Failed pulls of a running hub, by source");
  metrics_.declare("kpihub_staff_months_scored_total", MetricType::counter,
                   "Staff months scored by a running hub");
  metrics_.declare("kpihub_outbox_compacted_total", MetricType::counter,
                   "Delivered outbox items deleted after outbox_retention_days");
  metrics_.declare("kpihub_stage_seconds", MetricType::histogram,
                   "Wall seconds of one step of a stage: a page pulled or stored (by source), a "
                   "scoring round, a batch forwarded (by sink)");
  metrics_.add("kpihub_staff_months_scored_total", {}, 0);
  metrics_.add("kpihub_outbox_compacted_total", {}, 0);
}

Hub::~Hub() {
  // Instances go before their libraries (the LoadedPlugin shared_ptr they hold).
  sinks_.clear();
  sources_.clear();
}

std::vector<std::string> Hub::start() {
  std::vector<std::string> problems;
  PluginScan scan = scan_plugins(config_.plugin_dir);
  for (const auto& line : scan.refused) {
    logger_.error("plugins", line);
    problems.push_back(line);
    PluginStatus p;
    p.state = "refused";
    p.reason = line;
    plugins_.push_back(std::move(p));
  }
  for (const auto& loaded : scan.loaded) {
    const PluginInfo& info = loaded->info();
    plugins_.push_back({info.name, std::string(to_string(info.kind)), info.version,
                        info.description, info.file, "loaded", ""});
  }
  auto find = [&](const std::string& name,
                  kpihub_plugin_kind kind) -> std::shared_ptr<LoadedPlugin> {
    for (const auto& p : scan.loaded) {
      if (p->info().name == name && p->info().kind == kind) return p;
    }
    return nullptr;
  };
  auto create = [&](const PluginInstanceConfig& c,
                    kpihub_plugin_kind kind) -> std::unique_ptr<PluginInstance> {
    const std::string what = std::string(to_string(kind)) + " " + c.name;
    auto plugin = find(c.plugin, kind);
    if (!plugin) {
      const std::string line = what + ": no " + std::string(to_string(kind)) + " plugin named \"" +
                               c.plugin + "\" in " + config_.plugin_dir + "; it is left out";
      logger_.error(c.name, line);
      problems.push_back(line);
      return nullptr;
    }
    try {
      auto services =
          std::make_unique<HostServices>(c.name, logger_, clock_, secrets_, &metrics_,
                                         reference_.rules.utc_offset_minutes, &stop_signal_);
      return std::make_unique<PluginInstance>(plugin, c.name, c.settings_json, std::move(services));
    } catch (const PluginError& e) {
      const std::string line = std::string(e.what()) + "; it is left out";
      logger_.error(c.name, line);
      problems.push_back(line);
      return nullptr;
    }
  };
  for (const auto& c : config_.sources) {
    if (!c.enabled) continue;
    auto instance = create(c, KPIHUB_KIND_SOURCE);
    if (!instance) continue;
    auto s = std::make_unique<SourceRuntime>();
    s->config = c;
    s->instance = std::move(instance);
    s->cursor = store_.cursor(c.name);
    s->status.name = c.name;
    s->status.plugin = c.plugin;
    s->status.cursor = s->cursor;
    const MetricLabels labels{{"source", c.name}};
    for (const char* name : {"kpihub_pages_total", "kpihub_records_pulled_total",
                             "kpihub_records_stored_total", "kpihub_pull_errors_total"}) {
      metrics_.add(name, labels, 0);
    }
    for (int r = 0; r <= static_cast<int>(Reason::source_error); ++r) {
      metrics_.add("kpihub_records_quarantined_total",
                   {{"source", c.name}, {"reason", std::string(to_string(static_cast<Reason>(r)))}},
                   0);
    }
    sources_.push_back(std::move(s));
  }
  for (const auto& c : config_.sinks) {
    if (!c.enabled) continue;
    auto instance = create(c, KPIHUB_KIND_SINK);
    if (!instance) continue;
    auto s = std::make_unique<SinkRuntime>();
    s->config = c;
    s->instance = std::move(instance);
    s->forwarder = std::make_unique<Forwarder>(store_, *s->instance, c, config_.hub_id, clock_,
                                               logger_, metrics_);
    sinks_.push_back(std::move(s));
  }
  {
    // What the sources synced before, for those whose lists cannot be read now.
    const auto stored = store_.synced_staff();
    std::unique_lock<std::shared_mutex> lock(directory_mutex_);
    merge_synced_staff(reference_.directory, stored);
  }
  for (auto& s : sources_) s->staff_ready = sync_staff(*s);
  ingestor_ = std::make_unique<Ingestor>(
      store_, reference_, hub_today(config_, clock_, reference_.rules), &directory_mutex_);
  scorer_ = std::make_unique<Scorer>(store_, reference_, record_clock_, config_.hub_id,
                                     &directory_mutex_);
  explainer_ = std::make_unique<Scorer>(store_, reference_, record_clock_, config_.hub_id,
                                        &directory_mutex_);
  return problems;
}

bool Hub::sync_staff(SourceRuntime& s) {
  try {
    auto staff = s.instance->list_staff();
    if (!staff) return true;
    // Kept in the store first: every command scores with what the store holds, and so does
    // this hub, which merges the store's lists (not only this one) as load_reference does.
    const int64_t synced_at = clock_.now_unix_ms();
    std::vector<SyncedStaff> entries;
    entries.reserve(staff->size());
    std::size_t added = 0;
    {
      const auto lock = read_lock(&directory_mutex_);
      for (const auto& e : *staff) {
        SyncedStaff entry;
        entry.source = s.config.name;
        entry.staff_code.assign(e.staff_code.data ? e.staff_code.data : "", e.staff_code.size);
        if (entry.staff_code.empty()) continue;
        entry.full_name.assign(e.full_name.data ? e.full_name.data : "", e.full_name.size);
        entry.agency_code.assign(e.agency_code.data ? e.agency_code.data : "", e.agency_code.size);
        entry.leader = e.leader != 0;
        entry.active = e.active != 0;
        entry.synced_at_unix_ms = synced_at;
        if (!reference_.directory.staff(entry.staff_code)) ++added;
        entries.push_back(std::move(entry));
      }
    }
    store_.save_synced_staff(s.config.name, entries);
    const auto stored = store_.synced_staff();
    {
      std::unique_lock<std::shared_mutex> lock(directory_mutex_);
      merge_synced_staff(reference_.directory, stored);
    }
    logger_.info(s.config.name, "staff directory: " + std::to_string(staff->size()) +
                                    " entries from the source, " + std::to_string(added) +
                                    " new; kept in the store");
    s.staff_error.clear();
    return true;
  } catch (const PluginError& e) {
    s.staff_error = e.what();
    logger_.warn(
        s.config.name,
        std::string("staff list not read; the source is not pulled until it is: ") + e.what());
    return false;
  } catch (const StoreError& e) {
    // Pulled without it, the source's records would be scored with a directory no command
    // run beside the hub knows.
    s.staff_error = e.what();
    logger_.warn(
        s.config.name,
        std::string("staff list not kept; the source is not pulled until it is: ") + e.what());
    return false;
  }
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
  s.failures = 0;
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

RunSummary Hub::run_once(const std::atomic<bool>& stop) {
  RunSummary summary;
  // A source waiting out a retry (up to its Retry-After maximum) returns at once on a stop.
  const StopRelay relay(stop, [this] { request_stop(); });
  for (auto& s : sources_) {
    // Stopped: the sources not pulled yet are not failures.
    if (stop.load()) break;
    int failures = 0;
    for (int attempt = 1; !s->staff_ready && attempt < options_.max_pull_failures && !stop.load();
         ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
      s->staff_ready = sync_staff(*s);
    }
    if (stop.load()) break;
    if (!s->staff_ready) {
      summary.errors.push_back("source " + s->config.name +
                               ": not pulled, because its staff list could not be read (" +
                               s->staff_error + ")");
      continue;
    }
    while (!stop.load()) {
      try {
        if (!pull_one(*s, summary)) break;
      } catch (const PluginError& e) {
        if (e.status() == KPIHUB_ERR_TRANSIENT && ++failures < options_.max_pull_failures) {
          logger_.warn(s->config.name, std::string(e.what()) + "; retrying");
          std::this_thread::sleep_for(std::chrono::milliseconds(200 * failures));
          continue;
        }
        logger_.error(s->config.name, e.what());
        note_error(*s, e.what(), "failing");
        summary.errors.push_back(e.what());
        break;
      } catch (const StoreError& e) {
        logger_.error(s->config.name, e.what());
        summary.errors.push_back(e.what());
        return summary;
      }
    }
  }
  // Forwarding overlaps scoring: while the receiver takes one batch, the
  // scorer goes on with the next staff-months (the store serializes their
  // transactions). Sequential, run --once spent most of its forwarding time
  // waiting for the receiver's answers.
  std::atomic<bool> scoring_done{false};
  RunSummary forwarded;
  std::thread forwarding([&] { forward_pending(forwarded, stop, scoring_done); });
  try {
    StageTimer timer(summary.score);
    // A month whose due date passed since the last run is rescored (overdue flags, agency
    // status), whether or not this run brought records for it.
    scorer_->refresh_time_dependent();
    while (!stop.load()) {
      auto r = scorer_->score_pending();
      summary.scored_staff_months += r.staff_months;
      if (r.staff_months == 0) break;
    }
    // A month recompute's other threads: the timer counts this one only.
    summary.score.cpu_s += scorer_->take_helper_cpu_seconds();
  } catch (...) {
    scoring_done = true;
    forwarding.join();
    throw;
  }
  scoring_done = true;
  forwarding.join();
  try {
    summary.outbox_compacted = compact_outbox(stop);
  } catch (const std::exception& e) {
    summary.errors.push_back(std::string("outbox: ") + e.what());
  }
  summary.forward = forwarded.forward;
  summary.forwarded_batches = forwarded.forwarded_batches;
  summary.outbox_waiting = forwarded.outbox_waiting;
  for (auto& e : forwarded.errors) summary.errors.push_back(std::move(e));
  return summary;
}

namespace {
// Sleeps up to `ms`, returning early once `stop` is set (or `wake`, which
// it then clears: a manual pull from the admin API).
void nap(const std::atomic<bool>& stop, int64_t ms, std::atomic<bool>* wake = nullptr) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!stop.load() && std::chrono::steady_clock::now() < until) {
    if (wake && wake->exchange(false)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(ms, 50)));
  }
}
}  // namespace

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
    const std::size_t n = store_.compact_outbox(sinks, cutoff, kItemsPerTransaction);
    if (n == 0) break;
    deleted += n;
    // The store's mutex is not fair: without a pause, pages and batches could wait for the
    // whole pass (millions of items the first time on an old store).
    nap(stop, 5);
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

void Hub::forward_pending(RunSummary& out, const std::atomic<bool>& stop,
                          const std::atomic<bool>& scoring_done) {
  StageTimer timer(out.forward);
  // How often an idle sink looks for batches while the scorer still writes them.
  constexpr int64_t kPollMs = 20;
  std::optional<int64_t> deadline;
  std::vector<bool> finished(sinks_.size(), false);
  // An operator's run tries each sink's pending batch at once, whatever wait an earlier run
  // saved for it (up to minutes after a few failures): otherwise a run within that wait would
  // end having sent nothing.
  for (auto& s : sinks_) s->forwarder->try_at_once();
  try {
    while (!stop.load()) {
      // Read before stepping: a sink found idle after this is idle for good.
      const bool last_round = scoring_done.load();
      const int64_t now = clock_.now_unix_ms();
      if (last_round && !deadline) deadline = now + options_.forward_timeout_ms;
      bool delivered = false;
      int64_t wake_at = last_round ? std::numeric_limits<int64_t>::max() : now + kPollMs;
      for (std::size_t i = 0; i < sinks_.size(); ++i) {
        if (finished[i]) continue;
        SinkRuntime& s = *sinks_[i];
        const ForwardStep step = s.forwarder->step();
        if (step == ForwardStep::delivered) {
          out.forwarded_batches++;
          delivered = true;
        } else if (step == ForwardStep::idle) {
          finished[i] = last_round;
        } else if (deadline && s.forwarder->next_attempt_ms() > *deadline) {
          // What waits, why, and until when: the next run can tell whether to wait for it.
          const Forwarder::Waiting& w = s.forwarder->waiting();
          out.errors.push_back(
              "sink " + s.config.name + ": batch " + w.batch_id + " (" + std::to_string(w.items) +
              " items, " + std::to_string(w.attempts) + " attempts) not delivered (" + w.reason +
              "); next try at " +
              Timestamp{w.next_attempt_ms / 1000, reference_.rules.utc_offset_minutes}.str() +
              ", " + std::to_string((w.next_attempt_ms - now + 999) / 1000) +
              " s from now, after --forward-timeout (" +
              std::to_string(options_.forward_timeout_ms / 1000) +
              " s): it waits in the outbox for the next run");
          finished[i] = true;
        } else {
          wake_at = std::min(wake_at, s.forwarder->next_attempt_ms());
        }
      }
      if (std::all_of(finished.begin(), finished.end(), [](bool f) { return f; })) break;
      if (delivered || wake_at == std::numeric_limits<int64_t>::max()) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::clamp<int64_t>(wake_at - clock_.now_unix_ms(), 1, kPollMs * 50)));
    }
    for (auto& s : sinks_) out.outbox_waiting += store_.outbox_depth(s->config.name);
  } catch (const std::exception& e) {
    // On this thread an escaping exception would end the process: report it as run_once would.
    logger_.error("forward", e.what());
    out.errors.push_back(e.what());
  }
}

void Hub::run(const std::atomic<bool>& stop) {
  std::vector<std::thread> threads;
  for (auto& s : sources_) {
    threads.emplace_back([&, src = s.get()] {
      RunSummary summary;
      int failures = 0;
      while (!stop.load()) {
        try {
          if (!src->staff_ready) {
            src->staff_ready = sync_staff(*src);
            if (!src->staff_ready) {
              note_error(*src, "staff list not read: " + src->staff_error,
                         "waiting_for_staff_list");
              nap(stop, std::min<int64_t>(300000, 1000LL << std::min(++failures, 8)));
              continue;
            }
          }
          if (pull_one(*src, summary)) continue;  // more pages right away
          failures = 0;
          nap(stop, src->config.interval_ms, &src->pull_now);
        } catch (const std::exception& e) {
          ++failures;
          logger_.error(src->config.name, e.what());
          note_error(*src, e.what(), "failing");
          metrics_.add("kpihub_pull_errors_total", {{"source", src->config.name}}, 1);
          nap(stop, std::min<int64_t>(300000, 1000LL << std::min(failures, 8)));
        }
      }
    });
  }
  threads.emplace_back([&] {
    // Outbox compaction shares the scorer's thread: both are the store's housekeeping, and
    // the scorer is what fills the outbox. Hourly, the first time at start.
    constexpr auto kCompactionInterval = std::chrono::hours(1);
    auto next_compaction = std::chrono::steady_clock::now();
    while (!stop.load()) {
      try {
        if (std::chrono::steady_clock::now() >= next_compaction) {
          next_compaction = std::chrono::steady_clock::now() + kCompactionInterval;
          try {
            compact_outbox(stop);
          } catch (const std::exception& e) {
            logger_.error("outbox", e.what());  // tried again in an hour; scoring goes on
          }
        }
        scorer_->refresh_time_dependent();
        const auto started = std::chrono::steady_clock::now();
        auto r = scorer_->score_pending();
        if (r.staff_months > 0) {
          metrics_.observe(
              "kpihub_stage_seconds", {{"stage", "score"}},
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
          metrics_.add("kpihub_staff_months_scored_total", {}, static_cast<double>(r.staff_months));
        }
        if (r.staff_months == 0) nap(stop, 200);
      } catch (const std::exception& e) {
        logger_.error("scorer", e.what());
        nap(stop, 5000);
      }
    }
  });
  for (auto& s : sinks_) {
    threads.emplace_back([&, sink = s.get()] {
      while (!stop.load()) {
        try {
          const auto started = std::chrono::steady_clock::now();
          const ForwardStep step = sink->forwarder->step();
          if (step == ForwardStep::delivered) {
            metrics_.observe(
                "kpihub_stage_seconds", {{"sink", sink->config.name}, {"stage", "forward"}},
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
          }
          if (step == ForwardStep::idle) nap(stop, 200);
          if (step == ForwardStep::deferred) {
            nap(stop,
                std::max<int64_t>(10, sink->forwarder->next_attempt_ms() - clock_.now_unix_ms()));
          }
        } catch (const std::exception& e) {
          logger_.error(sink->config.name, e.what());
          nap(stop, 5000);
        }
      }
    });
  }
  // Plugins blocked in a retry wait (sleep_ms) return early once asked to stop.
  const StopRelay relay(stop, [this] { request_stop(); });
  for (auto& t : threads) t.join();
}

void Hub::note_error(SourceRuntime& s, const std::string& error, const char* state) {
  std::lock_guard lock(status_mutex_);
  s.status.state = state;
  s.status.last_error = error;
  s.status.last_error_ms = clock_.now_unix_ms();
}

std::vector<SourceStatus> Hub::source_status() const {
  std::lock_guard lock(status_mutex_);
  std::vector<SourceStatus> out;
  out.reserve(sources_.size());
  for (const auto& s : sources_) out.push_back(s->status);
  return out;
}

std::vector<PluginStatus> Hub::plugin_status() const {
  return plugins_;
}

ReplayResult Hub::replay_quarantine(const std::string& source, const std::string& reason,
                                    int64_t id) {
  if (!ingestor_) return {};
  ingestor_->set_today(hub_today(config_, clock_, reference_.rules));
  return kpihub::replay_quarantine(store_, *ingestor_, source, reason, id,
                                   record_clock_.now_unix_ms());
}

std::string Hub::explain(const std::string& staff_code, const Month& month) {
  std::lock_guard lock(explain_mutex_);
  if (!explainer_) return "the hub has not started\n";
  return kpihub::explain(explainer_->explain_staff_month(staff_code, month));
}

bool Hub::request_pull(const std::string& source_name) {
  for (auto& s : sources_) {
    if (s->config.name == source_name) {
      s->pull_now = true;
      return true;
    }
  }
  return false;
}

}  // namespace kpihub
