#include <kpihub/plugins.hpp>
#include <kpihub/sdk.hpp>
#include <kpihub/validate.hpp>

#include "plugin_process.hpp"

#include <boost/dll/shared_library_load_mode.hpp>
#include <boost/system/error_code.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>

namespace kpihub {
namespace {

// Size of the fields that ABI 1.0 promises; later minors may only add.
constexpr std::size_t kPluginSizeV1_0 = sizeof(kpihub_plugin);
constexpr std::size_t kManifestSizeV1_0 = sizeof(kpihub_manifest);
constexpr std::size_t kPluginHeadSize = offsetof(kpihub_plugin, manifest) + sizeof(void*);

std::string text(const char* s) {
  return s ? std::string(s) : std::string();
}

}  // namespace

std::string_view to_string(kpihub_plugin_kind kind) {
  switch (kind) {
    case KPIHUB_KIND_SOURCE:
      return "source";
    case KPIHUB_KIND_SINK:
      return "sink";
  }
  return "unknown";
}

std::shared_ptr<LoadedPlugin> load_plugin(const std::string& file) {
  auto refuse = [&](const std::string& why) {
    return PluginError(KPIHUB_ERR_CONFIG, "plugin " + file + " refused: " + why);
  };
  if (!std::filesystem::is_regular_file(file)) throw refuse("no such file");

  boost::dll::shared_library lib;
  boost::system::error_code ec;
  // rtld_now: every symbol is resolved at load, so a missing one is refused
  // here rather than crashing on first use. rtld_local keeps plugins apart.
  lib.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) {
    const char* dl = ::dlerror();
    throw refuse("not a loadable shared library (" + (dl ? std::string(dl) : ec.message()) + ")");
  }
  if (!lib.has(KPIHUB_ENTRY_SYMBOL)) {
    throw refuse(std::string("not a kpihub plugin: it does not export ") + KPIHUB_ENTRY_SYMBOL);
  }
  auto entry = lib.get<const kpihub_plugin*()>(KPIHUB_ENTRY_SYMBOL);
  const kpihub_plugin* d = entry();
  if (d == nullptr) throw refuse(std::string(KPIHUB_ENTRY_SYMBOL) + " returned no descriptor");
  if (d->struct_size < kPluginHeadSize) {
    throw refuse("descriptor of " + std::to_string(d->struct_size) +
                 " bytes is too small to be a kpihub plugin");
  }
  const std::string host_abi =
      std::to_string(KPIHUB_ABI_MAJOR) + "." + std::to_string(KPIHUB_ABI_MINOR);
  const std::string plugin_abi = std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor);
  const std::string name = d->manifest && d->manifest->name ? d->manifest->name : "(unnamed)";
  if (d->abi_major != KPIHUB_ABI_MAJOR) {
    throw refuse("plugin \"" + name + "\" was built for ABI " + plugin_abi +
                 ", this hub speaks ABI " + host_abi +
                 " (major versions differ: rebuild it against this hub's SDK)");
  }
  if (d->abi_minor > KPIHUB_ABI_MINOR) {
    throw refuse("plugin \"" + name + "\" needs ABI " + plugin_abi +
                 ", newer than this hub's ABI " + host_abi +
                 " (upgrade the hub or rebuild the plugin against this hub's SDK)");
  }
  if (d->struct_size < kPluginSizeV1_0) {
    throw refuse("descriptor is " + std::to_string(d->struct_size) + " bytes, ABI " + plugin_abi +
                 " needs " + std::to_string(kPluginSizeV1_0));
  }
  const kpihub_manifest* m = d->manifest;
  if (m == nullptr) throw refuse("descriptor has no manifest");
  if (m->struct_size < kManifestSizeV1_0) {
    throw refuse("manifest is " + std::to_string(m->struct_size) + " bytes, ABI " + plugin_abi +
                 " needs " + std::to_string(kManifestSizeV1_0));
  }
  if (m->name == nullptr || *m->name == '\0') throw refuse("manifest has no name");
  if (m->kind != KPIHUB_KIND_SOURCE && m->kind != KPIHUB_KIND_SINK) {
    throw refuse("plugin \"" + name + "\" declares unknown kind " +
                 std::to_string(static_cast<int>(m->kind)));
  }
  if (!d->create || !d->destroy) throw refuse("plugin \"" + name + "\" lacks create or destroy");
  if (m->kind == KPIHUB_KIND_SOURCE && !d->pull)
    throw refuse("source plugin \"" + name + "\" lacks pull");
  if (m->kind == KPIHUB_KIND_SINK && !d->deliver)
    throw refuse("sink plugin \"" + name + "\" lacks deliver");

  PluginInfo info;
  info.file = std::filesystem::absolute(file).lexically_normal().string();
  info.name = m->name;
  info.kind = m->kind;
  info.version = text(m->version);
  info.description = text(m->description);
  info.compiler = text(m->compiler);
  info.cxx_stdlib = text(m->cxx_stdlib);
  info.sdk_version = text(m->sdk_version);
  info.settings_help = text(m->settings_help);
  info.abi_major = d->abi_major;
  info.abi_minor = d->abi_minor;
  return std::make_shared<LoadedPlugin>(std::move(lib), d, std::move(info));
}

