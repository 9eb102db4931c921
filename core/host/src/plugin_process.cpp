#include "plugin_process.hpp"

#include <kpihub/logger.hpp>

#include <boost/dll/runtime_symbol_info.hpp>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

extern char** environ;

namespace kpihub {
namespace {

using plugin_wire::Message;
using plugin_wire::Reader;
using plugin_wire::WireError;
using plugin_wire::Writer;

// The child's end of the socket: the descriptor it finds it on.
constexpr int kChildSocketFd = 3;
// How long a child asked to stop, or at its end, may take before it is killed.
constexpr int64_t kStopGraceMs = 5000;
// A wait re-reads the stop flag this often.
constexpr int64_t kPollMs = 100;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A question, a log line or a metric is small: only a call's result may be large.
constexpr std::size_t kMaxQuestionBytes = std::size_t{1} << 20;
// What one message's arrays may take beyond the message (plugin_wire::DecodeBudget).
constexpr std::size_t kDecodeBudgetFactor = 2;
// At most this many labels on one metric sample (a plugin's series are its own business, within
// reason).
constexpr std::size_t kMaxLabels = 32;
// Buffers larger than this are given back after the call that needed them.
constexpr std::size_t kKeepBufferBytes = std::size_t{1} << 20;
// What the plugin's own error text may be, as in the hub's process (its 2 KB buffer).
constexpr std::size_t kMaxErrorText = 2047;
// Loading a plugin and creating its instance (a restart too) gets at least this long, whatever
// the call's time limit.
constexpr int64_t kMinCreateLimitMs = 30000;

std::string child_program(const PluginIsolation& isolation) {
  if (!isolation.program.empty()) return isolation.program;
  return (boost::dll::program_location().parent_path() / "kpihub-plugin-process").string();
}

}  // namespace

struct PluginProcess::ChildEnded {
  std::string why;
};

PluginProcess::PluginProcess(const PluginInfo& plugin, std::string instance_name,
                             std::string settings_json, HostServices& services,
                             PluginIsolation isolation, std::string context)
    : plugin_(plugin),
      instance_name_(std::move(instance_name)),
      settings_json_(std::move(settings_json)),
      services_(services),
      isolation_(std::move(isolation)),
      context_(std::move(context)) {
  start();
}

PluginProcess::~PluginProcess() {
  end_child(false);
}

void PluginProcess::start() {
  const std::string program = child_program(isolation_);
  if (::access(program.c_str(), X_OK) != 0) {
    throw PluginError(KPIHUB_ERR_CONFIG, context_ + ": cannot run its process: " + program +
                                             " is not an executable file (" + std::strerror(errno) +
                                             ")");
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw PluginError(KPIHUB_ERR_TRANSIENT,
                      context_ + ": cannot make its process's socket: " + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears close-on-exec on the copy: the child keeps its end, and only that.
  posix_spawn_file_actions_adddup2(&actions, fds[1], kChildSocketFd);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // A process group of its own: what the plugin starts ends with it, and a Ctrl-C at the
  // hub's terminal is the hub's to handle, not the child's.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  const std::string parent = std::to_string(::getpid());
  std::vector<std::string> args = {program, "--fd", std::to_string(kChildSocketFd), "--parent",
                                   parent};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw PluginError(KPIHUB_ERR_TRANSIENT, context_ + ": cannot start its process " + program +
                                                ": " + std::strerror(rc));
  }
  pid_ = pid;
  socket_ = fds[0];
  ::fcntl(socket_, F_SETFL, ::fcntl(socket_, F_GETFL) | O_NONBLOCK);
  inbox_.clear();
  inbox_at_ = 0;
  services_.log(LogLevel::info,
                "plugin process started (pid " + std::to_string(pid_) + ", " + program + ")");
  Writer w(Message::create);
  w.str(plugin_.file);
  w.str(instance_name_);
  w.str(settings_json_);
  w.i32(services_.api()->utc_offset_minutes(services_.api()->ctx));
  std::string error;
  kpihub_status st = KPIHUB_OK;
  try {
    call(w.finish(), "create", std::max<int64_t>(isolation_.time_limit.count(), kMinCreateLimitMs));
    Reader r(std::string_view(result_).substr(1));
    st = read_status(r, error);
    r.expect_done();
  } catch (const ChildEnded& e) {
    throw PluginError(KPIHUB_ERR_TRANSIENT, context_ + ": " + e.why + " while it was created");
  } catch (const WireError& e) {
    const std::string ended = end_child(true);
    throw PluginError(KPIHUB_ERR_INTERNAL, context_ + ": " + ended +
                                               " after answering create with a message the hub "
                                               "cannot read (" +
                                               e.what() + ")");
  } catch (...) {
    end_child(true);
    throw;
  }
  if (st != KPIHUB_OK) {
    end_child(false);
    throw PluginError(
        st, context_ + ": configuration refused: " + (error.empty() ? "no reason given" : error));
  }
}

std::string PluginProcess::end_child(bool kill_first) {
  if (pid_ <= 0) return "its process had ended";
  const pid_t pid = pid_;
  pid_ = -1;
  if (socket_ >= 0) {
    // Closing its socket tells the child to destroy the instance and exit.
    ::close(socket_);
    socket_ = -1;
  }
  const std::string who = "its process (pid " + std::to_string(pid) + ")";
  bool killed = kill_first;
  if (kill_first) ::kill(pid, SIGKILL);
  int status = 0;
  const int64_t deadline = steady_ms() + kStopGraceMs;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (steady_ms() >= deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Whatever the plugin started (its process group) goes with it.
  ::kill(-pid, SIGKILL);
  if (killed) return who + " was killed";
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigabbrev_np(sig);
    return who + " was killed by signal " + std::to_string(sig) + " (" +
           (name ? std::string("SIG") + name + ", " : std::string()) + ::strsignal(sig) + ")";
  }
  if (WIFEXITED(status)) return who + " exited with status " + std::to_string(WEXITSTATUS(status));
  return who + " ended";
}

void PluginProcess::fail_child(const std::string& why, bool kill_first) {
  const std::string ended = end_child(kill_first);
  throw ChildEnded{why.empty() ? ended : why + "; " + ended};
}

kpihub_status PluginProcess::failed(const char* what, const std::string& why, std::string& error) {
  error = why + " during " + what + "; it is started again at the next call";
  return KPIHUB_ERR_TRANSIENT;
}

kpihub_status PluginProcess::read_status(Reader& r, std::string& error) {
  const uint32_t st = r.u32();
  error = r.string();
  if (error.size() > kMaxErrorText) error.resize(kMaxErrorText);
  if (st > KPIHUB_ERR_INTERNAL) return KPIHUB_ERR_INTERNAL;
  return static_cast<kpihub_status>(st);
}

void PluginProcess::send_frame(const std::string& frame, int64_t deadline_ms, const char* what) {
  std::size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = ::send(socket_, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // The child closed its end: it is ending; how it ended says why.
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) fail_child("", false);
    if (steady_ms() >= deadline_ms) {
      fail_child(std::string(what) + " was not taken within " +
                     duration_text(std::chrono::milliseconds(call_limit_ms_)) + " (time_limit_ms)",
                 true);
    }
    pollfd p{socket_, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(deadline_ms - steady_ms(), kPollMs)));
  }
}

