// kpihub-adapter-check run as a sector team runs it: on the template plugin
// (every check passes), on a plugin the gate refuses, on one that ignores its
// settings, on one whose pull fails, and on records the hub would quarantine.
#include <kpihub/abi.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Outcome run_check(const std::string& arguments) {
  const std::string command = std::string(ADAPTER_CHECK) + " " + arguments + " 2>&1";
  Outcome outcome;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return outcome;
  }
  std::array<char, 4096> buffer;
  for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) {
    outcome.output.append(buffer.data(), n);
  }
  const int status = ::pclose(pipe);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return outcome;
}

bool has_line(const std::string& output, const std::string& line) {
  return ("\n" + output).find("\n" + line + "\n") != std::string::npos;
}
bool has_line_starting(const std::string& output, const std::string& start) {
  return ("\n" + output).find("\n" + start) != std::string::npos;
}

class AdapterCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kpihub-adapter-check-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string settings_file(const std::string& json) {
    const fs::path file = dir_ / "settings.json";
    std::ofstream(file) << json;
    return file.string();
  }

 private:
  fs::path dir_;
};

TEST_F(AdapterCheck, TemplatePluginPassesEveryCheck) {
  const auto outcome =
      run_check(std::string(TEMPLATE_PLUGIN) + " --config " +
                settings_file(R"({"staff_code": "KH-000123", "records": 120, "page_size": 50})"));
  const std::string& out = outcome.output;
  EXPECT_EQ(outcome.exit_code, 0) << out;
  EXPECT_EQ(out.find("FAIL"), std::string::npos) << out;
  EXPECT_TRUE(has_line(out, "name        template-source 1.0.0 (source)")) << out;
  EXPECT_TRUE(has_line_starting(out, "PASS  gate: ")) << out;
  EXPECT_TRUE(has_line(out,
                       "PASS  settings.unknown_key: refused: "
                       "sources.template-source.settings.kpihub_check_unknown_key: unknown setting "
                       "(known: page_size, records, staff_code, start_date, task_code)"))
      << out;
  EXPECT_TRUE(has_line(out,
                       "PASS  settings.wrong_type.staff_code (true): refused: "
                       "sources.template-source.settings.staff_code: expected a string, got true"))
      << out;
  EXPECT_TRUE(has_line(out,
                       "PASS  settings.wrong_type.records (\"x\"): refused: "
                       "sources.template-source.settings.records: expected an integer, got \"x\""))
      << out;
  EXPECT_TRUE(
      has_line(out,
               "PASS  settings.wrong_type.page_size (\"x\"): refused: "
               "sources.template-source.settings.page_size: expected an integer, got \"x\""))
      << out;
  EXPECT_TRUE(has_line(out,
                       "PASS  settings.empty ({}): refused (status config): "
                       "sources.template-source.settings.staff_code: required setting is missing"))
      << out;
  EXPECT_TRUE(
      has_line(out, "PASS  pull: 3 pages, 120 records, 0 rejected by the adapter; caught up"))
      << out;
  EXPECT_TRUE(has_line_starting(out, "PASS  records.valid: all 120 records are valid")) << out;
  EXPECT_TRUE(has_line(
      out, "PASS  page.unique_ids: no record appears twice at one revision within each of 3 pages"))
      << out;
  EXPECT_TRUE(has_line_starting(out, "PASS  page.cursor: ")) << out;
  EXPECT_TRUE(
      has_line(out,
               "PASS  resume: a new instance given page 1's cursor \"50\" returned page 2's "
               "50 items and cursor \"100\""))
      << out;
  EXPECT_TRUE(has_line(out, "result: PASS")) << out;
}

TEST_F(AdapterCheck, InstanceNameAppearsInTheSettingsKeyPath) {
  const auto outcome = run_check(std::string(TEMPLATE_PLUGIN) + " --name eoffice-demo --config " +
                                 settings_file(R"({"staff_code": "KH-000123"})"));
  EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_TRUE(has_line_starting(outcome.output,
                                "PASS  settings.unknown_key: refused: "
                                "sources.eoffice-demo.settings.kpihub_check_unknown_key: "))
      << outcome.output;
}

TEST_F(AdapterCheck, RefusedPluginFailsWithTheGatesLine) {
  const auto outcome =
      run_check(std::string(ABI_MAJOR_2_PLUGIN) + " --config " + settings_file("{}"));
  EXPECT_EQ(outcome.exit_code, 1) << outcome.output;
  EXPECT_TRUE(
      has_line(outcome.output, "FAIL  gate: plugin " + std::string(ABI_MAJOR_2_PLUGIN) +
                                   " refused: plugin \"abi-major-2\" was built for ABI 2." +
                                   std::to_string(KPIHUB_ABI_MINOR) + ", this hub speaks ABI 1." +
                                   std::to_string(KPIHUB_ABI_MINOR) +
                                   " (major versions differ: rebuild it against this hub's SDK)"))
      << outcome.output;
  EXPECT_TRUE(has_line(outcome.output, "result: FAIL (the hub would refuse this plugin)"))
      << outcome.output;
}

