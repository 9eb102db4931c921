#include "integrity.hpp"

#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>

#include <algorithm>

namespace kpihub::rocks {

IntegrityReport RocksIntegrity::check(
    std::optional<std::chrono::milliseconds> budget,
    const std::function<void(const IntegrityProgress&)>& progress) {
  const auto started = std::chrono::steady_clock::now();
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
