#include "adapter_check.hpp"

#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/metrics.hpp>
#include <kpihub/plugins.hpp>
#include <kpihub/sdk.hpp>
#include <kpihub/validate.hpp>

#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::adapter_check {
namespace {

constexpr int64_t kMillisecondsPerDay = 86'400'000;
// Enough examples to see a pattern without burying the report.
constexpr std::size_t kExamplesShown = 5;
// A key no plugin can know, for the unknown-key check.
constexpr std::string_view kUnknownKey = "kpihub_check_unknown_key";

std::string_view status_name(kpihub_status status) {
  switch (status) {
    case KPIHUB_OK:
      return "ok";
    case KPIHUB_ERR_CONFIG:
      return "config";
    case KPIHUB_ERR_TRANSIENT:
      return "transient";
    case KPIHUB_ERR_AUTH:
      return "auth";
    case KPIHUB_ERR_DATA:
      return "data";
    case KPIHUB_ERR_INTERNAL:
      return "internal";
  }
  return "unknown";
}

std::string text(kpihub_str s) {
  return s.data ? std::string(s.data, s.size) : std::string();
}
std::optional<std::string> optional_text(kpihub_str s) {
  return s.data ? std::optional<std::string>(std::string(s.data, s.size)) : std::nullopt;
}
std::string quoted(const std::optional<std::string>& s) {
  return s ? "\"" + *s + "\"" : "(none)";
}

std::string counts_text(const std::map<std::string, int>& counts) {
  std::string out;
  for (const auto& [key, count] : counts) {
    out += (out.empty() ? "" : ", ") + key + " " + std::to_string(count);
  }
  return out;
}

// The system clock moved by whole days so that its local date is the chosen
// `today`: time still passes (token expiry, timeouts work), but the plugin
// sees the same date as the validation does.
class ShiftedClock final : public Clock {
 public:
  explicit ShiftedClock(int64_t shift_ms) : shift_ms_(shift_ms) {}
  int64_t now_unix_ms() const override { return system_.now_unix_ms() + shift_ms_; }

 private:
  SystemClock system_;
  int64_t shift_ms_;
};

constexpr int32_t kHubUtcOffsetMinutes = 420;  // Asia/Ho_Chi_Minh, no DST

int64_t clock_shift_for(Date today) {
  const int64_t local_now_ms = SystemClock().now_unix_ms() + int64_t{kHubUtcOffsetMinutes} * 60'000;
  const int64_t local_days = local_now_ms / kMillisecondsPerDay;
  return (int64_t{today.days} - local_days) * kMillisecondsPerDay;
}

// One line per check, flushed at once: a plugin that crashes the process
// leaves every earlier line on screen, and the last one shows where it died.
class Report {
 public:
  explicit Report(std::ostream& out) : out_(out) {}
  void pass(std::string_view check, std::string_view detail) { line("PASS", check, detail); }
  void fail(std::string_view check, std::string_view detail) {
    ++failed_;
    line("FAIL", check, detail);
  }
  void skip(std::string_view check, std::string_view detail) { line("SKIP", check, detail); }
  void info(std::string_view check, std::string_view detail) { line("INFO", check, detail); }
  // An indented continuation of the line before (examples, hints).
  void detail(std::string_view text) { out_ << "        " << text << '\n' << std::flush; }
  void heading(std::string_view label, std::string_view text) {
    out_ << label << std::string(label.size() < 12 ? 12 - label.size() : 1, ' ') << text << '\n'
         << std::flush;
  }
  int failed() const { return failed_; }

 private:
  void line(std::string_view tag, std::string_view check, std::string_view detail) {
    out_ << tag << "  " << check << ": " << detail << '\n' << std::flush;
  }
  std::ostream& out_;
  int failed_ = 0;
};

// The services every instance gets, as the hub would give them.
class Environment {
 public:
  explicit Environment(const Options& options)
      : logger_(stderr, options.verbose ? LogLevel::debug : LogLevel::warn),
        clock_(clock_shift_for(options.today)),
        secrets_(options.secrets_dir) {}
  std::unique_ptr<HostServices> services(const std::string& instance) {
    return std::make_unique<HostServices>(instance, logger_, clock_, secrets_, &metrics_,
                                          kHubUtcOffsetMinutes);
  }

