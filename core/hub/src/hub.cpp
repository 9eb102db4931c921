#include <kpihub/hub.hpp>

#include "hub_runtime.hpp"

#include <iomanip>
#include <mutex>
#include <sstream>
#include <utility>

namespace kpihub {

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

RunSummary& RunSummary::operator+=(const RunSummary& o) {
  pages += o.pages;
  records += o.records;
  inserted += o.inserted;
  updated += o.updated;
  stale += o.stale;
  quarantined += o.quarantined;
  scored_staff_months += o.scored_staff_months;
  forwarded_batches += o.forwarded_batches;
  outbox_waiting += o.outbox_waiting;
  outbox_compacted += o.outbox_compacted;
  errors.insert(errors.end(), o.errors.begin(), o.errors.end());
  for (auto [into, from] : {std::pair{&pull, &o.pull}, std::pair{&store, &o.store},
                            std::pair{&score, &o.score}, std::pair{&forward, &o.forward}}) {
    into->wall_s += from->wall_s;
    into->cpu_s += from->cpu_s;
  }
  return *this;
}

Hub::Hub(const HubConfig& config, Storage& storage, ReferenceData& reference, Logger& logger,
         const Clock& clock, Metrics& metrics, HubOptions options)
    : config_(config),
      storage_(storage),
      reference_(reference),
      logger_(logger),
      clock_(clock),
      record_clock_(config, clock, reference.rules.utc_offset_minutes),
      metrics_(metrics),
      options_(std::move(options)),
      secrets_(config.base_dir) {
  metrics_.declare("kpihub_pages_total", MetricType::counter, "Pages pulled and stored, by source");
  metrics_.declare("kpihub_records_pulled_total", MetricType::counter,
                   "Items in the pages pulled, by source");
  metrics_.declare("kpihub_records_stored_total", MetricType::counter,
                   "Records stored new or as a newer revision, by source");
  metrics_.declare("kpihub_records_quarantined_total", MetricType::counter,
                   "Items quarantined, by source and reason code");
  metrics_.declare("kpihub_pull_errors_total", MetricType::counter,
                   "Failed pulls of a page or of the staff list, by source");
  metrics_.declare("kpihub_staff_months_scored_total", MetricType::counter, "Staff months scored");
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
      return std::make_unique<PluginInstance>(plugin, c.name, c.settings_json, std::move(services),
                                              plugin_isolation(c, plugin->info()));
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
    s->cursor = storage_.records().cursor(c.name);
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
    s->forwarder = std::make_unique<Forwarder>(storage_.outbox(), *s->instance, c, config_.hub_id,
                                               clock_, logger_, metrics_);
    sinks_.push_back(std::move(s));
  }
  {
    // What the sources synced before, for those whose lists cannot be read now.
    const auto stored = storage_.staff_lists().synced_staff();
    std::unique_lock<std::shared_mutex> lock(directory_mutex_);
    merge_synced_staff(reference_.directory, stored);
  }
  for (auto& s : sources_) s->staff_ready = sync_staff(*s);
  ingestor_ =
      std::make_unique<Ingestor>(storage_.records(), reference_,
                                 hub_today(config_, clock_, reference_.rules), &directory_mutex_);
  scorer_ = std::make_unique<Scorer>(storage_.scoring(), storage_.records(), reference_,
                                     record_clock_, config_.hub_id, &directory_mutex_, &clock_);
  explainer_ = std::make_unique<Scorer>(storage_.scoring(), storage_.records(), reference_,
                                        record_clock_, config_.hub_id, &directory_mutex_, &clock_);
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
    storage_.staff_lists().save_synced_staff(s.config.name, entries);
    {
      const auto stored = storage_.staff_lists().synced_staff();
      std::unique_lock<std::shared_mutex> lock(directory_mutex_);
      merge_synced_staff(reference_.directory, stored);
    }
    const std::size_t listed = staff->size();
    // What the sync held (the list three times over, 20 MB for 35,000 staff) goes back now.
    staff.reset();
    std::vector<SyncedStaff>().swap(entries);
    give_back_memory();
    logger_.info(s.config.name, "staff directory: " + std::to_string(listed) +
                                    " entries from the source, " + std::to_string(added) +
                                    " new; kept in the store");
    s.staff_error.clear();
    return true;
  } catch (const PluginError& e) {
    s.staff_error = e.what();
    s.staff_error_transient = e.status() == KPIHUB_ERR_TRANSIENT;
    logger_.warn(
        s.config.name,
        std::string("staff list not read; the source is not pulled until it is: ") + e.what());
    return false;
  } catch (const StoreError& e) {
    // Pulled without it, the source's records would be scored with a directory no command
    // run beside the hub knows.
    s.staff_error = e.what();
    s.staff_error_transient = false;
    logger_.warn(
        s.config.name,
        std::string("staff list not kept; the source is not pulled until it is: ") + e.what());
    return false;
  }
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
  for (const auto& s : sources_) {
    out.push_back(s->status);
    // A plugin in the hub's process cannot be stopped past its time limit (a child process
    // would be killed): it is reported stuck while its call goes on.
    const auto running = s->instance->running_call();
    const auto limit = s->instance->isolation().time_limit;
    if (!s->instance->isolation().process && running && running->running_for > limit) {
      SourceStatus& status = out.back();
      status.state = "stuck";
      status.last_error = s->instance->context() + ": its " + running->what + " has run for " +
                          duration_text(running->running_for) + ", past its time limit of " +
                          duration_text(limit) +
                          " (time_limit_ms); a plugin in the hub's process cannot be "
                          "stopped: restart the hub, or run the plugin with \"isolation\": "
                          "\"process\"";
      status.last_error_ms = clock_.now_unix_ms();
    }
  }
  return out;
}

std::vector<PluginStatus> Hub::plugin_status() const {
  return plugins_;
}

ReplayResult Hub::replay_quarantine(const std::string& source, const std::string& reason,
                                    int64_t id) {
  if (!ingestor_) return {};
  ingestor_->set_today(hub_today(config_, clock_, reference_.rules));
  return kpihub::replay_quarantine(storage_.views(), *ingestor_, source, reason, id,
                                   record_clock_.now_unix_ms());
}

std::string Hub::explain(const std::string& staff_code, const Month& month) {
  std::lock_guard lock(explain_mutex_);
  if (!explainer_) return "the hub has not started\n";
  return kpihub::explain(explainer_->explain_staff_month(staff_code, month));
}

PluginIsolation plugin_isolation(const PluginInstanceConfig& config, const PluginInfo& plugin) {
  PluginIsolation isolation;
  isolation.process = config.isolation_process.value_or(!built_with_hub(plugin));
  isolation.time_limit = std::chrono::milliseconds(config.time_limit_ms);
  return isolation;
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
