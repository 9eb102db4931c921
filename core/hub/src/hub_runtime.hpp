// What the Hub keeps per source and per sink instance: shared by hub.cpp (start, status) and
// runner.cpp (the threads of Hub::run).
#pragma once

#include <kpihub/hub.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

namespace kpihub {

struct Hub::SourceRuntime {
  PluginInstanceConfig config;
  std::unique_ptr<PluginInstance> instance;
  std::optional<std::string> cursor;
  // False while the source keeps a staff list the hub could not read yet:
  // pulling then would quarantine its people as unknown_staff.
  bool staff_ready = true;
  std::string staff_error;
  bool staff_error_transient = true;  // false: an operator must fix it (configuration, storage)
  SourceStatus status;                // guarded by Hub::status_mutex_
  std::atomic<bool> pull_now{false};
  // From the start of a pull until a page says the source is caught up, or a pull fails: the
  // scorer waits meanwhile (HubOptions::max_scoring_hold_ms).
  std::atomic<bool> catching_up{false};
};

struct Hub::SinkRuntime {
  PluginInstanceConfig config;
  std::unique_ptr<PluginInstance> instance;
  std::unique_ptr<Forwarder> forwarder;
};

}  // namespace kpihub
