// kpihub-adapter-check: puts one plugin through the checks a sector team
// needs before handing it to an operator (the gate, settings refusals,
// paging, the model's validation, cursor resume) and reports each as one
// PASS/FAIL line with its reason. The logic lives here, apart from the
// command line, so that it reads as a list of checks.
#pragma once

#include <kpihub/model.hpp>

#include <boost/json/object.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>

namespace kpihub::adapter_check {

struct Options {
  std::string plugin_file;
  boost::json::object settings;
  // Folder that relative "file:" secret references resolve against.
  std::string secrets_dir;
  // Instance name; empty: the plugin's manifest name.
  std::string instance_name;
  int max_pages = 20;
  // The hub's local date for validation (future_date, too_old) and for the
  // clock the plugin sees.
  Date today;
  int retention_days = 400;
  bool verbose = false;
};

// Runs every check, writing the report to `out` as it goes (so that a plugin
// that crashes the process still leaves the checks before it on screen).
// Returns the number of failed checks.
int run(const Options& options, std::ostream& out);

}  // namespace kpihub::adapter_check