 private:
  JsonLineLogger logger_;
  ShiftedClock clock_;
  SecretResolver secrets_;
  Metrics metrics_;
};

// The refusal of creating an instance with `settings`, or nullopt when the
// plugin accepted them.
std::optional<PluginError> refusal_of(Environment& env, const std::shared_ptr<LoadedPlugin>& plugin,
                                      const std::string& name,
                                      const boost::json::object& settings) {
  try {
    PluginInstance instance(plugin, name, boost::json::serialize(settings), env.services(name));
  } catch (const PluginError& e) {
    return e;
  }
  return std::nullopt;
}

// The plugin's own words, without the host's "source x (plugin y, file)"
// prefix that every line would otherwise repeat.
std::string plugin_words(const PluginError& e) {
  const std::string what = e.what();
  constexpr std::string_view kMarker = "configuration refused: ";
  const auto at = what.find(kMarker);
  return at == std::string::npos ? what : what.substr(at + kMarker.size());
}

// Bad settings must be refused as a configuration error whose message names
// the key, so that the operator knows what to fix.
void expect_refused(Report& report, const std::string& check, std::string_view key,
                    const std::optional<PluginError>& refusal) {
  if (!refusal) {
    report.fail(check, "accepted; the plugin must refuse it with a message naming \"" +
                           std::string(key) + "\"");
  } else if (refusal->status() != KPIHUB_ERR_CONFIG) {
    report.fail(check, "refused with status " + std::string(status_name(refusal->status())) +
                           " instead of config (throw kpihub::sdk::ConfigError, or use the SDK's "
                           "Settings getters): " +
                           plugin_words(*refusal));
  } else if (plugin_words(*refusal).find(key) == std::string::npos) {
    report.fail(check, "refused, but the message does not name \"" + std::string(key) +
                           "\": " + plugin_words(*refusal));
  } else {
    report.pass(check, "refused: " + plugin_words(*refusal));
  }
}

// A value of another JSON type than `value`, which a typed getter refuses.
boost::json::value wrongly_typed(const boost::json::value& value) {
  if (value.is_string()) return true;
  return "x";
}

void check_settings(Report& report, Environment& env, const std::shared_ptr<LoadedPlugin>& plugin,
                    const std::string& name, const boost::json::object& settings) {
  boost::json::object with_unknown = settings;
  with_unknown[kUnknownKey] = true;
  expect_refused(report, "settings.unknown_key", kUnknownKey,
                 refusal_of(env, plugin, name, with_unknown));

  for (const auto& entry : settings) {
    boost::json::object wrong = settings;
    wrong[entry.key()] = wrongly_typed(entry.value());
    const std::string key(entry.key());
    expect_refused(
        report,
        "settings.wrong_type." + key + " (" + boost::json::serialize(wrong[entry.key()]) + ")", key,
        refusal_of(env, plugin, name, wrong));
  }

  // Either answer is fine: some plugins have a default for everything.
  const auto empty = refusal_of(env, plugin, name, boost::json::object());
  if (empty) {
    report.pass("settings.empty ({})", "refused (status " +
                                           std::string(status_name(empty->status())) +
                                           "): " + plugin_words(*empty));
  } else {
    report.pass("settings.empty ({})", "accepted: every setting has a default");
  }
}

// What later checks need of a page, copied before the next pull overwrites
// the plugin-owned page.
struct PageCopy {
  std::optional<std::string> cursor;
  bool caught_up = false;
  std::vector<std::string> source_ids;
  std::vector<std::string> revisions;  // each record's, parallel to source_ids
  // record_fields_json of each record, then each rejected item's id and
  // reason, in order: two pages are the same when these are.
  std::vector<std::string> items;
};

PageCopy copy_page(const kpihub_page& page) {
  PageCopy copy;
  copy.cursor = optional_text(page.next_cursor);
  copy.caught_up = page.caught_up != 0;
  for (std::size_t i = 0; i < page.record_count; ++i) {
    const kpihub_record record = record_at(page, i);
    copy.source_ids.push_back(text(record.source_id));
    copy.revisions.push_back(text(record.revision));
    copy.items.push_back(record_fields_json(record));
  }
  for (std::size_t i = 0; i < page.rejected_count; ++i) {
    copy.items.push_back("rejected " + text(page.rejected[i].source_id) + " " +
                         text(page.rejected[i].reason) + ": " + text(page.rejected[i].message));
  }
  return copy;
}

struct Validation {
  int records = 0;
  int valid = 0;
  std::map<std::string, int> quarantined_by_reason;
  std::vector<std::string> examples;
  int rejected = 0;
  std::map<std::string, int> rejected_by_reason;
  std::set<std::string> unknown_reason_codes;
};

void validate_page(const kpihub_page& page, const ValidationContext& context, int page_number,
                   Validation& v) {
  for (std::size_t i = 0; i < page.record_count; ++i) {
    ++v.records;
    const Normalized normalized = normalize(record_at(page, i), context);
    if (std::holds_alternative<WorkRecord>(normalized)) {
      ++v.valid;
      continue;
    }
    const auto& entry = std::get<QuarantineEntry>(normalized);
    ++v.quarantined_by_reason[std::string(to_string(entry.reason))];
    if (v.examples.size() < kExamplesShown) {
      v.examples.push_back(
          "page " + std::to_string(page_number) + ", " +
          (entry.source_id.empty() ? "record " + std::to_string(i + 1) : entry.source_id) +
          (entry.location.empty() ? "" : " (" + entry.location + ")") + ": " +
          std::string(to_string(entry.reason)) + ": " + entry.message);
    }
  }
  for (std::size_t i = 0; i < page.rejected_count; ++i) {
    ++v.rejected;
    const std::string code = text(page.rejected[i].reason);
    ++v.rejected_by_reason[code];
    const auto reason = parse_reason(code);
    if (!reason || *reason == Reason::source_error) v.unknown_reason_codes.insert(code);
  }
}

void report_validation(Report& report, const Validation& v, const ValidationContext& context) {
  if (v.records == 0) {
    report.skip("records.valid", "the source gave no records to validate");
  } else if (v.valid == v.records) {
    report.pass("records.valid", "all " + std::to_string(v.records) +
                                     " records are valid against kpi-model/1 (today " +
                                     context.today.str() + ")");
  } else {
    report.fail("records.valid",
                std::to_string(v.records - v.valid) + " of " + std::to_string(v.records) +
                    " records would be quarantined: " + counts_text(v.quarantined_by_reason));
    for (const auto& example : v.examples) report.detail(example);
  }
  if (v.rejected > 0) {
    report.info("records.rejected_by_adapter",
                std::to_string(v.rejected) + " items: " + counts_text(v.rejected_by_reason));
  }
  if (!v.unknown_reason_codes.empty()) {
    std::string codes;
    for (const auto& c : v.unknown_reason_codes)
      codes += (codes.empty() ? "\"" : ", \"") + c + "\"";
    report.fail("records.reason_codes",
                "rejected items use reason codes that spec/kpi-model.md does not define: " + codes);
  }
}

void check_pages(Report& report, const std::vector<PageCopy>& pages,
                 const std::optional<std::string>& first_cursor) {
  // Record ids: a change feed may name a record twice in a page, at two revisions, and the hub
  // keeps the higher one whatever their order (docs/writing-an-adapter.md, "Mapping fields").
  // Twice at one revision, the hub keeps the first and ignores the other, silently.
  std::optional<std::string> duplicate, repeated;
  for (std::size_t p = 0; p < pages.size() && !duplicate; ++p) {
    std::set<std::pair<std::string, std::string>> seen;
    std::set<std::string> ids;
    for (std::size_t i = 0; i < pages[p].source_ids.size(); ++i) {
      const std::string& id = pages[p].source_ids[i];
      // As the hub reads it: "5", "05" and "5.0" are one revision. Text that is no whole number
      // is left to records.valid.
      std::string revision = pages[p].revisions[i];
      double number = 0;
      const auto [end, error] =
          std::from_chars(revision.data(), revision.data() + revision.size(), number);
      if (error == std::errc() && end == revision.data() + revision.size() &&
          std::isfinite(number) && number == std::floor(number) && std::fabs(number) < 9e15) {
        revision = std::to_string(static_cast<int64_t>(number));
      }
      if (!seen.emplace(id, revision).second) {
        duplicate = "page " + std::to_string(p + 1) + ": source_id \"" + id +
                    "\" appears twice at revision " + revision +
                    ": the hub keeps the first and ignores the other";
        break;
      }
      if (!ids.insert(id).second && !repeated) {
        repeated = "page " + std::to_string(p + 1) + ": source_id \"" + id +
                   "\" at two revisions; the hub keeps the higher";
      }
    }
  }
  if (duplicate) {
    report.fail("page.unique_ids", *duplicate);
  } else {
    report.pass("page.unique_ids", "no record appears twice at one revision within each of " +
                                       std::to_string(pages.size()) + " pages" +
                                       (repeated ? " (" + *repeated + ")" : std::string()));
  }

  // The cursor: it must move whenever records come, or the hub pulls them
  // again; and a page that is empty, not caught up and does not move the
  // cursor would have the hub pull the same page for ever.
  std::optional<std::string> stored = first_cursor;
  std::optional<std::string> problem;
  int pages_with_items = 0;
  for (std::size_t p = 0; p < pages.size() && !problem; ++p) {
    const auto& page = pages[p];
    const std::string where = "page " + std::to_string(p + 1);
    if (!page.items.empty()) {
      ++pages_with_items;
      if (!page.cursor) {
        problem = where + " brought " + std::to_string(page.items.size()) +
                  " items but no cursor: the hub cannot tell where to resume";
      } else if (page.cursor == stored) {
        problem = where + " brought " + std::to_string(page.items.size()) +
                  " items but left the cursor at " + quoted(stored) +
                  ": the hub would pull them again";
      }
    } else if (!page.caught_up && (!page.cursor || page.cursor == stored)) {
      problem = where + " is empty, not caught up, and the cursor stays at " + quoted(stored) +
                ": the hub would pull the same page for ever";
    }
    if (page.cursor) stored = page.cursor;  // as the hub does: no cursor keeps the stored one
  }
  if (problem) {
    report.fail("page.cursor", *problem);
  } else if (pages_with_items == 0) {
    report.skip("page.cursor", "the source gave no records, so the cursor could not move");
  } else {
    report.pass("page.cursor", "the cursor moved on each of " + std::to_string(pages_with_items) +
                                   " pages that brought records (last " + quoted(stored) + ")");
  }
}

void check_resume(Report& report, Environment& env, const std::shared_ptr<LoadedPlugin>& plugin,
                  const std::string& name, const std::string& settings,
                  const std::vector<PageCopy>& pages) {
  if (pages.size() < 2 || !pages[0].cursor) {
    report.skip("resume",
                "needs two pages and a cursor after the first; lower the page size in "
                "the settings to test resume");
    return;
  }
  const std::string& cursor = *pages[0].cursor;
  const PageCopy& expected = pages[1];
  PageCopy resumed;
  try {
    PluginInstance instance(plugin, name, settings, env.services(name));
    resumed = copy_page(instance.pull(cursor));
  } catch (const PluginError& e) {
    report.fail("resume", "a new instance given page 1's cursor \"" + cursor +
                              "\" failed (status " + std::string(status_name(e.status())) +
                              "): " + e.what());
    return;
  }
  if (resumed.items.size() != expected.items.size()) {
    report.fail("resume", "a new instance given page 1's cursor \"" + cursor + "\" returned " +
                              std::to_string(resumed.items.size()) + " items, page 2 had " +
                              std::to_string(expected.items.size()));
    return;
  }
  for (std::size_t i = 0; i < expected.items.size(); ++i) {
    if (resumed.items[i] != expected.items[i]) {
      report.fail("resume", "a new instance given page 1's cursor \"" + cursor +
                                "\" differs from page 2 at item " + std::to_string(i + 1));
      report.detail("page 2:  " + expected.items[i]);
      report.detail("resumed: " + resumed.items[i]);
      return;
    }
  }
  if (resumed.cursor != expected.cursor) {
    report.fail("resume", "same items as page 2, but the next cursor is " + quoted(resumed.cursor) +
                              " instead of " + quoted(expected.cursor));
    return;
  }
  report.pass("resume", "a new instance given page 1's cursor \"" + cursor +
                            "\" returned page 2's " + std::to_string(expected.items.size()) +
                            " items and cursor " + quoted(expected.cursor));
}

void check_source(Report& report, Environment& env, const std::shared_ptr<LoadedPlugin>& plugin,
                  const std::string& name, const std::string& settings, const Options& options) {
  const ValidationContext context{name, options.today, options.retention_days};
  Validation validation;
  std::vector<PageCopy> pages;
  {
    std::unique_ptr<PluginInstance> instance;
    try {
      instance = std::make_unique<PluginInstance>(plugin, name, settings, env.services(name));
    } catch (const PluginError& e) {
      report.fail("create", "the given settings were refused (status " +
                                std::string(status_name(e.status())) + "): " + plugin_words(e));
      return;
    }
    report.pass("create", "instance \"" + name + "\" created with the given settings");

    std::optional<std::string> cursor;
    bool failed = false;
    for (int n = 1; n <= options.max_pages; ++n) {
      try {
        const kpihub_page page = instance->pull(cursor);
        validate_page(page, context, n, validation);
        pages.push_back(copy_page(page));
      } catch (const PluginError& e) {
        report.fail("pull", "page " + std::to_string(n) + " failed (status " +
                                std::string(status_name(e.status())) + "): " + e.what());
        failed = true;
        break;
      }
      if (pages.back().cursor) cursor = pages.back().cursor;
      if (pages.back().caught_up) break;
    }
    if (!failed) {
      const bool caught_up = !pages.empty() && pages.back().caught_up;
      report.pass(
          "pull",
          std::to_string(pages.size()) + " pages, " + std::to_string(validation.records) +
              " records, " + std::to_string(validation.rejected) + " rejected by the adapter; " +
              (caught_up ? "caught up"
                         : "not caught up after --max-pages " + std::to_string(options.max_pages)));
    }
    // The first instance stops here, as the hub's would at shutdown.
  }
  if (pages.empty()) return;
  report_validation(report, validation, context);
  check_pages(report, pages, std::nullopt);
  check_resume(report, env, plugin, name, settings, pages);
}

void print_manifest(Report& report, const PluginInfo& info) {
  report.heading("name",
                 info.name + " " + info.version + " (" + std::string(to_string(info.kind)) + ")");
  report.heading("description", info.description);
  report.heading("built with", info.compiler + ", " + info.cxx_stdlib + ", SDK " +
                                   info.sdk_version + ", ABI " + std::to_string(info.abi_major) +
                                   "." + std::to_string(info.abi_minor));
  report.heading("settings", info.settings_help.empty() ? "(not described)" : info.settings_help);
}

}  // namespace

