// The dynamic symbols a shared library defines (what dlsym could find in it), read with
// binutils' nm: what the tests check a plugin exports.
#pragma once

#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

namespace kpihub::test {

inline std::set<std::string> exported_symbols(const std::string& library) {
  const std::string command = "nm -D --defined-only --format=posix '" + library + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::string output;
  char buffer[4096];
  while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  if (::pclose(pipe) != 0) throw std::runtime_error(command + " failed: " + output);
  std::set<std::string> names;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) names.insert(line.substr(0, line.find(' ')));
  }
  return names;
}

}  // namespace kpihub::test
