// The plugin gate and the plugin boundary, tested with deliberately broken
// plugins (one per rule, see CMakeLists.txt): each is refused with the exact
// line an operator reads, naming the file and the mismatch; a folder holding
// all of them next to a good plugin loads the good one and survives.
#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/plugins.hpp>
#include <kpihub/sdk.hpp>
#include <kpihub/validate.hpp>
#include <kpihub_test/exported_symbols.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const std::string kHostAbi =
    std::to_string(KPIHUB_ABI_MAJOR) + "." + std::to_string(KPIHUB_ABI_MINOR);

std::string refusal(const std::string& file, const std::string& why) {
  return "plugin " + file + " refused: " + why;
}

// The refusal line load_plugin gives for `file`; fails the test when the
// plugin is loaded instead.
std::string refusal_of(const std::string& file) {
  try {
    kpihub::load_plugin(file);
  } catch (const kpihub::PluginError& e) {
    EXPECT_EQ(e.status(), KPIHUB_ERR_CONFIG) << e.what();
    return e.what();
  }
  ADD_FAILURE() << file << " was loaded, but the gate should have refused it";
  return {};
}

std::string major_mismatch(const std::string& file) {
  return refusal(file, "plugin \"abi-major-2\" was built for ABI 2." +
                           std::to_string(KPIHUB_ABI_MINOR) + ", this hub speaks ABI " + kHostAbi +
                           " (major versions differ: rebuild it against this hub's SDK)");
}
std::string minor_mismatch(const std::string& file) {
  return refusal(file, "plugin \"abi-minor-newer\" needs ABI " + std::to_string(KPIHUB_ABI_MAJOR) +
                           "." + std::to_string(KPIHUB_ABI_MINOR + 1) +
                           ", newer than this hub's ABI " + kHostAbi +
                           " (upgrade the hub or rebuild the plugin against this hub's SDK)");
}
std::string too_small(const std::string& file) {
  return refusal(file, "descriptor is " + std::to_string(offsetof(kpihub_plugin, deliver)) +
                           " bytes, ABI " + kHostAbi + " needs " +
                           std::to_string(sizeof(kpihub_plugin)));
}
std::string head_only(const std::string& file) {
  return refusal(file, "descriptor of " + std::to_string(offsetof(kpihub_plugin, abi_minor)) +
                           " bytes is too small to be a kpihub plugin");
}
std::string no_name(const std::string& file) {
  return refusal(file, "manifest has no name");
}
std::string no_deliver(const std::string& file) {
  return refusal(file, "sink plugin \"sink-without-deliver\" lacks deliver");
}
std::string no_entry(const std::string& file) {
  return refusal(file, "not a kpihub plugin: it does not export kpihub_plugin_entry");
}
// The dynamic loader's own words follow the file name in parentheses.
std::string unresolved(const std::string& file) {
  return refusal(file, "not a loadable shared library (" + file +
                           ": undefined symbol: kpihub_test_symbol_that_no_library_defines)");
}
std::string not_elf(const std::string& file) {
  return refusal(file, "not a loadable shared library (" + file + ": invalid ELF header)");
}

