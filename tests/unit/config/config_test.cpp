// Configuration and reference data: the shipped files in config/ load with the
// numbers of the specs, and every kind of bad input is refused with a message
// that names the file, the line or key path, and the value.
#include <kpihub/csv.hpp>
#include <kpihub/hub_config.hpp>
#include <kpihub/reference.hpp>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <unistd.h>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace kpihub {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const std::string kConfigDir = std::string(KPIHUB_SOURCE_DIR) + "/config";
const std::vector<std::string> kCatalogFiles = {
    kConfigDir + "/catalog/province.csv", kConfigDir + "/catalog/group-c-example.csv",
    kConfigDir + "/catalog/education.csv", kConfigDir + "/catalog/health.csv"};
const std::vector<std::string> kHolidayFiles = {kConfigDir + "/holidays/2025.csv",
                                                kConfigDir + "/holidays/2026.csv"};

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("kpihub-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const fs::path file = path_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
    return file.string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// Runs `load`, expects a ConfigError and returns its message.
std::string error_of(const std::function<void()>& load) {
  try {
    load();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError, none was thrown";
  return {};
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "in: " << (text)

// ------------------------------------------------------------------- CSV --

TEST(Csv, ReadsQuotedFieldsWithCommasDoubledQuotesAndLineBreaks) {
  const auto doc = parse_csv(
      "\xEF\xBB\xBF# catalog_version: 1\r\n"
      "a,b,c\r\n"
      "1,\"x, y\",\"say \"\"hi\"\"\"\r\n"
      "\n"
      "2,\"two\nlines\",\r\n"
      "3,plain,last",
      "t.csv");
  ASSERT_EQ(doc.comments.size(), 1u);
  EXPECT_EQ(doc.comments[0].text, "catalog_version: 1");
  ASSERT_EQ(doc.rows.size(), 4u);
  EXPECT_EQ(doc.rows[0].fields, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(doc.rows[1].fields, (std::vector<std::string>{"1", "x, y", "say \"hi\""}));
  EXPECT_EQ(doc.rows[2].fields, (std::vector<std::string>{"2", "two\nlines", ""}));
  EXPECT_EQ(doc.rows[2].line, 5u);
  EXPECT_EQ(doc.rows[3].line, 7u);  // the quoted line break counts
  EXPECT_EQ(doc.rows[3].fields, (std::vector<std::string>{"3", "plain", "last"}));
}

TEST(Csv, RefusesAnUnclosedQuoteNamingTheLineItOpened) {
  EXPECT_CONTAINS(error_of([] { parse_csv("a,b\n1,\"open\n2,3\n", "t.csv"); }),
                  "t.csv:2: quoted field is not closed");
}

TEST(Csv, RefusesAQuoteInsideAnUnquotedField) {
  EXPECT_CONTAINS(error_of([] { parse_csv("a,b\n1,ab\"c\n", "t.csv"); }),
                  "t.csv:2: a quote inside an unquoted field");
}

TEST(Csv, RefusesTextAfterAClosingQuote) {
  EXPECT_CONTAINS(error_of([] { parse_csv("a,b\n1,\"x\"y\n", "t.csv"); }), "t.csv:2: unexpected");
}

TEST(Csv, RefusesInvalidUtf8NamingTheLine) {
  const std::string message = error_of([] { parse_csv("a,b\n1,ok\n2,Nguy\xE1\xBB\n", "t.csv"); });
  EXPECT_CONTAINS(message, "t.csv:3: invalid UTF-8");
  // An overlong encoding of '/' is not valid either.
  EXPECT_CONTAINS(error_of([] { parse_csv("a\n\xC0\xAF\n", "t.csv"); }), "t.csv:2: invalid UTF-8");
  // A UTF-16 surrogate encoded in UTF-8 neither.
  EXPECT_CONTAINS(error_of([] { parse_csv("a\n\xED\xA0\x80\n", "t.csv"); }),
                  "t.csv:2: invalid UTF-8");
}

TEST(Csv, ArbitraryBytesEitherParseOrFailWithAConfigError) {
  // Deterministic: the same inputs on every run.
  std::mt19937 random(20250425);
  const std::string alphabet = "ab,\"\r\n# \xC3\xA1\xFF\xEF\xBB\xBF";
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    const std::size_t length = random() % 40;
    for (std::size_t i = 0; i < length; ++i) text += alphabet[random() % alphabet.size()];
    try {
      const CsvDocument doc = parse_csv(text, "random.csv");
      for (const auto& row : doc.rows) EXPECT_GE(row.line, 1u);
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("random.csv", 0), 0u) << e.what();
    }
  }
}

TEST(Csv, TableChecksHeaderAndFieldCounts) {
  EXPECT_CONTAINS(error_of([] {
                    CsvTable("code,titel\n", "t.csv", {"code", "title"});
                  }),
                  "t.csv:1: unknown column \"titel\" (did you mean title?)");
  EXPECT_CONTAINS(error_of([] {
                    CsvTable("code\n", "t.csv", {"code", "title"});
                  }),
                  "t.csv:1: header is missing column(s) title");
  EXPECT_CONTAINS(error_of([] { CsvTable("code,code\n", "t.csv", {"code"}); }),
                  "column \"code\" appears twice");
  EXPECT_CONTAINS(error_of([] { CsvTable("# only a comment\n", "t.csv", {"code"}); }),
                  "t.csv: no header row");
  EXPECT_CONTAINS(error_of([] {
                    CsvTable("code,title\nA,x\nB\n", "t.csv", {"code", "title"});
                  }),
                  "t.csv:3: 1 fields, the header has 2");
}

// --------------------------------------------------------------- Catalog --

TEST(Catalog, ShippedCatalogHasTheSpecItems) {
  const Catalog catalog = load_catalog(kCatalogFiles);
  EXPECT_EQ(catalog.version, "2025.04");

  const CatalogItem* incoming = catalog.find("B.03.2");  // scoring.md section 6
  ASSERT_NE(incoming, nullptr);
  EXPECT_EQ(incoming->group, "B");
  EXPECT_EQ(incoming->title, "Xử lý văn bản đến");
  EXPECT_EQ(incoming->measure, Measure::product);
  EXPECT_DOUBLE_EQ(incoming->standard_minutes, 30);
  EXPECT_DOUBLE_EQ(incoming->coefficient, 1.2);
  EXPECT_FALSE(incoming->leave);
  EXPECT_TRUE(incoming->agencies.empty());

  const CatalogItem* leave = catalog.find("D.LEAVE");
  ASSERT_NE(leave, nullptr);
  EXPECT_TRUE(leave->leave);
  EXPECT_EQ(leave->title, "Nghỉ phép");

  std::size_t province_wide = 0;
  for (const auto& [code, item] : catalog.items()) {
    if (item.group == "A" || item.group == "B" || item.group == "D") ++province_wide;
    if (item.measure == Measure::product && !item.leave) {
      EXPECT_GT(item.standard_minutes, 0) << code;
    }
  }
  EXPECT_GE(province_wide, 35u);
  EXPECT_LE(province_wide, 40u);
  for (const char* group : {"A", "B", "D"}) {
    EXPECT_TRUE(std::any_of(catalog.items().begin(), catalog.items().end(), [&](const auto& entry) {
      return entry.second.group == group;
    })) << group;
  }

  const CatalogItem* group_c = catalog.find("C.KHCN.01");
  ASSERT_NE(group_c, nullptr);
  EXPECT_EQ(group_c->agencies, (std::set<std::string>{"000.00.12.H34"}));
  EXPECT_EQ(catalog.find("C.QLCL.01")->agencies,
            (std::set<std::string>{"000.00.12.H34", "000.00.31.H34"}));
}

TEST(Catalog, ShippedSectorItemsFollowTheTeachingNorm) {
  const Catalog catalog = load_catalog(kCatalogFiles);
  const std::pair<const char*, double> norms[] = {
      {"primary", 23}, {"lower-secondary", 19}, {"upper-secondary", 17}, {"continuing", 17}};
  for (const auto& [level, periods_per_week] : norms) {
    const CatalogItem* lesson = catalog.find(std::string("EDU.LESSON.") + level);
    ASSERT_NE(lesson, nullptr) << level;
    EXPECT_EQ(lesson->sector, "education");
    EXPECT_EQ(lesson->measure, Measure::product);
    EXPECT_NEAR(lesson->standard_minutes, 2400 / periods_per_week, 0.005) << level;
  }
  for (const char* level :
       {"preschool", "primary", "lower-secondary", "upper-secondary", "continuing"}) {
    const CatalogItem* lesson = catalog.find(std::string("EDU.LESSON.") + level);
    const CatalogItem* homeroom = catalog.find(std::string("EDU.DUTY.HOMEROOM.") + level);
    ASSERT_NE(lesson, nullptr) << level;
    ASSERT_NE(homeroom, nullptr) << level;
    EXPECT_NEAR(homeroom->standard_minutes, 4 * lesson->standard_minutes, 1e-9) << level;
  }
  for (const char* code : {"MED.EXAM", "MED.PROC", "MED.LAB", "MED.IMAGING", "MED.INPATIENT_DAY",
                           "MED.RESULT_READ", "MED.CLINICAL_NOTE"}) {
    const CatalogItem* item = catalog.find(code);
    ASSERT_NE(item, nullptr) << code;
    EXPECT_EQ(item->group, "MED");
    EXPECT_EQ(item->sector, "health");
    EXPECT_EQ(item->measure, Measure::product);
    EXPECT_GT(item->standard_minutes, 0);
  }
}

const std::string kCatalogHeader =
    "# catalog_version: 2025.04\n"
    "code,group,title,measure,standard_minutes,coefficient,leave,sector,agencies\n";

TEST(Catalog, RefusesANonNumericStandardMinutesNamingFileLineAndValue) {
  TempDir dir;
  const std::string file = dir.write("bad.csv", kCatalogHeader +
                                                    "B.01,B,Việc một,product,30,1,false,,\n"
                                                    "B.02,B,Việc hai,product,abc,1,false,,\n");
  EXPECT_EQ(error_of([&] { load_catalog({file}); }),
            file + ":4: standard_minutes: \"abc\" is not a number");
}

TEST(Catalog, RefusesBadFieldValues) {
  TempDir dir;
  const auto load_row = [&](const std::string& row) {
    const std::string file = dir.write("row.csv", kCatalogHeader + row + "\n");
    return error_of([&] { load_catalog({file}); });
  };
  EXPECT_CONTAINS(load_row("B.01,B,Việc,piece,30,1,false,,"),
                  ":3: measure: \"piece\" is not product or time");
  EXPECT_CONTAINS(load_row("B.01,B,Việc,product,,1,false,,"),
                  ":3: standard_minutes: \"\" must be above 0 for a product-measured item");
  EXPECT_CONTAINS(load_row("B.01,B,Việc,product,30,1.2x,false,,"),
                  ":3: coefficient: \"1.2x\" is not a number");
  EXPECT_CONTAINS(load_row("B.01,B,Việc,product,30,-1,false,,"),
                  ":3: coefficient: \"-1\" is outside (0, 10]");
  EXPECT_CONTAINS(load_row("B.01,B,Việc,time,,1,yes,,"), ":3: leave: \"yes\" is not true or false");
  EXPECT_CONTAINS(load_row("B.01,B,Việc,time,,1,false,police,"),
                  ":3: sector: \"police\" is not a sector");
  EXPECT_CONTAINS(load_row(",B,Việc,time,,1,false,,"), ":3: code: \"\" is empty");
  EXPECT_CONTAINS(load_row("B 01,B,Việc,time,,1,false,,"),
                  ":3: code: \"B 01\" contains whitespace");
}

TEST(Catalog, RefusesADuplicateTaskCodeAcrossFiles) {
  TempDir dir;
  const std::string first = dir.write("a.csv", kCatalogHeader + "B.03.2,B,Một,time,,1,false,,\n");
  const std::string second = dir.write(
      "b.csv", kCatalogHeader + "B.09,B,Hai,time,,1,false,,\nB.03.2,B,Ba,time,,1,false,,\n");
  const std::string message = error_of([&] { load_catalog({first, second}); });
  EXPECT_CONTAINS(message, second + ":4: code: \"B.03.2\" is a duplicate task code");
  EXPECT_CONTAINS(message, first + ":3");
}

TEST(Catalog, RefusesAMissingOrUnknownColumn) {
  TempDir dir;
  const std::string missing = dir.write(
      "missing.csv", "# catalog_version: 1\ncode,group,title,standard_minutes\nB.01,B,x,30\n");
  EXPECT_EQ(error_of([&] { load_catalog({missing}); }),
            missing + ":2: header is missing column(s) measure");
  const std::string unknown =
      dir.write("unknown.csv", "# catalog_version: 1\ncode,group,title,measure,standard_minute\n");
  EXPECT_EQ(error_of([&] { load_catalog({unknown}); }),
            unknown + ":2: unknown column \"standard_minute\" (did you mean standard_minutes?)");
}

TEST(Catalog, RequiresOneAgreeingVersionLinePerFile) {
  TempDir dir;
  const std::string body = "code,group,title,measure,standard_minutes\nB.01,B,x,time,\n";
  const std::string none = dir.write("none.csv", body);
  EXPECT_CONTAINS(error_of([&] { load_catalog({none}); }), none + ": no \"# catalog_version");
  const std::string v1 = dir.write("v1.csv", "# catalog_version: 2025.04\n" + body);
  const std::string v2 = dir.write(
      "v2.csv",
      "# catalog_version: 2025.05\ncode,group,title,measure,standard_minutes\nB.02,B,y,time,\n");
  EXPECT_CONTAINS(error_of([&] {
                    load_catalog({v1, v2});
                  }),
                  v2 + ": catalog_version \"2025.05\" differs from \"2025.04\" in " + v1);
}

TEST(Catalog, RefusesInvalidUtf8InATitle) {
  TempDir dir;
  const std::string file = dir.write(
      "latin1.csv", kCatalogHeader + "B.01,B,X\xfd l\xfd v\xe3n b\xe3n,time,,1,false,,\n");
  EXPECT_CONTAINS(error_of([&] { load_catalog({file}); }), file + ":3: invalid UTF-8");
}

TEST(Catalog, NamesAMissingFile) {
  EXPECT_CONTAINS(error_of([] { load_catalog({"/nonexistent/catalog.csv"}); }),
                  "/nonexistent/catalog.csv: cannot read file");
}

// ------------------------------------------------------------- Directory --

TEST(Directory, ShippedDirectoryResolvesStaffIdentifiersAndUnits) {
  const Directory directory = load_directory(kConfigDir + "/staff.csv", kConfigDir + "/units.csv");
  EXPECT_GE(directory.size(), 25u);
  const StaffInfo* binh = directory.staff("KH-000123");
  ASSERT_NE(binh, nullptr);
  EXPECT_EQ(binh->full_name, "Trần Văn Bình");
  EXPECT_EQ(binh->agency_code, "000.00.12.H34");
  EXPECT_FALSE(binh->leader);
  EXPECT_TRUE(binh->active);
  EXPECT_TRUE(directory.staff("KH-000010")->leader);
  EXPECT_FALSE(directory.staff("KH-000130")->active);

  const StaffInfo* teacher = directory.by_identifier("GV-000123");
  ASSERT_NE(teacher, nullptr);
  EXPECT_EQ(teacher->full_name, "Nguyễn Thị Lan");
  EXPECT_EQ(teacher->sector, "education");
  const StaffInfo* doctor = directory.by_identifier("000123/KH-CCHN");
  ASSERT_NE(doctor, nullptr);
  EXPECT_EQ(doctor->sector, "health");
  // A person may hold several identifiers.
  EXPECT_EQ(directory.by_identifier("001234/BYT-CCHN"), directory.by_identifier("000130/KH-CCHN"));
  EXPECT_EQ(directory.by_identifier("GV-999999"), nullptr);

  EXPECT_EQ(directory.agency_of_unit("56.01.THPT.012"), "000.00.25.H34");
  EXPECT_EQ(directory.agency_of_unit("56001"), "000.00.31.H34");
  EXPECT_EQ(directory.agency_of_unit("99999"), std::nullopt);
}

const std::string kStaffHeader =
    "staff_code,full_name,agency_code,leader,active,sector,identifiers\n";

TEST(Directory, RefusesDuplicatesAndBadValues) {
  TempDir dir;
  const std::string units = dir.write("units.csv", "unit_code,agency_code\n56001,A1\n");
  const auto load_staff = [&](const std::string& rows) {
    const std::string staff = dir.write("staff.csv", kStaffHeader + rows);
    return error_of([&] { load_directory(staff, units); });
  };
  EXPECT_CONTAINS(load_staff("KH-1,Một,A1,false,true,,\nKH-1,Hai,A1,false,true,,\n"),
                  "staff.csv:3: staff_code: \"KH-1\" is a duplicate staff code (first at ");
  EXPECT_CONTAINS(load_staff("KH-1,Một,A1,false,true,education,GV-1\n"
                             "KH-2,Hai,A1,false,true,education,GV-2;GV-1\n"),
                  "staff.csv:3: identifiers: \"GV-2;GV-1\" repeats identifier \"GV-1\"");
  EXPECT_CONTAINS(load_staff("KH-1,Một,A1,maybe,true,,\n"),
                  "staff.csv:2: leader: \"maybe\" is not true or false");
  EXPECT_CONTAINS(load_staff("KH-1,,A1,false,true,,\n"), "staff.csv:2: full_name: \"\" is empty");

  const std::string staff = dir.write("staff.csv", kStaffHeader + "KH-1,Một,A1,false,true,,\n");
  const std::string duplicate_units =
      dir.write("units2.csv", "unit_code,agency_code\n56001,A1\n56001,A2\n");
  EXPECT_CONTAINS(error_of([&] { load_directory(staff, duplicate_units); }),
                  "units2.csv:3: unit_code: \"56001\" is a duplicate unit code");
  // Several files (E-Office staff, teachers, clinicians) are one directory:
  // a code repeated across them is refused, naming both places.
  const std::string teachers =
      dir.write("teachers.csv", kStaffHeader + "GD-1,Ba,A1,false,true,education,GV-1\n");
  const Directory both =
      load_directory(std::vector<std::string>{staff, teachers}, std::vector<std::string>{units});
  EXPECT_EQ(both.size(), 2u);
  ASSERT_NE(both.by_identifier("GV-1"), nullptr);
  EXPECT_EQ(both.by_identifier("GV-1")->staff_code, "GD-1");
  const std::string again = dir.write("again.csv", kStaffHeader + "KH-1,Một,A1,false,true,,\n");
  EXPECT_CONTAINS(
      error_of([&] {
        load_directory(std::vector<std::string>{staff, again}, std::vector<std::string>{units});
      }),
      "again.csv:2: staff_code: \"KH-1\" is a duplicate staff code (first at ");
  const std::string no_agency = dir.write("units3.csv", "unit_code\n56001\n");
  EXPECT_CONTAINS(error_of([&] { load_directory(staff, no_agency); }),
                  "units3.csv:1: header is missing column(s) agency_code");
}

TEST(Reference, EveryErrorOfEveryReferenceFileIsReportedInOnePass) {
  TempDir dir;
  HubConfig config;
  config.catalog_files = {dir.write("catalog.csv", kCatalogHeader +
                                                       "B.01,B,Việc một,product,abc,1,false,,\n"
                                                       "B.02,B,Việc hai,product,30,1,false,,\n"
                                                       "B.03,B,Việc ba,piece,30,1,false,,\n")};
  config.staff_files = {dir.write("staff.csv", kStaffHeader + "KH-1,Một,A1,maybe,true,,\n")};
  config.units_files = {dir.write("units.csv", "unit_code,agency_code\n56001,A1\n")};
  config.holiday_files = {dir.write("holidays.csv", "date,name\n2025-02-30,Tết\n")};
  config.rules_file = kConfigDir + "/rules.json";
  const std::string message = error_of([&] { load_reference(config); });
  EXPECT_CONTAINS(message, "catalog.csv:3: standard_minutes: \"abc\" is not a number");
  EXPECT_CONTAINS(message, "catalog.csv:5: measure: \"piece\" is not product or time");
  EXPECT_CONTAINS(message, "staff.csv:2: leader: \"maybe\" is not true or false");
  EXPECT_CONTAINS(message, "holidays.csv:2: date: \"2025-02-30\" is not a date");
}

// -------------------------------------------------------------- Holidays --

TEST(Holidays, April2025HasTwentyWorkingDays) {
  const HolidayCalendar calendar = load_holidays(kHolidayFiles);
  EXPECT_TRUE(calendar.is_holiday(Date::from_ymd(2025, 4, 7)));
  EXPECT_TRUE(calendar.is_holiday(Date::from_ymd(2025, 4, 30)));
  EXPECT_FALSE(calendar.is_working_day(Date::from_ymd(2025, 4, 7)));
  EXPECT_TRUE(calendar.is_working_day(Date::from_ymd(2025, 4, 8)));
  EXPECT_FALSE(calendar.is_working_day(Date::from_ymd(2025, 4, 12)));  // Saturday
  EXPECT_FALSE(calendar.is_working_day(Date::from_ymd(2025, 4, 13)));  // Sunday
  EXPECT_EQ(calendar.working_days(Month{2025, 4}), 20);
}

TEST(Holidays, ShippedCalendarCoversTetAndNationalDay) {
  const HolidayCalendar calendar = load_holidays(kHolidayFiles);
  // January 2025: 23 weekdays, minus New Year and the five Tết weekdays.
  EXPECT_EQ(calendar.working_days(Month{2025, 1}), 17);
  EXPECT_TRUE(calendar.is_holiday(Date::from_ymd(2025, 1, 29)));  // Mùng 1 Tết Ất Tỵ
  EXPECT_TRUE(calendar.is_holiday(Date::from_ymd(2025, 9, 2)));
  EXPECT_TRUE(calendar.is_holiday(Date::from_ymd(2026, 2, 17)));  // Mùng 1 Tết Bính Ngọ
  EXPECT_EQ(calendar.working_days(Month{2026, 2}), 15);           // 20 weekdays, 5 of them Tết
  EXPECT_EQ(calendar.working_days(Month{2025, 6}), 21);           // no holiday in June
}

TEST(Holidays, RefusesABadDateNamingFileLineAndValue) {
  TempDir dir;
  const std::string file =
      dir.write("2025.csv", "date,name\n2025-01-01,Tết Dương lịch\n2025-02-30,Không có\n");
  EXPECT_EQ(error_of([&] { load_holidays({file}); }),
            file + ":3: date: \"2025-02-30\" is not a date (YYYY-MM-DD)");
  const std::string slashes = dir.write("b.csv", "date,name\n30/04/2025,Giải phóng\n");
  EXPECT_CONTAINS(error_of([&] { load_holidays({slashes}); }), ":2: date: \"30/04/2025\"");
}

TEST(Holidays, RefusesADateListedTwiceAndAMissingName) {
  TempDir dir;
  const std::string first = dir.write("a.csv", "date,name\n2025-04-30,Giải phóng\n");
  const std::string second = dir.write("b.csv", "date,name\n2025-04-30,Lặp lại\n");
  EXPECT_CONTAINS(error_of([&] {
                    load_holidays({first, second});
                  }),
                  second + ":2: date: \"2025-04-30\" is listed twice (first at " + first + ":2)");
  const std::string unnamed = dir.write("c.csv", "date,name\n2025-05-01,\n");
  EXPECT_CONTAINS(error_of([&] { load_holidays({unnamed}); }), ":2: name: \"\" is empty");
}

// ----------------------------------------------------------------- Rules --

TEST(Rules, ShippedRulesAreTheScoringSpecDefaults) {
  const Rules rules = load_rules(kConfigDir + "/rules.json");
  EXPECT_EQ(rules.version, "kpi-rules/1");
  EXPECT_DOUBLE_EQ(rules.quality_excellent, 1.0);
  EXPECT_DOUBLE_EQ(rules.quality_good, 0.9);
  EXPECT_DOUBLE_EQ(rules.quality_fair, 0.7);
  EXPECT_DOUBLE_EQ(rules.quality_poor, 0.0);
  EXPECT_DOUBLE_EQ(rules.quality_none, 1.0);
  ASSERT_EQ(rules.timeliness.size(), 4u);
  const std::pair<int, double> bands[] = {{0, 1.0}, {3, 0.8}, {7, 0.6}};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rules.timeliness[i].max_late_days, bands[i].first);
    EXPECT_DOUBLE_EQ(rules.timeliness[i].factor, bands[i].second);
  }
  EXPECT_GT(rules.timeliness[3].max_late_days, 100000);
  EXPECT_DOUBLE_EQ(rules.timeliness[3].factor, 0.4);
  EXPECT_EQ(rules.standard_day_minutes, 480);
  EXPECT_EQ(rules.implausible_day_minutes, 720);
  EXPECT_DOUBLE_EQ(rules.daily_cap_points, 600);
  EXPECT_DOUBLE_EQ(rules.over_declared_ratio, 2.0);
  EXPECT_EQ(rules.duplicate_precedence,
            (std::vector<std::string>{"health", "education", "eoffice"}));
  EXPECT_DOUBLE_EQ(rules.share_non_leader, 0.7);
  EXPECT_DOUBLE_EQ(rules.share_leader, 0.5);
  EXPECT_DOUBLE_EQ(rules.class_excellent, 90);
  EXPECT_DOUBLE_EQ(rules.class_good, 70);
  EXPECT_DOUBLE_EQ(rules.class_complete, 50);
  EXPECT_EQ(rules.due_day, 25);
  EXPECT_EQ(rules.due_month_offset, 1);
  EXPECT_DOUBLE_EQ(rules.high_hours_absolute, 8.5);
  EXPECT_DOUBLE_EQ(rules.high_hours_median_ratio, 1.25);
  EXPECT_EQ(rules.retention_days, 400);
  EXPECT_EQ(rules.utc_offset_minutes, 420);
  EXPECT_EQ(rules.auto_approve_sources, (std::set<std::string>{"education", "health"}));
}

