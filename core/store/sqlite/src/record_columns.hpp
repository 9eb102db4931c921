// How a WorkRecord maps onto the typed columns of the records and
// record_revisions tables, in both directions, on prepared sqlite3 statements.
#pragma once

#include <kpihub/model.hpp>

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::store_detail {

// Column list shared by the schema, the writers and the readers.
std::string record_column_list();
// "INSERT INTO records ... ON CONFLICT DO UPDATE ... WHERE newer": the guard
// repeats the revision rule in SQL so the table can never move backwards.
std::string record_upsert_sql();
// The columns read_record_row() reads, each qualified by `table` unless it is empty.
std::string record_select_columns(std::string_view table);
// "SELECT <columns> FROM records " (absent values read back as '').
std::string record_select_sql();
// Reads one row of record_select_sql() into `record`, overwriting every field; `db_path` names
// the file when a stored value cannot be read back.
void read_record_row(sqlite3_stmt* statement, WorkRecord& record, const std::string& db_path);

// --- raw sqlite3 statements (see sqlite_statement.hpp for why) --------------

// Texts a record's binding computes (month, timestamps, attributes); reused across records.
struct RecordScratch {
  std::string month, deadline, completed_at, approval_status, approval_rating, approval_at,
      changed_at, attributes;
};
// Binds every parameter of record_upsert_sql() for `record`; the texts live in `scratch` and
// the record until the statement has stepped.
void bind_record(sqlite3_stmt* statement, const WorkRecord& record, int64_t received_at_unix_ms,
                 RecordScratch& scratch);
// "SELECT <what scoring reads>, received_at FROM records " (see
// ScoringState::scan_month_for_scoring).
std::string scoring_select_sql();
// The month scan of a recompute, in staff order: scoring_select_sql() over the month. The
// records_for_scoring index covers it (schema 4); store_test checks the query plan, so a
// column added here and not to the index fails a test instead of slowing recomputes 6x.
// ?2 is the first staff code of the part read; `bounded_above`: ?3 the first code after it
// (ScoringState::scan_month_for_scoring's parts).
std::string month_scan_sql(bool bounded_above);
// The same for one staff month (?1 month, ?2 staff_code), in record_id order: also covered.
std::string staff_month_scan_sql();
// The same for one staff-day (?1 month, ?2 staff_code, ?3 work_date as days): one short
// range of the index, keyed by work date after staff (schema 6).
std::string staff_day_scan_sql();
// The last score of one record (?1 month, ?2 staff_code, ?3 record_id): a key lookup.
std::string record_score_sql();
// The last scores of one staff month (?1 month, ?2 staff_code), in record_id order: a range of
// record_scores' key (schema 5). store_test checks both plans.
std::string staff_month_scores_sql();
// One staff or agency month row by its key: agency_code, revision, json of `table` (staff_months
// or agency_months) WHERE month = ?1 AND code = ?2. store_test checks it is a key lookup.
std::string month_row_sql(std::string_view table);
// Reads one row of scoring_select_sql() into `record`, overwriting every field scoring reads.
void read_scoring_row(sqlite3_stmt* statement, WorkRecord& record, int64_t& received_at_unix_ms,
                      const std::string& db_path);

std::string attributes_to_json(const std::vector<std::pair<std::string, std::string>>& attributes);

}  // namespace kpihub::store_detail
