// Loading plugins: the gate that reads a plugin's manifest and refuses a
// mismatch before any plugin instance exists, and the handles through which
// the host calls a source or a sink.
#pragma once

#include <kpihub/abi.h>
#include <kpihub/host_services.hpp>

#include <boost/dll/shared_library.hpp>

#include <atomic>
#include <chrono>
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

// Where an instance runs and how long a call may take (issue 19 section 2;
// docs/operations.md, "Plugins in their own process").
struct PluginIsolation {
  // In a child process (kpihub-plugin-process) that loads the same file: a crash, exit or hang
  // of the plugin ends the child, not the hub. False: in the hub's own process.
  bool process = false;
  // The child's program; empty: kpihub-plugin-process beside the running program.
  std::string program;
  // How long one pull, staff list or delivery may run. A child past it is killed; a plugin in
  // the hub's process cannot be, and is reported stuck (running_call()).
  std::chrono::milliseconds time_limit{900000};
  // The largest message a child may send (a page, a staff list): beyond it the child is ended.
  std::size_t max_message_bytes = 64u << 20;
};

// A time limit or a call's running time as an operator reads it: "700 ms", "42 s", "15 min".
std::string duration_text(std::chrono::milliseconds ms);

// True for the plugins this hub was built with (its bundled adapters and sinks, same SDK and
// compiler), which run in the hub's process unless configured otherwise; every other plugin
// runs in a process of its own by default.
bool built_with_hub(const PluginInfo& plugin);

class PluginProcess;

// A plugin instance. Not thread-safe: one caller at a time (running_call() excepted).
class PluginInstance {
 public:
  // Creates the instance, in the hub's process or in a child (isolation.process); throws
  // PluginError naming instance, plugin and file.
  PluginInstance(std::shared_ptr<LoadedPlugin> plugin, std::string instance_name,
                 const std::string& settings_json, std::unique_ptr<HostServices> services,
                 PluginIsolation isolation = {});
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

  const PluginIsolation& isolation() const { return isolation_; }
  // The call running now ("pull", "staff list", "delivery") and for how long; nullopt between
  // calls. Any thread may ask.
  struct RunningCall {
    const char* what;
    std::chrono::milliseconds running_for;
  };
  std::optional<RunningCall> running_call() const;
  // "source <name> (plugin <plugin>, <file>)": how every message about the instance starts.
  std::string context() const;

 private:
  class CallTimer;
  std::shared_ptr<LoadedPlugin> plugin_;
  std::string name_;
  std::unique_ptr<HostServices> services_;
  PluginIsolation isolation_;
  kpihub_instance* instance_ = nullptr;     // in the hub's process
  std::unique_ptr<PluginProcess> process_;  // in a child
  std::atomic<const char*> call_what_{nullptr};
  std::atomic<int64_t> call_started_ms_{0};  // steady clock
};

// Everything the host reads through a page's pointers and counts, checked before it reads a
// record (NULL arrays with counts, record sizes, records without a cursor): throws PluginError
// naming `context`.
void check_page(const kpihub_page& page, const std::string& context);

}  // namespace kpihub