TEST(Rules, ChangedValuesAreRead) {
  TempDir dir;
  const std::string file = dir.write("rules.json", R"({
    "version": "kpi-rules/1",
    "quality_factor": {"good": 0.85},
    "timeliness": [{"max_late_days": 2, "factor": 0.9}, {"factor": 0.5}],
    "day": {"cap_points": 540},
    "auto_approve_sources": []
  })");
  const Rules rules = load_rules(file);
  EXPECT_DOUBLE_EQ(rules.quality_good, 0.85);
  EXPECT_DOUBLE_EQ(rules.quality_fair, 0.7);  // untouched default
  ASSERT_EQ(rules.timeliness.size(), 2u);
  EXPECT_EQ(rules.timeliness[0].max_late_days, 2);
  EXPECT_DOUBLE_EQ(rules.timeliness[1].factor, 0.5);
  EXPECT_DOUBLE_EQ(rules.daily_cap_points, 540);
  EXPECT_TRUE(rules.auto_approve_sources.empty());
}

TEST(Rules, RefusesBadRulesWithKeyPaths) {
  TempDir dir;
  const auto load = [&](const std::string& body) {
    const std::string file = dir.write("rules.json", body);
    return error_of([&] { load_rules(file); });
  };
  const std::string v = R"("version": "kpi-rules/1", )";
  EXPECT_CONTAINS(load("{" + v + R"("quality_factr": {}})"),
                  "rules.json: quality_factr: unknown key (did you mean quality_factor?)");
  EXPECT_CONTAINS(load("{" + v + R"("quality_factor": {"good": 1.5}})"),
                  "rules.json: quality_factor.good: 1.5 is outside 0..1");
  EXPECT_CONTAINS(load("{" + v + R"("quality_factor": {"good": "high"}})"),
                  "rules.json: quality_factor.good: expected a number, got \"high\"");
  EXPECT_CONTAINS(
      load(
          "{" + v +
          R"("timeliness": [{"max_late_days": 3, "factor": 1}, {"max_late_days": 3, "factor": 0.5}, {"factor": 0}]})"),
      "rules.json: timeliness[1].max_late_days: 3 must be above the previous band's 3");
  EXPECT_CONTAINS(load("{" + v + R"("timeliness": [{"max_late_days": 3, "factor": 1}]})"),
                  "timeliness[0].max_late_days: the last band covers every later day");
  EXPECT_CONTAINS(load("{" + v + R"("class_thresholds": {"good": 95}})"),
                  "class_thresholds: thresholds must increase");
  EXPECT_CONTAINS(load("{" + v + R"("due": {"day": 31}})"), "due.day: 31 is outside 1..28");
  EXPECT_CONTAINS(load("{" + v + R"("retention_days": 400.5})"),
                  "retention_days: expected an integer, got 400.5");
  EXPECT_CONTAINS(load("{" + v + R"("over_declared_ratio": "2"})"),
                  "over_declared_ratio: expected a number, got \"2\"");
  EXPECT_CONTAINS(load(R"({"version": "kpi-rules/2"})"),
                  "version: \"kpi-rules/2\" is not a supported rules version");
  EXPECT_CONTAINS(load(R"({"day": {}})"), "rules.json: version: required key is missing");
  EXPECT_CONTAINS(load("{" + v + R"("retention_days": 400, "retention_days": 30})"),
                  "retention_days: key appears twice");
  EXPECT_CONTAINS(load("{\n" + v + "\n\"day\": {,}\n}"), "rules.json:3: JSON syntax error");
}

