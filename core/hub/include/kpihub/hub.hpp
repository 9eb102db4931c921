// The pipeline: pull pages from sources, validate and resolve them, store
// them with the cursor in one transaction, score what they touched, and
// forward the outbox to the sinks.
#pragma once

#include <kpihub/host_services.hpp>
#include <kpihub/hub_config.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/metrics.hpp>
#include <kpihub/plugins.hpp>
#include <kpihub/reference.hpp>
#include <kpihub/scoring.hpp>
#include <kpihub/store/storage.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kpihub {

// The hub's "today": the configured date, else the local date of the clock.
Date hub_today(const HubConfig& config, const Clock& clock, const Rules& rules);

// The clock of the records' world: the system clock moved to hub.json's
// `today` when it is set (backfills, demos, tests), so received-at times,
// late submissions and due dates agree with the date records are validated
// against. Network timing (retries, tokens, Retry-After) keeps the real clock.
class RecordClock final : public Clock {
 public:
  RecordClock(const HubConfig& config, const Clock& base, int32_t utc_offset_minutes);
  int64_t now_unix_ms() const override { return base_.now_unix_ms() + shift_ms_; }
  int64_t shift_ms() const { return shift_ms_; }

 private:
  const Clock& base_;
  int64_t shift_ms_ = 0;
};

// Shared hold on an optional lock (none: nothing to hold).
inline std::shared_lock<std::shared_mutex> read_lock(std::shared_mutex* m) {
  return m ? std::shared_lock<std::shared_mutex>(*m) : std::shared_lock<std::shared_mutex>();
}

// ---------------------------------------------------- staff directory -----

// Merges staff list entries into the directory, in their order: each sets the staff member's
// name, agency, leader and active flags; the sector and identifiers of the staff files stay.
void merge_synced_staff(Directory& directory, const std::vector<SyncedStaff>& entries);

// The reference data every command and the running hub score with: the files hub.json names
// (load_reference(config)), their staff directory merged with every staff list the sources
// synced (StaffLists::synced_staff, oldest first). The running hub merges each list it syncs again.
// A command that opens the store only to score loads the files first and merges the lists
// (merge_synced_staff) once the store is open: a file that does not load leaves the store as it
// is (not created, not upgraded).
ReferenceData load_reference(const HubConfig& config, StaffLists& staff_lists);

// ------------------------------------------------------------- ingest -----

struct IngestResult {
  PageCommitResult commit;
  std::size_t records_in_page = 0;
  std::map<std::string, std::size_t> quarantined_by_reason;
};

// Validates and resolves one page and commits it with its cursor.
// What replaying quarantine entries did.
struct ReplayResult {
  std::size_t replayed = 0;        // now valid: stored, entry removed
  std::size_t still_failing = 0;   // entry kept (its reason may have changed)
  std::size_t not_replayable = 0;  // the adapter gave no record (parse errors): fix at the source
  std::vector<std::string> problems;  // one line per entry still failing
};

class Ingestor {
 public:
  // `directory_lock`, when given, is held shared while the directory is read:
  // the hub merges a source's staff list into it while other sources run.
  Ingestor(RecordLog& records, const ReferenceData& reference, Date today,
           std::shared_mutex* directory_lock = nullptr);
  // Pure part: the commit the page becomes (records resolved, rejects as
  // quarantine entries). Exposed for tests and benchmarks.
  PageCommit prepare(const std::string& source, const kpihub_page& page, int64_t now_ms) const;
  IngestResult ingest(const std::string& source, const kpihub_page& page, int64_t now_ms);
  // Validates quarantined records again with the current reference data and
  // stores those that now pass (after a catalog or staff directory fix).
  ReplayResult replay(const std::vector<QuarantineRow>& rows, int64_t now_ms);
  // Source threads move the date forward while the hub runs past midnight.
  void set_today(Date today) { today_days_.store(today.days); }
  Date today() const { return Date{today_days_.load()}; }

 private:
  // Fills staff_code/agency_code from the directory and checks the task, or
  // returns the quarantine entry that explains why not.
  std::optional<QuarantineEntry> resolve(WorkRecord& record, const kpihub_record& raw) const;
  // resolve(), except that a withdrawal needs no content: one without any, or whose content
  // does not resolve, withdraws by its id alone (is_bare_withdrawal).
  std::optional<QuarantineEntry> resolve_or_withdraw(WorkRecord& record,
                                                     const kpihub_record& raw) const;

