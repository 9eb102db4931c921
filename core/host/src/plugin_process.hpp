// The hub's end of a plugin instance that runs in a child process (issue 19 section 2,
// "isolation": "process"). The child, kpihub-plugin-process, loads the same .so and calls it
// as the hub would; the hub sends each call over a socket and answers the child's questions
// (clock, secrets, metric declarations) while the call runs. A crash, an exit, a hang past the
// time limit or a message the hub cannot read ends the child (and whatever it started: it leads
// a process group of its own) and is returned as a transient failure naming what happened; the
// next call starts a new child. The child is read as hostile: every frame and count is bounded.
#pragma once

#include <kpihub/abi.h>
#include <kpihub/plugins.hpp>

#include "plugin_wire.hpp"

#include <sys/types.h>
#include <cstdint>
#include <string>

namespace kpihub {

class PluginProcess {
 public:
  // Starts the child and creates the instance in it; throws PluginError with the plugin's own
  // refusal (its status and message) or the reason the child could not start.
  PluginProcess(const PluginInfo& plugin, std::string instance_name, std::string settings_json,
                HostServices& services, PluginIsolation isolation, std::string context);
  ~PluginProcess();
  PluginProcess(const PluginProcess&) = delete;
  PluginProcess& operator=(const PluginProcess&) = delete;

  // As the plugin's own functions; what they return stays valid until the next call. On a
  // failure `error` gets one line.
  kpihub_status pull(kpihub_str cursor, kpihub_page* out, std::string& error);
  kpihub_status list_staff(const kpihub_staff_entry** out, size_t* count, std::string& error);
  kpihub_status deliver(const kpihub_batch& batch, kpihub_delivery* out, std::string& error);

 private:
  struct ChildEnded;  // thrown inside a call: the child is gone, with why
  void start();
  // Ends the child: closes its socket (it destroys the instance and exits), kills it when
  // `kill_first` or when it takes longer than the grace period, reaps it, and kills what is
  // left of its process group. Returns how it ended.
  std::string end_child(bool kill_first);
  // Sends `frame` and serves the child's questions until its result, whose payload (after the
  // type) is left in result_. Throws ChildEnded; anything else thrown ends the child too.
  void call(const std::string& frame, const char* what, int64_t time_limit_ms);
  void exchange(const std::string& frame, const char* what, int64_t deadline_ms);
  void send_frame(const std::string& frame, int64_t deadline_ms, const char* what);
  void receive_frame(int64_t deadline_ms, const char* what);
  [[noreturn]] void fail_child(const std::string& why, bool kill_first);
  void answer(plugin_wire::Reader& question, plugin_wire::Message type, int64_t deadline_ms,
              const char* what);
  template <typename Decode>
  kpihub_status answered_call(const std::string& frame, const char* what, const char* what_came,
                              std::string& error, Decode decode);
  kpihub_status failed(const char* what, const std::string& why, std::string& error);
  kpihub_status read_status(plugin_wire::Reader& r, std::string& error);
  void release_large_buffers();

  PluginInfo plugin_;
  std::string instance_name_;
  std::string settings_json_;
  HostServices& services_;
  PluginIsolation isolation_;
  std::string context_;
  pid_t pid_ = -1;
  int socket_ = -1;
  // The call under way: whether the hub's stop was passed to the child, and by when it must end.
  int64_t call_limit_ms_ = 0;
  bool stop_sent_ = false;
  int64_t stop_deadline_ms_ = 0;
  std::string inbox_;  // bytes read and not yet taken as frames, from inbox_at_
  std::size_t inbox_at_ = 0;
  std::string result_;  // the last frame: what the returned page or delivery points at
  plugin_wire::PageStorage page_;
  plugin_wire::StaffStorage staff_;
  plugin_wire::DeliveryStorage delivery_;
};

}  // namespace kpihub