// ------------------------------------------------------------ Hub config --

TEST(HubConfig, ShippedConfigLoadsWithResolvedPaths) {
  const HubConfig config = load_hub_config(kConfigDir + "/hub.json");
  const fs::path repo = fs::path(KPIHUB_SOURCE_DIR).lexically_normal();
  EXPECT_EQ(config.hub_id, "khanhhoa-hub-1");
  EXPECT_EQ(fs::path(config.base_dir), (repo / "config").lexically_normal());
  EXPECT_EQ(fs::path(config.data_dir), (repo / "var").lexically_normal());
  EXPECT_EQ(fs::path(config.store_path), (repo / "var/hub.rocksdb").lexically_normal());
  EXPECT_EQ(fs::path(config.plugin_dir), (repo / "build/plugins").lexically_normal());
  EXPECT_EQ(config.store, "rocksdb");
  ASSERT_EQ(config.catalog_files.size(), 4u);
  EXPECT_EQ(fs::path(config.catalog_files[0]), (repo / "config/catalog/province.csv"));
  ASSERT_EQ(config.staff_files.size(), 3u);
  EXPECT_EQ(fs::path(config.staff_files[0]), repo / "config/staff.csv");
  EXPECT_EQ(config.holiday_files.size(), 2u);
  EXPECT_FALSE(config.today.has_value());

  ASSERT_EQ(config.sources.size(), 3u);
  const PluginInstanceConfig& eoffice = config.sources[0];
  EXPECT_EQ(eoffice.name, "eoffice");
  EXPECT_EQ(eoffice.plugin, "eoffice");
  EXPECT_TRUE(eoffice.enabled);
  EXPECT_EQ(eoffice.interval_ms, 60000);
  // Paths in settings ("*_file", "*_dir") are resolved against config/.
  EXPECT_EQ(
      json::parse(eoffice.settings_json),
      json::parse(R"({"base_url": "http://127.0.0.1:18081", "client_id": "kpihub",
                "client_secret_file": ")" +
                  (repo / "tests/fixtures/secrets/eoffice-client-secret").string() + R"("})"));
  EXPECT_EQ(json::parse(config.sources[2].settings_json).at("inbox_dir").as_string(),
            (repo / "var/inbox/health").string());
  // The secret file named relative to config/ is found from there.
  EXPECT_TRUE(fs::is_regular_file(
      resolve_config_path(config, "../tests/fixtures/secrets/eoffice-client-secret")));

  ASSERT_EQ(config.sinks.size(), 1u);
  EXPECT_EQ(config.sinks[0].name, "provincial");
  EXPECT_EQ(config.sinks[0].batch_max_items, 500u);
  EXPECT_EQ(json::parse(config.sinks[0].settings_json).at("base_url"), "http://127.0.0.1:18082");
  EXPECT_EQ(config.admin.listen, "127.0.0.1:8080");
  EXPECT_TRUE(config.admin.enabled);

  const ReferenceData reference = load_reference(config);
  EXPECT_EQ(reference.catalog.version, "2025.04");
  EXPECT_NE(reference.directory.staff("KH-000123"), nullptr);
  EXPECT_EQ(reference.holidays.working_days(Month{2025, 4}), 20);
  EXPECT_EQ(reference.rules.due_day, 25);
}