int run(const Options& options, std::ostream& out) {
  Report report(out);
  report.heading("plugin", options.plugin_file);

  std::shared_ptr<LoadedPlugin> plugin;
  try {
    plugin = load_plugin(options.plugin_file);
  } catch (const PluginError& e) {
    report.fail("gate", e.what());
    out << "result: FAIL (the hub would refuse this plugin)\n";
    return report.failed();
  }
  print_manifest(report, plugin->info());
  const std::string host_abi =
      std::to_string(KPIHUB_ABI_MAJOR) + "." + std::to_string(KPIHUB_ABI_MINOR);
  report.pass("gate", "loaded through the hub's gate (this hub: ABI " + host_abi + ", SDK " +
                          KPIHUB_SDK_VERSION + ")");
  if (plugin->info().compiler != KPIHUB_SDK_COMPILER) {
    // Not a failure: only C crosses the boundary. Worth knowing when a
    // plugin misbehaves on one machine and not another.
    report.info("gate.compiler",
                "built with " + plugin->info().compiler + ", this hub with " + KPIHUB_SDK_COMPILER);
  }

  Environment env(options);
  const std::string name =
      options.instance_name.empty() ? plugin->info().name : options.instance_name;
  check_settings(report, env, plugin, name, options.settings);

  const std::string settings = boost::json::serialize(options.settings);
  if (plugin->info().kind == KPIHUB_KIND_SOURCE) {
    check_source(report, env, plugin, name, settings, options);
  } else {
    try {
      PluginInstance instance(plugin, name, settings, env.services(name));
      report.pass("create", "instance \"" + name + "\" created with the given settings");
    } catch (const PluginError& e) {
      report.fail("create", "the given settings were refused (status " +
                                std::string(status_name(e.status())) + "): " + plugin_words(e));
    }
    report.skip("pull", "\"" + plugin->info().name +
                            "\" is a sink; delivery is checked against a receiver, not here");
  }
  out << (report.failed() == 0 ? "result: PASS"
                               : "result: FAIL (" + std::to_string(report.failed()) + " failed)")
      << '\n';
  return report.failed();
}

}  // namespace kpihub::adapter_check
