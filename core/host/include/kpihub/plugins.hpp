// Loading plugins: the gate that reads a plugin's manifest and refuses a
// mismatch before any plugin instance exists, and the handles through which
// the host calls a source or a sink.
#pragma once

#include <kpihub/abi.h>
#include <kpihub/host_services.hpp>

#include <boost/dll/shared_library.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kpihub {

// One line that names the plugin file and what is wrong.
class PluginError : public std::runtime_error {
 public:
  PluginError(kpihub_status status, const std::string& what)
      : std::runtime_error(what), status_(status) {}
  kpihub_status status() const { return status_; }

 private:
  kpihub_status status_;
};

struct PluginInfo {
  std::string file;
  std::string name;
  kpihub_plugin_kind kind = KPIHUB_KIND_SOURCE;
  std::string version;
  std::string description;
  std::string compiler;
  std::string cxx_stdlib;
  std::string sdk_version;
  std::string settings_help;
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
};

std::string_view to_string(kpihub_plugin_kind kind);

// A loaded library whose manifest passed the gate. Instances keep it alive
// (shared_ptr): the library is never unloaded while an object it made lives.
class LoadedPlugin {
 public:
  LoadedPlugin(boost::dll::shared_library library, const kpihub_plugin* descriptor, PluginInfo info)
      : library_(std::move(library)), descriptor_(descriptor), info_(std::move(info)) {}
  const PluginInfo& info() const { return info_; }
  const kpihub_plugin& descriptor() const { return *descriptor_; }

 private:
  boost::dll::shared_library library_;
  const kpihub_plugin* descriptor_;
  PluginInfo info_;
};

// Loads one file and applies the gate: exported entry point, ABI major equal
// to the host's, minor not newer, descriptor and manifest large enough, a
// known kind with the functions it needs. Throws PluginError.
std::shared_ptr<LoadedPlugin> load_plugin(const std::string& file);

struct PluginScan {
  std::vector<std::shared_ptr<LoadedPlugin>> loaded;
  std::vector<std::string> refused;  // one line each
};

// Every *.so in `dir` (only there: never a path from elsewhere).
PluginScan scan_plugins(const std::string& dir);

// A plugin instance. Not thread-safe: one caller at a time.
class PluginInstance {
 public:
  // Creates the instance; throws PluginError naming instance, plugin and file.
  PluginInstance(std::shared_ptr<LoadedPlugin> plugin, std::string instance_name,
                 const std::string& settings_json, std::unique_ptr<HostServices> services);
  ~PluginInstance();
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;

  const std::string& name() const { return name_; }
  const PluginInfo& info() const { return plugin_->info(); }
  HostServices& services() { return *services_; }

  // Source: the page stays valid until the next call. Throws PluginError.
  // Throws PluginError, naming the plugin, for a failed pull and for a page that cannot be read
  // as it says (NULL arrays with counts, records too small, records without a cursor).
  kpihub_page pull(const std::optional<std::string>& cursor);
  // Source: nullopt when the source keeps no staff list.
  std::optional<std::vector<kpihub_staff_entry>> list_staff();
  // Sink. Throws PluginError.
  kpihub_delivery deliver(const kpihub_batch& batch);

 private:
  std::string context() const;
  void check_page(const kpihub_page& page) const;
  std::shared_ptr<LoadedPlugin> plugin_;
  std::string name_;
  std::unique_ptr<HostServices> services_;
  kpihub_instance* instance_ = nullptr;
};

}  // namespace kpihub
