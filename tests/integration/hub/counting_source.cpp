// A deterministic source for the hub's end-to-end tests: `records` work
// records in pages of `page_size`, the cursor being the index of the next
// record. Every 7th record is malformed (minutes out of range) so the
// quarantine path runs too. `page_delay_ms` slows it down so a test can kill
// the hub in the middle of a run. `staff_list_leaders`, when set, is the source's staff list:
// those codes, leaders of agency 000.00.12.H34 (staff known only to the source, as E-Office's).
#include <kpihub/sdk.hpp>

#include <thread>

namespace {

class CountingSource : public kpihub::sdk::Source {
 public:
  CountingSource(kpihub::sdk::Host& host, kpihub::sdk::Settings& s)
      : host_(host),
        records_(s.integer("records", 1000, 0, 10000000)),
        page_size_(s.integer("page_size", 100, 1, 100000)),
        page_delay_ms_(s.integer("page_delay_ms", 0, 0, 60000)),
        staff_(s.string_list("staff", {"KH-000123"})),
        month_(s.string("month", "2025-04")),
        fail_first_pulls_(s.integer("fail_first_pulls", 0, 0, 100)),
        quantity_(s.string("quantity", "")) {
    if (s.has("staff_list_leaders")) listed_leaders_ = s.string_list("staff_list_leaders");
  }

  std::optional<std::vector<kpihub::sdk::StaffEntry>> list_staff() override {
    if (!listed_leaders_) return std::nullopt;
    std::vector<kpihub::sdk::StaffEntry> out;
    for (const auto& code : *listed_leaders_) {
      out.push_back({code, "Lãnh đạo " + code, "000.00.12.H34", true, true});
    }
    return out;
  }

  void pull(std::optional<std::string_view> cursor, kpihub::sdk::Page& page) override {
    if (pulls_++ < fail_first_pulls_) throw kpihub::sdk::TransientError("simulated outage");
    int64_t next = 0;
    if (cursor) next = std::stoll(std::string(*cursor));
    if (page_delay_ms_) host_.sleep_ms(static_cast<uint32_t>(page_delay_ms_));
    const int64_t end = std::min(records_, next + page_size_);
    for (int64_t i = next; i < end; ++i) {
      kpihub::sdk::Record r;
      r.source_id = "R-" + std::to_string(i);
      r.revision = "1";
      r.staff_code = staff_[static_cast<std::size_t>(i) % staff_.size()];
      r.task_code = "B.03.2";
      const int day = 1 + static_cast<int>(i % 28);
      r.work_date = month_ + (day < 10 ? "-0" : "-") + std::to_string(day);
      r.declared_minutes = (i % 7 == 6) ? "2000" : std::to_string(30 + i % 90);
      // A configured quantity (absurd or the largest allowed) on every record but the 5th ones.
      r.quantity = !quantity_.empty() && i % 5 != 4 ? quantity_ : std::to_string(1 + i % 3);
      r.title = "Xử lý văn bản đến số " + std::to_string(i);
      r.evidence_ref = std::to_string(i) + "/UBND-VP";
      r.approval_status = "approved";
      r.approval_rating = (i % 2) ? "good" : "excellent";
      page.add(std::move(r));
    }
    page.set_cursor(std::to_string(end));
    page.set_caught_up(end >= records_);
    page.set_progress("record " + std::to_string(end) + " of " + std::to_string(records_));
  }

 private:
  kpihub::sdk::Host& host_;
  int64_t records_, page_size_, page_delay_ms_;
  std::vector<std::string> staff_;
  std::string month_;
  int64_t fail_first_pulls_;
  std::string quantity_;
  std::optional<std::vector<std::string>> listed_leaders_;
  int64_t pulls_ = 0;
};

}  // namespace

KPIHUB_SOURCE_PLUGIN(CountingSource, "counting-source", "1.0.0",
                     "Deterministic records for hub tests", "{}")
