// kpihub-sim-education: a school system's teaching-log exports (spec/sources.md
// §2) for a chosen number of schools, teachers and days, deterministically
// from a seed. Two ways, as the spec says exports come:
//   * files (default): dropped into OUT/inbox the way a school system does it
//     (written as .part, then renamed in): weekly files, then one corrections
//     file per school that overlaps them with higher revisions and
//     cancellations;
//   * --serve: GET /<schoolCode>/export/teaching-log?from=YYYY-MM-DD&to=YYYY-MM-DD
//     on loopback with `Authorization: Bearer <key>` (401 otherwise), each
//     school's lessons and duties in that range at their latest revision.
// Both write OUT/staff.csv, OUT/units.csv and OUT/expected.tsv (every record
// the hub must end up with).
#include <kpihub/net.hpp>

#include <boost/program_options.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
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
const int kFirstGrade[] = {1, 6, 10};        // grades 1-5, 6-9, 10-12
const int kGrades[] = {5, 4, 3};

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

struct LessonState {
  std::string status;
  int minutes = 45, revision = 1;
};
struct Lesson {
  std::string id, date, klass, subject, substitute_for;
  int period = 1;
  LessonState first;       // as the weekly file has it
  LessonState latest;      // after the corrections file
  bool corrected = false;  // in the corrections file (changed, cancelled or repeated)
};
struct Duty {
  std::string id, code, klass, from, to;
  int revision = 1;
};
struct Teacher {
  std::string id, name, staff_code;
  std::vector<Lesson> lessons;
  std::vector<Duty> duties;
};
struct School {
  std::string code, agency, level, prefix;
  int number = 0;
  std::vector<Teacher> teachers;
  std::vector<std::vector<sys_days>> weeks;  // school days, Monday to Friday
};

std::string header(const School& s, const std::string& from, const std::string& to) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TeachingLog "
         "xmlns=\"urn:vn:edu:teaching-log:1\" schoolCode=\"" +
         s.code + "\" agencyCode=\"" + s.agency + "\" level=\"" + s.level + "\" from=\"" + from +
         "\" to=\"" + to + "\">\n";
}

void lesson_xml(std::ostringstream& x, const Lesson& l, const LessonState& st) {
  x << "    <Lesson id=\"" << l.id << "\" date=\"" << l.date << "\" period=\"" << l.period
    << "\" class=\"" << l.klass << "\" subject=\"" << l.subject << "\" minutes=\"" << st.minutes
    << "\" status=\"" << st.status << "\""
    << (l.substitute_for.empty() ? "" : " substituteFor=\"" + l.substitute_for + "\"")
    << " revision=\"" << st.revision << "\"/>\n";
}

void duty_xml(std::ostringstream& x, const Duty& d) {
  x << "    <Duty id=\"" << d.id << "\" code=\"" << d.code << "\" class=\"" << d.klass
    << "\" from=\"" << d.from << "\" to=\"" << d.to << "\" revision=\"" << d.revision << "\"/>\n";
}

// The school's export for [from, to]: lessons dated and duties starting in the
// range, as first written (`latest` false) or at their latest revision.
std::string export_xml(const School& s, const std::string& from, const std::string& to,
                       bool latest) {
  std::ostringstream x;
  x << header(s, from, to);
  for (const auto& t : s.teachers) {
    x << "  <Teacher id=\"" << t.id << "\" name=\"" << xml_escape(t.name) << "\">\n";
    for (const auto& l : t.lessons) {
      if (l.date >= from && l.date <= to) lesson_xml(x, l, latest ? l.latest : l.first);
    }
    for (const auto& d : t.duties) {
      if (d.from >= from && d.from <= to) duty_xml(x, d);
    }
    x << "  </Teacher>\n";
  }
  x << "</TeachingLog>\n";
  return x.str();
}

// The corrections file: only the lessons corrected, at their latest revision.
std::string corrections_xml(const School& s, const std::string& from, const std::string& to) {
  std::ostringstream x;
  x << header(s, from, to);
  for (const auto& t : s.teachers) {
    x << "  <Teacher id=\"" << t.id << "\">\n";
    for (const auto& l : t.lessons) {
      if (l.corrected) lesson_xml(x, l, l.latest);
    }
    x << "  </Teacher>\n";
  }
  x << "</TeachingLog>\n";
  return x.str();
}

