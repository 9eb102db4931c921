// Reference data the hub scores with: task catalog, staff directory, holiday
// calendar and scoring rules (spec/scoring.md). Loaded from files in config/;
// every loading error names the file, the line (or key path) and the value.
#pragma once

#include <kpihub/model.hpp>

#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace kpihub {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Every error found in one pass over reference files (each bad row of each file, not only
// the first), what() one a line. What the loaders below and load_reference throw.
class ConfigErrors : public ConfigError {
 public:
  explicit ConfigErrors(std::vector<std::string> errors);
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

// Collects configuration errors instead of stopping at the first.
class ConfigProblems {
 public:
  // Runs `check`; a ConfigError it throws is noted (each of a ConfigErrors) and false returned.
  template <class Check>
  bool check(Check&& check) {
    try {
      check();
      return true;
    } catch (const ConfigErrors& e) {
      errors_.insert(errors_.end(), e.errors().begin(), e.errors().end());
    } catch (const ConfigError& e) {
      errors_.emplace_back(e.what());
    }
    return false;
  }
  void add(std::string error) { errors_.push_back(std::move(error)); }
  bool empty() const { return errors_.empty(); }
  // Throws ConfigErrors with everything noted, if anything was.
  void throw_if_any() const {
    if (!errors_.empty()) throw ConfigErrors(errors_);
  }

 private:
  std::vector<std::string> errors_;
};

enum class Measure { product, time };

struct CatalogItem {
  std::string code;
  std::string group;  // A, B, C, D, EDU, MED, ...
  std::string title;
  Measure measure = Measure::time;
  double standard_minutes = 0;  // per product unit; required when measure is product
  double coefficient = 1.0;
  bool leave = false;
  std::string sector;  // "" (any), "education", "health"
  // Agencies allowed to use a group C item; empty: every agency.
  std::set<std::string> agencies;
};

class Catalog {
 public:
  std::string version;  // e.g. "2025.04"
  const CatalogItem* find(const std::string& code) const {
    auto it = items_.find(code);
    return it == items_.end() ? nullptr : &it->second;
  }
  void add(CatalogItem item) { items_[item.code] = std::move(item); }
  std::size_t size() const { return items_.size(); }
  const std::unordered_map<std::string, CatalogItem>& items() const { return items_; }

 private:
  std::unordered_map<std::string, CatalogItem> items_;
};

struct StaffInfo {
  std::string staff_code;
  std::string full_name;
  std::string agency_code;
  bool leader = false;
  bool active = true;
  std::string sector;  // "", "education", "health"
};

class Directory {
 public:
  const StaffInfo* staff(const std::string& staff_code) const {
    auto it = staff_.find(staff_code);
    return it == staff_.end() ? nullptr : &it->second;
  }
  // Sector identifier (teacher id, practising certificate number) -> staff.
  const StaffInfo* by_identifier(const std::string& identifier) const {
    auto it = identifiers_.find(identifier);
    return it == identifiers_.end() ? nullptr : staff(it->second);
  }
  // Facility or school code -> agency code.
  std::optional<std::string> agency_of_unit(const std::string& unit_code) const {
    auto it = units_.find(unit_code);
    if (it == units_.end()) return std::nullopt;
    return it->second;
  }
  void add_staff(StaffInfo s) { staff_[s.staff_code] = std::move(s); }
  void add_identifier(std::string identifier, std::string staff_code) {
    identifiers_[std::move(identifier)] = std::move(staff_code);
  }
  void add_unit(std::string unit_code, std::string agency_code) {
    units_[std::move(unit_code)] = std::move(agency_code);
  }
  std::size_t size() const { return staff_.size(); }
  const std::unordered_map<std::string, StaffInfo>& all_staff() const { return staff_; }
  // Every agency with staff, with its sector (scoring.md 5.5): that of most of its staff, a tie
  // going to government (""), then education.
  std::map<std::string, std::string> agency_sectors() const;

 private:
  std::unordered_map<std::string, StaffInfo> staff_;
  std::unordered_map<std::string, std::string> identifiers_;
  std::unordered_map<std::string, std::string> units_;
};

class HolidayCalendar {
 public:
  void add(Date d, std::string name) { holidays_[d.days] = std::move(name); }
  bool is_holiday(Date d) const { return holidays_.count(d.days) != 0; }
  bool is_working_day(Date d) const;  // Monday-Friday and not a holiday
  int working_days(const Month& m) const;
  const std::map<int32_t, std::string>& holidays() const { return holidays_; }

 private:
  std::map<int32_t, std::string> holidays_;
};

// spec/scoring.md, every (config) number.
struct Rules {
  std::string version = "kpi-rules/1";
  // quality factor by rating; "none" when no rating
  double quality_excellent = 1.0, quality_good = 0.9, quality_fair = 0.7, quality_poor = 0.0,
         quality_none = 1.0;
  // timeliness: late_days bands
  struct LateBand {
    int max_late_days;  // inclusive upper bound; the last band has a large bound
    double factor;
  };
  std::vector<LateBand> timeliness = {{0, 1.0}, {3, 0.8}, {7, 0.6}, {1 << 30, 0.4}};
  int standard_day_minutes = 480;
  int implausible_day_minutes = 720;
  double daily_cap_points = 600;
  double over_declared_ratio = 2.0;
  std::vector<std::string> duplicate_precedence = {"health", "education", "eoffice"};
  double share_non_leader = 0.7;
  double share_leader = 0.5;
  double class_excellent = 90, class_good = 70, class_complete = 50;
  int due_day = 25;
  int due_month_offset = 1;
  double high_hours_absolute = 8.5;
  double high_hours_median_ratio = 1.25;
  int retention_days = 400;
  int32_t utc_offset_minutes = 420;
  // Sources whose records are approved on arrival (auto_approve).
  std::set<std::string> auto_approve_sources = {"education", "health"};
};

// Loaders. Each throws ConfigError naming the file and line or key path; the CSV loaders
// read every file and row first and throw ConfigErrors with every error found.
Catalog load_catalog(const std::vector<std::string>& files);  // CSV files; one version line each
// Staff and unit codes must be unique across all the files given.
Directory load_directory(const std::vector<std::string>& staff_csvs,
                         const std::vector<std::string>& units_csvs);
inline Directory load_directory(const std::string& staff_csv, const std::string& units_csv) {
  return load_directory(std::vector<std::string>{staff_csv}, std::vector<std::string>{units_csv});
}
HolidayCalendar load_holidays(const std::vector<std::string>& files);
Rules load_rules(const std::string& file);  // JSON

}  // namespace kpihub
