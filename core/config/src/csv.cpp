#include <kpihub/csv.hpp>

#include "text_util.hpp"

#include <algorithm>

namespace kpihub {

using config_detail::closest_name;
using config_detail::quote_value;

namespace {

class CsvParser {
 public:
  CsvParser(std::string_view text, const std::string& file) : text_(text), file_(file) {}

  CsvDocument parse() {
    CsvDocument document;
    while (pos_ < text_.size()) {
      if (at_line_end()) {
        skip_line_end();
        continue;
      }
      if (text_[pos_] == '#') {
        document.comments.push_back(read_comment());
        continue;
      }
      CsvRow row = read_row();
      const bool blank = row.fields.size() == 1 && config_detail::trim(row.fields[0]).empty();
      if (!blank) document.rows.push_back(std::move(row));
    }
    return document;
  }

 private:
  bool at_line_end() const {
    return text_[pos_] == '\n' ||
           (text_[pos_] == '\r' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n');
  }
  void skip_line_end() {
    if (text_[pos_] == '\r') ++pos_;
    ++pos_;
    ++line_;
  }

  CsvComment read_comment() {
    CsvComment comment{line_, {}};
    const std::size_t start = pos_ + 1;
    while (pos_ < text_.size() && !at_line_end()) ++pos_;
    comment.text = std::string(config_detail::trim(text_.substr(start, pos_ - start)));
    if (pos_ < text_.size()) skip_line_end();
    return comment;
  }

  CsvRow read_row() {
    CsvRow row{line_, {}};
    while (true) {
      const bool is_quoted = pos_ < text_.size() && text_[pos_] == '"';
      row.fields.push_back(is_quoted ? read_quoted_field() : read_plain_field());
      if (pos_ >= text_.size()) break;
      if (at_line_end()) {
        skip_line_end();
        break;
      }
      ++pos_;  // the comma
    }
    return row;
  }

  std::string read_plain_field() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != ',' && !at_line_end()) {
      if (text_[pos_] == '"') {
        throw ConfigError(file_ + ":" + std::to_string(line_) +
                          ": a quote inside an unquoted field " +
                          quote_value(text_.substr(start, pos_ - start + 1)) +
                          " (quote the whole field and double the quote)");
      }
      ++pos_;
    }
    return std::string(text_.substr(start, pos_ - start));
  }

  std::string read_quoted_field() {
    const std::size_t opened_at_line = line_;
    ++pos_;  // opening quote
    std::string value;
    while (true) {
      if (pos_ >= text_.size()) {
        throw ConfigError(file_ + ":" + std::to_string(opened_at_line) +
                          ": quoted field is not closed before the end of the file");
      }
      const char c = text_[pos_];
      if (c == '"') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
          value += '"';
          pos_ += 2;
          continue;
        }
        ++pos_;
        break;
      }
      if (c == '\n') ++line_;
      value += c;
      ++pos_;
    }
    if (pos_ < text_.size() && text_[pos_] != ',' && !at_line_end()) {
      throw ConfigError(file_ + ":" + std::to_string(line_) + ": unexpected " +
                        quote_value(text_.substr(pos_, 1)) + " after the closing quote of field " +
                        quote_value(value));
    }
    return value;
  }

  std::string_view text_;
  const std::string& file_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
};

}  // namespace

CsvDocument parse_csv(std::string_view text, const std::string& file) {
  text = config_detail::strip_bom(text);
  config_detail::check_utf8(text, file);
  return CsvParser(text, file).parse();
}

CsvTable::CsvTable(const std::string& file, const std::vector<std::string>& required,
                   const std::vector<std::string>& optional)
    : CsvTable(config_detail::read_text_file(file), file, required, optional) {}

CsvTable::CsvTable(std::string_view text, const std::string& file,
                   const std::vector<std::string>& required,
                   const std::vector<std::string>& optional)
    : file_(file), document_(parse_csv(text, file)) {
  check_header(required, optional);
}

void CsvTable::check_header(const std::vector<std::string>& required,
                            const std::vector<std::string>& optional) {
  if (document_.rows.empty()) {
    throw ConfigError(file_ + ": no header row (expected columns " + [&] {
      std::string list;
      for (const auto& c : required) list += (list.empty() ? "" : ",") + c;
      return list;
    }() + ")");
  }
  const CsvRow& header = document_.rows.front();
  std::vector<std::string> known = required;
  known.insert(known.end(), optional.begin(), optional.end());
  for (std::size_t i = 0; i < header.fields.size(); ++i) {
    const std::string name(config_detail::trim(header.fields[i]));
    const std::string where = file_ + ":" + std::to_string(header.line) + ": ";
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      const auto suggestion = closest_name(name, known);
      throw ConfigError(where + "unknown column " + quote_value(name) +
                        (suggestion ? " (did you mean " + *suggestion + "?)" : ""));
    }
    if (!columns_.emplace(name, i).second) {
      throw ConfigError(where + "column " + quote_value(name) + " appears twice");
    }
  }
  std::string missing;
  for (const auto& column : required) {
    if (!columns_.count(column)) missing += (missing.empty() ? "" : ", ") + column;
  }
  if (!missing.empty()) {
    throw ConfigError(file_ + ":" + std::to_string(header.line) + ": header is missing column(s) " +
                      missing);
  }
  for (std::size_t i = 1; i < document_.rows.size(); ++i) {
    const CsvRow& row = document_.rows[i];
    if (row.fields.size() != header.fields.size()) {
      throw ConfigError(file_ + ":" + std::to_string(row.line) + ": " +
                        std::to_string(row.fields.size()) + " fields, the header has " +
                        std::to_string(header.fields.size()));
    }
  }
}

std::string CsvTable::Row::get(const std::string& column) const {
  const auto it = table_->columns_.find(column);
  if (it == table_->columns_.end()) return {};
  return std::string(config_detail::trim(row_->fields[it->second]));
}

ConfigError CsvTable::Row::error(const std::string& column, const std::string& problem) const {
  return ConfigError(where() + ": " + column + ": " + quote_value(get(column)) + " " + problem);
}

std::string CsvTable::Row::where() const {
  return table_->file_ + ":" + std::to_string(row_->line);
}

}  // namespace kpihub
