#include <kpihub/hub.hpp>
#include <kpihub/model_json.hpp>
#include <kpihub/store/scoring_digest.hpp>

#include "thread_cpu.hpp"

#include <sched.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace kpihub {
namespace json = boost::json;

int64_t next_send_number(int64_t previous, int64_t now_unix_ms) {
  return std::max(previous + 1, now_unix_ms);
}

namespace {
// Gives a vector's memory back. `v = {}` would pick the initializer_list
// assignment, which keeps the capacity: 93 KB per cached staff-month, 650 MB
// for a province.
template <typename T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

// Removes the elements at `positions` (any order, no repeats), keeping the others' order.
template <typename T>
void erase_positions(std::vector<T>& v, std::vector<std::size_t>& positions) {
  if (positions.empty()) return;
  std::sort(positions.begin(), positions.end());
  std::size_t next = 0, kept = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (next < positions.size() && positions[next] == i) {
      ++next;
      continue;
    }
    if (kept != i) v[kept] = std::move(v[i]);
    ++kept;
  }
  v.resize(kept);
}
}  // namespace

Scorer::Scorer(ScoringState& state, RecordLog& records, const ReferenceData& reference,
               const Clock& clock, std::string hub_id, std::shared_mutex* directory_lock,
               const Clock* send_clock, Send send)
    : state_(state),
      records_(records),
      reference_(reference),
      clock_(clock),
      hub_id_(std::move(hub_id)),
      directory_lock_(directory_lock),
      send_clock_(send_clock != nullptr ? *send_clock : clock),
      send_(send) {}

Timestamp Scorer::now() const {
  return Timestamp{clock_.now_unix_ms() / 1000, reference_.rules.utc_offset_minutes};
}

namespace {

StaffMonthResult score_records(const ReferenceData& reference, Timestamp now,
                               const StaffMonthKey& key, std::span<const WorkRecord> records,
                               std::span<const int64_t> received) {
  StaffMonthInput in;
  if (const StaffInfo* s = reference.directory.staff(key.staff_code)) {
    in.staff = *s;
  } else {
    // The directory changed since the records came: keep scoring them under
    // the agency they were stored with.
    in.staff.staff_code = key.staff_code;
    // The agency of the lowest record id, whatever order the store gave the records in.
    const WorkRecord* first = nullptr;
    for (const WorkRecord& r : records) {
      if (first == nullptr || r.record_id < first->record_id) first = &r;
    }
    if (first != nullptr) in.staff.agency_code = first->agency_code;
  }
  in.month = *Month::parse(key.month);
  in.records = records;
  if (received.size() == records.size()) in.received_at_ms = received;
  in.catalog = &reference.catalog;
  in.calendar = &reference.holidays;
  in.rules = &reference.rules;
  in.now = now;
  return score_staff_month(in);
}

}  // namespace

namespace {

// A staff month scored a few whole days at a time (a day's scores depend on that day's records
// only): the days' totals of every part, folded into the month at the last. Gives what
// score_records gives for the whole staff month, bit for bit: each day is summed over the
// same records in the same order, and the month is folded from the same day totals.
struct ChunkedStaffMonth {
  bool started = false;
  std::vector<DayTotals> days;
  std::size_t scored = 0;  // records scored, every part
  // The agency of the lowest record id (score_records' agency of staff not in the directory).
  std::string lowest_id, lowest_agency;

