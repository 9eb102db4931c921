// A small RFC 4180 reader for the reference data files in config/: quoted
// fields with commas, doubled quotes and line breaks; CRLF or LF; a UTF-8 byte
// order mark at the start; `#` comment lines; blank lines skipped. Errors are
// ConfigError naming "<file>:<line>".
#pragma once

#include <kpihub/reference.hpp>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub {

struct CsvComment {
  std::size_t line = 0;
  std::string text;  // after the '#', trimmed
};

struct CsvRow {
  std::size_t line = 0;  // where the row starts (a quoted field may span lines)
  std::vector<std::string> fields;
};

struct CsvDocument {
  std::vector<CsvComment> comments;
  std::vector<CsvRow> rows;  // the header row included
};

// Parses CSV text; `file` names it in errors. Checks UTF-8 first. A line whose
// first character is '#' is a comment (quote a first field starting with '#').
CsvDocument parse_csv(std::string_view text, const std::string& file);

// A CSV file with a checked header row.
class CsvTable {
 public:
  // Reads and parses `file`. The first row is the header: every column in
  // `required` must be there, no column outside `required` and `optional`
  // may be, none twice. Every row must have as many fields as the header.
  CsvTable(const std::string& file, const std::vector<std::string>& required,
           const std::vector<std::string>& optional = {});
  // The same over text already in memory (`file` names it in errors).
  CsvTable(std::string_view text, const std::string& file, const std::vector<std::string>& required,
           const std::vector<std::string>& optional = {});

  const std::string& file() const { return file_; }
  const std::vector<CsvComment>& comments() const { return document_.comments; }
  std::size_t size() const { return document_.rows.size() - 1; }  // data rows
  bool has_column(const std::string& column) const { return columns_.count(column) != 0; }

  class Row {
   public:
    std::size_t line() const { return row_->line; }
    // The trimmed field of `column`; "" when the column is optional and absent.
    std::string get(const std::string& column) const;
    // ConfigError("<file>:<line>: <column>: \"<value>\" <problem>"), to throw.
    [[nodiscard]] ConfigError error(const std::string& column, const std::string& problem) const;
    [[nodiscard]] std::string where() const;  // "<file>:<line>"

   private:
    friend class CsvTable;
    Row(const CsvTable* table, const CsvRow* row) : table_(table), row_(row) {}
    const CsvTable* table_;
    const CsvRow* row_;
  };
  Row row(std::size_t index) const { return Row(this, &document_.rows[index + 1]); }

 private:
  void check_header(const std::vector<std::string>& required,
                    const std::vector<std::string>& optional);

  std::string file_;
  CsvDocument document_;
  std::map<std::string, std::size_t> columns_;
};

}  // namespace kpihub
