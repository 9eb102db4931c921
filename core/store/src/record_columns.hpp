// How a WorkRecord maps onto the typed columns of the records and
// record_revisions tables, in both directions, as column vectors so that a
// whole page is written or read by one prepared statement (Poco binds vectors
// row by row without re-preparing).
#pragma once

#include <kpihub/model.hpp>

#include <Poco/Data/Statement.h>
#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kpihub::store_detail {

// Column list shared by the schema, the writers and the readers.
std::string record_column_list();
// "INSERT INTO records ... ON CONFLICT DO UPDATE ... WHERE newer": the guard
// repeats the revision rule in SQL so the table can never move backwards.
std::string record_upsert_sql();
// "SELECT <columns> FROM records " (absent values read back as '').
std::string record_select_sql();

struct RecordColumns {
  std::vector<std::string> record_id, source_system, source_id;
  std::vector<int64_t> revision, retracted;
  std::vector<std::string> staff_code, source_staff_id, agency_code, task_code;
  std::vector<int64_t> work_date;
  std::vector<std::string> month;
  std::vector<int64_t> declared_minutes;
  std::vector<double> quantity;
  std::vector<std::string> product_unit, title, evidence_ref, deadline, completed_at;
  std::vector<std::string> approval_status, approval_rating, approval_by, approval_at;
  std::vector<std::string> changed_at, attributes;
  std::vector<int64_t> received_at;

  void add(const WorkRecord& record, int64_t received_at_unix_ms);
  std::size_t size() const { return record_id.size(); }
  void clear();

  // Binds every column (upsert order) to `statement`; size() must be > 0.
  void bind_to(Poco::Data::Statement& statement);
  // Extracts every column of record_select_sql() (all but received_at).
  void extract_from(Poco::Data::Statement& statement);
  // Converts the extracted rows; `db_path` names the file in errors.
  void append_to(std::vector<WorkRecord>& out, const std::string& db_path) const;
};

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
// "SELECT <what scoring reads>, received_at FROM records " (see Store::scan_month_for_scoring).
std::string scoring_select_sql();
// Reads one row of scoring_select_sql() into `record`, overwriting every field scoring reads.
void read_scoring_row(sqlite3_stmt* statement, WorkRecord& record, int64_t& received_at_unix_ms,
                      const std::string& db_path);

std::string attributes_to_json(const std::vector<std::pair<std::string, std::string>>& attributes);

}  // namespace kpihub::store_detail