void PluginProcess::receive_frame(int64_t deadline_ms, const char* what) {
  for (;;) {
    const std::size_t buffered = inbox_.size() - inbox_at_;
    if (buffered >= 4) {
      uint32_t n = 0;
      std::memcpy(&n, inbox_.data() + inbox_at_, 4);
      // Only a call's result may be large; the type is known once its byte is there.
      const std::size_t limit =
          buffered < 5 || static_cast<Message>(inbox_[inbox_at_ + 4]) == Message::result
              ? isolation_.max_message_bytes
              : kMaxQuestionBytes;
      if (n > limit) {
        fail_child("a message of " + std::to_string(n) + " bytes came, more than the " +
                       std::to_string(limit) + " a message may have",
                   true);
      }
      if (buffered >= 4 + static_cast<std::size_t>(n)) {
        result_.assign(inbox_, inbox_at_ + 4, n);
        inbox_at_ += 4 + static_cast<std::size_t>(n);
        return;
      }
    }
    const int64_t now = steady_ms();
    if (!stop_sent_ && services_.stop_requested()) {
      // The hub stops: the child's plugin sees stop_requested() and returns early.
      ::kill(pid_, SIGTERM);
      stop_sent_ = true;
      stop_deadline_ms_ = now + kStopGraceMs;
    }
    if (stop_sent_ && now >= stop_deadline_ms_) {
      fail_child("the plugin did not end " + std::string(what) + " within " +
                     std::to_string(kStopGraceMs / 1000) + " s of the hub's stop",
                 true);
    }
    if (now >= deadline_ms) {
      fail_child(std::string(what) + " did not return within " +
                     duration_text(std::chrono::milliseconds(call_limit_ms_)) + " (time_limit_ms)",
                 true);
    }
    // What was taken is dropped before more is read, so the buffer holds at most one message
    // and what came after it.
    if (inbox_at_ > 0) {
      inbox_.erase(0, inbox_at_);
      inbox_at_ = 0;
    }
    pollfd p{socket_, POLLIN, 0};
    const int64_t wait = std::min<int64_t>(deadline_ms - now, kPollMs);
    const int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(wait, 0)));
    if (ready <= 0) continue;
    char buffer[65536];
    const ssize_t got = ::recv(socket_, buffer, sizeof buffer, 0);
    if (got > 0) {
      inbox_.append(buffer, static_cast<std::size_t>(got));
      continue;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    // The socket closed: the child is gone (or going). Its end says why.
    fail_child("", false);
  }
}