  RecordLog& records_;
  const ReferenceData& reference_;
  std::atomic<int32_t> today_days_;
  std::shared_mutex* directory_lock_;
};

// Reads the matching quarantine rows (all pages) and replays them.
ReplayResult replay_quarantine(OperatorViews& views, Ingestor& ingestor, const std::string& source,
                               const std::string& reason, int64_t id, int64_t now_ms);

// ------------------------------------------------------------- scoring ----

// The number a new version of what the hub sends carries: a record's scoring.sequence, a staff
// or agency month's revision. Above the previous one (0: never sent), and never below the
// clock's milliseconds since 1970. A counter alone started again, after a store was restored
// from a backup or lost, from values a receiver already held with other content, and the
// receiver kept those (issue 19 section 4); the clock has moved past them. So a sequence starts
// at the time it is first sent, not at 1 as kpi-model.md's example has it (receivers only
// compare them; docs/architecture.md).
int64_t next_send_number(int64_t previous, int64_t now_unix_ms);

struct ScoringRunResult {
  std::size_t staff_months = 0;
  std::size_t records_sent = 0;
  std::size_t staff_months_sent = 0;
  std::size_t agency_months_sent = 0;
};

// Rescores dirty staff-months and their agency months; changed results go to
// the outbox in the same transaction.
class Scorer {
 public:
  // Reads and commits through `state`; reads whole records (the items it sends) from
  // `records`.
  // `clock` is the scoring's ("today" may set it to another day); `send_clock` numbers what is
  // sent (next_send_number) and must be the real one, or numbers would follow the configured
  // day back in time after a restart (nullptr: `clock`, for tests and tools without "today").
  // `send`: what goes to the outbox, what changed since it was last sent (the pipeline) or
  // everything the scorer reads (`kpihub resend`, after a restore: the receiver may hold
  // versions the restored store does not know it sent).
  enum class Send { changed, everything };
  Scorer(ScoringState& state, RecordLog& records, const ReferenceData& reference,
         const Clock& clock, std::string hub_id, std::shared_mutex* directory_lock = nullptr,
         const Clock* send_clock = nullptr, Send send = Send::changed);
  // Processes up to `max_keys` dirty staff-months, and stops taking more once it has read
  // kRecordsPerRun records. Returns what it did. One store transaction per call, except for a
  // staff month of more than kRecordsPerRun records (a lab clinician's month of a large
  // hospital export, issue 18): it runs alone, read, scored and committed a few whole days at a
  // time (about kRecordsPerRun records each), its records' scores and items first
  // (kRecordsPerCommit a transaction), its staff month, dirty mark and agency months last; a crash
  // in between leaves it dirty, and the records already committed are not sent again. A run of
  // changed days (~10 records per staff month) takes up to max_keys staff months, so the run's
  // fixed cost (the agency months of each month it touched) is spread over many (issue 8: it
  // was a quarter of incremental scoring at 64 keys). In a backlog, where most staff months
  // are scored whole, the records budget bounds what the commit holds: at 16,384 the hub's
  // peak RSS at 700 staff was 71.3 MB, at 8,192 58.1 MB (bench/run, same speed). A RocksDB
  // commit is also a WriteBatch as large as the commit (the heap's largest item at a
  // province-month, 28.8 MB at 8,192): at 2,048 the hub peaked at 92 MB against 110 MB at 4,096
  // (700 staff, RocksDB; SQLite 55 against 59 MB), no slower.
  static constexpr std::size_t kRecordsPerRun = 2048;
  // Record scores and items per transaction of a staff month that runs alone (above).
  static constexpr std::size_t kRecordsPerCommit = 2048;
  ScoringRunResult score_pending(std::size_t max_keys = 1024);
  // Marks months whose closed/open state changed since last seen dirty
  // (overdue flags and agency status depend on the due date). The first call also marks any
  // of the last kMonthsClosingWhileAway months that is closed while its agency months were
  // last scored open: it closed while no scorer ran.
  void refresh_time_dependent();
  static constexpr int kMonthsClosingWhileAway = 12;
  // Recomputes one staff-month without storing anything (for `explain`).
  StaffMonthResult explain_staff_month(const std::string& staff_code, const Month& month);
  // Recomputes every staff month of a month and every agency month from the store (no outbox).
  std::vector<StaffMonthResult> compute_month(const Month& month);
  // CPU seconds month recomputes spent on threads other than the caller's since the last call
  // (the caller's own it can measure itself), for the run's stage figures.
  double take_helper_cpu_seconds() { return std::exchange(helper_cpu_s_, 0.0); }

