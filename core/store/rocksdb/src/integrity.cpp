#include "integrity.hpp"

#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>

#include <algorithm>
#include <filesystem>

namespace kpihub::rocks {

IntegrityReport RocksIntegrity::check(
    std::optional<std::chrono::milliseconds> budget,
    const std::function<void(const IntegrityProgress&)>& progress) {
  const auto started = std::chrono::steady_clock::now();
  // Compactions go on while the check reads (at a hub's start, those its open began): the
  // files listed stay until the check is done. A reader beside a running hub cannot hold the
  // hub's deletions; a file it listed that is gone when it gets there was compacted into a
  // newer one, and is no problem (CI found a hub refusing its own store for that).
  struct HoldDeletions {
    rocksdb::DB* db = nullptr;
    ~HoldDeletions() {
      if (db != nullptr) db->EnableFileDeletions(/*force=*/false);
    }
  } hold;
  if (!db_.read_only() && db_.db().DisableFileDeletions().ok()) hold.db = &db_.db();
  std::vector<rocksdb::LiveFileMetaData> files;
  db_.db().GetLiveFilesMetaData(&files);
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.largest_seqno > b.largest_seqno; });
  IntegrityReport report;
  report.unit = "files";
  report.total = files.size();
  const rocksdb::Options options;
  for (const auto& file : files) {
    if (budget && std::chrono::steady_clock::now() - started >= *budget) break;
    const std::string path = file.db_path + file.name;
    rocksdb::SstFileReader reader(options);
    rocksdb::Status s = reader.Open(path);
    if (s.ok()) s = reader.VerifyChecksum();
    std::error_code ec;
    if (!s.ok() && !std::filesystem::exists(path, ec) && !ec) {
      --report.total;  // compacted away meanwhile (above)
      continue;
    }
    if (!s.ok()) {
      report.problems.push_back("store " + db_.path() + ": file " + path + " (column family " +
                                file.column_family_name + ", level " + std::to_string(file.level) +
                                "): " + s.ToString());
    }
    ++report.checked;
    report.bytes_checked += file.size;
    if (progress) progress({report.checked, report.total, "file " + path});
  }
  report.complete = report.checked == report.total;
  return report;
}

}  // namespace kpihub::rocks