// A valid configuration in a temp folder, pointing at the shipped data files,
// for tests to break one thing at a time.
class HubConfigFile : public ::testing::Test {
 protected:
  json::object valid() const {
    json::object config;
    config["hub_id"] = "test-hub";
    config["data_dir"] = "var";
    json::array catalogs;
    for (const auto& file : kCatalogFiles) catalogs.emplace_back(file);
    config["catalog_files"] = catalogs;
    config["staff_file"] = kConfigDir + "/staff.csv";
    config["units_file"] = kConfigDir + "/units.csv";
    config["rules_file"] = kConfigDir + "/rules.json";
    config["holiday_files"] = json::array{kHolidayFiles[0].c_str(), kHolidayFiles[1].c_str()};
    config["sources"] = json::array{json::object{
        {"name", "eoffice"},
        {"plugin", "eoffice"},
        {"interval_ms", 5000},
        {"settings", json::object{{"base_url", "http://127.0.0.1:1"},
                                  {"page_size", 500},
                                  {"verify_tls", true},
                                  {"mapping", json::object{{"ratio", 1.5}, {"none", nullptr}}},
                                  {"client_secret_file", "secret.txt"}}}}};
    config["sinks"] = json::array{json::object{{"name", "provincial"}, {"plugin", "provincial"}}};
    return config;
  }
  std::string write(const json::object& config) const {
    dir_.write("secret.txt", "s3cr3t");
    return dir_.write("hub.json", json::serialize(config));
  }
  std::string error_for(const json::object& config) const {
    const std::string file = write(config);
    return error_of([&] { load_hub_config(file); });
  }
  TempDir dir_;
};

