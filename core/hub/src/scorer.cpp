#include <kpihub/hub.hpp>
#include <kpihub/model_json.hpp>

#include <algorithm>
#include <set>
#include <span>
#include <unordered_map>

namespace kpihub {
namespace json = boost::json;

namespace {
// Gives a vector's memory back. `v = {}` would pick the initializer_list
// assignment, which keeps the capacity: 93 KB per cached staff-month, 650 MB
// for a province.
template <typename T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}
}  // namespace

Scorer::Scorer(Store& store, const ReferenceData& reference, const Clock& clock, std::string hub_id,
               std::shared_mutex* directory_lock)
    : store_(store),
      reference_(reference),
      clock_(clock),
      hub_id_(std::move(hub_id)),
      directory_lock_(directory_lock) {}

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

StaffMonthResult Scorer::score_one(const StaffMonthKey& key, Store::StaffMonthForScoring& stored) {
  return score_records(reference_, now(), key, stored.records, stored.received_at);
}

Scorer::CachedMonth& Scorer::month_cache(const std::string& month) {
  CachedMonth& cached = cache_[month];
  if (cached.complete) return cached;
  // One scan of the month, staff by staff, so memory stays bounded by one staff-month of records.
  const Timestamp t = now();
  store_.scan_month_for_scoring(
      month, [&](const std::string& staff, std::span<const WorkRecord> records,
                 std::span<const int64_t> received) {
        if (cached.staff.count(staff)) return;
        StaffMonthResult r = score_records(reference_, t, {staff, month}, records, received);
        release(r.scored);
        release(r.days);
        cached.staff.emplace(staff, std::move(r));
      });
  cached.complete = true;
  cached.closed = month_closed(*Month::parse(month), now(), reference_.rules);
  return cached;
}

ScoringRunResult Scorer::score_pending(std::size_t max_keys) {
  const auto lock = read_lock(directory_lock_);
  ScoringRunResult result;
  const auto keys = store_.dirty_staff_months(max_keys);
  if (keys.empty()) return result;
  const Timestamp scored_at = now();
  const std::string scored_at_text = scored_at.str();

  ScoringCommit commit;
  commit.done = keys;
  std::set<std::string> months_touched;

  for (const auto& key : keys) {
    auto stored = store_.staff_month_for_scoring(key);
    StaffMonthResult month_result = score_one(key, stored);
    months_touched.insert(key.month);

    std::unordered_map<std::string_view, std::size_t> index_of;
    index_of.reserve(stored.records.size());
    for (std::size_t i = 0; i < stored.records.size(); ++i) {
      index_of.emplace(stored.records[i].record_id, i);
    }

    for (const ScoredRecord& scored : month_result.scored) {
      const std::size_t i = index_of.at(scored.record_id);
      const WorkRecord& record = stored.records[i];
      const std::optional<RecordScoreRow>& prev = stored.previous[i];
      const std::string scoring_text = json::serialize(to_json(scored.scoring));
      const bool unchanged =
          prev && prev->revision == record.revision && prev->scoring_json == scoring_text;
      if (unchanged) continue;
      const bool never_sent = !prev;
      RecordScoreRow row{scored.record_id, record.revision, never_sent ? 1 : prev->sequence + 1,
                         scoring_text};
      // A record deleted at the source before the hub ever sent it has nothing to withdraw.
      if (!(never_sent && record.retracted)) {
        json::object payload = to_json(record);
        payload["scoring"] = to_json(scored.scoring, row.sequence);
        payload["hub_id"] = hub_id_;
        payload["scored_at"] = scored_at_text;
        commit.outbox.push_back(
            {0, OutboxKind::record, scored.record_id, json::serialize(payload)});
        ++result.records_sent;
      }
      commit.record_scores.push_back(std::move(row));
    }

    // The staff month goes out only when its content changed.
    auto old = store_.month_row(OutboxKind::staff_month, key.month, key.staff_code);
    const int64_t old_revision = old ? old->revision : 0;
    const bool changed = !old || json::serialize(to_json(month_result, old_revision)) != old->json;
    if (changed && !(month_result.scored.empty() && !old)) {
      const int64_t revision = old_revision + 1;
      std::string text = json::serialize(to_json(month_result, revision));
      commit.months.push_back({OutboxKind::staff_month, key.month, key.staff_code,
                               month_result.agency_code, revision, text});
      commit.outbox.push_back({0, OutboxKind::staff_month,
                               "staff:" + key.month + ":" + key.staff_code, std::move(text)});
      ++result.staff_months_sent;
    }
    release(month_result.scored);
    release(month_result.days);
    auto it = cache_.find(key.month);
    if (it != cache_.end()) it->second.staff[key.staff_code] = std::move(month_result);
    ++result.staff_months;
  }

  // Agency months of every touched month, from the cached staff months (the
  // median across agencies makes each agency depend on all the others).
  std::set<std::string> agencies_known;
  for (const auto& [code, staff] : reference_.directory.all_staff())
    agencies_known.insert(staff.agency_code);
  for (const std::string& month : months_touched) {
    CachedMonth& cached = month_cache(month);
    std::vector<StaffMonthResult> staff_months;
    staff_months.reserve(cached.staff.size());
    for (const auto& [code, r] : cached.staff) staff_months.push_back(r);
    const auto agencies = agency_months(staff_months, *Month::parse(month), agencies_known,
                                        scored_at, {}, reference_.rules);
    for (const auto& a : agencies) {
      auto old = store_.month_row(OutboxKind::agency_month, month, a.agency_code);
      const int64_t old_revision = old ? old->revision : 0;
      if (old && json::serialize(to_json(a, old_revision)) == old->json) continue;
      const int64_t revision = old_revision + 1;
      std::string text = json::serialize(to_json(a, revision));
      commit.months.push_back(
          {OutboxKind::agency_month, month, a.agency_code, a.agency_code, revision, text});
      commit.outbox.push_back(
          {0, OutboxKind::agency_month, "agency:" + month + ":" + a.agency_code, std::move(text)});
      ++result.agency_months_sent;
    }
  }
  store_.commit_scoring(commit);
  return result;
}

void Scorer::refresh_time_dependent() {
  const Timestamp t = now();
  for (auto& [month, cached] : cache_) {
    if (!cached.complete) continue;
    const bool closed = month_closed(*Month::parse(month), t, reference_.rules);
    if (closed != cached.closed) {
      cached.closed = closed;
      store_.mark_month_dirty(month);
    }
  }
}

StaffMonthResult Scorer::explain_staff_month(const std::string& staff_code, const Month& month) {
  const StaffMonthKey key{staff_code, month.str()};
  auto stored = store_.staff_month_for_scoring(key);
  return score_one(key, stored);
}

std::vector<StaffMonthResult> Scorer::compute_month(const Month& month) {
  std::vector<StaffMonthResult> out;
  const std::string m = month.str();
  const Timestamp t = now();
  store_.scan_month_for_scoring(
      m, [&](const std::string& staff, std::span<const WorkRecord> records,
             std::span<const int64_t> received) {
        StaffMonthResult r = score_records(reference_, t, {staff, m}, records, received);
        release(r.scored);
        release(r.days);
        out.push_back(std::move(r));
      });
  return out;
}

}  // namespace kpihub