// Longer than an ELF header, so the loader reads it and finds no ELF magic.
void write_fake_library(const fs::path& file) {
  std::ofstream out(file);
  out << "This is a text file that somebody named fake.so; it is not a shared library at all.\n";
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("kpihub-plugins-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Host services for one instance; the objects they point at live here.
class Host {
 public:
  std::unique_ptr<kpihub::HostServices> services(const std::string& instance) {
    return std::make_unique<kpihub::HostServices>(instance, logger_, clock_, secrets_, nullptr);
  }

 private:
  kpihub::JsonLineLogger logger_{stderr, kpihub::LogLevel::warn};
  kpihub::SystemClock clock_;
  kpihub::SecretResolver secrets_;
};

// ------------------------------------------------------------ the SDK ---

// A plugin tells a failure it should retry from one it should report by the exception's
// type: the host's statuses arrive as the SDK's subclasses, not as a bare Error.
TEST(SdkErrors, HostStatusesArriveAsTheirExceptionTypes) {
  Host host;
  auto services = host.services("sdk-errors");
  const kpihub::sdk::Host sdk_host(services->api());
  auto client = sdk_host.http_client();
  try {
    client->request("GET", "http://127.0.0.1:1/nobody-listens");
    ADD_FAILURE() << "a refused connection did not throw";
  } catch (const kpihub::sdk::TransientError& e) {
    EXPECT_EQ(e.status(), KPIHUB_ERR_TRANSIENT);
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
  try {
    sdk_host.secret("file:/nonexistent/kpihub-secret");
    ADD_FAILURE() << "an unreadable secret did not throw";
  } catch (const kpihub::sdk::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/kpihub-secret"), std::string::npos)
        << e.what();
  }
}

// ------------------------------------------------------------ the gate ---

TEST(PluginGate, LoadsTheTemplatePluginAndReadsItsManifest) {
  auto plugin = kpihub::load_plugin(TEMPLATE_PLUGIN);
  const auto& info = plugin->info();
  EXPECT_EQ(info.name, "template-source");
  EXPECT_EQ(info.kind, KPIHUB_KIND_SOURCE);
  EXPECT_EQ(info.version, "1.0.0");
  EXPECT_EQ(info.abi_major, static_cast<uint32_t>(KPIHUB_ABI_MAJOR));
  EXPECT_EQ(info.abi_minor, static_cast<uint32_t>(KPIHUB_ABI_MINOR));
  EXPECT_EQ(info.sdk_version, KPIHUB_SDK_VERSION);
  EXPECT_EQ(info.file, fs::path(TEMPLATE_PLUGIN).lexically_normal().string());
  EXPECT_NE(info.settings_help.find("staff_code"), std::string::npos) << info.settings_help;
}

TEST(PluginGate, RefusesAnotherAbiMajor) {
  EXPECT_EQ(refusal_of(ABI_MAJOR_2_PLUGIN), major_mismatch(ABI_MAJOR_2_PLUGIN));
}

TEST(PluginGate, RefusesAnAbiMinorNewerThanTheHost) {
  EXPECT_EQ(refusal_of(ABI_MINOR_NEWER_PLUGIN), minor_mismatch(ABI_MINOR_NEWER_PLUGIN));
}

TEST(PluginGate, RefusesADescriptorSmallerThanItsAbiPromises) {
  EXPECT_EQ(refusal_of(DESCRIPTOR_TOO_SMALL_PLUGIN), too_small(DESCRIPTOR_TOO_SMALL_PLUGIN));
}

TEST(PluginGate, RefusesADescriptorSmallerThanTheFixedHead) {
  EXPECT_EQ(refusal_of(DESCRIPTOR_HEAD_ONLY_PLUGIN), head_only(DESCRIPTOR_HEAD_ONLY_PLUGIN));
}

TEST(PluginGate, RefusesAManifestWithoutName) {
  EXPECT_EQ(refusal_of(MANIFEST_WITHOUT_NAME_PLUGIN), no_name(MANIFEST_WITHOUT_NAME_PLUGIN));
}

TEST(PluginGate, RefusesASinkWithoutDeliver) {
  EXPECT_EQ(refusal_of(SINK_WITHOUT_DELIVER_PLUGIN), no_deliver(SINK_WITHOUT_DELIVER_PLUGIN));
}

TEST(PluginGate, RefusesALibraryWithoutTheEntryPoint) {
  EXPECT_EQ(refusal_of(NOT_A_PLUGIN), no_entry(NOT_A_PLUGIN));
}

TEST(PluginGate, RefusesALibraryWithAnUnresolvedSymbol) {
  EXPECT_EQ(refusal_of(UNRESOLVED_SYMBOL_PLUGIN), unresolved(UNRESOLVED_SYMBOL_PLUGIN));
}

TEST(PluginGate, RefusesATextFileNamedLikeALibrary) {
  TempDir dir;
  const std::string fake = (dir.path() / "fake.so").string();
  write_fake_library(fake);
  EXPECT_EQ(refusal_of(fake), not_elf(fake));
}

TEST(PluginGate, RefusesAMissingFile) {
  TempDir dir;
  const std::string missing = (dir.path() / "missing.so").string();
  EXPECT_EQ(refusal_of(missing), refusal(missing, "no such file"));
}

// Every broken plugin in one folder with the good one: the scan loads the
// good one, refuses each broken one with its own line, and returns.
TEST(PluginGate, ScanLoadsTheGoodPluginAndRefusesEveryBrokenOne) {
  TempDir dir;
  auto copy_in = [&](const std::string& file) {
    const fs::path target = dir.path() / fs::path(file).filename();
    fs::copy_file(file, target);
    return target.string();
  };
  copy_in(TEMPLATE_PLUGIN);
  const std::set<std::string> expected_refusals = {
      major_mismatch(copy_in(ABI_MAJOR_2_PLUGIN)),
      minor_mismatch(copy_in(ABI_MINOR_NEWER_PLUGIN)),
      too_small(copy_in(DESCRIPTOR_TOO_SMALL_PLUGIN)),
      head_only(copy_in(DESCRIPTOR_HEAD_ONLY_PLUGIN)),
      no_name(copy_in(MANIFEST_WITHOUT_NAME_PLUGIN)),
      no_deliver(copy_in(SINK_WITHOUT_DELIVER_PLUGIN)),
      no_entry(copy_in(NOT_A_PLUGIN)),
      unresolved(copy_in(UNRESOLVED_SYMBOL_PLUGIN)),
      not_elf((dir.path() / "fake.so").string()),
  };
  write_fake_library(dir.path() / "fake.so");
  // Not a *.so: the scan does not even look at it.
  std::ofstream(dir.path() / "README.txt") << "plugins go here\n";

  const kpihub::PluginScan scan = kpihub::scan_plugins(dir.path().string());

  ASSERT_EQ(scan.loaded.size(), 1u);
  EXPECT_EQ(scan.loaded[0]->info().name, "template-source");
  EXPECT_EQ(std::set<std::string>(scan.refused.begin(), scan.refused.end()), expected_refusals);
  EXPECT_EQ(scan.refused.size(), expected_refusals.size());
}

TEST(PluginGate, ScanRefusesASecondFileProvidingTheSamePlugin) {
  TempDir dir;
  fs::copy_file(TEMPLATE_PLUGIN, dir.path() / "a-template.so");
  fs::copy_file(TEMPLATE_PLUGIN, dir.path() / "b-template.so");
  const kpihub::PluginScan scan = kpihub::scan_plugins(dir.path().string());
  ASSERT_EQ(scan.loaded.size(), 1u);
  EXPECT_EQ(scan.loaded[0]->info().file, (dir.path() / "a-template.so").string());
  ASSERT_EQ(scan.refused.size(), 1u);
  EXPECT_EQ(scan.refused[0], refusal((dir.path() / "b-template.so").string(),
                                     "another file already provides plugin \"template-source\""));
}

TEST(PluginGate, ScanOfAMissingFolderSaysSo) {
  const kpihub::PluginScan scan = kpihub::scan_plugins("/nonexistent/kpihub/plugins");
  EXPECT_TRUE(scan.loaded.empty());
  ASSERT_EQ(scan.refused.size(), 1u);
  EXPECT_EQ(scan.refused[0], "plugin folder /nonexistent/kpihub/plugins does not exist");
}

// ------------------------------------------------------- the boundary ---

// The PluginError of creating `plugin` as instance "demo" with `settings`.
kpihub::PluginError creation_error(const std::string& plugin_file, const std::string& settings) {
  Host host;
  auto plugin = kpihub::load_plugin(plugin_file);
  try {
    kpihub::PluginInstance instance(plugin, "demo", settings, host.services("demo"));
  } catch (const kpihub::PluginError& e) {
    return e;
  }
  ADD_FAILURE() << "settings " << settings << " were accepted";
  return kpihub::PluginError(KPIHUB_OK, "");
}

std::string instance_context(const std::string& plugin_name, const std::string& file) {
  return "source demo (plugin " + plugin_name + ", " + fs::path(file).lexically_normal().string() +
         ")";
}

TEST(PluginBoundary, ConstructorExceptionRefusesCreationWithItsMessage) {
  const auto error = creation_error(THROW_IN_CONSTRUCTOR_PLUGIN, "{}");
  EXPECT_EQ(error.status(), KPIHUB_ERR_INTERNAL);
  EXPECT_EQ(
      std::string(error.what()),
      instance_context("throw-in-constructor", THROW_IN_CONSTRUCTOR_PLUGIN) +
          ": configuration refused: unexpected error: cannot open the demo system's database");
}

// The PluginError of the first pull of `plugin_file`.
kpihub::PluginError pull_error(const std::string& plugin_file) {
  Host host;
  kpihub::PluginInstance instance(kpihub::load_plugin(plugin_file), "demo", "{}",
                                  host.services("demo"));
  try {
    instance.pull(std::nullopt);
  } catch (const kpihub::PluginError& e) {
    return e;
  }
  ADD_FAILURE() << plugin_file << ": pull succeeded";
  return kpihub::PluginError(KPIHUB_OK, "");
}

TEST(PluginBoundary, RuntimeErrorInPullIsAnInternalErrorWithItsMessage) {
  const auto error = pull_error(PULL_THROWS_RUNTIME_ERROR_PLUGIN);
  EXPECT_EQ(error.status(), KPIHUB_ERR_INTERNAL);
  EXPECT_EQ(std::string(error.what()),
            instance_context("pull-throws-runtime-error", PULL_THROWS_RUNTIME_ERROR_PLUGIN) +
                ": pull failed: unexpected error: index 7 out of range in the demo page");
}

TEST(PluginBoundary, TransientErrorInPullIsTransientSoTheHostRetries) {
  const auto error = pull_error(PULL_THROWS_TRANSIENT_PLUGIN);
  EXPECT_EQ(error.status(), KPIHUB_ERR_TRANSIENT);
  EXPECT_EQ(std::string(error.what()),
            instance_context("pull-throws-transient", PULL_THROWS_TRANSIENT_PLUGIN) +
                ": pull failed: demo system answered 503, try later");
}

// Issue 19 section 2: what a plugin returns through the C ABI is checked before it is read. A
// page announcing 5 records with no array crashed the hub; one with records and no cursor
// was taken silently (a restart reads the records again, and the source never moves on).
TEST(PluginBoundary, APageThatCannotBeReadAsItSaysIsRefusedNamingWhatIsWrong) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {PAGE_NULL_RECORDS_PLUGIN,
       "page-null-records: pull returned a page of 5 records without "
       "their array (records is NULL)"},
      {PAGE_NULL_REJECTED_PLUGIN,
       "page-null-rejected: pull returned a page of 3 rejected items "
       "without their array (rejected is NULL)"},
      {PAGE_NULL_ATTRIBUTES_PLUGIN,
       "page-null-attributes: pull returned record 0 with 2 "
       "attributes without their array (attributes is NULL)"},
      {PAGE_RECORD_TOO_SMALL_PLUGIN,
       "page-record-too-small: pull returned records of 8 bytes; "
       "ABI 1.0 records are at least"},
      {PAGE_WITHOUT_CURSOR_PLUGIN,
       "page-without-cursor: pull returned 1 records without a "
       "cursor (next_cursor is absent)"},
      {PAGE_RECORD_TOO_LARGE_PLUGIN, "page-record-too-large: pull returned records of " +
                                         std::to_string(sizeof(kpihub_record) + 64) + " bytes"},
      {PAGE_REJECTED_WITHOUT_CURSOR_PLUGIN,
       "page-rejected-without-cursor: pull returned 1 "
       "rejected items without a cursor"},
  };
  for (const auto& [file, expected] : cases) {
    const auto error = pull_error(file);
    EXPECT_EQ(error.status(), KPIHUB_ERR_INTERNAL) << file;
    const std::string plugin = expected.substr(0, expected.find(':'));
    const std::string what = error.what();
    EXPECT_EQ(
        what.rfind(instance_context(plugin, file) + ": " + expected.substr(plugin.size() + 2), 0),
        0u)
        << what;
  }
}

// Issue 22 section 3: the docs say a plugin exports one symbol; hidden visibility alone left
// 40-140 (Boost's and the standard library's templates). Every bundled plugin and the
// template, built with kpihub_add_plugin, exports its entry point only.
TEST(PluginExports, EveryPluginBuiltWithTheSdkExportsItsEntryPointOnly) {
  std::vector<std::string> files{TEMPLATE_PLUGIN};
  for (const auto& entry : fs::directory_iterator(fs::path(KPIHUB_BINARY_DIR) / "plugins")) {
    if (entry.path().extension() == ".so") files.push_back(entry.path().string());
  }
  ASSERT_GE(files.size(), 5u) << "the template and the four bundled plugins";
  for (const auto& file : files) {
    EXPECT_EQ(kpihub::test::exported_symbols(file), std::set<std::string>{"kpihub_plugin_entry"})
        << file;
  }
}

// ---------------------------------------------------- SDK settings ---

std::string template_settings_error(const std::string& settings) {
  const auto error = creation_error(TEMPLATE_PLUGIN, settings);
  EXPECT_EQ(error.status(), KPIHUB_ERR_CONFIG) << error.what();
  const std::string prefix =
      instance_context("template-source", TEMPLATE_PLUGIN) + ": configuration refused: ";
  const std::string what = error.what();
  EXPECT_EQ(what.rfind(prefix, 0), 0u) << what;
  return what.substr(std::min(what.size(), prefix.size()));
}

TEST(PluginSettings, UnknownKeyIsRefusedWithItsPathAndTheKnownKeys) {
  EXPECT_EQ(template_settings_error(R"({"staff_code": "KH-000123", "page_sise": 10})"),
            "sources.demo.settings.page_sise: unknown setting "
            "(known: page_size, records, staff_code, start_date, task_code)");
}

TEST(PluginSettings, WrongTypeIsRefusedWithItsPathAndValue) {
  EXPECT_EQ(template_settings_error(R"({"staff_code": "KH-000123", "page_size": "x"})"),
            "sources.demo.settings.page_size: expected an integer, got \"x\"");
}

TEST(PluginSettings, OutOfRangeIsRefusedWithItsPathAndRange) {
  EXPECT_EQ(template_settings_error(R"({"staff_code": "KH-000123", "page_size": 0})"),
            "sources.demo.settings.page_size: 0 is outside 1..1000");
}

TEST(PluginSettings, MissingRequiredKeyIsRefusedWithItsPath) {
  EXPECT_EQ(template_settings_error("{}"),
            "sources.demo.settings.staff_code: required setting is missing");
}

TEST(PluginSettings, SettingsThatAreNotAnObjectAreRefused) {
  EXPECT_EQ(template_settings_error("[1, 2]"),
            "sources.demo.settings: settings must be a JSON object");
}

TEST(PluginSettings, ImpossibleStartDateIsRefusedWithItsPath) {
  EXPECT_EQ(template_settings_error(R"({"staff_code": "KH-000123", "start_date": "2025-02-30"})"),
            "sources.demo.settings.start_date: \"2025-02-30\" is not a real date (YYYY-MM-DD)");
}

// ------------------------------------------------- the template source ---

struct Pulled {
  std::vector<std::string> ids;
  std::optional<std::string> cursor;
  bool caught_up = false;
};

Pulled pull_page(kpihub::PluginInstance& instance, const std::optional<std::string>& cursor) {
  const kpihub_page page = instance.pull(cursor);
  Pulled out;
  for (std::size_t i = 0; i < page.record_count; ++i) {
    out.ids.emplace_back(page.records[i].source_id.data, page.records[i].source_id.size);
  }
  if (page.next_cursor.data) out.cursor.emplace(page.next_cursor.data, page.next_cursor.size);
  out.caught_up = page.caught_up != 0;
  return out;
}

TEST(TemplateSource, PagesThroughEveryRecordAndEveryRecordIsValid) {
  Host host;
  kpihub::PluginInstance instance(
      kpihub::load_plugin(TEMPLATE_PLUGIN), "demo",
      R"({"staff_code": "KH-000123", "records": 7, "page_size": 3, "start_date": "2025-04-01"})",
      host.services("demo"));
  const kpihub::ValidationContext context{"demo", *kpihub::Date::parse("2025-04-30")};

  std::optional<std::string> cursor;
  std::vector<std::string> ids;
  std::vector<std::size_t> page_sizes;
  for (bool caught_up = false; !caught_up;) {
    ASSERT_LT(page_sizes.size(), 10u) << "the source never said it caught up";
    const kpihub_page page = instance.pull(cursor);
    page_sizes.push_back(page.record_count);
    for (std::size_t i = 0; i < page.record_count; ++i) {
      const auto normalized = kpihub::normalize(page.records[i], context);
      ASSERT_TRUE(std::holds_alternative<kpihub::WorkRecord>(normalized))
          << std::get<kpihub::QuarantineEntry>(normalized).message;
      const auto& record = std::get<kpihub::WorkRecord>(normalized);
      ids.push_back(record.record_id);
      EXPECT_EQ(record.staff_code, "KH-000123");
      EXPECT_EQ(record.task_code, "B.03.2");
    }
    ASSERT_NE(page.next_cursor.data, nullptr);
    cursor.emplace(page.next_cursor.data, page.next_cursor.size);
    caught_up = page.caught_up != 0;
  }
  EXPECT_EQ(page_sizes, (std::vector<std::size_t>{3, 3, 1}));
  EXPECT_EQ(ids, (std::vector<std::string>{
                     "demo:DEMO-000001", "demo:DEMO-000002", "demo:DEMO-000003", "demo:DEMO-000004",
                     "demo:DEMO-000005", "demo:DEMO-000006", "demo:DEMO-000007"}));
  EXPECT_EQ(cursor, "7");

  // Caught up: pulling again gives nothing and keeps the cursor.
  const Pulled after = pull_page(instance, cursor);
  EXPECT_TRUE(after.ids.empty());
  EXPECT_EQ(after.cursor, "7");
  EXPECT_TRUE(after.caught_up);
}

TEST(TemplateSource, ANewInstanceResumesFromAStoredCursor) {
  Host host;
  const std::string settings = R"({"staff_code": "KH-000123", "records": 10, "page_size": 4})";
  auto plugin = kpihub::load_plugin(TEMPLATE_PLUGIN);
  Pulled first, second;
  {
    kpihub::PluginInstance instance(plugin, "demo", settings, host.services("demo"));
    first = pull_page(instance, std::nullopt);
    second = pull_page(instance, first.cursor);
  }
  kpihub::PluginInstance restarted(plugin, "demo", settings, host.services("demo"));
  const Pulled resumed = pull_page(restarted, first.cursor);
  EXPECT_EQ(resumed.ids, second.ids);
  EXPECT_EQ(resumed.cursor, second.cursor);
  EXPECT_EQ(resumed.ids,
            (std::vector<std::string>{"DEMO-000005", "DEMO-000006", "DEMO-000007", "DEMO-000008"}));
}

TEST(TemplateSource, UnreadableCursorIsADataError) {
  Host host;
  kpihub::PluginInstance instance(kpihub::load_plugin(TEMPLATE_PLUGIN), "demo",
                                  R"({"staff_code": "KH-000123"})", host.services("demo"));
  try {
    instance.pull(std::string("page-3"));
    FAIL() << "a cursor that is not a record index was accepted";
  } catch (const kpihub::PluginError& e) {
    EXPECT_EQ(e.status(), KPIHUB_ERR_DATA);
    EXPECT_EQ(std::string(e.what()), instance_context("template-source", TEMPLATE_PLUGIN) +
                                         ": pull failed: cursor \"page-3\" is not a record index");
  }
}

}  // namespace