  void add(std::span<const WorkRecord> records, const StaffMonthResult& part) {
    started = true;
    days.insert(days.end(), part.day_totals.begin(), part.day_totals.end());
    scored += part.scored.size();
    for (const WorkRecord& r : records) {
      if (lowest_id.empty() || r.record_id < lowest_id) {
        lowest_id = r.record_id;
        lowest_agency = r.agency_code;
      }
    }
  }
  // Makes `last` (the last part's result, already add()ed) the staff month's, and starts over.
  void finish(const ReferenceData& reference, StaffMonthResult& last) {
    if (reference.directory.staff(last.staff_code) == nullptr && !lowest_id.empty()) {
      last.agency_code = lowest_agency;
    }
    std::sort(days.begin(), days.end(),
              [](const DayTotals& a, const DayTotals& b) { return a.date < b.date; });
    last.day_totals = std::move(days);
    fold_day_totals(last, reference.holidays, reference.rules);
    *this = ChunkedStaffMonth{};
  }
};

// Staff codes that cut the directory into `parts` runs of about as many staff each, sorted:
// ScoringState::scan_month_for_scoring's split_before. Staff not in the directory still fall in a
// part.
std::vector<std::string> staff_splits(const Directory& directory, std::size_t parts) {
  std::vector<std::string_view> codes;
  codes.reserve(directory.size());
  for (const auto& [code, info] : directory.all_staff()) codes.push_back(code);
  std::sort(codes.begin(), codes.end());
  std::vector<std::string> splits;
  for (std::size_t i = 1; i < parts; ++i) {
    const std::size_t at = codes.size() * i / parts;
    // A small directory gives fewer parts, never an empty one or a repeated split.
    if (at == 0 || (!splits.empty() && splits.back() == codes[at])) continue;
    splits.emplace_back(codes[at]);
  }
  return splits;
}

// Scores every staff-month of a month from one store scan cut into parts by staff code, each
// part read and scored on a thread of its own: a core each for SQLite's reading and the
// scoring, which take about three quarters and a quarter of the work (issue 8: a province
// month in under 2 s of wall time on 2 cores). `skip` leaves staff out; it and `on_result`
// are called under one lock, in no particular order. Memory is bounded: each part holds one
// staff member's records at a time. Returns the CPU seconds of the parts' threads other than
// the caller's.
double score_month_in_parts(
    ScoringState& state, const ReferenceData& reference, Timestamp now, const std::string& month,
    const std::function<bool(const std::string&)>& skip,
    const std::function<void(const std::string&, StaffMonthResult&&)>& on_result) {
  constexpr int kMaxParts = 4;
  // The cores this process may run on (taskset, a container's cpuset), not the machine's.
  cpu_set_t allowed;
  const int cores = sched_getaffinity(0, sizeof allowed, &allowed) == 0
                        ? CPU_COUNT(&allowed)
                        : static_cast<int>(std::thread::hardware_concurrency());
  const auto parts = static_cast<std::size_t>(std::clamp(cores, 1, kMaxParts));
  std::mutex results;
  // Each part's thread is new: its CPU clock at its last staff member is about all it used.
  const auto caller = std::this_thread::get_id();
  std::vector<double> helper_cpu(parts, 0.0);
  // A staff month that comes in several batches of whole days (ScoringState::ScanBatch::more): each
  // part's days so far, folded at its last batch. Each part is visited by one thread at a time.
  std::vector<ChunkedStaffMonth> pending(parts);
  state.scan_month_for_scoring(
      month, staff_splits(reference.directory, parts),
      [&](std::size_t part, const std::string& staff, ScoringState::ScanBatch& batch) {
        ChunkedStaffMonth& chunked = pending.at(part);
        if (!chunked.started) {
          // Asked again at each batch of a skipped staff member: the answer stays.
          std::lock_guard lock(results);
          if (skip(staff)) return;
        }
        const std::span<const WorkRecord> records(batch.records.data(), batch.count);
        StaffMonthResult result =
            score_records(reference, now, {staff, month}, records,
                          std::span<const int64_t>(batch.received_at.data(), batch.count));
        if (batch.more || chunked.started) {
          chunked.add(records, result);
          if (batch.more) return;
          chunked.finish(reference, result);
        }
        release(result.scored);
        release(result.days);
        release(result.day_totals);
        std::lock_guard lock(results);
        on_result(staff, std::move(result));
        if (std::this_thread::get_id() != caller && part < helper_cpu.size()) {
          helper_cpu[part] = thread_cpu_seconds();
        }
      });
  return std::accumulate(helper_cpu.begin(), helper_cpu.end(), 0.0);
}

}  // namespace

