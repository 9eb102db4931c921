#include "record_columns.hpp"

#include "sqlite_statement.hpp"

#include <kpihub/store/types.hpp>

#include <boost/json.hpp>

#include <array>
#include <string_view>

namespace kpihub::store_detail {

namespace {

struct ColumnSpec {
  std::string_view name;
  bool empty_means_null;  // optional text: '' is stored as NULL, read back as ''
};

constexpr std::array<ColumnSpec, 25> kColumns{{
    {"record_id", false},       {"source_system", false},  {"source_id", false},
    {"revision", false},        {"retracted", false},      {"staff_code", false},
    {"source_staff_id", false}, {"agency_code", false},    {"task_code", false},
    {"work_date", false},       {"month", false},          {"declared_minutes", false},
    {"quantity", false},        {"product_unit", false},   {"title", false},
    {"evidence_ref", false},    {"deadline", true},        {"completed_at", true},
    {"approval_status", true},  {"approval_rating", true}, {"approval_by", false},
    {"approval_at", true},      {"changed_at", true},      {"attributes", true},
    {"received_at", false},
}};

std::string optional_text(const std::optional<Timestamp>& ts) {
  return ts ? ts->str() : std::string();
}

[[noreturn]] void corrupt(const std::string& db_path, const std::string& record_id,
                          std::string_view field, const std::string& value) {
  throw StoreError("store " + db_path + ": record " + record_id + " has an unreadable " +
                   std::string(field) + " '" + value + "'");
}

std::optional<Timestamp> read_timestamp(std::string_view text, const std::string& db_path,
                                        const std::string& record_id, std::string_view field) {
  if (text.empty()) return std::nullopt;
  auto ts = Timestamp::parse(text);
  if (!ts) corrupt(db_path, record_id, field, std::string(text));
  return ts;
}

// A deadline is written as Deadline::str(): a bare date or an RFC 3339 instant.
Deadline read_deadline(std::string_view text, const std::string& db_path,
                       const std::string& record_id) {
  Deadline d;
  if (text.size() == 10) {
    d.date = Date::parse(text);
    if (!d.date) corrupt(db_path, record_id, "deadline", std::string(text));
  } else {
    d.at = read_timestamp(text, db_path, record_id, "deadline");
  }
  return d;
}

}  // namespace

std::string record_column_list() {
  std::string out;
  for (const auto& column : kColumns) {
    if (!out.empty()) out += ", ";
    out += column.name;
  }
  return out;
}

std::string record_upsert_sql() {
  std::string values;
  std::string updates;
  for (const auto& column : kColumns) {
    if (!values.empty()) values += ", ";
    values += column.empty_means_null ? "NULLIF(?, '')" : "?";
    if (column.name == "record_id") continue;
    if (!updates.empty()) updates += ", ";
    updates += std::string(column.name) + " = excluded." + std::string(column.name);
  }
  return "INSERT INTO records (" + record_column_list() + ") VALUES (" + values +
         ") ON CONFLICT (record_id) DO UPDATE SET " + updates +
         " WHERE excluded.revision > records.revision";
}

std::string record_select_columns(std::string_view table) {
  const std::string prefix = table.empty() ? std::string() : std::string(table) + ".";
  std::string out;
  for (const auto& column : kColumns) {
    if (column.name == "received_at") continue;
    if (!out.empty()) out += ", ";
    if (column.empty_means_null) {
      out += "IFNULL(" + prefix + std::string(column.name) + ", '')";
    } else {
      out += prefix + std::string(column.name);
    }
  }
  return out;
}

std::string record_select_sql() {
  return "SELECT " + record_select_columns("") + " FROM records ";
}

std::string attributes_to_json(const std::vector<std::pair<std::string, std::string>>& attributes) {
  if (attributes.empty()) return {};
  // An array of [key, value] pairs keeps order and duplicates exactly as the model holds them.
  boost::json::array pairs;
  pairs.reserve(attributes.size());
  for (const auto& [key, value] : attributes) {
    pairs.push_back(boost::json::array{boost::json::string(key), boost::json::string(value)});
  }
  return boost::json::serialize(pairs);
}

// --- raw sqlite3 statements (see sqlite_statement.hpp for why) --------------

void bind_record(sqlite3_stmt* s, const WorkRecord& r, int64_t received_at_unix_ms,
                 RecordScratch& scratch) {
  // Texts computed here live in `scratch` until the statement has stepped.
  scratch.month = r.work_date.month_str();
  scratch.deadline = r.deadline ? r.deadline->str() : std::string();
  scratch.completed_at = optional_text(r.completed_at);
  scratch.approval_status = r.approval ? std::string(to_string(r.approval->status)) : std::string();
  scratch.approval_rating = r.approval && r.approval->rating
                                ? std::string(to_string(*r.approval->rating))
                                : std::string();
  scratch.approval_at = r.approval ? optional_text(r.approval->at) : std::string();
  scratch.changed_at = optional_text(r.changed_at);
  scratch.attributes = attributes_to_json(r.attributes);
  const std::string_view approval_by = r.approval ? std::string_view(r.approval->by) : "";
  // Parameter order is kColumns order (record_upsert_sql).
  bind_text(s, 1, r.record_id);
  bind_text(s, 2, r.source_system);
  bind_text(s, 3, r.source_id);
  sqlite3_bind_int64(s, 4, r.revision);
  sqlite3_bind_int64(s, 5, r.retracted ? 1 : 0);
  bind_text(s, 6, r.staff_code);
  bind_text(s, 7, r.source_staff_id);
  bind_text(s, 8, r.agency_code);
  bind_text(s, 9, r.task_code);
  sqlite3_bind_int64(s, 10, r.work_date.days);
  bind_text(s, 11, scratch.month);
  sqlite3_bind_int64(s, 12, r.declared_minutes);
  sqlite3_bind_double(s, 13, r.quantity);
  bind_text(s, 14, r.product_unit);
  bind_text(s, 15, r.title);
  bind_text(s, 16, r.evidence_ref);
  bind_text(s, 17, scratch.deadline);
  bind_text(s, 18, scratch.completed_at);
  bind_text(s, 19, scratch.approval_status);
  bind_text(s, 20, scratch.approval_rating);
  bind_text(s, 21, approval_by);
  bind_text(s, 22, scratch.approval_at);
  bind_text(s, 23, scratch.changed_at);
  bind_text(s, 24, scratch.attributes);
  sqlite3_bind_int64(s, 25, received_at_unix_ms);
}

std::string scoring_select_sql() {
  return "SELECT staff_code, record_id, source_system, revision, retracted, agency_code, "
         "task_code, work_date, declared_minutes, quantity, evidence_ref, deadline, completed_at, "
         "approval_status, approval_rating, received_at, changed_at FROM records ";
}

std::string month_row_sql(std::string_view table) {
  return "SELECT agency_code, revision, json FROM " + std::string(table) +
         " WHERE month = ? AND code = ?";
}

std::string month_scan_sql(bool bounded_above) {
  return scoring_select_sql() + "WHERE month = ?1 AND staff_code >= ?2 AND staff_code <> ''" +
         (bounded_above ? " AND staff_code < ?3" : "") + " ORDER BY staff_code, work_date";
}

std::string staff_month_scan_sql() {
  return scoring_select_sql() + "WHERE month = ? AND staff_code = ? ORDER BY record_id";
}

std::string staff_day_scan_sql() {
  return scoring_select_sql() +
         "WHERE month = ? AND staff_code = ? AND work_date = ? ORDER BY record_id";
}

std::string record_score_sql() {
  return "SELECT revision, sequence, scoring_json FROM record_scores "
         "WHERE month = ? AND staff_code = ? AND record_id = ?";
}

std::string staff_month_scores_sql() {
  return "SELECT record_id, revision, sequence, scoring_json FROM record_scores "
         "WHERE month = ? AND staff_code = ? ORDER BY record_id";
}

namespace {

// The deadline, completed_at and approval status/rating columns, which both
// readers have (at different column numbers). Returns the approval when there
// is one, so the full reader can add approval.by and .at.
Approval* read_deadline_and_approval(sqlite3_stmt* s, int deadline_column, WorkRecord& r,
                                     const std::string& db_path) {
  const std::string_view deadline = column_text(s, deadline_column);
  r.deadline.reset();
  if (!deadline.empty()) r.deadline = read_deadline(deadline, db_path, r.record_id);
  r.completed_at =
      read_timestamp(column_text(s, deadline_column + 1), db_path, r.record_id, "completed_at");
  const std::string_view status = column_text(s, deadline_column + 2);
  r.approval.reset();
  if (status.empty()) return nullptr;
  Approval& a = r.approval.emplace();
  auto parsed = parse_approval_status(status);
  if (!parsed) corrupt(db_path, r.record_id, "approval_status", std::string(status));
  a.status = *parsed;
  const std::string_view rating = column_text(s, deadline_column + 3);
  if (!rating.empty()) {
    a.rating = parse_rating(rating);
    if (!a.rating) corrupt(db_path, r.record_id, "approval_rating", std::string(rating));
  }
  return &a;
}

}  // namespace

void read_scoring_row(sqlite3_stmt* s, WorkRecord& r, int64_t& received_at_unix_ms,
                      const std::string& db_path) {
  // Assigning into the strings of a reused record keeps their capacity: no allocation per row
  // once the buffer has grown to the largest staff-month.
  r.staff_code.assign(column_text(s, 0));
  r.record_id.assign(column_text(s, 1));
  r.source_system.assign(column_text(s, 2));
  r.revision = sqlite3_column_int64(s, 3);
  r.retracted = sqlite3_column_int64(s, 4) != 0;
  r.agency_code.assign(column_text(s, 5));
  r.task_code.assign(column_text(s, 6));
  r.work_date = Date{static_cast<int32_t>(sqlite3_column_int64(s, 7))};
  r.declared_minutes = static_cast<int32_t>(sqlite3_column_int64(s, 8));
  r.quantity = sqlite3_column_double(s, 9);
  r.evidence_ref.assign(column_text(s, 10));
  // Columns 11-14: deadline, completed_at, approval_status, approval_rating.
  read_deadline_and_approval(s, 11, r, db_path);
  received_at_unix_ms = sqlite3_column_int64(s, 15);
  // When the source recorded the revision: what 5.4 counts as submitted.
  r.changed_at = read_timestamp(column_text(s, 16), db_path, r.record_id, "changed_at");
}

void read_record_row(sqlite3_stmt* s, WorkRecord& r, const std::string& db_path) {
  // Column order is record_select_sql(): kColumns without received_at.
  r.record_id.assign(column_text(s, 0));
  r.source_system.assign(column_text(s, 1));
  r.source_id.assign(column_text(s, 2));
  r.revision = sqlite3_column_int64(s, 3);
  r.retracted = sqlite3_column_int64(s, 4) != 0;
  r.staff_code.assign(column_text(s, 5));
  r.source_staff_id.assign(column_text(s, 6));
  r.agency_code.assign(column_text(s, 7));
  r.task_code.assign(column_text(s, 8));
  r.work_date = Date{static_cast<int32_t>(sqlite3_column_int64(s, 9))};
  // Column 10, month, is derived from work_date.
  r.declared_minutes = static_cast<int32_t>(sqlite3_column_int64(s, 11));
  r.quantity = sqlite3_column_double(s, 12);
  r.product_unit.assign(column_text(s, 13));
  r.title.assign(column_text(s, 14));
  r.evidence_ref.assign(column_text(s, 15));
  // Columns 16-19: deadline, completed_at, approval_status, approval_rating.
  if (Approval* a = read_deadline_and_approval(s, 16, r, db_path)) {
    a->by.assign(column_text(s, 20));
    a->at = read_timestamp(column_text(s, 21), db_path, r.record_id, "approval_at");
  }
  r.changed_at = read_timestamp(column_text(s, 22), db_path, r.record_id, "changed_at");
  r.attributes.clear();
  const std::string_view attributes = column_text(s, 23);
  if (!attributes.empty()) {
    boost::system::error_code ec;
    const auto parsed = boost::json::parse(attributes, ec);
    if (ec || !parsed.is_array())
      corrupt(db_path, r.record_id, "attributes", std::string(attributes));
    for (const auto& pair : parsed.get_array()) {
      const auto* kv = pair.if_array();
      if (!kv || kv->size() != 2 || !(*kv)[0].is_string() || !(*kv)[1].is_string()) {
        corrupt(db_path, r.record_id, "attributes", std::string(attributes));
      }
      r.attributes.emplace_back(std::string((*kv)[0].get_string()),
                                std::string((*kv)[1].get_string()));
    }
  }
}

}  // namespace kpihub::store_detail