TEST_F(HubConfigFile, KeepsSettingsTypesAndResolvesAgainstTheConfigFolder) {
  const std::string file = write(valid());
  const HubConfig config = load_hub_config(file);
  EXPECT_EQ(fs::path(config.data_dir), fs::path(dir_.path()) / "var");
  EXPECT_EQ(config.sources[0].interval_ms, 5000);
  const json::value settings = json::parse(config.sources[0].settings_json);
  EXPECT_TRUE(settings.at("page_size").is_int64());
  EXPECT_TRUE(settings.at("verify_tls").is_bool());
  EXPECT_DOUBLE_EQ(settings.at("mapping").at("ratio").as_double(), 1.5);
  EXPECT_TRUE(settings.at("mapping").at("none").is_null());
  EXPECT_EQ(json::parse(config.sinks[0].settings_json), json::object());
  EXPECT_EQ(config.sinks[0].batch_max_bytes, 4u * 1024 * 1024);  // default
  EXPECT_EQ(config.outbox_retention_days, 30);                   // default
}

// Issue 20: the store's engine is chosen in hub.json, RocksDB when none is named; each engine's
// store (a SQLite file, a RocksDB folder) has a name of its own.
TEST_F(HubConfigFile, TheStoreEngineIsRocksdbUnlessSqliteIsChosenEachWithItsOwnDefaultPath) {
  auto config = valid();
  HubConfig loaded = load_hub_config(write(config));
  EXPECT_EQ(loaded.store, "rocksdb");
  EXPECT_EQ(fs::path(loaded.store_path), fs::path(dir_.path()) / "var/hub.rocksdb");
  EXPECT_EQ(loaded.store_memory_mb, 16u);  // the engine's default budget
  EXPECT_EQ(loaded.store_inferred, "");

  config["store"] = "sqlite";
  loaded = load_hub_config(write(config));
  EXPECT_EQ(loaded.store, "sqlite");
  EXPECT_EQ(fs::path(loaded.store_path), fs::path(dir_.path()) / "var/hub.db");

  // A folder written with its trailing '/' is the same folder (its lock file goes beside it).
  config["store"] = "rocksdb";
  config["store_path"] = "state/kpi.rocksdb/";
  config["store_memory_mb"] = 256;
  loaded = load_hub_config(write(config));
  EXPECT_EQ(loaded.store_path, (fs::path(dir_.path()) / "state/kpi.rocksdb").string());
  EXPECT_EQ(loaded.store_memory_mb, 256u);
}

