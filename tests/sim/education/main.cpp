// kpihub-sim-education: writes a school system's teaching-log exports for a
// chosen number of schools, teachers and days, deterministically from a seed,
// the way a school system drops them into an inbox (written as .part, then
// renamed in), with the staff directory and units for the hub and a report of
// every record the hub must end up with.
#include <boost/program_options.hpp>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace std::chrono;

namespace {

const char* const kFamily[] = {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh",
                               "Phan",   "Vũ",   "Võ", "Đặng", "Bùi",   "Đỗ"};
const char* const kMiddle[] = {"Thị", "Văn", "Minh", "Ngọc", "Thanh",
                               "Hữu", "Đức", "Thu",  "Quốc", "Bảo"};
const char* const kGiven[] = {"Lan",   "Hùng", "Mai",  "Tuấn", "Hoa",   "Dũng",
                              "Hương", "Nam",  "Linh", "Sơn",  "Trang", "Phúc"};
const char* const kSubjects[] = {"Toán",    "Ngữ văn",          "Tiếng Anh", "Vật lí",
                                 "Hóa học", "Sinh học",         "Lịch sử",   "Địa lí",
                                 "Tin học", "Giáo dục thể chất"};
const char* const kLevels[] = {"primary", "lower-secondary", "upper-secondary"};
const char* const kLevelPrefix[] = {"TH", "THCS", "THPT"};
const int kPeriodsPerWeek[] = {23, 19, 17};  // the teaching norm at each level

std::string date_str(sys_days d) {
  const year_month_day ymd{d};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

struct Lesson {
  std::string id, date, klass, subject, status, substitute_for;
  int period = 1, minutes = 45, revision = 1;
};
struct Duty {
  std::string id, code, klass, from, to;
  int revision = 1;
};
struct Teacher {
  std::string id, name, staff_code;
  std::vector<Lesson> lessons;  // as first exported
  std::vector<Duty> duties;
};

void write_atomically(const fs::path& path, const std::string& text, fs::file_time_type mtime) {
  const fs::path part = path.string() + ".part";
  std::ofstream(part, std::ios::binary) << text;
  fs::last_write_time(part, mtime);
  fs::rename(part, path);
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc(
      "kpihub-sim-education generate: teaching-log exports for N schools (spec/sources.md §2)");
  std::string out, month;
  int schools = 3, teachers = 10, days = 10;
  unsigned seed = 20251123;
  desc.add_options()("help,h", "this help")("out", po::value(&out)->required(), "output folder")(
      "schools", po::value(&schools)->default_value(3), "schools")(
      "teachers", po::value(&teachers)->default_value(10), "teachers per school")(
      "days", po::value(&days)->default_value(10), "school days from the first of the month")(
      "month", po::value(&month)->default_value("2025-04"), "month, YYYY-MM")(
      "seed", po::value(&seed)->default_value(20251123), "random seed");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout
          << desc
          << "\nWrites OUT/inbox/*.xml (weekly files, then one corrections file per school),\n"
             "OUT/staff.csv, OUT/units.csv and OUT/expected.tsv (source_id, revision, retracted,\n"
             "staff_code: what the hub must hold at the end).\n";
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-education: " << e.what() << "\n" << desc;
    return 2;
  }
  int y = 0;
  unsigned m = 0;
  if (std::sscanf(month.c_str(), "%d-%u", &y, &m) != 2 || m < 1 || m > 12) {
    std::cerr << "kpihub-sim-education: --month: \"" << month << "\" is not YYYY-MM\n";
    return 2;
  }
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };

  // School days: Monday to Friday from the first of the month.
  std::vector<sys_days> school_days;
  for (sys_days d = sys_days{year{y} / month_day{std::chrono::month{m}, day{1}}};
       static_cast<int>(school_days.size()) < days; d += std::chrono::days{1}) {
    const weekday wd{d};
    if (wd != Saturday && wd != Sunday) school_days.push_back(d);
  }