namespace {

// The stored day totals of the days of `month` not in `rescored`; nullopt when the bytes are not
// totals this build wrote for that month on the same basis (then the whole staff month is scored
// again).
std::optional<std::vector<DayTotals>> days_outside(std::string_view stored, std::string_view basis,
                                                   const Month& month, DayMask rescored) {
  auto days = decode_day_totals(stored, basis);
  if (!days) return std::nullopt;
  std::erase_if(*days, [&](const DayTotals& d) { return (rescored & day_bit(d.date)) != 0; });
  for (const DayTotals& d : *days) {
    if (d.date < month.first_day() || d.date > month.last_day()) return std::nullopt;
  }
  return days;
}

// The days of `want` that have records, cut into runs of consecutive days of about `budget`
// records each (more when one day alone has more: a day is scored whole); one empty mask when
// no day of `want` has a record.
std::vector<DayMask> day_chunks(const std::vector<ScoringState::DayCount>& per_day, DayMask want,
                                std::size_t budget) {
  std::vector<DayMask> chunks;
  DayMask current = 0;
  std::size_t records = 0;
  for (const ScoringState::DayCount& d : per_day) {
    const DayMask bit = day_bit(d.date);
    if ((want & bit) == 0) continue;
    if (current != 0 && records + d.records > budget) {
      chunks.push_back(current);
      current = 0;
      records = 0;
    }
    current |= bit;
    records += d.records;
  }
  if (current != 0 || chunks.empty()) chunks.push_back(current);
  return chunks;
}

}  // namespace

StaffMonthResult Scorer::score_one(const StaffMonthKey& key,
                                   ScoringState::StaffMonthForScoring& stored) {
  return score_records(reference_, now(), key, stored.records, stored.received_at);
}

void Scorer::CachedMonth::put(const std::string& staff_code, const StaffMonthResult& result) {
  const auto [it, inserted] = index.try_emplace(staff_code, staff.size());
  if (inserted) {
    staff.push_back(summary_of(result));
  } else {
    staff[it->second] = summary_of(result);
  }
}

Scorer::CachedMonth& Scorer::month_cache(const std::string& month) {
  CachedMonth& cached = cache_[month];
  if (cached.complete) return cached;
  // One scan of the month, staff by staff: memory stays bounded by the staff-months in flight.
  // Reserved once: growing by doubling held the old and the new array at once (40 MB at
  // 35,000 staff, measured with heaptrack).
  cached.staff.reserve(reference_.directory.size());
  helper_cpu_s_ += score_month_in_parts(
      state_, reference_, now(), month,
      [&](const std::string& staff) { return cached.index.count(staff) > 0; },
      [&](const std::string& staff, StaffMonthResult&& r) {
        if (!cached.index.count(staff)) cached.put(staff, r);
      });
  cached.complete = true;
  cached.closed = month_closed(*Month::parse(month), now(), reference_.rules);
  return cached;
}