PluginScan scan_plugins(const std::string& dir) {
  PluginScan scan;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    scan.refused.push_back("plugin folder " + dir + " does not exist");
    return scan;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".so") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    try {
      auto p = load_plugin(f.string());
      const bool duplicate =
          std::any_of(scan.loaded.begin(), scan.loaded.end(),
                      [&](const auto& other) { return other->info().name == p->info().name; });
      if (duplicate) {
        scan.refused.push_back("plugin " + f.string() +
                               " refused: another file already provides plugin \"" +
                               p->info().name + "\"");
        continue;
      }
      scan.loaded.push_back(std::move(p));
    } catch (const PluginError& e) {
      scan.refused.push_back(e.what());
    }
  }
  return scan;
}

std::string duration_text(std::chrono::milliseconds ms) {
  const int64_t n = ms.count();
  if (n < 10000) return std::to_string(n) + " ms";
  if (n < 600000) return std::to_string(n / 1000) + " s";
  const int64_t seconds = (n / 1000) % 60;
  return std::to_string(n / 60000) + " min" +
         (seconds == 0 ? std::string() : " " + std::to_string(seconds) + " s");
}

bool built_with_hub(const PluginInfo& plugin) {
  static constexpr std::string_view kBundled[] = {"eoffice", "education", "health", "provincial"};
  return std::find(std::begin(kBundled), std::end(kBundled), plugin.name) != std::end(kBundled) &&
         plugin.sdk_version == KPIHUB_SDK_VERSION && plugin.compiler == KPIHUB_SDK_COMPILER &&
         plugin.cxx_stdlib == KPIHUB_SDK_STDLIB;
}

// Marks a call as running for running_call(), from its start to its end.
class PluginInstance::CallTimer {
 public:
  CallTimer(PluginInstance& instance, const char* what) : instance_(instance) {
    instance_.call_started_ms_ = steady_ms();
    instance_.call_what_ = what;
  }
  ~CallTimer() { instance_.call_what_ = nullptr; }
  CallTimer(const CallTimer&) = delete;
  CallTimer& operator=(const CallTimer&) = delete;
  static int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  PluginInstance& instance_;
};

PluginInstance::PluginInstance(std::shared_ptr<LoadedPlugin> plugin, std::string instance_name,
                               const std::string& settings_json,
                               std::unique_ptr<HostServices> services, PluginIsolation isolation)
    : plugin_(std::move(plugin)),
      name_(std::move(instance_name)),
      services_(std::move(services)),
      isolation_(std::move(isolation)) {
  services_->set_instance_label(std::string(to_string(plugin_->info().kind)));
  if (isolation_.process) {
    process_ = std::make_unique<PluginProcess>(plugin_->info(), name_, settings_json, *services_,
                                               isolation_, context());
    return;
  }
  char err[2048] = {0};
  const kpihub_status st = plugin_->descriptor().create(
      services_->api(), {name_.data(), name_.size()}, {settings_json.data(), settings_json.size()},
      &instance_, {err, sizeof err});
  if (st != KPIHUB_OK || instance_ == nullptr) {
    instance_ = nullptr;
    throw PluginError(st == KPIHUB_OK ? KPIHUB_ERR_INTERNAL : st,
                      context() + ": configuration refused: " + (err[0] ? err : "no reason given"));
  }
}

PluginInstance::~PluginInstance() {
  if (instance_) plugin_->descriptor().destroy(instance_);
}

std::string PluginInstance::context() const {
  return std::string(to_string(plugin_->info().kind)) + " " + name_ + " (plugin " +
         plugin_->info().name + ", " + plugin_->info().file + ")";
}

std::optional<PluginInstance::RunningCall> PluginInstance::running_call() const {
  const char* what = call_what_.load();
  if (what == nullptr) return std::nullopt;
  return RunningCall{what,
                     std::chrono::milliseconds(CallTimer::steady_ms() - call_started_ms_.load())};
}