void write_atomically(const fs::path& path, const std::string& text, fs::file_time_type mtime) {
  const fs::path part = path.string() + ".part";
  std::ofstream(part, std::ios::binary) << text;
  fs::last_write_time(part, mtime);
  fs::rename(part, path);
}

struct Options {
  int schools = 3, teachers = 10, days = 10;
  std::string month = "2025-04";
  unsigned seed = 20251123;
};

// The population and its lessons, deterministic from the seed.
std::vector<School> generate(const Options& o, int y, unsigned m) {
  std::mt19937 rng(o.seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };

  // School days: Monday to Friday from the first of the month.
  std::vector<sys_days> school_days;
  for (sys_days d = sys_days{year{y} / month_day{std::chrono::month{m}, day{1}}};
       static_cast<int>(school_days.size()) < o.days; d += std::chrono::days{1}) {
    const weekday wd{d};
    if (wd != Saturday && wd != Sunday) school_days.push_back(d);
  }
  std::map<int, std::vector<sys_days>> weeks;
  for (auto d : school_days) {
    weeks[static_cast<int>((d - school_days.front()).count() +
                           weekday{school_days.front()}.iso_encoding() - 1) /
          7]
        .push_back(d);
  }

  std::vector<School> schools;
  int staff_no = 0;
  for (int s = 0; s < o.schools; ++s) {
    School school;
    const int level_index = s % 3;
    school.level = kLevels[level_index];
    school.prefix = kLevelPrefix[level_index];
    school.number = s + 1;
    char code[32];
    std::snprintf(code, sizeof code, "56.%02d.%s.%03d", 1 + s % 9, kLevelPrefix[level_index],
                  s + 1);
    school.code = code;
    char agency[32];
    std::snprintf(agency, sizeof agency, "000.00.%02d.H34", 60 + s % 30);
    school.agency = agency;
    for (auto& [w, wdays] : weeks) school.weeks.push_back(wdays);
    school.teachers.resize(static_cast<std::size_t>(o.teachers));
    for (int t = 0; t < o.teachers; ++t) {
      Teacher& teacher = school.teachers[static_cast<std::size_t>(t)];
      char id[32], staff_code[32];
      std::snprintf(id, sizeof id, "GV-%03d-%04d", s + 1, t + 1);
      std::snprintf(staff_code, sizeof staff_code, "GD-%06d", ++staff_no);
      teacher.id = id;
      teacher.staff_code = staff_code;
      teacher.name =
          std::string(kFamily[pick(12)]) + " " + kMiddle[pick(10)] + " " + kGiven[pick(12)];
    }
    // A timetable around the weekly norm: per_day periods, one more on ~40% of days.
    const int per_day = kPeriodsPerWeek[level_index] / 5;
    for (const auto& wdays : school.weeks) {
      for (int t = 0; t < o.teachers; ++t) {
        Teacher& teacher = school.teachers[static_cast<std::size_t>(t)];
        const std::string subject = kSubjects[(s + t) % 10];
        for (auto d : wdays) {
          for (int p = 1; p <= per_day + (chance(0.4) ? 1 : 0); ++p) {
            Lesson l;
            l.date = date_str(d);
            l.period = p;
            l.klass = std::to_string(kFirstGrade[level_index] + (t + p) % kGrades[level_index]) +
                      "A" + std::to_string(1 + (t + p) % 4);
            l.subject = subject;
            l.first.status = "taught";
            l.id = "L-" + l.date + "-" + l.klass + "-" + std::to_string(p) + "-" + teacher.id;
            if (chance(0.03)) {
              l.first.status = "substitute";
              l.substitute_for = school.teachers[static_cast<std::size_t>((t + 1) % o.teachers)].id;
            }
            l.latest = l.first;
            teacher.lessons.push_back(l);
          }
        }
        if (t % 4 == 0) {  // homeroom teachers
          teacher.duties.push_back(
              {"D-" + date_str(wdays.front()) + "-" + teacher.id + "-HR", "HOMEROOM",
               std::to_string(kFirstGrade[level_index] + t % kGrades[level_index]) + "A1",
               date_str(wdays.front()), date_str(wdays.back()), 1});
        }
      }
    }
    // Corrections overlapping the month: some lessons again at a higher
    // revision (minutes changed, or cancelled), some unchanged.
    for (auto& teacher : school.teachers) {
      for (auto& l : teacher.lessons) {
        const bool cancel = chance(0.02), fix = !cancel && chance(0.02),
                   again = !cancel && !fix && chance(0.02);
        if (!cancel && !fix && !again) continue;
        l.corrected = true;
        if (cancel) {
          l.latest.status = "cancelled";
          l.latest.revision = 2;
        } else if (fix) {
          l.latest.minutes = 90;
          l.latest.revision = 2;
        }
      }
    }
    schools.push_back(std::move(school));
  }
  return schools;
}

