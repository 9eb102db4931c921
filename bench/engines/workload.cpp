#include "workload.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iterator>
#include <stdexcept>

namespace kpihub::bench::engines {

namespace {

// The working days of April 2025 (Tuesday the 1st): 22 of them.
constexpr std::uint8_t kWorkingDays[] = {1,  2,  3,  4,  7,  8,  9,  10, 11, 14, 15,
                                         16, 17, 18, 21, 22, 23, 24, 25, 28, 29, 30};
constexpr int kAgencies = 53;
constexpr std::string_view kTitles[] = {
    "Xử lý công văn đến số ",
    "Soạn tờ trình phê duyệt kế hoạch kiểm tra quý II, số ",
    "Báo cáo kết quả thực hiện nhiệm vụ tháng 4, số ",
    "Thẩm định hồ sơ đề nghị cấp phép theo phiếu chuyển số ",
    "Tổng hợp góp ý dự thảo quy chế phối hợp, công văn ",
    "Trả lời kiến nghị của công dân qua đường dây nóng, phiếu ",
    "Họp giao ban tuần và hoàn thiện biên bản cuộc họp số ",
    "Cập nhật cơ sở dữ liệu cán bộ theo hướng dẫn số ",
};
constexpr std::string_view kApprovers[] = {"Trần Văn Nam",  "Nguyễn Thị Hoa", "Lê Minh Tuấn",
                                           "Phạm Thu Hằng", "Võ Đức Thắng",   "Đặng Ngọc Lan"};
constexpr std::string_view kTasks[] = {"VB-DEN",    "VB-DI", "TO-TRINH",
                                       "THAM-DINH", "HOP",   "BAO-CAO"};
// A prime: i -> (i * kStride + 7) mod n orders a day's entries pseudo-randomly, one to one.
constexpr std::uint64_t kStride = 1'000'003;

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool revised(std::int64_t k, int percent) {
  return static_cast<int>(mix(static_cast<std::uint64_t>(k)) % 100) < percent;
}

// A placeholder of exactly `len` characters, unique by `name`, found again after
// serialization (none of its characters is escaped).
std::string placeholder(const char* name, std::size_t len) {
  std::string p = std::string("{") + name;
  if (p.size() + 1 > len) throw std::logic_error(std::string("placeholder too long: ") + name);
  p.append(len - p.size() - 1, '#');
  return p + "}";
}

void copy_digits(std::string& s, std::size_t at, std::size_t len, std::uint64_t value) {
  for (std::size_t i = len; i-- > 0;) {
    s[at + i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

}  // namespace

std::uint64_t id_hash(std::string_view record_id) {
  return std::hash<std::string_view>{}(record_id);
}

std::string Feed::staff_code(int staff_index) {
  char code[32];
  std::snprintf(code, sizeof code, "56.%02d.%03d", 1 + staff_index % kAgencies,
                1 + staff_index / kAgencies);
  return code;
}

std::uint8_t Feed::day_of_month(int day_index) {
  return kWorkingDays[day_index];
}

Feed::Feed(const Shape& shape, int pass) : shape_(shape), pass_(pass) {
  if (shape.days < 1 || shape.days > 22) throw std::invalid_argument("days must be 1..22");
  if (shape.staff < 1 || shape.staff / kAgencies >= 999)
    throw std::invalid_argument("staff must be 1..52,000");
  if (shape.per_day < 1 || shape.per_day > 999) throw std::invalid_argument("per_day 1..999");
  // The stored fields of a record, shaped like the hub's (core/model's record JSON), with
  // fixed-width placeholders patched per record.
  boost::json::object o;
  o["source_id"] = placeholder("SRC", 27);
  o["record_id"] = placeholder("ID", 35);
  o["revision"] = 1;
  o["staff_code"] = placeholder("STAFF", 9);
  o["source_staff_id"] = "u000123";
  o["agency_code"] = "SO-NV";
  o["task_code"] = placeholder("TASK", 6);
  o["work_date"] = placeholder("DATE", 10);
  o["declared_minutes"] = 10;
  o["quantity"] = 1;
  o["product_unit"] = "văn bản";
  o["title"] = placeholder("TITLE", 8) + placeholder("NO", 6) + "/UBND-VP";
  o["evidence_ref"] = "https://eoffice.vn/vb/" + placeholder("EVID", 27);
  o["completed_at"] = placeholder("DONE", 25);
  o["approval"] = {{"status", "approved"},
                   {"rating", "good"},
                   {"by", placeholder("BY", 4)},
                   {"at", "2025-04-21T08:00:00+07:00"}};
  o["changed_at"] = "2025-04-21T08:00:00+07:00";
  o["attributes"] = {{"document_type", "incoming"}};
  o["received_at"] = 1745000000000;
  template_ = boost::json::serialize(o);
  auto find = [&](const std::string& what, std::size_t offset, std::size_t len) {
    const std::size_t at = template_.find(what);
    if (at == std::string::npos) throw std::logic_error("template lost " + what);
    return Patch{at + offset, len};
  };
  id_ = find(placeholder("ID", 35), 0, 35);
  source_id_ = find(placeholder("SRC", 27), 0, 27);
  staff_ = find(placeholder("STAFF", 9), 0, 9);
  date_ = find(placeholder("DATE", 10), 0, 10);
  evidence_ = find(placeholder("EVID", 27), 0, 27);
  title_no_ = find(placeholder("NO", 6), 0, 6);
  completed_ = find(placeholder("DONE", 25), 0, 25);
  revision_ = find("\"revision\":1", 11, 1);
  minutes_ = find("\"declared_minutes\":10", 19, 2);
  // Replaced by texts of other lengths, last first so the offsets above hold.
  varying_ = {find(placeholder("TITLE", 8), 0, 8), find(placeholder("BY", 4), 0, 4),
              find(placeholder("TASK", 6), 0, 6)};
  std::sort(varying_.begin(), varying_.end(),
            [](const Patch& x, const Patch& y) { return x.at > y.at; });
}

std::int64_t Feed::revised_in_pass2(const Shape& shape) {
  std::int64_t n = 0;
  for (std::int64_t k = 0; k < shape.records(); ++k) n += revised(k, shape.revise_percent);
  return n;
}

void Feed::fill(Record& r, std::int64_t k) {
  const std::int64_t per_day = std::int64_t{shape_.staff} * shape_.per_day;
  const int day_index = static_cast<int>(k / per_day);
  const auto i = static_cast<std::uint64_t>(k % per_day);
  const std::uint64_t j = (i * kStride + 7) % static_cast<std::uint64_t>(per_day);
  const int staff_index = static_cast<int>(j / static_cast<std::uint64_t>(shape_.per_day));
  const int entry = day_index * shape_.per_day + static_cast<int>(j % shape_.per_day);
  const std::uint8_t day = day_of_month(day_index);

  r.staff = staff_code(staff_index);
  r.day = day;
  char date[16];
  std::snprintf(date, sizeof date, "2025-04-%02u", static_cast<unsigned>(day));
  char source_id[48];
  std::snprintf(source_id, sizeof source_id, "%s:%s:%06d", r.staff.c_str(), date, entry);
  r.record_id = std::string("eoffice:") + source_id;
  r.revision = pass_ == 2 && revised(k, shape_.revise_percent) ? 2 : 1;

  r.body = template_;
  r.body.replace(id_.at, id_.len, r.record_id);
  r.body.replace(source_id_.at, source_id_.len, source_id);
  r.body.replace(staff_.at, staff_.len, r.staff);
  r.body.replace(date_.at, date_.len, date);
  r.body.replace(evidence_.at, evidence_.len, source_id);
  copy_digits(r.body, title_no_.at, title_no_.len, static_cast<std::uint64_t>(entry));
  char completed[32];
  std::snprintf(completed, sizeof completed, "%sT10:15:00+07:00", date);
  r.body.replace(completed_.at, completed_.len, completed);
  copy_digits(r.body, revision_.at, revision_.len, r.revision);
  const std::uint64_t m = mix(static_cast<std::uint64_t>(k));
  copy_digits(r.body, minutes_.at, minutes_.len, 15 + m % 80);
  // Titles, approvers and tasks vary as in a real diary, so compression is not flattered.
  for (const Patch& p : varying_) {
    std::string_view text;
    if (p.len == 8) text = kTitles[(m >> 8) % std::size(kTitles)];
    if (p.len == 4) text = kApprovers[(m >> 16) % std::size(kApprovers)];
    if (p.len == 6) text = kTasks[(m >> 24) % std::size(kTasks)];
    r.body.replace(p.at, p.len, text);
  }
}

bool Feed::next(Page& page) {
  const std::int64_t total = shape_.records();
  if (next_ >= total) return false;
  const std::int64_t n = std::min<std::int64_t>(shape_.page_size, total - next_);
  page.records.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) fill(page.records[static_cast<std::size_t>(i)], next_ + i);
  next_ += n;
  ++page_no_;
  page.quarantine.resize(static_cast<std::size_t>(shape_.quarantine_per_page));
  for (std::size_t q = 0; q < page.quarantine.size(); ++q) {
    boost::json::object item{{"source", "eoffice"},
                             {"reason", "unknown_task"},
                             {"field", "task_code"},
                             {"message", "task code not in the catalog: VB-XYZ"},
                             {"page", page_no_},
                             {"item", q},
                             {"payload", page.records[q % page.records.size()].record_id}};
    page.quarantine[q] = boost::json::serialize(item);
  }
  page.cursor = "pass" + std::to_string(pass_) + ":" + std::to_string(next_);
  return true;
}

}  // namespace kpihub::bench::engines
