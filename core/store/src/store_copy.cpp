#include <kpihub/store/copy.hpp>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <utility>

namespace kpihub {

namespace {

// "No limit" for the seams' listings (an int, as SQLite's LIMIT binds it).
constexpr std::size_t kEverything = std::numeric_limits<int32_t>::max();
constexpr std::size_t kQuarantinePage = 1000;
constexpr std::size_t kMonthRowsPerCommit = 2000;
constexpr std::size_t kDoneKeysPerCommit = 2000;

std::string count_text(int64_t n, const char* what) {
  return std::to_string(n) + " " + what;
}

void require_empty(Storage& to, const std::string& name) {
  const StoreCounts c = to.views().counts();
  const auto sources = to.records().sources();
  const auto staff = to.staff_lists().synced_staff();
  const auto sinks = to.outbox().sinks_with_batches();
  if (c.records == 0 && c.revisions == 0 && c.quarantined == 0 && c.outbox_pending == 0 &&
      c.dead_letters == 0 && sources.empty() && staff.empty() && sinks.empty()) {
    return;
  }
  throw StoreError("store copy: the destination " + name + " is not empty (" +
                   count_text(c.records, "records") + ", " +
                   count_text(c.quarantined, "quarantined") + ", " +
                   count_text(static_cast<int64_t>(sources.size()), "sources") + ", " +
                   count_text(c.outbox_pending, "outbox items") + ", " +
                   count_text(c.dead_letters, "dead letters") + ", " +
                   count_text(static_cast<int64_t>(staff.size()), "synced staff") +
                   "): a copy goes only into a new store");
}

class Copier {
 public:
  Copier(Storage& from, Storage& to, const StoreCopyOptions& options, StoreCopyResult& result)
      : from_(from), to_(to), options_(options), result_(result) {
    if (options_.page_records == 0 || options_.buffer_records == 0) {
      throw StoreError("store copy: page_records and buffer_records must be above 0");
    }
  }

  void run() {
    const StoreCounts before = from_.views().counts();
    if (before.outbox_pending > 0) {
      throw StoreError(
          "store copy: " + options_.from_name + " has " +
          count_text(before.outbox_pending, "outbox items") +
          " not yet delivered to every sink, and no seam reads the outbox to carry them: run the "
          "hub until every sink has caught up (kpihub status: items waiting), or forget a sink "
          "taken out for good (kpihub forget-sink), then copy");
    }
    require_empty(to_, options_.to_name);
    progress_.records_total = before.records;

    // What waits for the scorer in the source, listed before anything is copied (the listing
    // first marks what the change log holds).
    for (const auto& d : from_.scoring().dirty_staff_days(kEverything)) {
      source_dirty_[d.key] = d.days;
    }

    for (Month m = options_.first_month; m <= options_.last_month; m = m.next()) copy_month(m);
    flush();
    copy_quarantine();
    copy_cursors();
    copy_staff_lists();
    carry_dirty_marks();

    result_.from = from_.views().counts();
    result_.to = to_.views().counts();
    compare();
    to_.views().audit("kpihub store copy", "store copy",
                      "from " + options_.from_name + ": " + count_text(result_.records, "records") +
                          ", " + count_text(result_.quarantined, "quarantine entries"));
  }

 private:
  void copy_month(const Month& month) {
    const std::string m = month.str();
    for (const auto& staff : from_.scoring().staff_of_month(m)) copy_staff_month({staff, m});
    // Month rows after the staff months' records (their agency rows name agencies of them).
    std::vector<ScoringCommit::MonthRow> rows;
    for (OutboxKind kind : {OutboxKind::staff_month, OutboxKind::agency_month}) {
      auto part = from_.scoring().month_rows(kind, m);
      rows.insert(rows.end(), std::make_move_iterator(part.begin()),
                  std::make_move_iterator(part.end()));
    }
    if (rows.empty()) return;
    flush();
    for (std::size_t i = 0; i < rows.size(); i += kMonthRowsPerCommit) {
      ScoringCommit commit;
      const std::size_t end = std::min(rows.size(), i + kMonthRowsPerCommit);
      commit.months.assign(rows.begin() + static_cast<std::ptrdiff_t>(i),
                           rows.begin() + static_cast<std::ptrdiff_t>(end));
      to_.scoring().commit_scoring(commit);
    }
    result_.month_rows += static_cast<int64_t>(rows.size());
  }