ScoringRunResult Scorer::score_pending(std::size_t max_keys) {
  const auto lock = read_lock(directory_lock_);
  ScoringRunResult result;
  const auto dirty = state_.dirty_staff_days(max_keys);
  if (dirty.empty()) return result;
  const Timestamp scored_at = now();
  const std::string scored_at_text = scored_at.str();
  const int64_t numbered_at_ms = send_clock_.now_unix_ms();

  ScoringCommit commit;
  std::size_t records_read = 0;
  // What stored day totals were computed with: a province that changes its rules or catalog
  // (a new version) without `rescore` still never gets a month folded from days of both; and
  // whether the month was closed (records without completion earn nothing once it is, 5.4),
  // so days scored before the due date are not folded with days scored after it, whether or
  // not refresh_time_dependent saw the month close (it cannot after a restart). "submitted"
  // marks totals whose first counting time is the submission of scoring.md 5.4 of 2026-12-07
  // (changed_at), so totals of an older build, which hold the receipt time, are not folded in.
  const std::string rules_basis =
      reference_.rules.version + "\n" + reference_.catalog.version + "\nsubmitted";
  const auto totals_basis = [&](const Month& month) {
    return rules_basis + (month_closed(month, scored_at, reference_.rules) ? "\nclosed" : "\nopen");
  };
  std::set<std::string> months_touched;
  // A record can come up under two keys of one run: a page committed between the two reads
  // moved it to another staff month. Both reads saw the same last-sent score, so both would
  // send its next sequence, with different content. The later read is the newer state and
  // wins; the earlier staff month is dirty again (the page marked it) and is rescored next.
  struct Queued {
    std::size_t score;
    std::optional<std::size_t> outbox;
  };
  std::unordered_map<std::string, Queued> queued;
  std::vector<std::size_t> dropped_scores, dropped_outbox;

  // Commits the record scores and items queued so far in a transaction of their own (a staff
  // month that runs alone, see below), and starts over.
  const auto commit_records = [&] {
    erase_positions(commit.record_scores, dropped_scores);
    erase_positions(commit.outbox, dropped_outbox);
    ScoringCommit sent;
    sent.record_scores = std::move(commit.record_scores);
    sent.outbox = std::move(commit.outbox);
    commit.record_scores.clear();
    commit.outbox.clear();
    // What is committed cannot be taken back: a record that comes up again is read again, with
    // the score just committed as its last.
    queued.clear();
    dropped_scores.clear();
    dropped_outbox.clear();
    if (!sent.record_scores.empty()) state_.commit_scoring(sent);
  };

  // Queues in `commit` the record scores of `stored` that changed, and an outbox item for each
  // one to send, with its every field: read_all() reads them (`stored`'s records, in record_id
  // order) when many go out and may_read_all, otherwise each is read by key. With `slice`, the
  // records go `slice` at a time, each slice read by key and committed (commit_records).
  const auto queue_records = [&](const ScoringState::StaffMonthForScoring& stored,
                                 const StaffMonthResult& scored_part,
                                 const std::function<std::vector<WorkRecord>()>& read_all,
                                 bool may_read_all, std::size_t slice) {
    std::unordered_map<std::string_view, std::size_t> index_of;
    index_of.reserve(stored.records.size());
    for (std::size_t i = 0; i < stored.records.size(); ++i) {
      index_of.emplace(stored.records[i].record_id, i);
    }
    const std::size_t n = scored_part.scored.size();
    const std::size_t step = slice == 0 ? std::max<std::size_t>(n, 1) : slice;
    for (std::size_t begin = 0; begin < n; begin += step) {
      const std::span<const ScoredRecord> scored_slice(scored_part.scored.data() + begin,
                                                       std::min(n, begin + step) - begin);
      // The results that go out, first; then their records' every field, which the scan lacks.
      struct Changed {
        const ScoredRecord* scored;
        std::size_t index;  // in stored.records
        RecordScoreRow row;
        bool send;
      };
      std::vector<Changed> changed_records;
      std::size_t to_send = 0;
      for (const ScoredRecord& scored : scored_slice) {
        const std::size_t i = index_of.at(scored.record_id);
        const WorkRecord& record = stored.records[i];
        const std::optional<RecordScoreRow>& prev = stored.previous[i];
        if (const auto q = queued.find(scored.record_id); q != queued.end()) {
          dropped_scores.push_back(q->second.score);
          if (q->second.outbox) {
            dropped_outbox.push_back(*q->second.outbox);
            --result.records_sent;
          }
          queued.erase(q);
        }
        std::string digest = scoring_digest(writer_.scoring_text(scored.scoring));
        const bool unchanged = send_ == Send::changed && prev &&
                               prev->revision == record.revision && prev->scoring_digest == digest;
        if (unchanged) continue;
        const bool never_sent = !prev;
        // A record deleted at the source before the hub ever sent it has nothing to withdraw.
        const bool send = !(never_sent && record.retracted);
        to_send += send ? 1 : 0;
        changed_records.push_back(
            {&scored, i,
             RecordScoreRow{scored.record_id, record.revision,
                            next_send_number(never_sent ? 0 : prev->sequence, numbered_at_ms),
                            std::move(digest)},
             send});
      }
      // Many records sent: one range read of their rows (read_all) beats a key lookup per
      // record. A few revised records are read by key.
      std::vector<WorkRecord> whole_month;
      if (slice == 0 && may_read_all && to_send > stored.records.size() / 4) {
        whole_month = read_all();
      }
      const auto full_record = [&](const std::string& id) -> std::optional<WorkRecord> {
        if (whole_month.empty()) return records_.record(id);
        const auto it = std::lower_bound(
            whole_month.begin(), whole_month.end(), id,
            [](const WorkRecord& r, const std::string& wanted) { return r.record_id < wanted; });
        if (it == whole_month.end() || it->record_id != id) return std::nullopt;
        return std::move(*it);
      };
      for (Changed& c : changed_records) {
        const WorkRecord& record = stored.records[c.index];
        Queued entry{commit.record_scores.size(), std::nullopt};
        if (c.send) {
          // A page committed since the scan may hold a newer revision: that one is not sent
          // with this score (its staff month is dirty again and is rescored next).
          const std::optional<WorkRecord> full = full_record(record.record_id);
          if (!full || full->revision != record.revision) continue;
          entry.outbox = commit.outbox.size();
          commit.outbox.push_back(
              {0, OutboxKind::record, record.record_id,
               writer_.payload(*full, c.scored->scoring, c.row.sequence, hub_id_, scored_at_text)});
          ++result.records_sent;
        }
        queued.emplace(record.record_id, entry);
        commit.record_scores.push_back(std::move(c.row));
      }
      if (slice != 0) commit_records();
    }
  };

  for (const DirtyStaffMonth& dirty_key : dirty) {
    // The keys not reached stay dirty for the next run.
    if (records_read >= kRecordsPerRun) break;
    const StaffMonthKey& key = dirty_key.key;
    const auto month = Month::parse(key.month);
    if (!month) {
      throw std::runtime_error("scorer: a dirty staff month with no month: '" + key.month + "'");
    }
    const std::string basis = totals_basis(*month);
    const bool in_directory = reference_.directory.staff(key.staff_code) != nullptr;
    // A staff month of more records than a run reads is read, scored and committed a few whole
    // days at a time (issue 18: a lab clinician's month of a 200 MB hospital export took the
    // hub to 404 MB). A day's scores depend on that day's records only (scoring.md 4).
    // Only the changed days are read and scored, folded with the stored totals of the others
    // (issue 8, part 3). The staff month is scored whole when so marked (rescore, due date,
    // an old mark), when it has no usable stored totals (none yet, or another basis), and for
    // staff no longer in the directory (their agency comes from their records). What is read is
    // counted first, the changed days alone when they may be enough.
    const bool may_rescore_days = dirty_key.days != kWholeMonth && in_directory;
    std::vector<ScoringState::DayCount> per_day =
        state_.records_per_day(key, may_rescore_days ? dirty_key.days : kWholeMonth);
    const auto over_a_run = [](const std::vector<ScoringState::DayCount>& days) {
      std::size_t records = 0;
      for (const ScoringState::DayCount& d : days) records += d.records;
      return records > kRecordsPerRun;
    };
    bool chunked = over_a_run(per_day);

    ScoringState::StaffMonthForScoring stored;
    std::optional<std::vector<DayTotals>> other_days;
    std::vector<DayMask> chunks;  // chunked: the days each read takes
    if (may_rescore_days) {
      // Chunked, the stored totals alone first (no day: no record).
      stored = state_.staff_days_for_scoring(key, chunked ? DayMask{0} : dirty_key.days);
      if (stored.day_totals) {
        other_days = days_outside(*stored.day_totals, basis, *month, dirty_key.days);
      }
    }
    const bool whole = !other_days;
    if (whole && may_rescore_days) {
      // No usable totals: the whole staff month after all.
      per_day = state_.records_per_day(key, kWholeMonth);
      chunked = over_a_run(per_day);
    }
    if (chunked) {
      chunks = day_chunks(per_day, whole ? kWholeMonth : dirty_key.days, kRecordsPerRun);
      // Between two parts' commits the staff month stays dirty; alone in its run, nothing else
      // waits on its last commit (agency months, other keys' dirty marks).
      if (chunks.size() > 1 && !commit.done.empty()) break;
    } else if (whole) {
      stored = state_.staff_month_for_scoring(key);
    }
    commit.done.push_back(key);
    months_touched.insert(key.month);

    ChunkedStaffMonth days_scored;
    StaffMonthResult month_result;
    const std::size_t reads = chunked ? chunks.size() : 1;
    // Alone in its run: its records' scores and items are committed kRecordsPerCommit at a time
    // (its staff month, dirty mark and agency months in the run's commit after them). A crash in
    // between leaves it dirty: rescored, the records committed are found sent with the same
    // score and are not sent again.
    const bool alone = reads > 1;
    for (std::size_t part = 0; part < reads; ++part) {
      if (chunked) stored = state_.staff_days_for_scoring(key, chunks[part]);
      records_read += stored.records.size();
      // At scored_at, the time the basis names, not a later now().
      StaffMonthResult part_result =
          score_records(reference_, scored_at, key, stored.records, stored.received_at);
      if (chunked) days_scored.add(stored.records, part_result);
      queue_records(
          stored, part_result,
          [&] {
            // A staff month scored for the first time sends every record: one range read of its
            // rows beats a key lookup per record.
            return chunked ? state_.records_of_staff_days(key, chunks[part])
                           : state_.records_of_staff_month(key);
          },
          whole || chunked, alone ? kRecordsPerCommit : 0);
      if (part + 1 < reads) {
        release(part_result.scored);
      } else {
        month_result = std::move(part_result);
      }
      release(stored.records);
      release(stored.received_at);
      release(stored.previous);
    }
    const bool any_record = chunked ? days_scored.scored > 0 : !month_result.scored.empty();
    if (chunked) {
      if (other_days) {
        days_scored.days.insert(days_scored.days.end(), other_days->begin(), other_days->end());
      }
      days_scored.finish(reference_, month_result);
    } else if (!whole) {
      month_result.day_totals.insert(month_result.day_totals.end(), other_days->begin(),
                                     other_days->end());
      std::sort(month_result.day_totals.begin(), month_result.day_totals.end(),
                [](const DayTotals& a, const DayTotals& b) { return a.date < b.date; });
      fold_day_totals(month_result, reference_.holidays, reference_.rules);
    }

    // The staff month goes out only when its content changed.
    auto old = state_.month_row(OutboxKind::staff_month, key.month, key.staff_code);
    const int64_t old_revision = old ? old->revision : 0;
    const bool changed = send_ == Send::everything || !old ||
                         json::serialize(to_json(month_result, old_revision)) != old->json;
    if (changed && !(!any_record && !old)) {
      const int64_t revision = next_send_number(old_revision, numbered_at_ms);
      std::string text = json::serialize(to_json(month_result, revision));
      commit.months.push_back({OutboxKind::staff_month, key.month, key.staff_code,
                               month_result.agency_code, revision, text});
      commit.outbox.push_back({0, OutboxKind::staff_month,
                               "staff:" + key.month + ":" + key.staff_code, std::move(text)});
      ++result.staff_months_sent;
    }
    commit.day_totals.push_back({key, encode_day_totals(month_result.day_totals, basis)});
    release(month_result.scored);
    release(month_result.days);
    release(month_result.day_totals);
    auto it = cache_.find(key.month);
    if (it != cache_.end()) it->second.put(key.staff_code, month_result);
    ++result.staff_months;
  }

  // Agency months of every touched month, from the cached staff months (the
  // median across agencies makes each agency depend on all the others).
  const std::map<std::string, std::string> agency_sectors = reference_.directory.agency_sectors();
  for (const std::string& month : months_touched) {
    const CachedMonth& cached = month_cache(month);
    const auto agencies = agency_months(cached.staff, *Month::parse(month), agency_sectors,
                                        scored_at, {}, reference_.rules);
    for (const auto& a : agencies) {
      auto old = state_.month_row(OutboxKind::agency_month, month, a.agency_code);
      const int64_t old_revision = old ? old->revision : 0;
      if (send_ == Send::changed && old && json::serialize(to_json(a, old_revision)) == old->json) {
        continue;
      }
      const int64_t revision = next_send_number(old_revision, numbered_at_ms);
      std::string text = json::serialize(to_json(a, revision));
      commit.months.push_back(
          {OutboxKind::agency_month, month, a.agency_code, a.agency_code, revision, text});
      commit.outbox.push_back(
          {0, OutboxKind::agency_month, "agency:" + month + ":" + a.agency_code, std::move(text)});
      ++result.agency_months_sent;
    }
  }
  erase_positions(commit.record_scores, dropped_scores);
  erase_positions(commit.outbox, dropped_outbox);
  state_.commit_scoring(commit);
  return result;
}

