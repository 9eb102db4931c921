// Hospital information system exports (Ministry of Health XML: Decision
// 130/QĐ-BYT as amended by 4750 and 3176, and legacy 4210; spec/sources.md §3)
// as work records. One unit per treatment episode (HOSO). Patient data stays
// in the file: only the fields of the mapping are ever read.
#pragma once

#include <kpihub/inbox.hpp>
#include <kpihub/xml.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

struct sqlite3;

namespace kpihub::health {

// MA_NHOM -> task code, and MA_DICH_VU prefixes that pick a finer task code.
struct Mapping {
  std::map<std::string, std::string> groups{
      {"13", "MED.EXAM"},          {"8", "MED.PROC"},
      {"18", "MED.PROC"},          {"1", "MED.LAB"},
      {"2", "MED.IMAGING"},        {"3", "MED.IMAGING"},
      {"14", "MED.INPATIENT_DAY"}, {"15", "MED.INPATIENT_DAY"},
      {"16", "MED.INPATIENT_DAY"}};
  std::vector<std::pair<std::string, std::string>> service_prefixes;  // longest first
  std::string result_read_task = "MED.RESULT_READ";
  std::string clinical_note_task = "MED.CLINICAL_NOTE";
};

// What each episode produced last time, so that a re-exported episode yields
// only its changes: unchanged credits nothing, changed ones a new revision,
// vanished ones a retraction. Versioned by the inbox's file number, so reading
// file K again after a crash gives the same answer.
class EpisodeState {
 public:
  explicit EpisodeState(const std::string& path);  // ":memory:" for tests and fuzzing
  ~EpisodeState();
  EpisodeState(const EpisodeState&) = delete;
  EpisodeState& operator=(const EpisodeState&) = delete;

  struct Row {
    std::string fields;  // the record's text fields as JSON
    int64_t revision = 0;
  };
  // One export of an episode, as the adapter applied it.
  struct Version {
    int64_t file_seq = 0;
    // The export's own time (NGAYLAP, local seconds since 1970-01-01), when it had one.
    std::optional<int64_t> exported_at;
    std::map<std::string, Row> rows;
    // The rows this export quarantined, already reported to the hub: (the
    // rejection's source_id, its reason, field and raw fields).
    std::set<std::pair<std::string, std::string>> rejections;
  };
  // The episode's version as of the last file before `file_seq`; nullopt if none.
  std::optional<Version> before(const std::string& episode, int64_t file_seq);
  // Replaces the episode's version `file_seq` and drops versions older than the one before it.
  // `digest` identifies the export's content (its tables), to recognise it if it comes again.
  void store(const std::string& episode, int64_t file_seq, std::optional<int64_t> exported_at,
             const std::string& digest, const std::map<std::string, Row>& rows,
             const std::set<std::pair<std::string, std::string>>& rejections = {});
  // When an export of the episode with this `digest` was applied before
  // `file_seq` and a different one after it: the file number of that earlier
  // export (it is being delivered again, older than what is applied now).
  std::optional<int64_t> superseded(const std::string& episode, int64_t file_seq,
                                    const std::string& digest);

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::string path_;
};

class HisReader final : public sdk::FileReader {
 public:
  // `file_seq` is the inbox's number for the file: the revision of what changes in it.
  static std::unique_ptr<HisReader> open_file(std::string path, std::string name, int64_t file_seq,
                                              const Mapping& mapping, EpisodeState& state);
  static std::unique_ptr<HisReader> open_memory(std::string bytes, std::string name,
                                                int64_t file_seq, const Mapping& mapping,
                                                EpisodeState& state);

  // A streaming pass over the envelope (GIAMDINHHS); throws sdk::FileRejected.
  void check() override;
  // One HOSO: its credits as records, its bad rows as rejections.
  bool next_unit(sdk::Page& page) override;

  // When the file arrived (seconds since 1970 UTC), for a file that carries
  // no export time of its own (NGAYLAP), and the offset of local time.
  void set_arrival(std::optional<int64_t> unix_seconds, int utc_offset_minutes) {
    arrived_unix_s_ = unix_seconds;
    utc_offset_minutes_ = utc_offset_minutes;
  }
  // Where the reader says what it did not apply (an episode older than the
  // one already applied). Unset: nowhere.
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

 private:
  HisReader(std::optional<std::string> path, std::string bytes, std::string name, int64_t file_seq,
            const Mapping& mapping, EpisodeState& state);
  sdk::xml::Reader open_reader() const;

  std::optional<std::string> path_;
  std::string bytes_;
  std::string name_;
  int64_t file_seq_;
  const Mapping& mapping_;
  EpisodeState& state_;
  std::optional<sdk::xml::Reader> reader_;
  std::string facility_;
  bool at_end_ = false;
  int episode_index_ = 0;
  std::map<std::string, int> episodes_seen_;  // episode -> its HOSO number in this file
  std::function<void(const std::string&)> log_;
  std::optional<int64_t> arrived_unix_s_;
  int utc_offset_minutes_ = 420;
  // The export's time in local seconds, from its NGAYLAP only (found by
  // check()): what orders the exports of an episode. Unset without one.
  std::optional<int64_t> exported_at_;
  std::optional<std::string> changed_at_;  // the same as RFC 3339, each record's changed_at
  int64_t not_creditable_ = 0;             // 4210 result and note rows: no clinician field
};

}  // namespace kpihub::health