 private:
  struct CachedMonth {
    // What agency summaries read, contiguous so they read it in place (a copy per scoring
    // transaction was 14 MB at 35,000 staff), ~100 bytes per staff member.
    std::vector<StaffMonthSummary> staff;
    std::unordered_map<std::string, std::size_t> index;  // staff code -> position in `staff`
    bool complete = false;
    bool closed = false;
    void put(const std::string& staff_code, const StaffMonthResult& result);
  };
  StaffMonthResult score_one(const StaffMonthKey& key, ScoringState::StaffMonthForScoring& stored);
  CachedMonth& month_cache(const std::string& month);
  // Marks dirty each of the last kMonthsClosingWhileAway months that is closed at `t` while its
  // stored agency months say `open`.
  void mark_months_closed_while_away(Timestamp t);
  Timestamp now() const;

  ScoringState& state_;
  RecordLog& records_;
  const ReferenceData& reference_;
  const Clock& clock_;
  std::string hub_id_;
  std::shared_mutex* directory_lock_;
  const Clock& send_clock_;
  Send send_;
  ScoredRecordWriter writer_;
  std::map<std::string, CachedMonth> cache_;
  bool past_due_checked_ = false;
  double helper_cpu_s_ = 0;
};

// ------------------------------------------------------------- forward ----

enum class ForwardStep { idle, delivered, deferred };

// Drains the outbox of one sink, a batch at a time, in order.
class Forwarder {
 public:
  Forwarder(Outbox& outbox, PluginInstance& sink, const PluginInstanceConfig& config,
            std::string hub_id, const Clock& clock, Logger& logger, Metrics& metrics);
  ForwardStep step();
  // When the pending batch may be retried (unix ms), after a deferred step.
  int64_t next_attempt_ms() const { return next_attempt_ms_; }
  // The batch a deferred step left waiting: what it is, why it waits, until when.
  struct Waiting {
    std::string batch_id;
    std::size_t items = 0;
    uint32_t attempts = 0;  // made so far, by any run
    std::string reason;     // the last failure
    int64_t next_attempt_ms = 0;
  };
  const Waiting& waiting() const { return waiting_; }
  // The next step tries the pending batch whatever wait an earlier run saved for it (an
  // operator's run --once); the waits of this run's own failures apply as usual.
  void try_at_once() { try_at_once_ = true; }
  const std::string& name() const { return config_.name; }

 private:
  Outbox& outbox_;
  PluginInstance& sink_;
  PluginInstanceConfig config_;
  std::string hub_id_;
  const Clock& clock_;
  Logger& logger_;
  Metrics& metrics_;
  int64_t next_attempt_ms_ = 0;
  Waiting waiting_;
  bool try_at_once_ = false;
  // The batch being retried, in memory only: the most items a delivery of it
  // settled, and its stored attempt count when that number last grew.
  std::string progress_batch_id_;
  std::size_t progress_settled_items_ = 0;
  uint32_t progress_at_attempt_ = 0;
  // Items delivered by this forwarder since it started, for the progress line of each batch.
  std::size_t delivered_items_ = 0;
};

// ---------------------------------------------------------------- hub -----