std::size_t write_reference(const std::vector<School>& schools, const fs::path& out,
                            unsigned seed) {
  std::ofstream staff(out / "staff.csv"), units(out / "units.csv"), expected(out / "expected.tsv");
  staff << "# Teachers written by kpihub-sim-education (seed " << seed << ")\n"
        << "staff_code,full_name,agency_code,leader,active,sector,identifiers\n";
  units << "unit_code,agency_code,name\n";
  std::size_t records = 0;
  for (const auto& s : schools) {
    units << s.code << "," << s.agency << ",Trường " << s.prefix << " số " << s.number << "\n";
    for (std::size_t t = 0; t < s.teachers.size(); ++t) {
      const auto& teacher = s.teachers[t];
      staff << teacher.staff_code << "," << teacher.name << "," << s.agency << ","
            << (t == 0 ? "true" : "false") << ",true,education," << teacher.id << "\n";
    }
    for (const auto& teacher : s.teachers) {
      for (const auto& l : teacher.lessons) {
        expected << s.code << "|" << l.id << "\t" << l.latest.revision << "\t"
                 << (l.latest.status == "cancelled" ? "true" : "false") << "\t"
                 << teacher.staff_code << "\t" << l.latest.minutes << "\n";
        ++records;
      }
      for (const auto& d : teacher.duties) {
        expected << s.code << "|" << d.id << "\t" << d.revision << "\tfalse\t" << teacher.staff_code
                 << "\t0\n";
        ++records;
      }
    }
  }
  return records;
}

bool is_date(const std::string& s) {
  int y = 0;
  unsigned m = 0, d = 0;
  char tail = 0;
  return s.size() == 10 && std::sscanf(s.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) == 3 &&
         year_month_day{year{y}, month{m}, day{d}}.ok();
}

