// The ingest side of the store: accepted record revisions, the quarantine entries a page
// makes, and each source's cursor, committed a page at a time.
//
// What an engine must keep (issue 20; docs/architecture.md, "The store"): commit_page is one
// transaction (records, their revision history, quarantine entries, the cursor and the dirty
// staff days a revised record leaves): after a crash a page is stored whole or not at all, so a
// source pulled again from its stored cursor neither loses nor counts a record twice. Several
// processes may read while one hub writes.
#pragma once

#include <kpihub/store/types.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kpihub {

class RecordLog {
 public:
  virtual ~RecordLog() = default;

  // One transaction: records (a revision not above the stored one is ignored;
  // each stored revision also goes to the revision history; a bare withdrawal
  // withdraws the stored record, keeping its content), quarantine entries and
  // the new cursor; a stored revision resolves (removes) the quarantine entries
  // it supersedes (PageCommitResult::quarantine_resolved), and an entry of a
  // revision not above the stored one, or one the store holds already (same source instance,
  // record, reason, field, message, payload and fields: the source read again; not for a record
  // the page stores, whose held entries it resolves), is not kept (quarantine_not_kept). The
  // revision history is the scorer's change log (ScoringState::dirty_staff_days); the page marks
  // dirty only the staff days a revised record leaves, which the history does not name.
  virtual PageCommitResult commit_page(const PageCommit& page) = 0;
  virtual std::optional<std::string> cursor(const std::string& source) = 0;
  virtual std::vector<SourceState> sources() = 0;
  // Sets a source's cursor outside a page (`kpihub source reset`); nullopt: the source is read
  // again from its start. What its pages brought (records, quarantine) stays, as do their
  // counts: a record read again at a revision the store has is ignored as stale.
  virtual void set_cursor(const std::string& source, const std::optional<std::string>& cursor) = 0;
  // Removes the quarantine entries of `source` (the instance or the source system) and `reason`
  // (an empty filter matches everything), or with id > 0 that entry only if it matches (id <= 0:
  // no id filter); counts
  // them out of their sources' quarantined items. Returns how many (`kpihub quarantine
  // dismiss`: entries a fix made obsolete that no revision of theirs will resolve).
  virtual std::size_t dismiss_quarantine(const std::string& source, const std::string& reason,
                                         int64_t id) = 0;

  // The current revision of a record, every field; nullopt for an unknown id.
  virtual std::optional<WorkRecord> record(const std::string& record_id) = 0;
  // Records of a whole month (current revisions, retracted ones included).
  virtual std::vector<WorkRecord> records_of_month(const std::string& month) = 0;
  // When the hub first stored the current revision of each record (unix ms),
  // parallel to `record_ids`; 0 for unknown ids.
  virtual std::vector<int64_t> received_at(const std::vector<std::string>& record_ids) = 0;
  // Record revisions stored per hour since `since_unix_ms`, oldest hour first; hours with none
  // are left out. Reads from the newest revision back, so its cost is that of the window.
  virtual std::vector<HourCount> stored_per_hour(int64_t since_unix_ms) = 0;
};

}  // namespace kpihub
