// Teaching-log exports (spec/sources.md section 2) as work records: one unit
// per <Teacher>, so a restart resumes between teachers.
#pragma once

#include <kpihub/inbox.hpp>
#include <kpihub/xml.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace kpihub::education {

// The XSD the project ships (adapters/education/schema/teaching-log-1.xsd),
// compiled into the adapter.
std::string_view shipped_schema();

class TeachingLogReader final : public sdk::FileReader {
 public:
  // `name` is what messages and locations call the file.
  static std::unique_ptr<TeachingLogReader> open_file(std::string path, std::string name,
                                                      std::string xsd_text);
  static std::unique_ptr<TeachingLogReader> open_memory(std::string bytes, std::string name,
                                                        std::string xsd_text);

  // Validates the whole file against the XSD (streaming); throws
  // sdk::FileRejected naming file, line and problem.
  void check() override;
  // One <Teacher>: its lessons and duties as records.
  bool next_unit(sdk::Page& page) override;

  // When the file arrived (seconds since 1970 UTC) and the offset of local
  // time: each record's changed_at is the log's `generated` time (local time
  // when it has no offset), or failing that the arrival.
  void set_arrival(std::optional<int64_t> unix_seconds, int utc_offset_minutes) {
    arrived_unix_s_ = unix_seconds;
    utc_offset_minutes_ = utc_offset_minutes;
  }
  // Where the reader warns of what it could not use (a `generated` time the
  // hub would refuse). Unset: nowhere.
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

 private:
  TeachingLogReader(std::optional<std::string> path, std::string bytes, std::string name,
                    std::string xsd);
  sdk::xml::Reader open_reader() const;
  void read_root();

  std::optional<std::string> path_;
  std::string bytes_;  // the memory variant's document
  std::string name_;
  std::string xsd_;
  std::optional<sdk::xml::Reader> reader_;
  std::string school_, agency_, level_;
  std::optional<std::string> changed_at_;
  std::optional<int64_t> arrived_unix_s_;
  int utc_offset_minutes_ = 420;
  std::function<void(const std::string&)> log_;
  bool at_end_ = false;
};

}  // namespace kpihub::education
