// Catalog, staff directory and holiday calendar loaders (CSV files).
#include <kpihub/csv.hpp>
#include <kpihub/reference.hpp>

#include "text_util.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <utility>

namespace kpihub {

using config_detail::parse_bool;
using config_detail::parse_double;
using config_detail::quote_value;
using config_detail::split;

namespace {

const std::vector<std::string> kSectors = {"", "education", "health"};

bool has_space(const std::string& s) {
  return s.find_first_of(" \t\r\n") != std::string::npos;
}

// A code: non-empty, no whitespace.
std::string code_field(const CsvTable::Row& row, const std::string& column) {
  std::string value = row.get(column);
  if (value.empty()) throw row.error(column, "is empty");
  if (has_space(value)) throw row.error(column, "contains whitespace");
  return value;
}

bool bool_field(const CsvTable::Row& row, const std::string& column, bool default_value) {
  const std::string value = row.get(column);
  if (value.empty()) return default_value;
  const auto parsed = parse_bool(value);
  if (!parsed) throw row.error(column, "is not true or false");
  return *parsed;
}

std::string sector_field(const CsvTable::Row& row) {
  std::string value = row.get("sector");
  if (std::find(kSectors.begin(), kSectors.end(), value) == kSectors.end()) {
    throw row.error("sector", "is not a sector (empty, education or health)");
  }
  return value;
}

// "# catalog_version: 2025.04" in the file's comments, exactly once.
std::string catalog_version(const CsvTable& table) {
  std::optional<std::string> version;
  for (const auto& comment : table.comments()) {
    constexpr std::string_view key = "catalog_version:";
    if (comment.text.rfind(key, 0) != 0) continue;
    const std::string where = table.file() + ":" + std::to_string(comment.line) + ": ";
    if (version) throw ConfigError(where + "catalog_version given twice");
    const std::string value(config_detail::trim(std::string_view(comment.text).substr(key.size())));
    if (value.empty() || has_space(value)) {
      throw ConfigError(where + "catalog_version: " + quote_value(value) + " is not a version");
    }
    version = value;
  }
  if (!version) {
    throw ConfigError(
        table.file() +
        ": no \"# catalog_version: <version>\" line (e.g. # catalog_version: 2025.04)");
  }
  return *version;
}

CatalogItem catalog_item(const CsvTable::Row& row) {
  CatalogItem item;
  item.code = code_field(row, "code");
  item.group = code_field(row, "group");
  item.title = row.get("title");
  if (item.title.empty()) throw row.error("title", "is empty");

  const std::string measure = row.get("measure");
  if (measure == "product") {
    item.measure = Measure::product;
  } else if (measure == "time") {
    item.measure = Measure::time;
  } else {
    throw row.error("measure", "is not product or time");
  }

  item.leave = bool_field(row, "leave", false);
  const std::string minutes = row.get("standard_minutes");
  if (!minutes.empty()) {
    const auto value = parse_double(minutes);
    if (!value) throw row.error("standard_minutes", "is not a number");
    if (*value < 0 || *value > 24 * 60) {
      throw row.error("standard_minutes", "is outside 0..1440");
    }
    item.standard_minutes = *value;
  }
  // Leave earns no points, so a leave item needs no credited minutes.
  if (item.measure == Measure::product && item.standard_minutes <= 0 && !item.leave) {
    throw row.error("standard_minutes", "must be above 0 for a product-measured item");
  }

  const std::string coefficient = row.get("coefficient");
  if (!coefficient.empty()) {
    const auto value = parse_double(coefficient);
    if (!value) throw row.error("coefficient", "is not a number");
    if (*value <= 0 || *value > 10) throw row.error("coefficient", "is outside (0, 10]");
    item.coefficient = *value;
  }

  item.sector = sector_field(row);
  for (auto& agency : split(row.get("agencies"), ';')) {
    if (has_space(agency)) throw row.error("agencies", "has an agency code with whitespace");
    item.agencies.insert(std::move(agency));
  }
  return item;
}

// One row of a staff file into the directory, or a ConfigError naming it.
void add_staff_row(const CsvTable::Row& row, Directory& directory,
                   std::map<std::string, std::string>& staff_at,
                   std::map<std::string, std::string>& identifier_at) {
  StaffInfo info;
  info.staff_code = code_field(row, "staff_code");
  info.full_name = row.get("full_name");
  if (info.full_name.empty()) throw row.error("full_name", "is empty");
  info.agency_code = code_field(row, "agency_code");
  info.leader = bool_field(row, "leader", false);
  info.active = bool_field(row, "active", true);
  info.sector = sector_field(row);
  if (const auto [it, inserted] = staff_at.emplace(info.staff_code, row.where()); !inserted) {
    throw row.error("staff_code", "is a duplicate staff code (first at " + it->second + ")");
  }
  for (auto& identifier : split(row.get("identifiers"), ';')) {
    if (has_space(identifier)) {
      throw row.error("identifiers", "has an identifier with whitespace");
    }
    if (const auto [it, inserted] = identifier_at.emplace(identifier, row.where()); !inserted) {
      throw row.error("identifiers", "repeats identifier " + quote_value(identifier) +
                                         " (already at " + it->second + ")");
    }
    directory.add_identifier(std::move(identifier), info.staff_code);
  }
  directory.add_staff(std::move(info));
}

}  // namespace

ConfigErrors::ConfigErrors(std::vector<std::string> errors)
    : ConfigError([&] {
        std::string text;
        for (const auto& e : errors) text += (text.empty() ? "" : "\n") + e;
        return text;
      }()),
      errors_(std::move(errors)) {}

Catalog load_catalog(const std::vector<std::string>& files) {
  if (files.empty()) throw ConfigError("catalog: no catalog files given");
  Catalog catalog;
  ConfigProblems problems;
  std::string version_file;
  std::map<std::string, std::string> defined_at;  // code -> "file:line"
  for (const auto& file : files) {
    std::optional<CsvTable> table;
    if (!problems.check([&] {
          table.emplace(
              file,
              std::vector<std::string>{"code", "group", "title", "measure", "standard_minutes"},
              std::vector<std::string>{"coefficient", "leave", "sector", "agencies"});
        })) {
      continue;
    }
    problems.check([&] {
      const std::string version = catalog_version(*table);
      if (version_file.empty()) {
        catalog.version = version;
        version_file = file;
      } else if (version != catalog.version) {
        throw ConfigError(file + ": catalog_version " + quote_value(version) + " differs from " +
                          quote_value(catalog.version) + " in " + version_file);
      }
    });
    for (std::size_t i = 0; i < table->size(); ++i) {
      problems.check([&] {
        const auto row = table->row(i);
        CatalogItem item = catalog_item(row);
        const auto [it, inserted] = defined_at.emplace(item.code, row.where());
        if (!inserted) {
          throw row.error("code", "is a duplicate task code (first defined at " + it->second + ")");
        }
        catalog.add(std::move(item));
      });
    }
  }
  problems.throw_if_any();
  return catalog;
}

Directory load_directory(const std::vector<std::string>& staff_csvs,
                         const std::vector<std::string>& units_csvs) {
  Directory directory;
  ConfigProblems problems;
  std::map<std::string, std::string> staff_at, identifier_at;  // -> "file:line"
  for (const auto& staff_csv : staff_csvs) {
    std::optional<CsvTable> staff;
    if (!problems.check([&] {
          staff.emplace(staff_csv,
                        std::vector<std::string>{"staff_code", "full_name", "agency_code", "leader",
                                                 "active"},
                        std::vector<std::string>{"sector", "identifiers"});
        })) {
      continue;
    }
    for (std::size_t i = 0; i < staff->size(); ++i) {
      problems.check([&] { add_staff_row(staff->row(i), directory, staff_at, identifier_at); });
    }
  }

  std::map<std::string, std::string> unit_at;
  for (const auto& units_csv : units_csvs) {
    std::optional<CsvTable> units;
    if (!problems.check([&] {
          units.emplace(units_csv, std::vector<std::string>{"unit_code", "agency_code"},
                        std::vector<std::string>{"name"});
        })) {
      continue;
    }
    for (std::size_t i = 0; i < units->size(); ++i) {
      problems.check([&] {
        const auto row = units->row(i);
        std::string unit_code = code_field(row, "unit_code");
        std::string agency_code = code_field(row, "agency_code");
        if (const auto [it, inserted] = unit_at.emplace(unit_code, row.where()); !inserted) {
          throw row.error("unit_code", "is a duplicate unit code (first at " + it->second + ")");
        }
        directory.add_unit(std::move(unit_code), std::move(agency_code));
      });
    }
  }
  problems.throw_if_any();
  return directory;
}

HolidayCalendar load_holidays(const std::vector<std::string>& files) {
  HolidayCalendar calendar;
  ConfigProblems problems;
  std::map<int32_t, std::string> defined_at;
  for (const auto& file : files) {
    std::optional<CsvTable> table;
    if (!problems.check([&] { table.emplace(file, std::vector<std::string>{"date", "name"}); })) {
      continue;
    }
    for (std::size_t i = 0; i < table->size(); ++i) {
      problems.check([&] {
        const auto row = table->row(i);
        const auto date = Date::parse(row.get("date"));
        if (!date) throw row.error("date", "is not a date (YYYY-MM-DD)");
        const std::string name = row.get("name");
        if (name.empty()) throw row.error("name", "is empty");
        if (const auto [it, inserted] = defined_at.emplace(date->days, row.where()); !inserted) {
          throw row.error("date", "is listed twice (first at " + it->second + ")");
        }
        calendar.add(*date, name);
      });
    }
  }
  problems.throw_if_any();
  return calendar;
}

std::map<std::string, std::string> Directory::agency_sectors() const {
  // Staff per sector for each agency: government (""), education, health, in the order a tie
  // is decided.
  static constexpr std::string_view kSectors[] = {"", "education", "health"};
  std::map<std::string, std::array<int, 3>> counts;
  for (const auto& [code, info] : staff_) {
    auto& c = counts[info.agency_code];
    for (std::size_t i = 0; i < std::size(kSectors); ++i) {
      if (info.sector == kSectors[i]) ++c[i];
    }
  }
  std::map<std::string, std::string> out;
  for (const auto& [agency, c] : counts) {
    std::size_t most = 0;
    for (std::size_t i = 1; i < c.size(); ++i) {
      if (c[i] > c[most]) most = i;
    }
    out.emplace(agency, kSectors[most]);
  }
  return out;
}

bool HolidayCalendar::is_working_day(Date d) const {
  const unsigned weekday = d.weekday();
  return weekday != 0 && weekday != 6 && !is_holiday(d);
}

int HolidayCalendar::working_days(const Month& m) const {
  int count = 0;
  const Date last = m.last_day();
  for (Date d = m.first_day(); d <= last; d.days++) {
    if (is_working_day(d)) ++count;
  }
  return count;
}

}  // namespace kpihub