void PluginProcess::release_large_buffers() {
  if (result_.capacity() > kKeepBufferBytes) std::string().swap(result_);
  if (inbox_.capacity() > kKeepBufferBytes && inbox_at_ == inbox_.size()) {
    std::string().swap(inbox_);
    inbox_at_ = 0;
  }
  page_ = {};
  staff_ = {};
  delivery_ = {};
}

void PluginProcess::call(const std::string& frame, const char* what, int64_t time_limit_ms) {
  if (pid_ <= 0) start();
  release_large_buffers();
  stop_sent_ = false;
  call_limit_ms_ = time_limit_ms;
  try {
    exchange(frame, what, steady_ms() + time_limit_ms);
  } catch (const ChildEnded&) {
    throw;
  } catch (...) {
    // The conversation is in an unknown state: a child left waiting for a reply, or frames of
    // this call still queued, would answer the next call with this one's.
    end_child(true);
    throw;
  }
}

void PluginProcess::exchange(const std::string& frame, const char* what, int64_t deadline) {
  send_frame(frame, deadline, what);
  for (;;) {
    receive_frame(deadline, what);
    try {
      Reader r(result_);
      const Message type = r.type();
      if (type == Message::result) return;
      answer(r, type, deadline, what);
    } catch (const WireError& e) {
      fail_child("a message the hub cannot read came (" + std::string(e.what()) + ")", true);
    }
  }
}

