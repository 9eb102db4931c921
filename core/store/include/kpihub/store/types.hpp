// The values the store's interfaces (kpihub/store/*.hpp) take and give, engine-neutral: what a
// page commit holds, what the scorer commits, what the outbox hands out, what operators read.
#pragma once

#include <kpihub/model.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kpihub {

// Raised for any storage failure; the message names the database file and
// what was being done ("store var/hub.db: database is locked while committing
// page of source eoffice").
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PageCommit {
  std::string source;                 // source instance name
  std::optional<std::string> cursor;  // the cursor after this page; nullopt: unchanged
  std::vector<WorkRecord> records;    // validated and resolved
  std::vector<QuarantineEntry> quarantined;
  int64_t received_at_unix_ms = 0;
  // Quarantine entries this page resolves (a replay after a fix): deleted in
  // the same transaction that stores their records.
  std::vector<int64_t> resolved_quarantine_ids;
};

struct PageCommitResult {
  std::size_t inserted = 0;  // new record ids
  std::size_t updated = 0;   // higher revision of a known record
  // Equal or lower revision than stored, or a bare withdrawal (is_bare_withdrawal) of a record
  // never stored: ignored. Counts the quarantine_not_kept entries too.
  std::size_t ignored_stale = 0;
  // Quarantine entries stored (PageCommit::quarantined less quarantine_not_kept).
  std::size_t quarantined = 0;
  // Indices into PageCommit::quarantined of the entries not stored: their record is stored (or
  // this page stored or withdrew it) at a revision at or above theirs, so nothing is left to fix.
  std::vector<std::size_t> quarantine_not_kept;
  // Quarantine entries of records this page stored a higher revision of (or withdrew, stored or
  // not), removed: an entry of a revision not above that one, or of no readable revision
  // received earlier.
  std::size_t quarantine_resolved = 0;
};

struct StaffMonthKey {
  std::string staff_code;
  std::string month;  // YYYY-MM
  auto operator<=>(const StaffMonthKey&) const = default;
};

// Days of a month as bits, bit d-1 for day d: which days of a staff month changed since the
// scorer last scored them.
using DayMask = uint32_t;
inline constexpr DayMask kWholeMonth = 0xFFFFFFFFu;
inline DayMask day_bit(const Date& d) {
  return DayMask{1} << (static_cast<unsigned>(d.ymd().day()) - 1);
}

struct DirtyStaffMonth {
  StaffMonthKey key;
  DayMask days = kWholeMonth;  // kWholeMonth: rescore all of it (rules, clock, upgrade)
  bool operator==(const DirtyStaffMonth&) const = default;
};

// A record's current scoring as last sent downstream.
struct RecordScoreRow {
  std::string record_id;
  int64_t revision = 0;
  int64_t sequence = 0;        // 1 for the first version sent
  std::string scoring_digest;  // scoring_digest() of the "scoring" object as sent
};

enum class OutboxKind { record = 0, staff_month = 1, agency_month = 2 };

struct OutboxItem {
  int64_t seq = 0;  // assigned by the store, increasing
  OutboxKind kind = OutboxKind::record;
  std::string key;      // record_id, "staff:<month>:<code>", "agency:<month>:<code>"
  std::string payload;  // JSON as the receiver gets it; never changes once stored
};

struct ScoringCommit {
  std::vector<StaffMonthKey> done;            // dirty keys this commit resolves
  std::vector<RecordScoreRow> record_scores;  // upserted
  struct MonthRow {
    OutboxKind kind = OutboxKind::staff_month;  // staff_month or agency_month
    std::string month;
    std::string code;  // staff code or agency code
    std::string agency_code;
    int64_t revision = 0;
    std::string json;
  };
  std::vector<MonthRow> months;    // upserted
  std::vector<OutboxItem> outbox;  // appended (seq ignored)
  // A staff month's day totals as the scorer encodes them (encode_day_totals), replaced whole.
  struct DayTotalsRow {
    StaffMonthKey key;
    std::string totals;
  };
  std::vector<DayTotalsRow> day_totals;
};

struct Batch {
  std::string batch_id;  // UUID, the Idempotency-Key
  std::string sink;
  int64_t first_seq = 0;
  int64_t last_seq = 0;
  std::vector<OutboxItem> items;
  uint32_t attempts = 0;
  int64_t not_before_unix_ms = 0;
  std::string last_error;  // why its last attempt failed (defer_batch); empty before one
};

struct DeadLetter {
  int64_t id = 0;
  std::string sink;
  std::string batch_id;
  std::string key;
  std::string code;
  std::string message;
  std::string payload;
  int64_t created_at_unix_ms = 0;
  bool replayed = false;
};

struct QuarantineRow {
  int64_t id = 0;
  QuarantineEntry entry;
  int64_t created_at_unix_ms = 0;
};

struct SourceState {
  std::string source;
  std::optional<std::string> cursor;
  int64_t updated_at_unix_ms = 0;
  int64_t records = 0;
  int64_t quarantined = 0;
};

struct QuarantineCount {
  std::string source;
  std::string reason;
  int64_t count = 0;
};

struct HourCount {
  int64_t hour_start_unix_ms = 0;
  int64_t count = 0;
  bool operator==(const HourCount&) const = default;
};

// A staff member as a source's staff list gave them (a source's list_staff), kept so that every
// command, not only the hub that synced the list, scores with the same staff directory.
struct SyncedStaff {
  std::string source;  // the source instance whose list named them
  std::string staff_code;
  std::string full_name;
  std::string agency_code;
  bool leader = false;
  bool active = true;
  int64_t synced_at_unix_ms = 0;  // when that source last listed them
  bool operator==(const SyncedStaff&) const = default;
};

struct StoreCounts {
  int64_t records = 0;
  int64_t revisions = 0;
  int64_t quarantined = 0;
  int64_t outbox_pending = 0;  // outbox items not yet in a delivered batch of every sink
  int64_t dead_letters = 0;
  // What waits for the scorer: revisions stored that it has not read from the change log yet,
  // and staff months it marked dirty and has not rescored yet. Both 0: everything is scored.
  int64_t revisions_to_read = 0;
  int64_t staff_months_to_score = 0;
};

}  // namespace kpihub