struct RunSummary {
  std::size_t pages = 0;
  std::size_t records = 0;
  std::size_t inserted = 0;
  std::size_t updated = 0;
  std::size_t stale = 0;
  std::size_t quarantined = 0;
  std::size_t scored_staff_months = 0;
  std::size_t forwarded_batches = 0;
  int64_t outbox_waiting = 0;
  std::size_t outbox_compacted = 0;  // delivered items deleted (outbox_retention_days)
  std::vector<std::string> errors;   // one line each, for the operator
  // Where the run spent its time, per stage: the wall seconds of its steps (a page pulled, a
  // page stored, a scoring round, a delivery attempt; waits between them are not counted) and
  // the CPU seconds of the thread that ran them (the plugins run on that thread too), and for
  // `score` those of the threads a month recompute reads and scores on besides it.
  struct StageCost {
    double wall_s = 0;
    double cpu_s = 0;
  };
  StageCost pull, store, score, forward;
  bool ok() const { return errors.empty(); }
  // Adds the counts, stage costs and errors of `other` (a thread's part of the run).
  RunSummary& operator+=(const RunSummary& other);
  std::string line() const;
  // "stages: pull 1.20 s (cpu 0.90 s), store ..." for capacity planning and bench/run.
  std::string stages_line() const;
};

// One source as the admin API and the dashboard show it (a snapshot).
struct SourceStatus {
  std::string name;
  std::string plugin;
  // starting, pulling, caught_up, failing, waiting_for_staff_list, stuck (a call in the hub's
  // process past its time limit)
  std::string state = "starting";
  // False while the source fails, waits for its staff list or is stuck: /readyz and
  // kpihub_source_up.
  bool up() const {
    return state != "failing" && state != "waiting_for_staff_list" && state != "stuck";
  }
  std::optional<std::string> cursor;
  int64_t last_success_ms = 0;    // last page stored
  int64_t last_caught_up_ms = 0;  // last time the source had nothing newer
  int64_t last_error_ms = 0;
  std::string last_error;
  std::string progress;
  std::size_t pages = 0;
  std::size_t records = 0;
};

struct PluginStatus {
  std::string name;
  std::string kind;  // source, sink
  std::string version;
  std::string description;
  std::string file;
  std::string state;   // loaded, refused
  std::string reason;  // why it was refused
};

// How long to wait before the next try of a task (a pull, a staff list, a delivery, a scoring
// round) after a failure that `failures` failures in a row came before: 1 s after the first,
// then 2 s, 4 s ... capped at 5 minutes, each
// drawn uniformly from its upper half so retrying hubs spread out. A failure an operator must
// fix (configuration, credentials, certificates, storage) waits at least 30 s.
int64_t retry_wait_ms(uint32_t failures, bool transient = true);

// What `Hub::run` runs until.
enum class RunMode {
  until_stopped,  // `kpihub run`: sources pulled at their intervals until `stop`
  // `kpihub run --once`: until every source is caught up (or gave up), the scorer has nothing
  // to do and every sink's outbox is empty (or its next try falls after forward_timeout_ms)
  once,
};

// Where a configured instance of `plugin` runs and its time limit: hub.json's "isolation" and
// "time_limit_ms", the default being a process of its own for every plugin not built with the
// hub.
PluginIsolation plugin_isolation(const PluginInstanceConfig& config, const PluginInfo& plugin);

struct HubOptions {
  // run --once: how long after the scorer finished to keep retrying a sink that does not take
  // batches.
  int64_t forward_timeout_ms = 60000;
  // run --once: failures in a row of one task (a source's pulls or staff list, the scorer, a
  // sink's loop) before the run gives up on it; a failure an operator must fix gives up at once.
  // `kpihub run` never gives up: it waits retry_wait_ms and tries again.
  int max_failures = 5;
  // While a source is catching up (its last page said there is more), the scorer waits, so a
  // staff month is scored once and not once per page that touches it; never longer than this.
  int64_t max_scoring_hold_ms = 300000;
  // Gives memory the process freed back to the system (none: never); called after a stored page,
  // a scoring round or a staff list sync, from one thread at a time, at most once a second.
  // `kpihub run` passes
  // glibc's malloc_trim: glibc keeps freed pages in its arenas, and a long run's heap fragments
  // (a 7.7 M record backlog: 100 MB held for 46 MB in use while pulling, 111 MB for 69 MB while
  // scoring).
  std::function<void()> return_free_memory;
};