TEST_F(AdapterCheck, PluginThatIgnoresItsSettingsFails) {
  const auto outcome = run_check(std::string(IGNORES_SETTINGS_PLUGIN) + " --config " +
                                 settings_file(R"({"page_size": 10})"));
  const std::string& out = outcome.output;
  EXPECT_EQ(outcome.exit_code, 1) << out;
  EXPECT_TRUE(has_line(out,
                       "FAIL  settings.unknown_key: accepted; the plugin must refuse it with a "
                       "message naming \"kpihub_check_unknown_key\""))
      << out;
  EXPECT_TRUE(has_line(out,
                       "FAIL  settings.wrong_type.page_size (\"x\"): accepted; the plugin must "
                       "refuse it with a message naming \"page_size\""))
      << out;
  EXPECT_TRUE(has_line(out, "PASS  settings.empty ({}): accepted: every setting has a default"))
      << out;
  EXPECT_TRUE(has_line(out, "SKIP  records.valid: the source gave no records to validate")) << out;
  EXPECT_TRUE(has_line(out, "result: FAIL (2 failed)")) << out;
}

TEST_F(AdapterCheck, DuplicateIdsAndACursorThatDoesNotMoveFail) {
  const auto outcome =
      run_check(std::string(REPEATS_ITSELF_PLUGIN) + " --today 2025-04-30 --max-pages 3 --config " +
                settings_file("{}"));
  const std::string& out = outcome.output;
  EXPECT_EQ(outcome.exit_code, 1) << out;
  EXPECT_TRUE(has_line(out,
                       "PASS  pull: 3 pages, 6 records, 0 rejected by the adapter; not caught up "
                       "after --max-pages 3"))
      << out;
  EXPECT_TRUE(has_line(out,
                       "PASS  records.valid: all 6 records are valid against kpi-model/1 (today "
                       "2025-04-30)"))
      << out;
  EXPECT_TRUE(has_line(out,
                       "FAIL  page.unique_ids: page 1: source_id \"SAME-1\" appears twice at "
                       "revision 1: the hub keeps the first and ignores the other"))
      << out;
  EXPECT_TRUE(
      has_line(out,
               "FAIL  page.cursor: page 2 brought 2 items but left the cursor at \"0\": the "
               "hub would pull them again"))
      << out;
  // It also ignores its settings (a raw C plugin without the SDK).
  EXPECT_TRUE(has_line_starting(out, "FAIL  settings.unknown_key: accepted")) << out;
  EXPECT_TRUE(has_line(out, "result: FAIL (3 failed)")) << out;
}

TEST_F(AdapterCheck, FailingPullIsReportedWithItsStatus) {
  const auto outcome =
      run_check(std::string(PULL_THROWS_TRANSIENT_PLUGIN) + " --config " + settings_file("{}"));
  EXPECT_EQ(outcome.exit_code, 1) << outcome.output;
  EXPECT_TRUE(has_line(outcome.output,
                       "FAIL  pull: page 1 failed (status transient): source pull-throws-transient "
                       "(plugin pull-throws-transient, " +
                           fs::path(PULL_THROWS_TRANSIENT_PLUGIN).lexically_normal().string() +
                           "): pull failed: demo system answered 503, try later"))
      << outcome.output;
}

TEST_F(AdapterCheck, RecordsTheHubWouldQuarantineFailWithCountsAndExamples) {
  const auto outcome = run_check(
      std::string(TEMPLATE_PLUGIN) + " --today 2025-04-10 --config " +
      settings_file(
          R"({"staff_code": "KH-000123", "records": 40, "page_size": 20, "start_date": "2025-04-01"})"));
  const std::string& out = outcome.output;
  EXPECT_EQ(outcome.exit_code, 1) << out;
  EXPECT_TRUE(
      has_line(out, "FAIL  records.valid: 20 of 40 records would be quarantined: future_date 20"))
      << out;
  EXPECT_TRUE(has_line(out,
                       "        page 1, DEMO-000011 (demo item 11): future_date: work_date: "
                       "2025-04-11 is after today (2025-04-10)"))
      << out;
  EXPECT_TRUE(has_line_starting(out, "PASS  resume: ")) << out;
}

TEST_F(AdapterCheck, CommandLineMistakesExitWithTwo) {
  const auto no_config = run_check(TEMPLATE_PLUGIN);
  EXPECT_EQ(no_config.exit_code, 2) << no_config.output;
  EXPECT_TRUE(has_line(no_config.output, "kpihub-adapter-check: --config is required"))
      << no_config.output;

  const auto missing =
      run_check(std::string(TEMPLATE_PLUGIN) + " --config /nonexistent/settings.json");
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(has_line(
      missing.output, "kpihub-adapter-check: cannot read settings file /nonexistent/settings.json"))
      << missing.output;

  const auto not_object =
      run_check(std::string(TEMPLATE_PLUGIN) + " --config " + settings_file("[1]"));
  EXPECT_EQ(not_object.exit_code, 2) << not_object.output;

  const auto help = run_check("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("resume"), std::string::npos) << help.output;
}

}  // namespace