// A configuration written for the SQLite store before RocksDB became the default names no
// engine: after the upgrade it must still open its SQLite file, not start an empty RocksDB store
// beside it.
TEST_F(HubConfigFile, AConfigurationWithoutStoreKeepsTheSqliteStoreItWasWrittenFor) {
  // The SQLite default's file exists under data_dir: SQLite, at that file.
  auto config = valid();
  fs::create_directories(fs::path(dir_.path()) / "var");
  std::ofstream(fs::path(dir_.path()) / "var/hub.db") << "";
  HubConfig loaded = load_hub_config(write(config));
  EXPECT_EQ(loaded.store, "sqlite");
  EXPECT_EQ(fs::path(loaded.store_path), fs::path(dir_.path()) / "var/hub.db");
  EXPECT_CONTAINS(
      loaded.store_inferred,
      "the SQLite store " + (fs::path(dir_.path()) / "var/hub.db").string() + " exists");
  // A memory budget there is refused, saying why the store is SQLite.
  config["store_memory_mb"] = 64;
  EXPECT_CONTAINS(error_for(config),
                  "store_memory_mb: only the rocksdb store has a memory budget (this "
                  "configuration's store is \"sqlite\": no \"store\" key, and the SQLite store");
  config.erase("store_memory_mb");

  // Once copied into RocksDB beside it (kpihub store copy), which one is meant is not guessed.
  fs::create_directories(fs::path(dir_.path()) / "var/hub.rocksdb");
  EXPECT_CONTAINS(error_for(config), "hub.json: store: no \"store\" key, and both ");
  EXPECT_CONTAINS(error_for(config), "name the engine to use");
  config["store"] = "rocksdb";
  EXPECT_EQ(load_hub_config(write(config)).store, "rocksdb");
  config["store"] = "sqlite";
  EXPECT_EQ(load_hub_config(write(config)).store, "sqlite");

  // A store_path with a SQLite store's name (.db, .sqlite, .sqlite3) is a SQLite file.
  config = valid();
  config["store_path"] = "state/kpi.db";
  loaded = load_hub_config(write(config));
  EXPECT_EQ(loaded.store, "sqlite");
  EXPECT_EQ(fs::path(loaded.store_path), fs::path(dir_.path()) / "state/kpi.db");
  EXPECT_CONTAINS(loaded.store_inferred, "has a SQLite store's name");
  config["store_path"] = "state/kpi.sqlite3";
  EXPECT_EQ(load_hub_config(write(config)).store, "sqlite");

  // A store_path naming an existing file, whatever its name, is a SQLite file.
  std::ofstream(fs::path(dir_.path()) / "kpi.sqlite") << "";
  config["store_path"] = "kpi.sqlite";
  loaded = load_hub_config(write(config));
  EXPECT_EQ(loaded.store, "sqlite");
  EXPECT_CONTAINS(loaded.store_inferred, "is a file");

  // Any other store_path (a folder, a new name) is on the default engine.
  config["store_path"] = "state/kpi";
  loaded = load_hub_config(write(config));
  EXPECT_EQ(loaded.store, "rocksdb");
  EXPECT_EQ(loaded.store_inferred, "");
  fs::create_directories(fs::path(dir_.path()) / "state/kpi.db");  // a folder, whatever its name
  config["store_path"] = "state/kpi.db";
  EXPECT_EQ(load_hub_config(write(config)).store, "rocksdb");
}