  // A staff month's records a few days at a time (one may hold hundreds of thousands: issue 18),
  // with when each was received and its last score, then its day totals.
  void copy_staff_month(const StaffMonthKey& key) {
    const auto days = from_.scoring().records_per_day(key, kWholeMonth);
    DayMask mask = 0;
    std::size_t in_mask = 0;
    for (std::size_t i = 0; i < days.size(); ++i) {
      mask |= day_bit(days[i].date);
      in_mask += days[i].records;
      const bool last = i + 1 == days.size();
      if (!last && in_mask + days[i + 1].records <= options_.buffer_records) continue;
      add_records(from_.scoring().records_of_staff_days(key, mask));
      mask = 0;
      in_mask = 0;
    }
    if (auto totals = from_.scoring().staff_days_for_scoring(key, 0).day_totals) {
      scoring_.day_totals.push_back({key, std::move(*totals)});
    }
  }

  void add_records(std::vector<WorkRecord> records) {
    if (records.empty()) return;
    std::vector<std::string> ids;
    ids.reserve(records.size());
    for (const auto& r : records) ids.push_back(r.record_id);
    const std::vector<int64_t> received = from_.records().received_at(ids);
    for (auto& row : from_.scoring().record_scores(ids)) {
      scoring_.record_scores.push_back(std::move(row));
    }
    for (std::size_t i = 0; i < records.size(); ++i) {
      pending_.push_back({std::move(records[i]), i < received.size() ? received[i] : 0});
    }
    if (pending_.size() >= options_.buffer_records) flush();
  }

  // The records waiting, as pages of one source and one received-at each (a page stamps its
  // records with its time: scoring reads it), then their scores and day totals.
  void flush() {
    std::map<std::pair<std::string, int64_t>, std::vector<WorkRecord>> pages;
    for (auto& p : pending_) {
      pages[{p.record.source_system, p.received_at}].push_back(std::move(p.record));
    }
    pending_.clear();
    for (auto& [what, records] : pages) {
      for (std::size_t i = 0; i < records.size(); i += options_.page_records) {
        PageCommit page;
        page.source = what.first;
        page.received_at_unix_ms = what.second;
        const std::size_t end = std::min(records.size(), i + options_.page_records);
        page.records.assign(
            std::make_move_iterator(records.begin() + static_cast<std::ptrdiff_t>(i)),
            std::make_move_iterator(records.begin() + static_cast<std::ptrdiff_t>(end)));
        const PageCommitResult r = to_.records().commit_page(page);
        if (r.inserted != page.records.size()) {
          throw StoreError("store copy: " + options_.to_name + " took " +
                           std::to_string(r.inserted) + " of a page of " +
                           std::to_string(page.records.size()) + " records of source " +
                           page.source + " (" + std::to_string(r.ignored_stale) +
                           " ignored as stale), first record " + page.records.front().record_id);
        }
        result_.records += static_cast<int64_t>(r.inserted);
        progress_.records_copied = result_.records;
        if (options_.on_progress) options_.on_progress(progress_);
      }
    }
    if (!scoring_.record_scores.empty() || !scoring_.day_totals.empty()) {
      result_.record_scores += static_cast<int64_t>(scoring_.record_scores.size());
      result_.day_totals += static_cast<int64_t>(scoring_.day_totals.size());
      to_.scoring().commit_scoring(scoring_);
      scoring_ = ScoringCommit{};
    }
  }

  // After every record: an entry of a revision above its record's stored one stays, as it did
  // in the source (committed before its record, the record's page would resolve it). Pages of
  // one source and one time each, in id order.
  void copy_quarantine() {
    int64_t after = 0;
    for (;;) {
      const auto rows = from_.views().quarantine("", "", kQuarantinePage, after);
      if (rows.empty()) break;
      after = rows.back().id;
      std::size_t i = 0;
      while (i < rows.size()) {
        PageCommit page;
        page.source = rows[i].entry.source_system;
        page.received_at_unix_ms = rows[i].created_at_unix_ms;
        std::size_t j = i;
        while (j < rows.size() && rows[j].entry.source_system == page.source &&
               rows[j].created_at_unix_ms == page.received_at_unix_ms) {
          page.quarantined.push_back(rows[j].entry);
          ++j;
        }
        if (page.source.empty()) {
          throw StoreError("store copy: quarantine entry " + std::to_string(rows[i].id) + " of " +
                           options_.from_name + " names no source");
        }
        const PageCommitResult r = to_.records().commit_page(page);
        if (r.quarantined != page.quarantined.size()) {
          throw StoreError("store copy: " + options_.to_name + " kept " +
                           std::to_string(r.quarantined) + " of quarantine entries " +
                           std::to_string(rows[i].id) + " to " + std::to_string(rows[j - 1].id) +
                           " (" + std::to_string(page.quarantined.size()) + ") of source " +
                           page.source);
        }
        result_.quarantined += static_cast<int64_t>(r.quarantined);
        i = j;
      }
      if (rows.size() < kQuarantinePage) break;
    }
  }

