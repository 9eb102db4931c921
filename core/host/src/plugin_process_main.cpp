// kpihub-plugin-process: runs one plugin instance for the hub, in a process of its own
// (issue 19 section 2; docs/operations.md, "Plugins in their own process"). The hub starts it
// with its end of a socket on --fd; this process loads the plugin through the same gate as the
// hub, creates the instance, and answers the hub's calls one at a time until the socket
// closes. HTTP, the stop flag and sleeping are served here; logs, metrics, the clock and
// secrets go to the hub, so an isolated plugin logs, counts and reads time as an in-process one
// does. A crash of the plugin ends this process only; the hub sees its socket close and reports
// the signal or exit status.
#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/plugins.hpp>

#include "plugin_wire.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kpihub {
namespace {

using plugin_wire::Message;
using plugin_wire::Reader;
using plugin_wire::Writer;

// The socket to the hub. A reader thread takes every frame the hub sends: a reply goes to the
// one question waiting for it, a call to the main loop. Any plugin thread may log or ask at any
// time (the ABI's "safe from any thread"): frames are written whole under a lock, and one
// question is asked at a time. The hub reads this process's frames only during a call, so a
// question asked between calls is answered during the next one. Once the hub is gone, sends are
// dropped and questions get no answer (nullopt), so the plugin's destroy() still runs to its end.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd), reader_([this] { read_loop(); }) {}
  ~Channel() {
    ::shutdown(fd_, SHUT_RDWR);
    reader_.join();
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  void send(const std::string& frame) {
    std::lock_guard lock(write_mutex_);
    write_all(frame);
  }
  // Sends a question and returns the hub's reply (its payload after the type); nullopt once
  // the hub is gone.
  std::optional<std::string> ask(const std::string& frame) {
    std::lock_guard asking(ask_mutex_);
    send(frame);
    std::unique_lock lock(state_mutex_);
    state_changed_.wait(lock, [&] { return reply_.has_value() || closed_; });
    if (!reply_) return std::nullopt;
    std::string reply = std::move(*reply_);
    reply_.reset();
    return reply.substr(1);
  }
  // The next call from the hub; false once the hub closed the socket.
  bool next_call(std::string& frame) {
    std::unique_lock lock(state_mutex_);
    state_changed_.wait(lock, [&] { return !calls_.empty() || closed_; });
    if (calls_.empty()) return false;
    frame = std::move(calls_.front());
    calls_.pop_front();
    return true;
  }

 private:
  void write_all(const std::string& frame) {
    std::size_t sent = 0;
    while (sent < frame.size() && !write_failed_) {
      const ssize_t n = ::send(fd_, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        write_failed_ = true;  // the hub is gone: what is left to say is dropped
        return;
      }
      sent += static_cast<std::size_t>(n);
    }
  }
  bool read_exact(char* p, std::size_t n) {
    while (n > 0) {
      const ssize_t got = ::recv(fd_, p, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  void read_loop() {
    for (;;) {
      uint32_t n = 0;
      std::string frame;
      bool ok = read_exact(reinterpret_cast<char*>(&n), 4);
      if (ok) {
        frame.resize(n);
        ok = read_exact(frame.data(), n) && n > 0;
      }
      std::lock_guard lock(state_mutex_);
      if (!ok) {
        closed_ = true;
        state_changed_.notify_all();
        return;
      }
      if (static_cast<Message>(frame[0]) == Message::reply) {
        reply_ = std::move(frame);
      } else {
        calls_.push_back(std::move(frame));
      }
      state_changed_.notify_all();
    }
  }

  int fd_;
  std::mutex write_mutex_;
  bool write_failed_ = false;  // under write_mutex_
  std::mutex ask_mutex_;       // one question at a time
  std::mutex state_mutex_;
  std::condition_variable state_changed_;
  std::optional<std::string> reply_;
  std::deque<std::string> calls_;
  bool closed_ = false;
  std::thread reader_;  // last: starts once the rest is made
};

// Logs of the host's own code run here (HTTP traces, TLS warnings) go to the hub too.
class HubLogger final : public Logger {
 public:
  explicit HubLogger(Channel& channel) : channel_(channel) {}
  void log(LogLevel level, std::string_view, std::string_view message, std::string_view) override {
    Writer w(Message::log);
    w.i32(static_cast<int32_t>(level));
    w.str(message);
    channel_.send(w.finish());
  }

 private:
  Channel& channel_;
};

class HubClock final : public Clock {
 public:
  explicit HubClock(Channel& channel) : channel_(channel) {}
  int64_t now_unix_ms() const override {
    const auto reply = channel_.ask(Writer(Message::now).finish());
    if (!reply) return SystemClock().now_unix_ms();  // the hub is gone
    Reader r(*reply);
    return r.i64();
  }

 private:
  Channel& channel_;
};

// The host API this process hands to the plugin: HTTP, stop and sleep from a HostServices of
// its own; everything else asked of, or told to, the hub.
class ChildHost {
 public:
  ChildHost(Channel& channel, HostServices& local, int32_t utc_offset)
      : channel_(channel), local_(local), utc_offset_(utc_offset) {
    api_ = *local_.api();
    api_.ctx = this;
    api_.log = &ChildHost::log;
    api_.now_unix_ms = &ChildHost::now;
    api_.utc_offset_minutes = &ChildHost::offset;
    api_.secret = &ChildHost::secret;
    api_.metric_add = &ChildHost::metric_add;
    api_.http_client_create = &ChildHost::client_create;
    api_.http_request = &ChildHost::request;
    api_.http_response_free = &ChildHost::response_free;
    api_.http_client_destroy = &ChildHost::client_destroy;
    api_.stop_requested = &ChildHost::stop_requested;
    api_.sleep_ms = &ChildHost::sleep_ms;
    api_.metric_declare = &ChildHost::metric_declare;
    api_.metric_add_labeled = &ChildHost::metric_add_labeled;
  }
  const kpihub_host_api* api() const { return &api_; }

 private:
  static ChildHost& self(void* ctx) { return *static_cast<ChildHost*>(ctx); }
  static const kpihub_host_api& local(void* ctx) { return *self(ctx).local_.api(); }
  static void* local_ctx(void* ctx) { return local(ctx).ctx; }

  static void log(void* ctx, kpihub_log_level level, kpihub_str message) {
    Writer w(Message::log);
    w.i32(static_cast<int32_t>(log_level_of(level)));
    w.str(message);
    self(ctx).channel_.send(w.finish());
  }
  static int64_t now(void* ctx) { return local(ctx).now_unix_ms(local_ctx(ctx)); }
  static int32_t offset(void* ctx) { return self(ctx).utc_offset_; }
  static kpihub_status secret(void* ctx, kpihub_str reference, char* out, size_t capacity,
                              size_t* out_size, kpihub_error_buf err) {
    Writer w(Message::secret);
    w.str(reference);
    const auto reply = self(ctx).channel_.ask(w.finish());
    if (!reply) {
      write_error(err, "the hub is gone");
      return KPIHUB_ERR_TRANSIENT;
    }
    Reader r(*reply);
    const auto st = static_cast<kpihub_status>(r.u32());
    const std::string message = r.string();
    const kpihub_str value = r.str();
    if (st != KPIHUB_OK) {
      write_error(err, message);
      return st;
    }
    *out_size = value.size;
    if (value.size <= capacity && value.size > 0) std::memcpy(out, value.data, value.size);
    return KPIHUB_OK;
  }
  static void metric_add(void* ctx, kpihub_str name, kpihub_str label, double delta) {
    Writer w(Message::metric_add);
    w.str(name);
    w.str(label);
    w.f64(delta);
    self(ctx).channel_.send(w.finish());
  }
  static void metric_add_labeled(void* ctx, kpihub_str name, const kpihub_label* labels,
                                 size_t count, double delta) {
    Writer w(Message::metric_add_labeled);
    w.str(name);
    const std::size_t n = labels ? count : 0;
    w.u64(n);
    for (std::size_t i = 0; i < n; ++i) {
      w.str(labels[i].name);
      w.str(labels[i].value);
    }
    w.f64(delta);
    self(ctx).channel_.send(w.finish());
  }
  static kpihub_status metric_declare(void* ctx, kpihub_str name, kpihub_metric_type type,
                                      kpihub_str help, kpihub_error_buf err) {
    Writer w(Message::metric_declare);
    w.str(name);
    w.u32(static_cast<uint32_t>(type));
    w.str(help);
    const auto reply = self(ctx).channel_.ask(w.finish());
    if (!reply) return KPIHUB_OK;  // the hub is gone: nothing will be counted anyway
    Reader r(*reply);
    const auto st = static_cast<kpihub_status>(r.u32());
    if (st != KPIHUB_OK) write_error(err, r.string());
    return st;
  }
  static kpihub_status client_create(void* ctx, const kpihub_http_options* options,
                                     kpihub_http_client** out, kpihub_error_buf err) {
    return local(ctx).http_client_create(local_ctx(ctx), options, out, err);
  }
  static kpihub_status request(void* ctx, kpihub_http_client* client,
                               const kpihub_http_request* req, kpihub_http_response* out,
                               kpihub_error_buf err) {
    return local(ctx).http_request(local_ctx(ctx), client, req, out, err);
  }
  static void response_free(void* ctx, kpihub_http_response* response) {
    local(ctx).http_response_free(local_ctx(ctx), response);
  }
  static void client_destroy(void* ctx, kpihub_http_client* client) {
    local(ctx).http_client_destroy(local_ctx(ctx), client);
  }
  static int32_t stop_requested(void* ctx) { return local(ctx).stop_requested(local_ctx(ctx)); }
  static void sleep_ms(void* ctx, uint32_t ms) { local(ctx).sleep_ms(local_ctx(ctx), ms); }

  Channel& channel_;
  HostServices& local_;
  int32_t utc_offset_;
  kpihub_host_api api_{};
};

void write_status(Writer& w, kpihub_status st, const char* err) {
  w.u32(static_cast<uint32_t>(st));
  w.str(std::string_view(err));
}

// SIGTERM from the hub asks the plugin to stop (it sees stop_requested()); the hub gone (this
// process handed to another parent) ends this process, whatever the plugin is doing. Runs until
// `done`.
void watch_signals_and_parent(HostServices& local, pid_t parent, const std::atomic<bool>& done) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  const timespec wait{0, 200 * 1000 * 1000};
  while (!done) {
    const int sig = ::sigtimedwait(&set, nullptr, &wait);
    if (sig == SIGTERM) local.request_stop();
    if (::getppid() != parent) std::_Exit(0);
  }
}

int serve(int fd, pid_t parent) {
  Channel channel(fd);
  std::string frame;
  if (!channel.next_call(frame)) return 0;
  Reader create(frame);
  if (create.type() != Message::create) {
    std::fprintf(stderr, "kpihub-plugin-process: the hub's first message is not create\n");
    return 2;
  }
  const std::string file = create.string();
  const std::string name = create.string();
  const std::string settings = create.string();
  const int32_t utc_offset = create.i32();

  HubLogger logger(channel);
  HubClock clock(channel);
  SecretResolver unused_secrets;  // the hub resolves secrets (ChildHost::secret)
  HostServices local(name, logger, clock, unused_secrets, nullptr, utc_offset);
  std::atomic<bool> done{false};
  std::thread watcher(watch_signals_and_parent, std::ref(local), parent, std::cref(done));
  struct JoinAtEnd {
    std::atomic<bool>& done;
    std::thread& watcher;
    ~JoinAtEnd() {
      done = true;
      watcher.join();
    }
  } join_at_end{done, watcher};
  ChildHost host(channel, local, utc_offset);

  auto answer_create = [&](kpihub_status st, const std::string& err) {
    Writer w(Message::result);
    write_status(w, st, err.c_str());
    channel.send(w.finish());
  };
  std::shared_ptr<LoadedPlugin> plugin;
  try {
    plugin = load_plugin(file);
  } catch (const PluginError& e) {
    answer_create(e.status(), e.what());
    return 0;
  }
  const kpihub_plugin& d = plugin->descriptor();
  kpihub_instance* instance = nullptr;
  char err[2048] = {0};
  kpihub_status st = d.create(host.api(), {name.data(), name.size()},
                              {settings.data(), settings.size()}, &instance, {err, sizeof err});
  if (st == KPIHUB_OK && instance == nullptr) st = KPIHUB_ERR_INTERNAL;
  answer_create(st, err);
  if (st != KPIHUB_OK) return 0;

  const std::string context = "plugin " + plugin->info().name;
  while (channel.next_call(frame)) {
    Reader call(frame);
    const Message type = call.type();
    Writer w(Message::result);
    err[0] = '\0';
    if (type == Message::pull && d.pull) {
      const kpihub_str cursor = call.str();
      kpihub_page page{};
      page.struct_size = sizeof page;
      st = d.pull(instance, cursor, &page, {err, sizeof err});
      if (st == KPIHUB_OK) {
        try {
          // The hub checks the page again; checked here first, so that reading it to send it
          // cannot crash on what the hub would refuse.
          check_page(page, context);
        } catch (const PluginError& e) {
          st = e.status();
          std::snprintf(err, sizeof err, "%s", e.what());
        }
      }
      write_status(w, st, err);
      if (st == KPIHUB_OK) plugin_wire::write_page(w, page);
    } else if (type == Message::list_staff && d.list_staff) {
      const kpihub_staff_entry* entries = nullptr;
      size_t count = 0;
      st = d.list_staff(instance, &entries, &count, {err, sizeof err});
      write_status(w, st, err);
      if (st == KPIHUB_OK) plugin_wire::write_staff(w, entries, count);
    } else if (type == Message::deliver && d.deliver) {
      // From the hub, which is trusted: bounded by the batch's own size only.
      plugin_wire::BatchStorage batch;
      plugin_wire::DecodeBudget budget(std::numeric_limits<std::size_t>::max());
      plugin_wire::read_batch(call, batch, budget);
      kpihub_delivery delivery{};
      delivery.struct_size = sizeof delivery;
      st = d.deliver(instance, &batch.batch, &delivery, {err, sizeof err});
      write_status(w, st, err);
      if (st == KPIHUB_OK) plugin_wire::write_delivery(w, delivery);
    } else {
      write_status(w, KPIHUB_ERR_INTERNAL, "the plugin has no such call");
    }
    channel.send(w.finish());
  }
  d.destroy(instance);
  return 0;
}

}  // namespace
}  // namespace kpihub

int main(int argc, char** argv) {
  int fd = -1;
  pid_t parent = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--fd") fd = std::atoi(argv[i + 1]);
    if (key == "--parent") parent = static_cast<pid_t>(std::atoi(argv[i + 1]));
  }
  if (fd < 0 || parent <= 0) {
    std::fprintf(stderr,
                 "kpihub-plugin-process runs a plugin for kpihub (\"isolation\": \"process\"); "
                 "the hub starts it, with --fd N --parent PID\n");
    return 2;
  }
  // Only the hub's socket is this process's; whatever else the hub had open is not. Before
  // Linux 5.9 (no close_range), each descriptor the process has is closed by name.
  if (::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0) != 0) {
    std::vector<int> open;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
      const int other = std::atoi(entry.path().filename().c_str());
      if (other > fd) open.push_back(other);
    }
    for (const int other : open) ::close(other);
  }
  // Nor is it for whatever the plugin starts (popen, system): a helper holding it would keep the
  // hub from seeing this process end.
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  // Every thread, the plugin's too, leaves SIGTERM to the watcher.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (::getppid() != parent) return 0;
  try {
    return kpihub::serve(fd, parent);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kpihub-plugin-process: %s\n", e.what());
    return 2;
  }
}