TEST_F(HubConfigFile, RefusesAnUnknownEngineAndAMemoryBudgetSqliteWouldIgnore) {
  auto config = valid();
  config["store"] = "lmdb";
  EXPECT_CONTAINS(error_for(config),
                  "hub.json: store: \"lmdb\" is not a supported store (supported: sqlite, "
                  "rocksdb)");
  config = valid();
  config["store"] = "sqlite";
  config["store_memory_mb"] = 64;
  EXPECT_CONTAINS(error_for(config),
                  "hub.json: store_memory_mb: only the rocksdb store has a memory budget (this "
                  "configuration's store is \"sqlite\")");
  config["store"] = "rocksdb";
  config["store_memory_mb"] = 4;
  EXPECT_CONTAINS(error_for(config), "hub.json: store_memory_mb: 4 is outside 8..");
  config["store_memory_mb"] = "1G";
  EXPECT_CONTAINS(error_for(config), "hub.json: store_memory_mb: expected an integer, got \"1G\"");
  config = valid();
  config["store_memory"] = 64;
  EXPECT_CONTAINS(error_for(config),
                  "hub.json: store_memory: unknown key (did you mean store_memory_mb?)");
}

TEST_F(HubConfigFile, OutboxRetentionIsWholeDaysZeroKeepingEverything) {
  auto config = valid();
  config["outbox_retention_days"] = 0;
  EXPECT_EQ(load_hub_config(write(config)).outbox_retention_days, 0);
  config["outbox_retention_days"] = 90;
  EXPECT_EQ(load_hub_config(write(config)).outbox_retention_days, 90);
  config["outbox_retention_days"] = -1;
  EXPECT_CONTAINS(error_for(config), "hub.json: outbox_retention_days: -1 is outside 0..");
  config["outbox_retention_days"] = "30d";
  EXPECT_CONTAINS(error_for(config),
                  "hub.json: outbox_retention_days: expected an integer, got \"30d\"");
}

// Issue 19 section 3: an empty or one-byte HMAC secret passed check-config. HS256 needs a key
// of at least its hash's size (RFC 7518 3.2): 32 bytes, the line break the file ends with not
// counted.
TEST_F(HubConfigFile, AnHmacSecretShorterThan32BytesIsRefusedNamingTheFileAndItsLength) {
  auto config = valid();
  config["admin"] = json::object{{"jwt", json::object{{"algorithms", json::array{"HS256"}},
                                                      {"hmac_secret_file", "jwt-secret"}}}};
  dir_.write("jwt-secret", "");
  std::string error = error_for(config);
  EXPECT_CONTAINS(error, "admin.jwt.hmac_secret_file");
  EXPECT_CONTAINS(error, "jwt-secret holds 0 bytes; an HMAC secret needs at least 32");
  dir_.write("jwt-secret", "x\n");
  EXPECT_CONTAINS(error_for(config), "jwt-secret holds 1 bytes; an HMAC secret needs at least 32");
  dir_.write("jwt-secret", std::string(31, 'k') + "\n");
  EXPECT_CONTAINS(error_for(config), "holds 31 bytes");
  dir_.write("jwt-secret", std::string(32, 'k') + "\n");
  EXPECT_EQ(load_hub_config(write(config)).admin.jwt->hmac_secret_file,
            (fs::path(dir_.path()) / "jwt-secret").string());
  // HS512's hash is 64 bytes: so is its shortest secret.
  config["admin"].as_object()["jwt"].as_object()["algorithms"] = json::array{"HS256", "HS512"};
  EXPECT_CONTAINS(error_for(config), "holds 32 bytes; an HMAC secret needs at least 64");
}

TEST_F(HubConfigFile, SuggestsTheKeyAMisspelledKeyMeant) {
  auto config = valid();
  config["sources"].as_array()[0].as_object()["intervall_ms"] = 1000;
  EXPECT_EQ(error_for(config), dir_.path() +
                                   "/hub.json: sources[0].intervall_ms: unknown key (did you mean "
                                   "interval_ms?)");
  config = valid();
  config["plugins_dir"] = "x";
  EXPECT_CONTAINS(error_for(config),
                  "hub.json: plugins_dir: unknown key (did you mean plugin_dir?)");
  config = valid();
  config["colour"] = "blue";
  const std::string message = error_for(config);
  EXPECT_CONTAINS(message, "hub.json: colour: unknown key");
  EXPECT_EQ(message.find("did you mean"), std::string::npos);
}