void Scorer::mark_months_closed_while_away(Timestamp t) {
  Month month = Month::of(t.local_date());
  for (int i = 0; i < kMonthsClosingWhileAway; ++i) {
    month = Month::of(Date{month.first_day().days - 1});
    if (!month_closed(month, t, reference_.rules)) continue;
    for (const auto& row : state_.month_rows(OutboxKind::agency_month, month.str())) {
      boost::system::error_code ec;
      const json::value stored = json::parse(row.json, ec);
      if (ec || !stored.is_object()) {
        throw std::runtime_error("scorer: stored agency month " + month.str() + " " + row.code +
                                 " is not a JSON object (" +
                                 (ec ? ec.message() : std::string("another JSON value")) + ")");
      }
      const json::value* status = stored.as_object().if_contains("status");
      if (status != nullptr && status->is_string() &&
          status->as_string() == to_string(AgencyStatus::open)) {
        state_.mark_month_dirty(month.str());
        break;
      }
    }
  }
}

void Scorer::refresh_time_dependent() {
  const Timestamp t = now();
  // Once per scorer: months that closed while no scorer watched them (the hub was down at the
  // due date, or runs only `run --once`). Their agency months were last scored open; the
  // loop below sees only months this scorer cached open, so it would never rescore them.
  if (!past_due_checked_) {
    past_due_checked_ = true;
    mark_months_closed_while_away(t);
  }
  for (auto& [month, cached] : cache_) {
    if (!cached.complete) continue;
    const bool closed = month_closed(*Month::parse(month), t, reference_.rules);
    if (closed != cached.closed) {
      cached.closed = closed;
      state_.mark_month_dirty(month);
    }
  }
}

StaffMonthResult Scorer::explain_staff_month(const std::string& staff_code, const Month& month) {
  // Hub::explain runs beside the source threads, which merge staff lists into the directory.
  const auto lock = read_lock(directory_lock_);
  const StaffMonthKey key{staff_code, month.str()};
  auto stored = state_.staff_month_for_scoring(key);
  return score_one(key, stored);
}

std::vector<StaffMonthResult> Scorer::compute_month(const Month& month) {
  const auto lock = read_lock(directory_lock_);
  std::vector<StaffMonthResult> out;
  helper_cpu_s_ += score_month_in_parts(
      state_, reference_, now(), month.str(), [](const std::string&) { return false; },
      [&](const std::string&, StaffMonthResult&& r) { out.push_back(std::move(r)); });
  // In staff code order, whatever order the parts finished in.
  std::sort(out.begin(), out.end(), [](const StaffMonthResult& a, const StaffMonthResult& b) {
    return a.staff_code < b.staff_code;
  });
  return out;
}

}  // namespace kpihub
