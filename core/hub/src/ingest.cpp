#include <kpihub/hub.hpp>
#include <kpihub/text.hpp>
#include <kpihub/validate.hpp>

#include <chrono>
#include <map>

namespace kpihub {

RecordClock::RecordClock(const HubConfig& config, const Clock& base, int32_t utc_offset_minutes)
    : base_(base) {
  if (!config.today) return;
  const auto today = Date::parse(*config.today);
  if (!today) return;
  const int64_t local_ms = base.now_unix_ms() + int64_t{utc_offset_minutes} * 60'000;
  const int64_t real_days =
      local_ms >= 0 ? local_ms / 86'400'000 : (local_ms - 86'399'999) / 86'400'000;
  shift_ms_ = (int64_t{today->days} - real_days) * 86'400'000;
}

Date hub_today(const HubConfig& config, const Clock& clock, const Rules& rules) {
  if (config.today) {
    if (auto d = Date::parse(*config.today)) return *d;
  }
  const int64_t local_s =
      clock.now_unix_ms() / 1000 + static_cast<int64_t>(rules.utc_offset_minutes) * 60;
  return Date{static_cast<int32_t>(local_s / 86400)};
}

Ingestor::Ingestor(RecordLog& records, const ReferenceData& reference, Date today,
                   std::shared_mutex* directory_lock)
    : records_(records),
      reference_(reference),
      today_days_(today.days),
      directory_lock_(directory_lock) {}

namespace {

QuarantineEntry quarantine_for(const WorkRecord& r, const kpihub_record& raw, Reason reason,
                               std::string field, std::string message) {
  QuarantineEntry q;
  q.source_system = r.source_system;
  q.source_id = r.source_id;
  q.record_id = r.record_id;
  q.reason = reason;
  q.field = std::move(field);
  q.message = std::move(message);
  q.fields = record_fields_json(raw);
  q.payload =
      raw.raw.data && raw.raw.size && sdk::valid_utf8(std::string_view(raw.raw.data, raw.raw.size))
          ? std::string(raw.raw.data, raw.raw.size)
          : q.fields;
  q.location =
      raw.location.data ? std::string(raw.location.data, raw.location.size) : std::string();
  return q;
}

// Seconded clinicians are written "<code>.C.<n>": the directory knows the base code.
std::string base_identifier(const std::string& id) {
  const auto pos = id.find(".C.");
  return pos == std::string::npos ? id : id.substr(0, pos);
}

}  // namespace

std::optional<QuarantineEntry> Ingestor::resolve(WorkRecord& r, const kpihub_record& raw) const {
  const Directory& dir = reference_.directory;
  const StaffInfo* staff = nullptr;
  if (!r.staff_code.empty()) {
    staff = dir.staff(r.staff_code);
    if (!staff) {
      return quarantine_for(r, raw, Reason::unknown_staff, "staff_code",
                            "staff_code: \"" + r.staff_code + "\" is not in the staff directory");
    }
  } else {
    staff = dir.by_identifier(r.source_staff_id);
    if (!staff) staff = dir.by_identifier(base_identifier(r.source_staff_id));
    if (!staff) {
      return quarantine_for(r, raw, Reason::unknown_staff, "source_staff_id",
                            "source_staff_id: \"" + r.source_staff_id +
                                "\" does not resolve to a staff code in the staff directory");
    }
    r.staff_code = staff->staff_code;
  }
  if (!r.agency_code.empty() && r.agency_code != staff->agency_code) {
    // The directory wins; the source's value stays visible for the agency to correct.
    r.attributes.emplace_back("source_agency_code", r.agency_code);
  }
  r.agency_code = staff->agency_code;

  const CatalogItem* item = reference_.catalog.find(r.task_code);
  if (!item) {
    return quarantine_for(r, raw, Reason::unknown_task, "task_code",
                          "task_code: \"" + r.task_code +
                              "\" is not in the task catalog (version " +
                              reference_.catalog.version + ")");
  }
  if (!item->agencies.empty() && !item->agencies.count(r.agency_code)) {
    return quarantine_for(r, raw, Reason::unknown_task, "task_code",
                          "task_code: \"" + r.task_code + "\" is a group " + item->group +
                              " item not approved for agency " + r.agency_code);
  }
  // Sector items (lessons, examinations) are for that sector's staff only;
  // province-wide items are open to everyone.
  if (!item->sector.empty() && item->sector != staff->sector) {
    return quarantine_for(
        r, raw, Reason::unknown_task, "task_code",
        "task_code: \"" + r.task_code + "\" belongs to sector " + item->sector + ", staff " +
            r.staff_code + " is " +
            (staff->sector.empty() ? std::string("in no sector") : "in sector " + staff->sector));
  }
  if (!r.approval && reference_.rules.auto_approve_sources.count(r.source_system)) {
    // The sector system is the system of record: its facts need no supervisor.
    r.approval = Approval{ApprovalStatus::approved, std::nullopt, "", std::nullopt};
  }
  return std::nullopt;
}

std::optional<QuarantineEntry> Ingestor::resolve_or_withdraw(WorkRecord& r,
                                                             const kpihub_record& raw) const {
  if (is_bare_withdrawal(r)) return std::nullopt;
  auto q = resolve(r, raw);
  // A withdrawal whose content no longer resolves (its person left the directory, its task
  // the catalog) still withdraws the stored record, by its id.
  if (q && r.retracted) {
    r = bare_withdrawal(r);
    return std::nullopt;
  }
  return q;
}

PageCommit Ingestor::prepare(const std::string& source, const kpihub_page& page,
                             int64_t now_ms) const {
  const auto lock = read_lock(directory_lock_);
  PageCommit commit;
  commit.source = source;
  if (page.next_cursor.data)
    commit.cursor = std::string(page.next_cursor.data, page.next_cursor.size);
  commit.received_at_unix_ms = now_ms;
  commit.records.reserve(page.record_count);
  const ValidationContext ctx{source, today(), reference_.rules.retention_days};
  for (std::size_t i = 0; i < page.record_count; ++i) {
    const kpihub_record in = record_at(page, i);
    Normalized n = normalize(in, ctx);
    if (auto* q = std::get_if<QuarantineEntry>(&n)) {
      commit.quarantined.push_back(std::move(*q));
      continue;
    }
    auto& record = std::get<WorkRecord>(n);
    if (auto q = resolve_or_withdraw(record, in)) {
      commit.quarantined.push_back(std::move(*q));
      continue;
    }
    commit.records.push_back(std::move(record));
  }
  for (std::size_t i = 0; i < page.rejected_count; ++i) {
    commit.quarantined.push_back(quarantine_from_rejected(page.rejected[i], source));
  }
  return commit;
}

IngestResult Ingestor::ingest(const std::string& source, const kpihub_page& page, int64_t now_ms) {
  PageCommit commit = prepare(source, page, now_ms);
  IngestResult result;
  result.records_in_page = page.record_count + page.rejected_count;
  result.commit = records_.commit_page(commit);
  // What stayed in quarantine: an invalid revision the store already has a newer one of did not.
  std::vector<bool> kept(commit.quarantined.size(), true);
  for (const std::size_t i : result.commit.quarantine_not_kept) kept[i] = false;
  for (std::size_t i = 0; i < commit.quarantined.size(); ++i) {
    if (kept[i])
      result.quarantined_by_reason[std::string(to_string(commit.quarantined[i].reason))]++;
  }
  return result;
}

ReplayResult Ingestor::replay(const std::vector<QuarantineRow>& rows, int64_t now_ms) {
  ReplayResult result;
  std::map<std::string, PageCommit> by_source;
  {
    const auto lock = read_lock(directory_lock_);
    for (const auto& row : rows) {
      const auto fields =
          row.entry.fields.empty() ? nullptr : RecordFields::parse(row.entry.fields);
      if (!fields) {
        ++result.not_replayable;
        continue;
      }
      const std::string& source = row.entry.source_system;
      const ValidationContext ctx{source, today(), reference_.rules.retention_days};
      Normalized n = normalize(fields->view(), ctx);
      std::optional<QuarantineEntry> failed;
      if (auto* q = std::get_if<QuarantineEntry>(&n)) {
        failed = std::move(*q);
      } else if (auto q = resolve_or_withdraw(std::get<WorkRecord>(n), fields->view())) {
        failed = std::move(q);
      }
      if (failed) {
        ++result.still_failing;
        result.problems.push_back("quarantine " + std::to_string(row.id) + " (" +
                                  row.entry.record_id + "): still " +
                                  std::string(to_string(failed->reason)) + ": " + failed->message);
        continue;
      }
      PageCommit& commit = by_source[source];
      commit.source = source;
      commit.received_at_unix_ms = now_ms;
      commit.records.push_back(std::move(std::get<WorkRecord>(n)));
      commit.resolved_quarantine_ids.push_back(row.id);
    }
  }
  for (auto& [source, commit] : by_source) {
    records_.commit_page(commit);
    result.replayed += commit.resolved_quarantine_ids.size();
  }
  return result;
}

ReplayResult replay_quarantine(OperatorViews& views, Ingestor& ingestor, const std::string& source,
                               const std::string& reason, int64_t id, int64_t now_ms) {
  ReplayResult total;
  int64_t after = id > 0 ? id - 1 : 0;
  while (true) {
    auto rows = views.quarantine(source, reason, 500, after);
    if (id > 0) {
      std::erase_if(rows, [&](const QuarantineRow& r) { return r.id != id; });
    }
    if (rows.empty()) break;
    after = rows.back().id;
    const ReplayResult r = ingestor.replay(rows, now_ms);
    total.replayed += r.replayed;
    total.still_failing += r.still_failing;
    total.not_replayable += r.not_replayable;
    total.problems.insert(total.problems.end(), r.problems.begin(), r.problems.end());
    if (id > 0) break;
  }
  return total;
}

}  // namespace kpihub