TEST_F(HubConfigFile, RefusesWrongTypes) {
  auto config = valid();
  config["sources"].as_array()[0].as_object()["interval_ms"] = "ten";
  EXPECT_CONTAINS(error_for(config),
                  "hub.json: sources[0].interval_ms: expected an integer, got \"ten\"");
  config = valid();
  config["sources"].as_array()[0].as_object()["enabled"] = "yes";
  EXPECT_CONTAINS(error_for(config), "sources[0].enabled: expected true or false, got \"yes\"");
  config = valid();
  config["sources"].as_array()[0].as_object()["interval_ms"] = 0;
  EXPECT_CONTAINS(error_for(config), "sources[0].interval_ms: 0 is outside 1..");
  config = valid();
  config["staff_file"] = json::array{kConfigDir + "/staff.csv", "a.csv"};
  EXPECT_CONTAINS(error_for(config), "hub.json: staff_file[1]: file \"");
  config = valid();
  config["units_file"] = json::array{};
  EXPECT_CONTAINS(error_for(config), "hub.json: units_file: needs at least one file");
  config = valid();
  config["staff_file"] = 7;
  EXPECT_CONTAINS(error_for(config), "hub.json: staff_file: expected a string, got 7");
  config = valid();
  config["sources"] = "eoffice";
  EXPECT_CONTAINS(error_for(config), "hub.json: sources: expected a list, got \"eoffice\"");
  config = valid();
  config["sources"].as_array()[0].as_object()["settings"] = json::array{1, 2};
  EXPECT_CONTAINS(error_for(config), "sources[0].settings: expected an object, got [1,2]");
  // PropertyTree alone would read these as text; the JSON types are checked.
  config = valid();
  config["sources"].as_array()[0].as_object()["interval_ms"] = "60000";
  EXPECT_CONTAINS(error_for(config), "sources[0].interval_ms: expected an integer, got \"60000\"");
  config = valid();
  config["sources"].as_array()[0].as_object()["interval_ms"] = 1.5;
  // Shown as written in the file (Boost.JSON wrote 1.5 as 1.5E0).
  EXPECT_CONTAINS(error_for(config), "sources[0].interval_ms: expected an integer, got 1.5E0");
  config = valid();
  config["sources"].as_array()[0].as_object()["enabled"] = "true";
  EXPECT_CONTAINS(error_for(config), "sources[0].enabled: expected true or false, got \"true\"");
  config = valid();
  config["hub_id"] = 5;
  EXPECT_CONTAINS(error_for(config), "hub.json: hub_id: expected a string, got 5");
  config = valid();
  config["admin"] = "";
  EXPECT_CONTAINS(error_for(config), "hub.json: admin: expected an object, got \"\"");
  config = valid();
  config["holiday_files"] = json::object{{"a", "b"}};
  EXPECT_CONTAINS(error_for(config), "holiday_files: expected a list, got {\"a\":\"b\"}");
  config = valid();
  config["today"] = "2025-13-01";
  EXPECT_CONTAINS(error_for(config), "today: \"2025-13-01\" is not a date");
  config = valid();
  config["admin"] = json::object{{"listen", "localhost"}};
  EXPECT_CONTAINS(error_for(config), "admin.listen: \"localhost\" is not host:port");
  config = valid();
  config["sinks"].as_array()[0].as_object()["batch_max_items"] = -5;
  EXPECT_CONTAINS(error_for(config), "sinks[0].batch_max_items: -5 is outside 1..100000");
  config = valid();
  config["sources"].as_array()[0].as_object()["batch_max_items"] = 5;
  EXPECT_CONTAINS(error_for(config), "sources[0].batch_max_items: unknown key");
}

TEST_F(HubConfigFile, RefusesInlineSecretsWithoutEchoingThem) {
  auto config = valid();
  config["sources"].as_array()[0].as_object()["settings"].as_object()["client_secret"] =
      "hunter2-secret-value";
  std::string message = error_for(config);
  EXPECT_CONTAINS(message, "hub.json: sources[0].settings.client_secret: secrets must not be");
  EXPECT_CONTAINS(message, "\"client_secret_file\"");
  EXPECT_CONTAINS(message, "\"client_secret_env\"");
  EXPECT_EQ(message.find("hunter2"), std::string::npos);

  for (const char* key : {"db_password", "access_token", "api_key", "API_KEY"}) {
    config = valid();
    config["sinks"].as_array()[0].as_object()["settings"] =
        json::object{{"auth", json::object{{key, 12345}}}};
    message = error_for(config);
    EXPECT_CONTAINS(message,
                    std::string("sinks[0].settings.auth.") + key + ": secrets must not be");
  }
  config = valid();
  config["admin"] = json::object{{"token", "abc"}};
  EXPECT_CONTAINS(error_for(config), "hub.json: admin.token: secrets must not be");
  config = valid();
  config["sources"].as_array()[0].as_object()["settings"].as_object()["token_secret"] = "file:";
  EXPECT_CONTAINS(error_for(config), "settings.token_secret: secrets must not be");
}

// Issue 22 section 3: docs/writing-an-adapter.md's example, "token_secret": "file:...", was
// refused as an inline secret. A reference to a secret, which the plugin resolves with
// Host::secret, is not the secret.
TEST_F(HubConfigFile, ASecretKeyMayHoldAReferenceToTheSecret) {
  auto config = valid();
  auto& settings = config["sources"].as_array()[0].as_object()["settings"].as_object();
  settings["token_secret"] = "file:secrets/token.txt";
  settings["api_key"] = "env:SCHOOL_API_KEY";
  EXPECT_NO_THROW(load_hub_config(write(config)));
}

TEST_F(HubConfigFile, NamesTheKeyAndPathOfAMissingFile) {
  auto config = valid();
  config["staff_file"] = "nhan-su.csv";
  EXPECT_EQ(error_for(config), dir_.path() + "/hub.json: staff_file: file \"" + dir_.path() +
                                   "/nhan-su.csv\" does not exist");
  config = valid();
  config["holiday_files"].as_array().emplace_back("holidays/2027.csv");
  EXPECT_CONTAINS(error_for(config), "holiday_files[2]: file \"" + dir_.path() +
                                         "/holidays/2027.csv\" does not exist");
  config = valid();
  config["sources"].as_array()[0].as_object()["settings"].as_object()["client_secret_file"] =
      "no-such-secret";
  EXPECT_CONTAINS(error_for(config), "sources[0].settings.client_secret_file: secret file \"" +
                                         dir_.path() + "/no-such-secret\" does not exist");
  config = valid();
  config.erase("rules_file");
  EXPECT_CONTAINS(error_for(config), "hub.json: rules_file: required key is missing");
  EXPECT_CONTAINS(error_of([] { load_hub_config("/nonexistent/hub.json"); }),
                  "/nonexistent/hub.json: cannot read file");
}

TEST_F(HubConfigFile, RefusesDuplicateAndInvalidInstanceNames) {
  auto config = valid();
  config["sinks"].as_array()[0].as_object()["name"] = "eoffice";
  EXPECT_CONTAINS(error_for(config),
                  "sinks[0].name: \"eoffice\" is already the name of another source or sink");
  config = valid();
  config["sources"].as_array()[0].as_object()["name"] = "E:office";
  EXPECT_CONTAINS(error_for(config), "sources[0].name: \"E:office\" is not a valid name");
}

TEST_F(HubConfigFile, NamesTheLineOfASyntaxErrorAndInvalidUtf8) {
  const std::string broken =
      dir_.write("hub.json", "{\n  \"hub_id\": \"x\",\n  \"data_dir\" \"var\"\n}\n");
  EXPECT_CONTAINS(error_of([&] { load_hub_config(broken); }), "hub.json:3: JSON syntax error");
  const std::string latin1 = dir_.write("hub.json", "{\n  \"hub_id\": \"H\xe0 N\xf4i\"\n}\n");
  EXPECT_CONTAINS(error_of([&] { load_hub_config(latin1); }), "hub.json:2: invalid UTF-8");
  const std::string duplicate = dir_.write("hub.json", "{\"hub_id\": \"a\", \"hub_id\": \"b\"}");
  EXPECT_CONTAINS(error_of([&] { load_hub_config(duplicate); }), "hub_id: key appears twice");
}

}  // namespace
}  // namespace kpihub
