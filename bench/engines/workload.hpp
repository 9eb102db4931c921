// The workload every engine of bench/engines stores: a province-month of E-Office diary
// entries in pages of 1,000, generated deterministically, then the same feed read again
// with a share of the records revised (what a re-pull from an older cursor looks like).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::bench::engines {

struct Shape {
  int staff = 7000;         // 53 agencies' staff of a province
  int days = 22;            // working days of April 2025 with entries
  int per_day = 10;         // diary entries per staff-day: 7,000 x 22 x 10 = 1.54 M
  int revise_percent = 10;  // share of the second pass that is a new revision
  int page_size = 1000;     // records per page, one commit each
  int quarantine_per_page = 5;

  std::int64_t records() const { return std::int64_t{staff} * days * per_day; }
};

// One record as the ingest path hands it to the store.
struct Record {
  std::string record_id;  // "eoffice:56.01.001:2025-04-07:000123"
  std::string staff;      // "56.01.001"
  std::uint8_t day = 0;   // day of the month
  std::uint32_t revision = 0;
  std::string body;  // the stored fields as JSON, ~700 bytes
};

struct Page {
  std::vector<Record> records;
  std::vector<std::string> quarantine;  // rejected items of the page, ~200 bytes each
  std::string cursor;
};

// What a read returns: how many current records, the sum of their revisions (so engines
// can be checked against each other and against the feed) and their bytes.
struct ReadTotals {
  std::uint64_t records = 0;
  std::uint64_t revision_sum = 0;
  std::uint64_t bytes = 0;
  ReadTotals& operator+=(const ReadTotals& o) {
    records += o.records;
    revision_sum += o.revision_sum;
    bytes += o.bytes;
    return *this;
  }
};

// The feed of one pass, page by page: day by day (as E-Office serves changes), the day's
// staff and entries in a fixed pseudo-random order. Pass 1 is every record at revision 1;
// pass 2 is the same feed again, each record revised (revision 2) with probability
// revise_percent, otherwise the same revision (a duplicate the store must skip).
class Feed {
 public:
  Feed(const Shape& shape, int pass);
  // Fills `page` with the next page; false at the end of the pass.
  bool next(Page& page);
  // Records of pass 2 that are revisions (known before running it, for checks).
  static std::int64_t revised_in_pass2(const Shape& shape);

  static std::string staff_code(int staff_index);
  static std::uint8_t day_of_month(int day_index);  // the day_index-th working day of April 2025

 private:
  void fill(Record& r, std::int64_t k);

  Shape shape_;
  int pass_;
  std::int64_t next_ = 0;
  std::int64_t page_no_ = 0;
  std::string template_;
  struct Patch {
    std::size_t at;
    std::size_t len;
  };
  Patch id_{}, source_id_{}, staff_{}, date_{}, evidence_{}, title_no_{}, completed_{}, revision_{},
      minutes_{};
  std::vector<Patch> varying_;
};

// A 64-bit hash of a record id (libstdc++'s murmur hash: stable for one build).
std::uint64_t id_hash(std::string_view record_id);

}  // namespace kpihub::bench::engines
