// The reference data shipped in config/ (province catalog, staff, units, 2025 holidays, rules),
// as the hub's tests load it.
#pragma once

#include <kpihub/hub.hpp>

#include <string>

namespace kpihub::test {

inline ReferenceData bundled_reference() {
  const std::string config_dir = std::string(KPIHUB_SOURCE_DIR) + "/config";
  ReferenceData ref;
  ref.catalog = load_catalog({config_dir + "/catalog/province.csv"});
  ref.directory = load_directory(config_dir + "/staff.csv", config_dir + "/units.csv");
  ref.holidays = load_holidays({config_dir + "/holidays/2025.csv"});
  ref.rules = load_rules(config_dir + "/rules.json");
  return ref;
}

}  // namespace kpihub::test