  fs::create_directories(fs::path(out) / "inbox");
  std::ofstream staff(fs::path(out) / "staff.csv"), units(fs::path(out) / "units.csv"),
      expected(fs::path(out) / "expected.tsv");
  staff << "# Teachers written by kpihub-sim-education (seed " << seed << ")\n"
        << "staff_code,full_name,agency_code,leader,active,sector,identifiers\n";
  units << "unit_code,agency_code,name\n";
  const auto base_time = fs::file_time_type::clock::now() - std::chrono::hours(1);
  int staff_no = 0;
  std::size_t files = 0, records = 0;
  for (int s = 0; s < schools; ++s) {
    const int level_index = s % 3;
    const std::string level = kLevels[level_index];
    char school_code[32];
    std::snprintf(school_code, sizeof school_code, "56.%02d.%s.%03d", 1 + s % 9,
                  kLevelPrefix[level_index], s + 1);
    char agency[32];
    std::snprintf(agency, sizeof agency, "000.00.%02d.H34", 60 + s % 30);
    units << school_code << "," << agency << ",Trường " << kLevelPrefix[level_index] << " số "
          << s + 1 << "\n";
    std::vector<Teacher> staff_of_school(static_cast<std::size_t>(teachers));
    for (int t = 0; t < teachers; ++t) {
      Teacher& teacher = staff_of_school[static_cast<std::size_t>(t)];
      char id[32], code[32];
      std::snprintf(id, sizeof id, "GV-%03d-%04d", s + 1, t + 1);
      std::snprintf(code, sizeof code, "GD-%06d", ++staff_no);
      teacher.id = id;
      teacher.staff_code = code;
      teacher.name =
          std::string(kFamily[pick(12)]) + " " + kMiddle[pick(10)] + " " + kGiven[pick(12)];
      staff << code << "," << teacher.name << "," << agency << "," << (t == 0 ? "true" : "false")
            << ",true,education," << id << "\n";
    }
    // Weekly files, Monday to Friday.
    std::map<int, std::vector<sys_days>> weeks;
    for (auto d : school_days)
      weeks[static_cast<int>((d - school_days.front()).count() +
                             weekday{school_days.front()}.iso_encoding() - 1) /
            7]
          .push_back(d);
    for (auto& [w, wdays] : weeks) {
      std::ostringstream x;
      x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TeachingLog "
           "xmlns=\"urn:vn:edu:teaching-log:1\" schoolCode=\""
        << school_code << "\" agencyCode=\"" << agency << "\" level=\"" << level << "\" from=\""
        << date_str(wdays.front()) << "\" to=\"" << date_str(wdays.back()) << "\">\n";
      for (int t = 0; t < teachers; ++t) {
        Teacher& teacher = staff_of_school[static_cast<std::size_t>(t)];
        const std::string subject = kSubjects[(s + t) % 10];
        x << "  <Teacher id=\"" << teacher.id << "\" name=\"" << xml_escape(teacher.name)
          << "\">\n";
        const int per_day = kPeriodsPerWeek[level_index] / 5;
        for (auto d : wdays) {
          for (int p = 1; p <= per_day + (chance(0.4) ? 1 : 0); ++p) {
            Lesson l;
            l.date = date_str(d);
            l.period = p;
            l.klass = std::to_string(10 + (t + p) % 3) + "A" + std::to_string(1 + (t + p) % 4);
            l.subject = subject;
            l.status = "taught";
            l.id = "L-" + l.date + "-" + l.klass + "-" + std::to_string(p) + "-" + teacher.id;
            if (chance(0.03)) {
              l.status = "substitute";
              l.substitute_for = staff_of_school[static_cast<std::size_t>((t + 1) % teachers)].id;
            }
            x << "    <Lesson id=\"" << l.id << "\" date=\"" << l.date << "\" period=\"" << l.period
              << "\" class=\"" << l.klass << "\" subject=\"" << l.subject << "\" minutes=\""
              << l.minutes << "\" status=\"" << l.status << "\""
              << (l.substitute_for.empty() ? "" : " substituteFor=\"" + l.substitute_for + "\"")
              << " revision=\"1\"/>\n";
            teacher.lessons.push_back(l);
          }
        }
        if (t % 4 == 0) {  // homeroom teachers
          Duty duty{"D-" + date_str(wdays.front()) + "-" + teacher.id + "-HR",
                    "HOMEROOM",
                    std::to_string(10 + t % 3) + "A1",
                    date_str(wdays.front()),
                    date_str(wdays.back()),
                    1};
          x << "    <Duty id=\"" << duty.id << "\" code=\"HOMEROOM\" class=\"" << duty.klass
            << "\" from=\"" << duty.from << "\" to=\"" << duty.to << "\" revision=\"1\"/>\n";
          teacher.duties.push_back(duty);
        }
        x << "  </Teacher>\n";
      }
      x << "</TeachingLog>\n";
      write_atomically(
          fs::path(out) / "inbox" / (std::string(school_code) + "-w" + std::to_string(w) + ".xml"),
          x.str(), base_time + std::chrono::seconds(w));
      ++files;
    }
    // A corrections file overlapping the month: some lessons again at a
    // higher revision (minutes changed, or cancelled), some unchanged.
    std::ostringstream c;
    c << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TeachingLog "
         "xmlns=\"urn:vn:edu:teaching-log:1\" schoolCode=\""
      << school_code << "\" agencyCode=\"" << agency << "\" level=\"" << level << "\" from=\""
      << date_str(school_days.front()) << "\" to=\"" << date_str(school_days.back()) << "\">\n";
    for (auto& teacher : staff_of_school) {
      c << "  <Teacher id=\"" << teacher.id << "\">\n";
      for (auto& l : teacher.lessons) {
        const bool cancel = chance(0.02), fix = !cancel && chance(0.02),
                   again = !cancel && !fix && chance(0.02);
        if (!cancel && !fix && !again) continue;
        if (cancel) {
          l.status = "cancelled";
          l.revision = 2;
        } else if (fix) {
          l.minutes = 90;
          l.revision = 2;
        }
        c << "    <Lesson id=\"" << l.id << "\" date=\"" << l.date << "\" period=\"" << l.period
          << "\" class=\"" << l.klass << "\" subject=\"" << l.subject << "\" minutes=\""
          << l.minutes << "\" status=\"" << l.status << "\""
          << (l.substitute_for.empty() ? "" : " substituteFor=\"" + l.substitute_for + "\"")
          << " revision=\"" << l.revision << "\"/>\n";
      }
      c << "  </Teacher>\n";
    }
    c << "</TeachingLog>\n";
    write_atomically(fs::path(out) / "inbox" / (std::string(school_code) + "-corrections.xml"),
                     c.str(), base_time + std::chrono::minutes(30));
    ++files;
    for (const auto& teacher : staff_of_school) {
      for (const auto& l : teacher.lessons) {
        expected << school_code << "|" << l.id << "\t" << l.revision << "\t"
                 << (l.status == "cancelled" ? "true" : "false") << "\t" << teacher.staff_code
                 << "\t" << l.minutes << "\n";
        ++records;
      }
      for (const auto& d : teacher.duties) {
        expected << school_code << "|" << d.id << "\t" << d.revision << "\tfalse\t"
                 << teacher.staff_code << "\t0\n";
        ++records;
      }
    }
  }
  std::cout << "kpihub-sim-education: " << files << " files, " << staff_no << " teachers, "
            << records << " records in " << out << "\n";
  return 0;
}