// Until destroyed, watches `stop` on a thread of its own and calls `on_stop` once when it
// becomes true: a signal handler can only set a flag, and a plugin blocked in a retry wait
// (sleep_ms) is woken only by a StopSignal request.
class StopRelay {
 public:
  StopRelay(const std::atomic<bool>& stop, std::function<void()> on_stop);
  ~StopRelay();
  StopRelay(const StopRelay&) = delete;
  StopRelay& operator=(const StopRelay&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

class Hub {
 public:
  // `reference` is load_reference(config, store)'s; start() merges the store's staff lists
  // into it anyway, and each one a source syncs.
  Hub(const HubConfig& config, Storage& storage, ReferenceData& reference, Logger& logger,
      const Clock& clock, Metrics& metrics, HubOptions options = {});
  ~Hub();

  // Loads plugins and creates the configured instances. A plugin that is
  // refused or whose settings are wrong is reported and left out; returns the
  // lines reported (empty when all is well).
  std::vector<std::string> start();
  std::size_t source_count() const { return sources_.size(); }
  std::size_t sink_count() const { return sinks_.size(); }

  // Pulls, stores, scores and forwards until `stop` becomes true or, with RunMode::once, until
  // there is nothing left to do: one thread per source, one scorer, one per sink, each
  // finishing the page or batch in hand. Both modes run the same loops, with the same retry
  // waits, metrics and stop handling; the summary counts what this call did, and its errors are
  // the tasks a run --once gave up on (`kpihub run` never gives up; it logs and tries again).
  RunSummary run(const std::atomic<bool>& stop, RunMode mode = RunMode::until_stopped);
  // Thread-safe snapshots for the admin API.
  std::vector<SourceStatus> source_status() const;
  std::vector<PluginStatus> plugin_status() const;
  // Asks a running source to pull now instead of at its next interval;
  // false when no source has that name.
  bool request_pull(const std::string& source_name);
  // Replays quarantine entries (one by id, or all matching source and reason;
  // empty matches all) against the current reference data.
  ReplayResult replay_quarantine(const std::string& source, const std::string& reason,
                                 int64_t id = 0);
  // `explain` for the admin API, safe beside the running scorer.
  std::string explain(const std::string& staff_code, const Month& month);
  // Asks every plugin instance to stop: stop_requested() becomes true and a retry wait
  // (sleep_ms) returns at once. Thread-safe, also while start() runs (a source's staff list is
  // read there, with the source's retries). run() calls it when its `stop` becomes true.
  void request_stop() { stop_signal_.request(); }

 private:
  struct SourceRuntime;
  struct SinkRuntime;
  class Runner;  // one call of run(): its threads and what they share (runner.cpp)
  // Saves the source's staff list in the store and merges what the store holds into the
  // directory (as load_reference does); false when the source keeps one and it could not be
  // read or saved.
  bool sync_staff(SourceRuntime& s);
  // Pulls and stores one page; returns false when caught up.
  bool pull_one(SourceRuntime& s, RunSummary& summary);
  void note_error(SourceRuntime& s, const std::string& error, const char* state);
  // Deletes the outbox items every configured sink delivered more than outbox_retention_days
  // ago, a bounded transaction at a time, until none is left or `stop`; returns how many.
  std::size_t compact_outbox(const std::atomic<bool>& stop);
  // HubOptions::return_free_memory, if a second has passed since its last call (real time: a
  // test clock may stand still); any thread.
  void give_back_memory();

  const HubConfig& config_;
  Storage& storage_;
  ReferenceData& reference_;
  Logger& logger_;
  const Clock& clock_;
  RecordClock record_clock_;
  Metrics& metrics_;
  HubOptions options_;
  SecretResolver secrets_;
  StopSignal stop_signal_;  // shared by every plugin instance of this hub
  std::vector<std::unique_ptr<SourceRuntime>> sources_;
  std::vector<std::unique_ptr<SinkRuntime>> sinks_;
  std::unique_ptr<Ingestor> ingestor_;
  std::unique_ptr<Scorer> scorer_;
  std::shared_mutex directory_mutex_;
  mutable std::mutex status_mutex_;  // guards each SourceRuntime::status
  std::vector<PluginStatus> plugins_;
  std::mutex explain_mutex_;
  std::unique_ptr<Scorer> explainer_;
  std::atomic<int64_t> next_memory_return_ms_{0};  // steady clock
};

}  // namespace kpihub