kpihub_page PluginInstance::pull(const std::optional<std::string>& cursor) {
  CallTimer running(*this, "pull");
  kpihub_page page{};
  page.struct_size = sizeof(page);
  const kpihub_str c = cursor ? kpihub_str{cursor->data(), cursor->size()} : kpihub_str{nullptr, 0};
  std::string error;
  kpihub_status st;
  if (process_) {
    st = process_->pull(c, &page, error);
  } else {
    char err[2048] = {0};
    st = plugin_->descriptor().pull(instance_, c, &page, {err, sizeof err});
    error = err;
  }
  if (st != KPIHUB_OK) {
    throw PluginError(st,
                      context() + ": pull failed: " + (error.empty() ? "no reason given" : error));
  }
  if (page.struct_size < sizeof(kpihub_page)) {
    throw PluginError(KPIHUB_ERR_INTERNAL,
                      context() + ": pull returned a page descriptor that is too small");
  }
  check_page(page, context());
  return page;
}

// Everything the host reads through the page's pointers and counts, checked before it reads a
// record: a plugin's mistake is a PluginError naming it, not a crash of the hub (issue 19).
void check_page(const kpihub_page& page, const std::string& context) {
  auto refuse = [&](const std::string& what) {
    throw PluginError(KPIHUB_ERR_INTERNAL, context + ": pull returned " + what);
  };
  if (page.record_count > 0 && page.records == nullptr) {
    refuse("a page of " + std::to_string(page.record_count) +
           " records without their array (records is NULL)");
  }
  if (page.rejected_count > 0 && page.rejected == nullptr) {
    refuse("a page of " + std::to_string(page.rejected_count) +
           " rejected items without their array (rejected is NULL)");
  }
  if (page.record_count > 0 && page.next_cursor.data == nullptr) {
    refuse(std::to_string(page.record_count) +
           " records without a cursor (next_cursor is absent): a restart would read them again");
  }
  if (page.rejected_count > 0 && page.next_cursor.data == nullptr) {
    refuse(std::to_string(page.rejected_count) +
           " rejected items without a cursor (next_cursor is absent): a restart would read them "
           "again");
  }
  if (page.record_count == 0) return;
  const std::size_t stride = page.records[0].struct_size;
  if (stride < kRecordSizeV1_0) {
    refuse("records of " + std::to_string(stride) + " bytes; ABI 1.0 records are at least " +
           std::to_string(kRecordSizeV1_0));
  }
  // The gate refuses a plugin of a newer ABI minor, so no record may be larger than this hub's:
  // a larger stride would read past the plugin's array.
  if (stride > sizeof(kpihub_record)) {
    refuse("records of " + std::to_string(stride) + " bytes; records of ABI " +
           std::to_string(KPIHUB_ABI_MAJOR) + "." + std::to_string(KPIHUB_ABI_MINOR) +
           " are at most " + std::to_string(sizeof(kpihub_record)));
  }
  for (std::size_t i = 0; i < page.record_count; ++i) {
    const kpihub_record record = record_at(page, i);
    if (record.attribute_count > 0 && record.attributes == nullptr) {
      refuse("record " + std::to_string(i) + " with " + std::to_string(record.attribute_count) +
             " attributes without their array (attributes is NULL)");
    }
  }
}

std::optional<std::vector<kpihub_staff_entry>> PluginInstance::list_staff() {
  if (!plugin_->descriptor().list_staff) return std::nullopt;
  CallTimer running(*this, "staff list");
  const kpihub_staff_entry* entries = nullptr;
  size_t count = 0;
  std::string error;
  kpihub_status st;
  if (process_) {
    st = process_->list_staff(&entries, &count, error);
  } else {
    char err[2048] = {0};
    st = plugin_->descriptor().list_staff(instance_, &entries, &count, {err, sizeof err});
    error = err;
  }
  if (st != KPIHUB_OK) {
    throw PluginError(st,
                      context() + ": staff list failed: " + (error.empty() ? "no reason" : error));
  }
  if (entries == nullptr) return std::nullopt;
  return std::vector<kpihub_staff_entry>(entries, entries + count);
}

kpihub_delivery PluginInstance::deliver(const kpihub_batch& batch) {
  CallTimer running(*this, "delivery");
  kpihub_delivery d{};
  d.struct_size = sizeof(d);
  std::string error;
  kpihub_status st;
  if (process_) {
    st = process_->deliver(batch, &d, error);
  } else {
    char err[2048] = {0};
    st = plugin_->descriptor().deliver(instance_, &batch, &d, {err, sizeof err});
    error = err;
  }
  if (st != KPIHUB_OK) {
    throw PluginError(
        st, context() + ": deliver failed: " + (error.empty() ? "no reason given" : error));
  }
  if (d.result_count != batch.item_count) {
    throw PluginError(KPIHUB_ERR_INTERNAL, context() + ": deliver returned " +
                                               std::to_string(d.result_count) + " results for " +
                                               std::to_string(batch.item_count) + " items");
  }
  return d;
}

}  // namespace kpihub