void PluginProcess::answer(Reader& q, Message type, int64_t deadline_ms, const char* what) {
  const kpihub_host_api* api = services_.api();
  switch (type) {
    case Message::log: {
      const int32_t level = q.i32();
      const kpihub_str message = q.str();
      q.expect_done();
      const LogLevel l = level < static_cast<int32_t>(LogLevel::trace) ||
                                 level > static_cast<int32_t>(LogLevel::error)
                             ? LogLevel::info
                             : static_cast<LogLevel>(level);
      services_.log(l, message.data ? std::string_view(message.data, message.size) : "");
      return;
    }
    case Message::metric_add: {
      const kpihub_str name = q.str();
      const kpihub_str label = q.str();
      const double delta = q.f64();
      q.expect_done();
      api->metric_add(api->ctx, name, label, delta);
      return;
    }
    case Message::metric_add_labeled: {
      const kpihub_str name = q.str();
      const std::size_t count = q.count(2);
      if (count > kMaxLabels) {
        throw WireError("a metric sample with " + std::to_string(count) + " labels, more than " +
                        std::to_string(kMaxLabels));
      }
      std::vector<kpihub_label> labels(count);
      for (auto& l : labels) {
        l.name = q.str();
        l.value = q.str();
      }
      const double delta = q.f64();
      q.expect_done();
      api->metric_add_labeled(api->ctx, name, labels.data(), labels.size(), delta);
      return;
    }
    case Message::metric_declare: {
      const kpihub_str name = q.str();
      const uint32_t metric_type = q.u32();
      const kpihub_str help = q.str();
      q.expect_done();
      char err[1024] = {0};
      const kpihub_status st = api->metric_declare(
          api->ctx, name, static_cast<kpihub_metric_type>(metric_type), help, {err, sizeof err});
      Writer w(Message::reply);
      w.u32(st);
      w.str(std::string_view(err));
      send_frame(w.finish(), deadline_ms, what);
      return;
    }
    case Message::now: {
      q.expect_done();
      Writer w(Message::reply);
      w.i64(api->now_unix_ms(api->ctx));
      send_frame(w.finish(), deadline_ms, what);
      return;
    }
    case Message::secret: {
      const kpihub_str reference = q.str();
      q.expect_done();
      std::string value(4096, '\0');
      std::size_t size = 0;
      char err[1024] = {0};
      kpihub_status st =
          api->secret(api->ctx, reference, value.data(), value.size(), &size, {err, sizeof err});
      if (st == KPIHUB_OK && size > value.size()) {
        value.resize(size);
        st = api->secret(api->ctx, reference, value.data(), value.size(), &size, {err, sizeof err});
      }
      value.resize(st == KPIHUB_OK ? std::min(size, value.size()) : 0);
      Writer w(Message::reply);
      w.u32(st);
      w.str(std::string_view(err));
      w.str(std::string_view(value));
      send_frame(w.finish(), deadline_ms, what);
      return;
    }
    default:
      throw WireError("a message of type " + std::to_string(static_cast<int>(type)) + " during " +
                      what);
  }
}

// One call as the plugin's own function answers it: the child's status, then `decode` reads
// what it returned (`what_came`: how a message it cannot read is named).
template <typename Decode>
kpihub_status PluginProcess::answered_call(const std::string& frame, const char* what,
                                           const char* what_came, std::string& error,
                                           Decode decode) {
  try {
    call(frame, what, isolation_.time_limit.count());
    Reader r(std::string_view(result_).substr(1));
    const kpihub_status st = read_status(r, error);
    if (st != KPIHUB_OK) return st;
    plugin_wire::DecodeBudget budget(kDecodeBudgetFactor * isolation_.max_message_bytes);
    decode(r, budget);
    r.expect_done();
    return KPIHUB_OK;
  } catch (const ChildEnded& e) {
    return failed(what, e.why, error);
  } catch (const WireError& e) {
    release_large_buffers();
    const std::string ended = end_child(true);
    return failed(what,
                  std::string(what_came) + " the hub cannot read came (" + e.what() + "); " + ended,
                  error);
  }
}

kpihub_status PluginProcess::pull(kpihub_str cursor, kpihub_page* out, std::string& error) {
  Writer w(Message::pull);
  w.str(cursor);
  return answered_call(w.finish(), "pull", "a page", error,
                       [&](Reader& r, plugin_wire::DecodeBudget& budget) {
                         plugin_wire::read_page(r, page_, budget);
                         *out = page_.page;
                       });
}

kpihub_status PluginProcess::list_staff(const kpihub_staff_entry** out, size_t* count,
                                        std::string& error) {
  return answered_call(
      Writer(Message::list_staff).finish(), "staff list", "a staff list", error,
      [&](Reader& r, plugin_wire::DecodeBudget& budget) {
        plugin_wire::read_staff(r, staff_, budget);
        static const kpihub_staff_entry kNone{};
        // Listed and empty is present, with no entries.
        *out = !staff_.listed ? nullptr : staff_.entries.empty() ? &kNone : staff_.entries.data();
        *count = staff_.entries.size();
      });
}

kpihub_status PluginProcess::deliver(const kpihub_batch& batch, kpihub_delivery* out,
                                     std::string& error) {
  Writer w(Message::deliver);
  plugin_wire::write_batch(w, batch);
  return answered_call(w.finish(), "delivery", "results", error,
                       [&](Reader& r, plugin_wire::DecodeBudget& budget) {
                         plugin_wire::read_delivery(r, delivery_, budget);
                         *out = delivery_.delivery;
                       });
}

}  // namespace kpihub
