// Deterministic diary data: every entry's content is a function of the seed
// and its number, so 1.5 million entries cost 24 bytes each in memory and
// pages are built only when asked for.
#include <kpihub/sim/eoffice_sim.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string_view>

namespace kpihub::sim {

namespace json = boost::json;

namespace {

constexpr int64_t kOffsetSeconds = 7 * 3600;  // Asia/Ho_Chi_Minh, no DST

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t hash(uint64_t seed, uint64_t a, uint64_t salt) {
  return mix(seed ^ mix(a * 0x100000001b3ULL + salt * 0x9e3779b97f4a7c15ULL));
}
double unit(uint64_t v) {
  return static_cast<double>(v >> 11) * 0x1.0p-53;
}

struct TaskInfo {
  std::string_view code;
  std::string_view title;
  std::string_view unit;  // empty: a time item (quantity 1)
  int minutes;            // typical minutes per product unit or per sitting
};

// Titles for the codes of config/catalog/province.csv; other codes get a
// generic title.
constexpr TaskInfo kTasks[] = {
    {"A.01", "Chỉ đạo, điều hành công việc chung của cơ quan", "", 120},
    {"A.02", "Chủ trì họp giao ban", "", 90},
    {"A.03", "Phân công, giao việc cho phòng chuyên môn", "việc", 10},
    {"A.04", "Xem xét, ký duyệt văn bản", "văn bản", 15},
    {"A.05", "Kiểm tra kết quả công việc của công chức", "hồ sơ", 10},
    {"A.06", "Tiếp công dân định kỳ", "", 180},
    {"A.07", "Làm việc với đoàn công tác của UBND tỉnh", "", 120},
    {"A.08", "Kiểm tra, khảo sát thực tế tại cơ sở", "", 240},
    {"A.09", "Phê duyệt kế hoạch công tác tháng", "kế hoạch", 240},
    {"B.01.2", "Xây dựng báo cáo chuyên đề", "báo cáo", 480},
    {"B.02.1", "Soạn thảo công văn", "văn bản", 60},
    {"B.02.2", "Soạn thảo báo cáo định kỳ tháng", "báo cáo", 240},
    {"B.02.3", "Tham mưu văn bản góp ý dự thảo", "văn bản", 90},
    {"B.03.1", "Tiếp nhận, vào sổ văn bản đến", "văn bản", 5},
    {"B.03.2", "Xử lý văn bản đến", "văn bản", 30},
    {"B.03.3", "Đăng ký, phát hành văn bản đi", "văn bản", 10},
    {"B.04.1", "Thẩm định hồ sơ dự án", "hồ sơ", 120},
    {"B.04.2", "Giải quyết hồ sơ thủ tục hành chính", "hồ sơ", 45},
    {"B.05.1", "Tham dự họp, hội nghị", "", 120},
    {"B.05.2", "Chuẩn bị tài liệu phục vụ cuộc họp", "bộ tài liệu", 120},
    {"B.07.1", "Tổng hợp, thống kê số liệu chuyên ngành", "biểu", 60},
    {"B.07.2", "Cập nhật cơ sở dữ liệu chuyên ngành", "", 90},
    {"B.08.1", "Lập hồ sơ công việc, nộp lưu", "hồ sơ", 30},
    {"D.01", "Học tập, bồi dưỡng nghiệp vụ", "", 120},
    {"D.02", "Sinh hoạt chi bộ", "", 90},
    {"D.05", "Trực cơ quan", "", 240},
    {"D.06", "Công việc đột xuất được lãnh đạo giao", "", 60},
};

// How many diary entries a staff member writes on a day, and how many
// minutes they add up to; both from the seed, so data and feed agree.
struct DayPlan {
  int entries;
  int minutes;
};
DayPlan day_plan(uint64_t seed, uint32_t staff, int day) {
  const uint64_t hd = hash(seed, (uint64_t{staff} << 8) | static_cast<uint64_t>(day), 3);
  return {6 + static_cast<int>(hd % 9), 400 + static_cast<int>((hd >> 8) % 121)};
}

const TaskInfo* task_info(std::string_view code) {
  for (const auto& t : kTasks) {
    if (t.code == code) return &t;
  }
  return nullptr;
}

constexpr std::string_view kFamily[] = {"Nguyễn", "Trần", "Lê",    "Phạm", "Hoàng", "Huỳnh",
                                        "Phan",   "Vũ",   "Võ",    "Đặng", "Bùi",   "Đỗ",
                                        "Hồ",     "Ngô",  "Dương", "Lý"};
constexpr std::string_view kMiddle[] = {"Văn",  "Thị", "Minh", "Ngọc",  "Thu",
                                        "Quốc", "Đức", "Hồng", "Thanh", "Xuân"};
constexpr std::string_view kGiven[] = {"Bình", "Lan",   "Hà",   "Tuấn", "Nhung", "Thắng", "Ánh",
                                       "Việt", "Linh",  "Hùng", "Dũng", "Hương", "Mai",   "Phúc",
                                       "Khoa", "Trang", "Sơn",  "Yến",  "Long",  "Nga"};

template <typename T, std::size_t N>
const T& pick(const T (&list)[N], uint64_t v) {
  return list[v % N];
}

std::string two(int v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", v);
  return buf;
}

std::string hhmm(int minute_of_day) {
  minute_of_day = std::clamp(minute_of_day, 0, 23 * 60 + 59);
  return two(minute_of_day / 60) + ":" + two(minute_of_day % 60);
}

int64_t local_midnight(int year, int month, int day) {
  const auto days = std::chrono::sys_days(std::chrono::year_month_day(
      std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
      std::chrono::day(static_cast<unsigned>(day))));
  return static_cast<int64_t>(days.time_since_epoch().count()) * 86400 - kOffsetSeconds;
}

std::string local_date(int64_t epoch_s) {
  const auto days = std::chrono::floor<std::chrono::days>(
      std::chrono::sys_seconds(std::chrono::seconds(epoch_s + kOffsetSeconds)));
  const std::chrono::year_month_day ymd(days);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

}  // namespace

std::string format_local_time(int64_t epoch_s) {
  const int64_t local = epoch_s + kOffsetSeconds;
  const int64_t in_day = ((local % 86400) + 86400) % 86400;
  return local_date(epoch_s) + "T" + two(static_cast<int>(in_day / 3600)) + ":" +
         two(static_cast<int>(in_day / 60 % 60)) + ":" + two(static_cast<int>(in_day % 60)) +
         "+07:00";
}

std::optional<int64_t> parse_time(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd(std::chrono::year(y),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d)));
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return std::nullopt;
  std::string rest = text.substr(static_cast<std::size_t>(n));
  if (!rest.empty() && rest[0] == '.') {
    const auto end = rest.find_first_not_of("0123456789", 1);
    rest = end == std::string::npos ? "" : rest.substr(end);
  }
  int64_t offset = 0;
  if (rest == "Z") {
    offset = 0;
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(rest.c_str() + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset = (rest[0] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
  } else {
    return std::nullopt;
  }
  const int64_t days = std::chrono::sys_days(ymd).time_since_epoch().count();
  return days * 86400 + h * 3600 + mi * 60 + s - offset;
}

std::vector<std::string> EOfficeSimConfig::default_leader_tasks() {
  return {"A.01", "A.02", "A.03", "A.04", "A.04",   "A.04", "A.05",
          "A.06", "A.07", "A.08", "A.09", "B.05.1", "D.02"};
}

std::vector<std::string> EOfficeSimConfig::default_staff_tasks() {
  return {"B.01.2", "B.02.1", "B.02.1", "B.02.2", "B.02.3", "B.03.1", "B.03.2", "B.03.2",
          "B.03.2", "B.03.3", "B.04.1", "B.04.2", "B.04.2", "B.05.1", "B.05.2", "B.07.1",
          "B.07.2", "B.08.1", "D.01",   "D.02",   "D.05",   "D.06"};
}

// ------------------------------------------------------------ generation ---

DiaryData::DiaryData(const EOfficeSimConfig& config) : config_(config), live_rng_(config.seed) {
  if (config_.leader_tasks.empty()) config_.leader_tasks = EOfficeSimConfig::default_leader_tasks();
  if (config_.staff_tasks.empty()) config_.staff_tasks = EOfficeSimConfig::default_staff_tasks();
  if (config_.agencies < 1 || config_.agencies > 99) {
    throw std::invalid_argument("agencies must be 1..99, got " + std::to_string(config_.agencies));
  }
  if (config_.staff < 1 || config_.staff > 999999) {
    throw std::invalid_argument("staff must be 1..999999, got " + std::to_string(config_.staff));
  }
  if (std::sscanf(config_.month.c_str(), "%4d-%2d", &year_, &month_) != 2 || month_ < 1 ||
      month_ > 12) {
    throw std::invalid_argument("month must be YYYY-MM, got \"" + config_.month + "\"");
  }
  for (int day = 1; day <= 31 && static_cast<int>(workdays_.size()) < config_.days; ++day) {
    const std::chrono::year_month_day ymd(std::chrono::year(year_),
                                          std::chrono::month(static_cast<unsigned>(month_)),
                                          std::chrono::day(static_cast<unsigned>(day)));
    if (!ymd.ok()) break;
    const std::chrono::weekday wd{std::chrono::sys_days(ymd)};
    if (wd != std::chrono::Saturday && wd != std::chrono::Sunday) workdays_.push_back(day);
  }
  if (workdays_.empty()) workdays_.push_back(1);

  const uint64_t seed = config_.seed;
  const int per_agency = (config_.staff + config_.agencies - 1) / config_.agencies;
  staff_.reserve(static_cast<std::size_t>(config_.staff));
  for (int i = 0; i < config_.staff; ++i) {
    SimStaff s;
    const int agency = i % config_.agencies;
    const int rank = i / config_.agencies;  // 0: head, 1: deputy, ...
    char code[24];
    std::snprintf(code, sizeof code, "KH-%06d", i + 1);
    s.staff_code = code;
    s.agency_code = "000.00." + two(agency + 1) + ".H34";
    const uint64_t hv = hash(seed, static_cast<uint64_t>(i), 1);
    s.full_name = std::string(pick(kFamily, hv)) + " " + std::string(pick(kMiddle, hv >> 8)) + " " +
                  std::string(pick(kGiven, hv >> 16));
    if (rank == 0) {
      s = {s.staff_code, s.full_name, s.agency_code, "GD", "Giám đốc", true, true, 0};
    } else if (rank == 1) {
      s = {s.staff_code, s.full_name, s.agency_code, "PGD", "Phó Giám đốc", true, true, 0};
    } else if (rank % 10 == 2) {
      s = {s.staff_code, s.full_name, s.agency_code, "TP", "Trưởng phòng", true, true, 0};
    } else {
      static constexpr std::pair<std::string_view, std::string_view> kStaffTitles[] = {
          {"CV", "Chuyên viên"}, {"CVC", "Chuyên viên chính"}, {"CS", "Cán sự"}, {"VT", "Văn thư"}};
      const auto& [pc, pt] = pick(kStaffTitles, hv >> 24);
      s = {s.staff_code,    s.full_name, s.agency_code, std::string(pc),
           std::string(pt), false,       true,          0};
    }
    s.active = unit(hash(seed, static_cast<uint64_t>(i), 2)) >= 0.01;
    // The head approves the deputies' and staff's diaries; the deputy the head's.
    s.approver = rank == 0 ? (config_.agencies < config_.staff ? agency + config_.agencies : agency)
                           : agency;
    if (s.approver >= config_.staff) s.approver = agency;
    staff_.push_back(std::move(s));
  }
  (void)per_agency;

  for (uint32_t s = 0; s < staff_.size(); ++s) {
    for (const int day : workdays_) {
      const int count = day_plan(seed, s, day).entries;
      for (int j = 0; j < count; ++j) {
        const auto number = static_cast<uint32_t>(feed_.size());
        const uint64_t hv = hash(seed, number, 4);
        Entry e{};
        e.number = number;
        e.staff = s;
        e.day = static_cast<uint16_t>(day);
        e.revision = 1;
        e.updated_at =
            local_midnight(year_, month_, day) + 16 * 3600 + static_cast<int64_t>(hv % 10800);
        if (unit(hash(seed, number, 5)) < 0.05) {  // submitted days late
          e.updated_at += static_cast<int64_t>(1 + (hv >> 20) % 3) * 86400;
        }
        if (unit(hash(seed, number, 6)) < 0.12) {  // edited afterwards
          e.revision = static_cast<uint8_t>(2 + (hv >> 30) % 2);
          e.updated_at += 3600 + static_cast<int64_t>((hv >> 34) % (48 * 3600));
        }
        if (unit(hash(seed, number, 7)) < 0.03) {  // deleted: a tombstone
          e.revision = static_cast<uint8_t>(e.revision + 1);
          e.flags |= kDeleted;
          e.updated_at += 7200 + static_cast<int64_t>((hv >> 40) % (72 * 3600));
        }
        feed_.push_back(e);
      }
    }
  }
  std::sort(feed_.begin(), feed_.end(), [](const Entry& a, const Entry& b) {
    return a.updated_at != b.updated_at ? a.updated_at < b.updated_at : a.number < b.number;
  });
  position_of_.resize(feed_.size());
  for (std::size_t i = 0; i < feed_.size(); ++i) {
    position_of_[feed_[i].number] = static_cast<uint32_t>(i);
  }
}

std::string DiaryData::id_of(uint32_t number) const {
  char buf[48];
  std::snprintf(buf, sizeof buf, "WD-%04d-%07u", year_, number + 1);
  return buf;
}

std::optional<std::string> DiaryData::malformed_kind(uint32_t number) const {
  if (config_.malformed <= 0 || unit(hash(config_.seed, number, 20)) >= config_.malformed) {
    return std::nullopt;
  }
  static constexpr const char* kKinds[] = {"wrong_type", "bad_date", "bad_utf8", "missing_field"};
  return std::string(kKinds[hash(config_.seed, number, 21) % 4]);
}

std::string DiaryData::item_json(const Entry& e) const {
  const uint64_t seed = config_.seed;
  const uint64_t hv = hash(seed, e.number, 10);
  const SimStaff& who = staff_[e.staff];
  const SimStaff& approver = staff_[static_cast<std::size_t>(who.approver)];
  const auto& tasks = who.leader ? config_.leader_tasks : config_.staff_tasks;
  const std::string& task = tasks[hv % tasks.size()];
  const TaskInfo* info = task_info(task);
  const bool product = info ? !info->unit.empty() : true;
  const int quantity = product ? 1 + static_cast<int>((hv >> 8) % 6) : 1;
  // The day's entries share the day's minutes, so a staff-day adds up to a
  // plausible 6.7-8.7 h (some days over the 8 h standard).
  const DayPlan plan = day_plan(seed, e.staff, e.day);
  const double share = static_cast<double>(plan.minutes) / plan.entries;
  int minutes = static_cast<int>(share * (0.6 + 0.8 * unit(hash(seed, e.number, 13))) / 5) * 5;
  minutes = std::max(5, minutes + 15 * (e.revision - 1));
  if (unit(hash(seed, e.number, 11)) < 0.01) minutes = 480 + 15 * static_cast<int>(hv % 17);
  const int start = 450 + static_cast<int>((hv >> 16) % 96) * 5;

  const std::string work_date = std::to_string(year_) + "-" + two(month_) + "-" + two(e.day);
  const int64_t midnight = local_midnight(year_, month_, e.day);
  const int deadline_days = static_cast<int>((hv >> 24) % 4);
  const int64_t deadline_at = midnight + deadline_days * 86400;
  int64_t completed = midnight + (start + minutes) * 60;
  if (unit(hash(seed, e.number, 12)) < 0.07) {  // finished late
    completed = deadline_at + (1 + static_cast<int64_t>((hv >> 28) % 4)) * 86400 + 10 * 3600;
  }
  const int doc_no = 100 + static_cast<int>((hv >> 32) % 9000);

  json::object o;
  o.reserve(20);
  o["id"] = id_of(e.number);
  o["revision"] = e.revision;
  o["updated_at"] = format_local_time(e.updated_at);
  o["deleted"] = (e.flags & kDeleted) != 0;
  o["staff_code"] = who.staff_code;
  o["agency_code"] = who.agency_code;
  o["task_code"] = task;
  o["work_date"] = work_date;
  o["start_time"] = hhmm(start);
  o["end_time"] = hhmm(start + minutes);
  o["minutes"] = minutes;
  o["quantity"] = quantity;
  o["product_unit"] = info && !info->unit.empty() ? std::string(info->unit) : "lần";
  const std::string doc_ref = std::to_string(doc_no) + "/UBND-VP";
  o["title"] = std::string(info ? info->title : "Thực hiện nhiệm vụ " + task) +
               (product ? " số " + doc_ref : "");
  o["document_ref"] = product ? json::value(doc_ref) : json::value(nullptr);
  if (unit(hash(seed, e.number, 13)) < 0.4) {
    o["assigned_by"] = approver.staff_code;
    o["assigned_at"] = format_local_time(midnight - 86400 + 9 * 3600);
  }
  o["deadline"] = local_date(deadline_at);
  o["completed_at"] = format_local_time(completed);
  const double a = unit(hash(seed, e.number, 14));
  json::object approval;
  if (a < 0.12) {
    approval["status"] = "pending";
  } else {
    approval["status"] = a < 0.90 ? "approved" : (a < 0.96 ? "returned" : "rejected");
    const double r = unit(hash(seed, e.number, 15));
    if (a < 0.90) {
      approval["rating"] =
          r < 0.15 ? "excellent" : (r < 0.75 ? "good" : (r < 0.95 ? "fair" : "poor"));
    }
    approval["by"] = approver.staff_code;
    approval["at"] = format_local_time(e.updated_at);
  }
  o["approval"] = std::move(approval);

  if (const auto kind = malformed_kind(e.number)) {
    if (*kind == "wrong_type") {
      o["minutes"] = json::object{{"value", minutes}};
    } else if (*kind == "bad_date") {
      o["work_date"] = std::to_string(year_) + "-02-30";
    } else if (*kind == "bad_utf8") {
      o["title"] = std::string("B\xC3\x28o c\xE1o ") + doc_ref;  // not UTF-8
    } else {
      o.erase("task_code");
    }
  }
  return json::serialize(o);
}

// ------------------------------------------------------------------ feed ---

std::size_t DiaryData::size() const {
  std::shared_lock lock(mutex_);
  return feed_.size() - superseded_;
}

std::size_t DiaryData::lower_bound(int64_t since_epoch_s) const {
  std::shared_lock lock(mutex_);
  return static_cast<std::size_t>(
      std::lower_bound(feed_.begin(), feed_.end(), since_epoch_s,
                       [](const Entry& e, int64_t t) { return e.updated_at < t; }) -
      feed_.begin());
}

DiaryData::Slice DiaryData::slice(std::size_t from, std::size_t page_size) const {
  std::shared_lock lock(mutex_);
  Slice out;
  std::size_t i = from;
  for (; i < feed_.size() && out.items.size() < page_size; ++i) {
    if (feed_[i].flags & kSuperseded) continue;
    out.items.push_back(item_json(feed_[i]));
  }
  out.next = i;
  out.more = i < feed_.size();
  return out;
}

void DiaryData::add_live(std::size_t count, int64_t now_epoch_s) {
  std::unique_lock lock(mutex_);
  for (std::size_t k = 0; k < count; ++k) {
    const int64_t at = feed_.empty() ? now_epoch_s : std::max(now_epoch_s, feed_.back().updated_at);
    const uint64_t r = live_rng_();
    if (!position_of_.empty() && r % 5 == 0) {
      const uint32_t number = static_cast<uint32_t>((r >> 8) % position_of_.size());
      Entry& old = feed_[position_of_[number]];
      if (!(old.flags & kDeleted) && old.revision < 250) {
        Entry e = old;
        old.flags |= kSuperseded;
        ++superseded_;
        e.revision = static_cast<uint8_t>(e.revision + 1);
        e.updated_at = at;
        if ((r >> 40) % 4 == 0) e.flags |= kDeleted;
        position_of_[number] = static_cast<uint32_t>(feed_.size());
        feed_.push_back(e);
        continue;
      }
    }
    Entry e{};
    e.number = static_cast<uint32_t>(position_of_.size());
    e.staff = static_cast<uint32_t>((r >> 8) % staff_.size());
    e.day = static_cast<uint16_t>(workdays_[(r >> 32) % workdays_.size()]);
    e.revision = 1;
    e.updated_at = at;
    position_of_.push_back(static_cast<uint32_t>(feed_.size()));
    feed_.push_back(e);
  }
}

std::vector<ServedItem> DiaryData::served() const {
  std::shared_lock lock(mutex_);
  std::vector<ServedItem> out;
  out.reserve(feed_.size() - superseded_);
  for (const Entry& e : feed_) {
    if (e.flags & kSuperseded) continue;
    out.push_back(
        {id_of(e.number), e.revision, (e.flags & kDeleted) != 0, malformed_kind(e.number)});
  }
  return out;
}

std::string DiaryData::served_json() const {
  json::array items;
  for (const auto& s : served()) {
    json::object o{{"id", s.id}, {"revision", s.revision}, {"deleted", s.deleted}};
    if (s.malformed_kind) o["malformed_kind"] = *s.malformed_kind;
    items.push_back(std::move(o));
  }
  const std::size_t count = items.size();
  return json::serialize(json::object{{"items", std::move(items)}, {"count", count}});
}

std::string DiaryData::directory_csv() const {
  std::string out = "staff_code,full_name,agency_code,leader,active,sector,identifiers\n";
  for (const auto& s : staff_) {
    out += s.staff_code + "," + s.full_name + "," + s.agency_code + "," +
           (s.leader ? "true" : "false") + "," + (s.active ? "true" : "false") + ",,\n";
  }
  return out;
}

}  // namespace kpihub::sim
