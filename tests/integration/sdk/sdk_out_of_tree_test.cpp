// The SDK as a sector team uses it: install the hub's build into a prefix,
// copy the installed template adapter, build it out of tree against the
// installed package with the hub's compiler, then load the result through
// the hub's gate, pull every page, validate every record, and resume from a
// stored cursor. Slow (runs cmake and a compiler): ctest label "slow".
#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/plugins.hpp>
#include <kpihub/sdk.hpp>
#include <kpihub/validate.hpp>
#include <kpihub_test/exported_symbols.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

std::string quoted(const fs::path& p) {
  return "'" + p.string() + "'";
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `command` with its output in `log`; returns the exit code.
int run(const std::string& command, const fs::path& log) {
  const int status = std::system((command + " > " + quoted(log) + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

class SdkOutOfTree : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = fs::temp_directory_path() / ("kpihub-sdk-test-" + std::to_string(::getpid()));
    fs::remove_all(work_);
    fs::create_directories(work_);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(work_, ec);
  }

  static fs::path work_;
};
fs::path SdkOutOfTree::work_;

// Installs the hub, builds the installed template against it; returns the
// plugin file, or an empty path after reporting the failing step's log.
fs::path install_and_build_template(const fs::path& work) {
  const std::string cmake = quoted(KPIHUB_CMAKE_COMMAND);
  const fs::path prefix = work / "sdk";
  if (run(cmake + " --install " + quoted(KPIHUB_BINARY_DIR) + " --prefix " + quoted(prefix),
          work / "install.log") != 0) {
    ADD_FAILURE() << "cmake --install failed:\n" << slurp(work / "install.log");
    return {};
  }
  // What an adapter author needs from the install: headers, the package, the template.
  EXPECT_TRUE(fs::exists(prefix / "include/kpihub/abi.h"));
  EXPECT_TRUE(fs::exists(prefix / "include/kpihub/sdk.hpp"));
  const fs::path installed_template = prefix / "share/kpihub/examples/template-source";
  EXPECT_TRUE(fs::exists(installed_template / "README.md"));
  if (!fs::exists(installed_template / "CMakeLists.txt")) {
    ADD_FAILURE() << "the install has no template adapter at " << installed_template << ":\n"
                  << slurp(work / "install.log");
    return {};
  }

  // As the README says: copy the template, then build it against the prefix.
  const fs::path source = work / "my-adapter";
  const fs::path build = work / "my-adapter-build";
  fs::copy(installed_template, source, fs::copy_options::recursive);
  const std::string configure = cmake + " -S " + quoted(source) + " -B " + quoted(build) + " -G " +
                                quoted(KPIHUB_CMAKE_GENERATOR) +
                                " -DCMAKE_MAKE_PROGRAM=" + quoted(KPIHUB_CMAKE_MAKE_PROGRAM) +
                                " -DCMAKE_CXX_COMPILER=" + quoted(KPIHUB_CXX_COMPILER) +
                                " -DCMAKE_BUILD_TYPE=RelWithDebInfo" +
                                // The template must stay warning-free for the teams that copy it.
                                " '-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror'" +
                                " -DCMAKE_PREFIX_PATH=" + quoted(prefix);
  if (run(configure, work / "configure.log") != 0) {
    ADD_FAILURE() << "configuring the template failed:\n" << slurp(work / "configure.log");
    return {};
  }
  if (run(cmake + " --build " + quoted(build) + " -j 2", work / "build.log") != 0) {
    ADD_FAILURE() << "building the template failed:\n" << slurp(work / "build.log");
    return {};
  }
  // The package must be the installed one, not the hub's source tree.
  EXPECT_NE(slurp(build / "CMakeCache.txt").find("KpiHubSdk_DIR:PATH=" + prefix.string()),
            std::string::npos);
  const fs::path plugin = build / "libkpihub-template-source.so";
  if (!fs::exists(plugin))
    ADD_FAILURE() << "no " << plugin << " after the build:\n" << slurp(work / "build.log");
  return plugin;
}

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

struct PulledPage {
  std::vector<std::string> ids;
  std::optional<std::string> cursor;
};

PulledPage ids_of(const kpihub_page& page) {
  PulledPage out;
  for (std::size_t i = 0; i < page.record_count; ++i) {
    out.ids.emplace_back(page.records[i].source_id.data, page.records[i].source_id.size);
  }
  if (page.next_cursor.data) out.cursor.emplace(page.next_cursor.data, page.next_cursor.size);
  return out;
}

TEST_F(SdkOutOfTree, TemplateBuiltAgainstTheInstalledSdkLoadsPagesValidatesAndResumes) {
  const fs::path plugin_file = install_and_build_template(work_);
  ASSERT_FALSE(plugin_file.empty());

  // The manifest, read through the hub's gate.
  const auto plugin = kpihub::load_plugin(plugin_file.string());
  const auto& info = plugin->info();
  EXPECT_EQ(info.name, "template-source");
  EXPECT_EQ(info.kind, KPIHUB_KIND_SOURCE);
  EXPECT_EQ(info.version, "1.0.0");
  EXPECT_EQ(info.abi_major, static_cast<uint32_t>(KPIHUB_ABI_MAJOR));
  EXPECT_EQ(info.abi_minor, static_cast<uint32_t>(KPIHUB_ABI_MINOR));
  EXPECT_EQ(info.sdk_version, KPIHUB_SDK_VERSION);
  EXPECT_EQ(info.compiler, KPIHUB_SDK_COMPILER) << "built with another compiler than the hub";
  EXPECT_EQ(info.cxx_stdlib, KPIHUB_SDK_STDLIB);

  // Every page, every record valid and complete.
  const std::string settings =
      R"({"staff_code": "KH-000123", "records": 130, "page_size": 50, "start_date": "2025-04-01"})";
  const kpihub::ValidationContext context{"demo", *kpihub::Date::parse("2025-04-30")};
  Host host;
  std::vector<PulledPage> pages;
  std::set<std::string> record_ids;
  {
    kpihub::PluginInstance instance(plugin, "demo", settings, host.services("demo"));
    std::optional<std::string> cursor;
    for (bool caught_up = false; !caught_up;) {
      ASSERT_LT(pages.size(), 10u) << "the source never said it caught up";
      const kpihub_page page = instance.pull(cursor);
      for (std::size_t i = 0; i < page.record_count; ++i) {
        const auto normalized = kpihub::normalize(page.records[i], context);
        ASSERT_TRUE(std::holds_alternative<kpihub::WorkRecord>(normalized))
            << std::get<kpihub::QuarantineEntry>(normalized).message;
        const auto& record = std::get<kpihub::WorkRecord>(normalized);
        EXPECT_TRUE(record_ids.insert(record.record_id).second) << record.record_id << " twice";
        // Complete: every field the template maps arrived, not only the required ones.
        EXPECT_EQ(record.staff_code, "KH-000123");
        EXPECT_EQ(record.task_code, "B.03.2");
        EXPECT_GE(record.declared_minutes, 30);
        EXPECT_GT(record.quantity, 0);
        EXPECT_EQ(record.product_unit, "văn bản");
        EXPECT_FALSE(record.title.empty());
        EXPECT_FALSE(record.evidence_ref.empty());
        EXPECT_TRUE(record.deadline.has_value());
        EXPECT_TRUE(record.completed_at.has_value());
        EXPECT_TRUE(record.changed_at.has_value());
        ASSERT_TRUE(record.approval.has_value());
        EXPECT_EQ(record.approval->status, kpihub::ApprovalStatus::approved);
        EXPECT_TRUE(record.approval->rating.has_value());
        EXPECT_FALSE(record.attributes.empty());
      }
      EXPECT_EQ(page.rejected_count, 0u);
      pages.push_back(ids_of(page));
      ASSERT_TRUE(pages.back().cursor.has_value()) << "page " << pages.size() << " has no cursor";
      cursor = pages.back().cursor;
      caught_up = page.caught_up != 0;
    }
  }
  ASSERT_EQ(pages.size(), 3u);
  EXPECT_EQ(pages[0].ids.size(), 50u);
  EXPECT_EQ(pages[1].ids.size(), 50u);
  EXPECT_EQ(pages[2].ids.size(), 30u);
  EXPECT_EQ(record_ids.size(), 130u);
  EXPECT_EQ(pages[2].cursor, "130");

  // It exports its entry point and nothing else, as docs/plugin-abi.md says.
  EXPECT_EQ(kpihub::test::exported_symbols(plugin_file.string()),
            std::set<std::string>{"kpihub_plugin_entry"});

  // A new instance (the hub restarted) resumes from the cursor stored after
  // page 1 and gets page 2 again, exactly.
  kpihub::PluginInstance restarted(plugin, "demo", settings, host.services("demo"));
  const PulledPage resumed = ids_of(restarted.pull(pages[0].cursor));
  EXPECT_EQ(resumed.ids, pages[1].ids);
  EXPECT_EQ(resumed.cursor, pages[1].cursor);
}

// Issue 22 section 3: <kpihub/xml.hpp> ships in the SDK but did not compile out of tree (the
// package did not say it needs libxml2), and the record contract it cites was not installed.
// With the SDK's helpers an adapter shares with the bundled ones (kpihub/http_helpers.hpp,
// time.hpp, text.hpp): they build out of tree too, with the installed SDK alone.
TEST_F(SdkOutOfTree, AnXmlAdapterBuildsAgainstTheInstalledSdkAlone) {
  const std::string cmake = quoted(KPIHUB_CMAKE_COMMAND);
  const fs::path prefix = work_ / "sdk-xml";
  ASSERT_EQ(run(cmake + " --install " + quoted(KPIHUB_BINARY_DIR) + " --prefix " + quoted(prefix),
                work_ / "install-xml.log"),
            0)
      << slurp(work_ / "install-xml.log");
  for (const char* doc : {"kpi-model.md", "plugin-abi.md", "writing-an-adapter.md"}) {
    EXPECT_TRUE(fs::exists(prefix / "share/doc/kpihub-sdk" / doc)) << doc;
  }

  const fs::path source = work_ / "xml-adapter";
  const fs::path build = work_ / "xml-adapter-build";
  fs::create_directories(source);
  std::ofstream(source / "CMakeLists.txt") << R"(cmake_minimum_required(VERSION 3.25)
project(xml_adapter VERSION 1.0.0 LANGUAGES CXX)
find_package(KpiHubSdk REQUIRED)
kpihub_add_plugin(kpihub-xml-adapter xml_adapter.cpp)
target_link_libraries(kpihub-xml-adapter PRIVATE KpiHub::xml)
)";
  std::ofstream(source / "xml_adapter.cpp") << R"(#include <kpihub/http_helpers.hpp>
#include <kpihub/sdk.hpp>
#include <kpihub/text.hpp>
#include <kpihub/time.hpp>
#include <kpihub/xml.hpp>

#include <string>

namespace {
constexpr std::string_view kExport =
    "<diary><entry id=\"D-1\" minutes=\"45\"/><entry id=\"D-2\" minutes=\"30\"/></diary>";

class XmlSource : public kpihub::sdk::Source {
 public:
  XmlSource(kpihub::sdk::Host&, kpihub::sdk::Settings&) {}
  void pull(std::optional<std::string_view>, kpihub::sdk::Page& page) override {
    auto reader = kpihub::sdk::xml::Reader::open_memory(kExport, "export.xml");
    while (reader.read()) {
      if (!reader.is_element("entry")) continue;
      kpihub::sdk::Record r;
      r.source_id = reader.attribute("id").value_or("");
      r.revision = "1";
      r.staff_code = "KH-000123";
      r.task_code = "B.03.2";
      r.work_date = "2025-04-01";
      r.declared_minutes = reader.attribute("minutes").value_or("");
      r.quantity = "1";
      r.changed_at = kpihub::sdk::parse_rfc3339("2025-04-01T08:00:00.5+07:00", std::nullopt)
                         ->rfc3339();
      r.title = kpihub::sdk::replace_invalid_utf8("Gi\xe1\xba\xa3ng d\xe1\xba\xa1y \xff");
      r.attributes.emplace_back("query", "?id=" + kpihub::sdk::percent_encode(r.source_id));
      page.add(std::move(r));
    }
    page.set_cursor("done");
    page.set_caught_up(true);
  }
};
}  // namespace

KPIHUB_SOURCE_PLUGIN(XmlSource, "xml-adapter", "1.0.0", "an XML export, read with the SDK", "{}")
)";
  const std::string configure = cmake + " -S " + quoted(source) + " -B " + quoted(build) + " -G " +
                                quoted(KPIHUB_CMAKE_GENERATOR) +
                                " -DCMAKE_MAKE_PROGRAM=" + quoted(KPIHUB_CMAKE_MAKE_PROGRAM) +
                                " -DCMAKE_CXX_COMPILER=" + quoted(KPIHUB_CXX_COMPILER) +
                                " '-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror'" +
                                " -DCMAKE_PREFIX_PATH=" + quoted(prefix);
  ASSERT_EQ(run(configure, work_ / "configure-xml.log"), 0) << slurp(work_ / "configure-xml.log");
  ASSERT_EQ(run(cmake + " --build " + quoted(build), work_ / "build-xml.log"), 0)
      << slurp(work_ / "build-xml.log");
  const fs::path plugin_file = build / "libkpihub-xml-adapter.so";
  EXPECT_EQ(kpihub::test::exported_symbols(plugin_file.string()),
            std::set<std::string>{"kpihub_plugin_entry"});

  Host host;
  kpihub::PluginInstance instance(kpihub::load_plugin(plugin_file.string()), "xml", "{}",
                                  host.services("xml"));
  const PulledPage page = ids_of(instance.pull(std::nullopt));
  EXPECT_EQ(page.ids, (std::vector<std::string>{"D-1", "D-2"}));
  EXPECT_EQ(page.cursor, "done");
}

}  // namespace
