// kpihub-adapter-check PLUGIN.so --config SETTINGS.json [options]: the command
// line around adapter_check::run. Exit 0 when every check passed, 1 when one
// failed, 2 when the command itself was wrong (options, settings file).
#include "adapter_check.hpp"

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace po = boost::program_options;

namespace {

constexpr int kExitPass = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "usage: kpihub-adapter-check PLUGIN.so --config SETTINGS.json [options]";

constexpr const char* kAbout = R"(
Loads PLUGIN.so through the hub's own gate and checks it as the hub would use
it, printing one PASS/FAIL/SKIP/INFO line per check with its reason:

  gate                   the plugin loads: entry point, ABI version, manifest
  settings.unknown_key   settings with an extra key are refused, naming it
  settings.wrong_type.K  for every key K of SETTINGS.json, a value of another
                         JSON type is refused, naming K
  settings.empty         {} is refused or accepted (either is fine; reported)
  create                 an instance is created with SETTINGS.json
  pull                   pages are pulled until the source is caught up
                         (at most --max-pages)
  records.valid          every record passes the hub's validation
                         (spec/kpi-model.md), with counts per reason code
  page.unique_ids        no source_id appears twice in one page
  page.cursor            the cursor moves whenever records come
  resume                 a new instance given the cursor stored after page 1
                         returns exactly page 2

SETTINGS.json holds the plugin's settings object, as under
sources.<name>.settings in the hub's configuration. Secret references
("file:token.txt") resolve relative to the folder of SETTINGS.json.
A plugin that crashes (segfault, abort) ends this program too: the last
line printed names the check that was running before it.

Exit status: 0 every check passed, 1 a check failed, 2 wrong command line or
unreadable settings file.

Options)";

kpihub::Date hub_today() {
  // The hub's local date: Asia/Ho_Chi_Minh is UTC+7 all year.
  const auto now = std::chrono::system_clock::now() + std::chrono::hours(7);
  return kpihub::Date{
      static_cast<int32_t>(std::chrono::floor<std::chrono::days>(now).time_since_epoch().count())};
}

boost::json::object read_settings(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read settings file " + file);
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text.str(), ec);
  if (ec) throw std::runtime_error("settings file " + file + " is not valid JSON: " + ec.message());
  if (!value.is_object()) {
    throw std::runtime_error("settings file " + file +
                             " must hold a JSON object (the plugin's settings)");
  }
  return std::move(value.as_object());
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description visible(std::string(kUsage) + "\n" + kAbout);
  visible.add_options()("help,h", "show this help")(
      "config,c", po::value<std::string>()->value_name("SETTINGS.json"),
      "the plugin's settings (required)")(
      "name", po::value<std::string>()->value_name("NAME"),
      "instance name, as in sources.NAME (default: the plugin's name)")(
      "max-pages", po::value<int>()->default_value(20)->value_name("N"), "pull at most N pages")(
      "today", po::value<std::string>()->value_name("YYYY-MM-DD"),
      "the hub's date for validation and for the plugin's clock "
      "(default: today in Asia/Ho_Chi_Minh)")(
      "retention-days", po::value<int>()->default_value(400)->value_name("DAYS"),
      "work dates older than this many days before today are too_old")(
      "verbose,v", "show the plugin's info and debug log lines (on stderr)");
  po::options_description hidden;
  hidden.add_options()("plugin", po::value<std::string>());
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("plugin", 1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "kpihub-adapter-check: " << e.what() << "\n" << kUsage << "\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << visible << "\n";
    return kExitPass;
  }
  if (!vm.count("plugin") || !vm.count("config")) {
    std::cerr << "kpihub-adapter-check: " << (vm.count("plugin") ? "--config" : "PLUGIN.so")
              << " is required\n"
              << kUsage << "\n(--help explains every check)\n";
    return kExitUsage;
  }

  kpihub::adapter_check::Options options;
  options.plugin_file = vm["plugin"].as<std::string>();
  options.max_pages = vm["max-pages"].as<int>();
  options.retention_days = vm["retention-days"].as<int>();
  options.verbose = vm.count("verbose") > 0;
  if (vm.count("name")) options.instance_name = vm["name"].as<std::string>();
  if (options.max_pages < 1) {
    std::cerr << "kpihub-adapter-check: --max-pages must be at least 1\n";
    return kExitUsage;
  }
  if (options.retention_days < 0) {
    std::cerr << "kpihub-adapter-check: --retention-days must not be negative\n";
    return kExitUsage;
  }
  if (vm.count("today")) {
    const auto today = kpihub::Date::parse(vm["today"].as<std::string>());
    if (!today) {
      std::cerr << "kpihub-adapter-check: --today " << vm["today"].as<std::string>()
                << " is not a real date (YYYY-MM-DD)\n";
      return kExitUsage;
    }
    options.today = *today;
  } else {
    options.today = hub_today();
  }
  const std::string settings_file = vm["config"].as<std::string>();
  try {
    options.settings = read_settings(settings_file);
  } catch (const std::exception& e) {
    std::cerr << "kpihub-adapter-check: " << e.what() << "\n";
    return kExitUsage;
  }
  options.secrets_dir =
      std::filesystem::absolute(settings_file).parent_path().lexically_normal().string();

  return kpihub::adapter_check::run(options, std::cout) == 0 ? kExitPass : kExitFail;
}