kpihub::net::Reply serve_request(const std::vector<School>& schools, const std::string& key,
                                 const kpihub::net::Request& r) {
  kpihub::net::Reply reply;
  reply.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
  if (r.header("authorization") != "Bearer " + key) {
    reply.status = 401;
    reply.headers.emplace_back("WWW-Authenticate", "Bearer");
    reply.body = "a valid API key is required\n";
    return reply;
  }
  constexpr std::string_view kPath = "/export/teaching-log";
  const School* school = nullptr;
  if (r.path == kPath && schools.size() == 1) {
    school = &schools.front();
  } else if (r.path.size() > kPath.size() + 1 &&
             r.path.compare(r.path.size() - kPath.size(), kPath.size(), kPath) == 0) {
    const std::string code = r.path.substr(1, r.path.size() - kPath.size() - 1);
    for (const auto& s : schools) {
      if (s.code == code) school = &s;
    }
  }
  if (r.method != "GET" || !school) {
    reply.status = 404;
    reply.body = "no such export: GET /<schoolCode>/export/teaching-log?from=&to=\n";
    return reply;
  }
  const auto from = r.query.find("from"), to = r.query.find("to");
  if (from == r.query.end() || to == r.query.end() || !is_date(from->second) ||
      !is_date(to->second) || from->second > to->second) {
    reply.status = 400;
    reply.body = "from and to (YYYY-MM-DD, from <= to) are required\n";
    return reply;
  }
  reply.headers = {{"Content-Type", "application/xml; charset=utf-8"}};
  reply.body = export_xml(*school, from->second, to->second, true);
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc(
      "kpihub-sim-education: teaching-log exports for N schools (spec/sources.md §2)");
  Options o;
  std::string out, key_file;
  bool serve = false;
  kpihub::net::ServerOptions server;
  // clang-format off
  desc.add_options()
    ("help,h", "this help")
    ("out", po::value(&out)->required(), "output folder")
    ("schools", po::value(&o.schools)->default_value(3), "schools (levels rotate: primary, "
                                                         "lower-, upper-secondary)")
    ("teachers", po::value(&o.teachers)->default_value(10), "teachers per school")
    ("days", po::value(&o.days)->default_value(10), "school days from the first of the month")
    ("month", po::value(&o.month)->default_value("2025-04"), "month, YYYY-MM")
    ("seed", po::value(&o.seed)->default_value(20251123), "random seed")
    ("serve", po::bool_switch(&serve), "serve the exports over HTTP instead of writing files")
    ("address", po::value(&server.address)->default_value("127.0.0.1"), "--serve: listen address")
    ("port", po::value(&server.port)->default_value(0), "--serve: port (0: any free port)")
    ("api-key-file", po::value(&key_file), "--serve: file holding the accepted API key "
                                           "(default key: sim-edu-key)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout
          << desc
          << "\nFiles: OUT/inbox/<school>-<from>-<to>.xml weekly, then\n"
             "OUT/inbox/<school>-<from>-<to>-corrections.xml (higher revisions, cancellations).\n"
             "--serve: GET /<schoolCode>/export/teaching-log?from=YYYY-MM-DD&to=YYYY-MM-DD with\n"
             "`Authorization: Bearer <key>` (401 otherwise); prints \"listening on URL\" and\n"
             "runs until SIGINT/SIGTERM. Both write OUT/staff.csv, OUT/units.csv and\n"
             "OUT/expected.tsv (source_id, revision, retracted, staff_code, minutes: what the\n"
             "hub must hold at the end).\n";
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-education: " << e.what() << "\n" << desc;
    return 2;
  }
  int y = 0;
  unsigned m = 0;
  if (std::sscanf(o.month.c_str(), "%d-%u", &y, &m) != 2 || m < 1 || m > 12) {
    std::cerr << "kpihub-sim-education: --month: \"" << o.month << "\" is not YYYY-MM\n";
    return 2;
  }
  if (o.schools < 1 || o.teachers < 1 || o.days < 1) {
    std::cerr << "kpihub-sim-education: --schools, --teachers and --days must be at least 1\n";
    return 2;
  }
  std::string key = "sim-edu-key";
  if (!key_file.empty()) {
    std::ifstream in(key_file);
    if (!in || !std::getline(in, key) || key.empty()) {
      std::cerr << "kpihub-sim-education: cannot read a key from " << key_file << "\n";
      return 2;
    }
  }

  const auto schools = generate(o, y, m);
  fs::create_directories(out);
  const std::size_t records = write_reference(schools, out, o.seed);
  const std::size_t teachers = schools.size() * static_cast<std::size_t>(o.teachers);

  if (serve) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts
    std::atomic<std::size_t> served{0};
    try {
      kpihub::net::HttpServer http(server, [&](const kpihub::net::Request& r) {
        auto reply = serve_request(schools, key, r);
        if (reply.status == 200) ++served;
        return reply;
      });
      http.start();
      std::cerr << "kpihub-sim-education: " << schools.size() << " schools, " << teachers
                << " teachers, " << records << " records; exports at /<schoolCode>"
                << "/export/teaching-log, e.g. /" << schools.front().code
                << "/export/teaching-log\n";
      std::cout << "kpihub-sim-education listening on http://" << server.address << ":"
                << http.port() << std::endl;
      int received = 0;
      sigwait(&signals, &received);
      http.stop();
    } catch (const std::exception& e) {
      std::cerr << "kpihub-sim-education: " << e.what() << "\n";
      return 1;
    }
    std::cerr << "kpihub-sim-education: served " << served.load() << " exports\n";
    return 0;
  }

  fs::create_directories(fs::path(out) / "inbox");
  const auto base_time = fs::file_time_type::clock::now() - std::chrono::hours(1);
  std::size_t files = 0;
  for (const auto& s : schools) {
    for (std::size_t w = 0; w < s.weeks.size(); ++w) {
      const std::string from = date_str(s.weeks[w].front()), to = date_str(s.weeks[w].back());
      write_atomically(fs::path(out) / "inbox" / (s.code + "-" + from + "-" + to + ".xml"),
                       export_xml(s, from, to, false),
                       base_time + std::chrono::seconds(static_cast<int>(w)));
      ++files;
    }
    const std::string from = date_str(s.weeks.front().front()),
                      to = date_str(s.weeks.back().back());
    write_atomically(
        fs::path(out) / "inbox" / (s.code + "-" + from + "-" + to + "-corrections.xml"),
        corrections_xml(s, from, to), base_time + std::chrono::minutes(30));
    ++files;
  }
  std::cout << "kpihub-sim-education: " << files << " files, " << teachers << " teachers, "
            << records << " records in " << out << "\n";
  return 0;
}