  // Last: a source's cursor says everything before it is stored.
  void copy_cursors() {
    for (const auto& s : from_.records().sources()) {
      if (!s.cursor) continue;
      PageCommit page;
      page.source = s.source;
      page.cursor = s.cursor;
      page.received_at_unix_ms = s.updated_at_unix_ms;
      to_.records().commit_page(page);
      ++result_.cursors;
    }
  }

  // Each source's list whole, the sources in the order their oldest entry was synced.
  void copy_staff_lists() {
    std::vector<std::string> order;
    std::map<std::string, std::vector<SyncedStaff>> lists;
    for (auto& entry : from_.staff_lists().synced_staff()) {
      auto& list = lists[entry.source];
      if (list.empty()) order.push_back(entry.source);
      list.push_back(std::move(entry));
    }
    for (const auto& source : order) {
      to_.staff_lists().save_synced_staff(source, lists[source]);
      result_.synced_staff += static_cast<int64_t>(lists[source].size());
    }
  }

  // Every staff month the copy stored is dirty in the destination (its change log). What was
  // scored in the source is cleared there; what waited for the scorer stays. A staff month
  // that waited on days the destination's marks do not cover (days its records left) needs a
  // whole rescore, which only a month's mark gives.
  void carry_dirty_marks() {
    std::map<StaffMonthKey, DayMask> marked;
    for (const auto& d : to_.scoring().dirty_staff_days(kEverything)) marked[d.key] = d.days;
    std::set<std::string> whole_months;
    for (const auto& [key, days] : source_dirty_) {
      const auto it = marked.find(key);
      if (it == marked.end()) {
        result_.dirty_without_records.push_back(key);
      } else if ((days & ~it->second) != 0) {
        whole_months.insert(key.month);
      }
    }
    std::vector<StaffMonthKey> done;
    for (const auto& [key, days] : marked) {
      if (!source_dirty_.count(key) && !whole_months.count(key.month)) done.push_back(key);
    }
    for (std::size_t i = 0; i < done.size(); i += kDoneKeysPerCommit) {
      ScoringCommit commit;
      const std::size_t end = std::min(done.size(), i + kDoneKeysPerCommit);
      commit.done.assign(done.begin() + static_cast<std::ptrdiff_t>(i),
                         done.begin() + static_cast<std::ptrdiff_t>(end));
      to_.scoring().commit_scoring(commit);
    }
    for (const auto& month : whole_months) {
      to_.scoring().mark_month_dirty(month);
      result_.months_marked_whole.push_back(month);
    }
    result_.staff_months_to_score = static_cast<int64_t>(source_dirty_.size());
  }

  void compare() {
    const StoreCounts& a = result_.from;
    const StoreCounts& b = result_.to;
    const auto same = [&](const char* what, int64_t from, int64_t to) {
      if (from == to) return;
      result_.mismatches.push_back(std::string(what) + ": " + std::to_string(from) + " in " +
                                   options_.from_name + ", " + std::to_string(to) + " in " +
                                   options_.to_name);
    };
    same("records", a.records, b.records);
    same("quarantined", a.quarantined, b.quarantined);
    same("outbox items pending", a.outbox_pending, b.outbox_pending);
    same("revisions not yet read by the scorer", a.revisions_to_read, b.revisions_to_read);
    // More to rescore is safe (a result that did not change is not sent again); fewer is not,
    // but for the staff months without records, which no seam can mark (reported apart).
    const auto unmarkable = static_cast<int64_t>(result_.dirty_without_records.size());
    if (b.staff_months_to_score + unmarkable < a.staff_months_to_score) {
      same("staff months waiting to be rescored", a.staff_months_to_score, b.staff_months_to_score);
    }
  }

  struct Pending {
    WorkRecord record;
    int64_t received_at = 0;
  };

  Storage& from_;
  Storage& to_;
  const StoreCopyOptions& options_;
  StoreCopyResult& result_;
  StoreCopyProgress progress_;
  std::map<StaffMonthKey, DayMask> source_dirty_;
  std::vector<Pending> pending_;
  ScoringCommit scoring_;  // the scores and day totals of the staff months in pending_
};

}  // namespace

StoreCopyResult copy_store(Storage& from, Storage& to, const StoreCopyOptions& options) {
  StoreCopyResult result;
  Copier(from, to, options, result).run();
  return result;
}

}  // namespace kpihub
