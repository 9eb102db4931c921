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

std::string seconds(std::chrono::milliseconds ms) {
  const auto s = ms.count() / 1000;
  return s > 0 ? std::to_string(s) + " s" : std::to_string(ms.count()) + " ms";
}

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
  const std::string parent = std::to_string(::getpid());
  std::vector<std::string> args = {program, "--fd", std::to_string(kChildSocketFd), "--parent",
                                   parent};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
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
    call(w.finish(), "create");
    Reader r(std::string_view(result_).substr(result_at_));
    st = read_status(r, error);
    r.expect_done();
  } catch (const ChildEnded& e) {
    throw PluginError(KPIHUB_ERR_TRANSIENT, context_ + ": " + e.why);
  } catch (const WireError& e) {
    end_child(true);
    throw PluginError(KPIHUB_ERR_INTERNAL,
                      context_ +
                          ": its process answered create with a message the hub cannot "
                          "read (" +
                          e.what() + "); the process was ended");
  }
  if (st != KPIHUB_OK) {
    end_child(false);
    throw PluginError(
        st, context_ + ": configuration refused: " + (error.empty() ? "no reason given" : error));
  }
}

void PluginProcess::end_child(bool kill_first) {
  if (pid_ <= 0) return;
  if (socket_ >= 0) {
    // Closing its socket tells the child to destroy the instance and exit.
    ::close(socket_);
    socket_ = -1;
  }
  if (kill_first) ::kill(pid_, SIGKILL);
  int status = 0;
  const int64_t deadline = steady_ms() + kStopGraceMs;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (steady_ms() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
}

std::string PluginProcess::describe_end(int wait_status) const {
  const std::string who = "its process (pid " + std::to_string(pid_) + ")";
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    const char* name = ::sigabbrev_np(sig);
    return who + " was killed by signal " + std::to_string(sig) + " (" +
           (name ? std::string("SIG") + name + ", " : std::string()) + ::strsignal(sig) + ")";
  }
  if (WIFEXITED(wait_status)) {
    return who + " exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }
  return who + " ended";
}

kpihub_status PluginProcess::failed(const char* what, const std::string& why, std::string& error) {
  error = why + " during " + what + "; it is started again at the next call";
  return KPIHUB_ERR_TRANSIENT;
}

kpihub_status PluginProcess::read_status(Reader& r, std::string& error) {
  const uint32_t st = r.u32();
  error = r.string();
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
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      end_child(true);
      throw ChildEnded{"its process stopped reading (" + std::string(std::strerror(errno)) + ")"};
    }
    const int64_t left = deadline_ms - steady_ms();
    if (left <= 0) {
      const std::string pid = std::to_string(pid_);
      end_child(true);
      throw ChildEnded{std::string(what) + " was not taken within " +
                       seconds(isolation_.time_limit) + " (time_limit_ms); its process (pid " +
                       pid + ") was killed"};
    }
    pollfd p{socket_, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, kPollMs)));
  }
}

std::string_view PluginProcess::receive_frame(int64_t deadline_ms, const char* what) {
  bool stop_sent = false;
  int64_t stop_deadline = 0;
  for (;;) {
    if (inbox_.size() >= 4) {
      uint32_t n = 0;
      std::memcpy(&n, inbox_.data(), 4);
      if (n > isolation_.max_message_bytes) {
        const std::string pid = std::to_string(pid_);
        end_child(true);
        throw ChildEnded{"its process (pid " + pid + ") sent a message of " + std::to_string(n) +
                         " bytes, more than the " + std::to_string(isolation_.max_message_bytes) +
                         " a message may have, and was killed"};
      }
      if (inbox_.size() >= 4 + static_cast<std::size_t>(n)) {
        result_.assign(inbox_, 4, n);
        inbox_.erase(0, 4 + static_cast<std::size_t>(n));
        return result_;
      }
    }
    const int64_t now = steady_ms();
    if (!stop_sent && services_.stop_requested()) {
      // The hub stops: the child's plugin sees stop_requested() and returns early.
      ::kill(pid_, SIGTERM);
      stop_sent = true;
      stop_deadline = now + kStopGraceMs;
    }
    if (now >= deadline_ms || (stop_sent && now >= stop_deadline)) {
      const std::string pid = std::to_string(pid_);
      end_child(true);
      if (stop_sent && now >= stop_deadline) {
        throw ChildEnded{"its process (pid " + pid + ") did not end " + what + " within " +
                         std::to_string(kStopGraceMs / 1000) +
                         " s of the hub's stop and was killed"};
      }
      throw ChildEnded{std::string(what) + " did not return within " +
                       seconds(isolation_.time_limit) + " (time_limit_ms); its process (pid " +
                       pid + ") was killed"};
    }
    pollfd p{socket_, POLLIN, 0};
    const int64_t wait = std::min<int64_t>(deadline_ms - now, kPollMs);
    const int ready = ::poll(&p, 1, static_cast<int>(wait));
    if (ready <= 0) continue;
    char buffer[65536];
    const ssize_t got = ::recv(socket_, buffer, sizeof buffer, 0);
    if (got > 0) {
      inbox_.append(buffer, static_cast<std::size_t>(got));
      continue;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    // The socket closed: the child is gone (or going). Its end says why.
    ::close(socket_);
    socket_ = -1;
    int status = 0;
    const int64_t reap_deadline = steady_ms() + kStopGraceMs;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (steady_ms() >= reap_deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const std::string why = describe_end(status);
    pid_ = -1;
    throw ChildEnded{why};
  }
}

void PluginProcess::call(const std::string& frame, const char* what) {
  if (pid_ <= 0) start();
  const int64_t deadline = steady_ms() + isolation_.time_limit.count();
  send_frame(frame, deadline, what);
  for (;;) {
    receive_frame(deadline, what);
    try {
      Reader r(result_);
      const Message type = r.type();
      if (type == Message::result) {
        result_at_ = 1;
        return;
      }
      answer(r, type, deadline, what);
    } catch (const WireError& e) {
      const std::string pid = std::to_string(pid_);
      end_child(true);
      throw ChildEnded{"its process (pid " + pid + ") sent a message the hub cannot read (" +
                       e.what() + ") and was killed"};
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
      std::vector<kpihub_label> labels(q.count(2));
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

kpihub_status PluginProcess::pull(kpihub_str cursor, kpihub_page* out, std::string& error) {
  Writer w(Message::pull);
  w.str(cursor);
  try {
    call(w.finish(), "pull");
    Reader r(std::string_view(result_).substr(result_at_));
    const kpihub_status st = read_status(r, error);
    if (st != KPIHUB_OK) return st;
    plugin_wire::read_page(r, page_);
    r.expect_done();
    *out = page_.page;
    return KPIHUB_OK;
  } catch (const ChildEnded& e) {
    return failed("pull", e.why, error);
  } catch (const WireError& e) {
    const std::string pid = std::to_string(pid_);
    end_child(true);
    return failed("pull",
                  "its process (pid " + pid + ") sent a page the hub cannot read (" + e.what() +
                      ") and was killed",
                  error);
  }
}

kpihub_status PluginProcess::list_staff(const kpihub_staff_entry** out, size_t* count,
                                        std::string& error) {
  try {
    call(Writer(Message::list_staff).finish(), "staff list");
    Reader r(std::string_view(result_).substr(result_at_));
    const kpihub_status st = read_status(r, error);
    if (st != KPIHUB_OK) return st;
    plugin_wire::read_staff(r, staff_);
    r.expect_done();
    *out = staff_.listed ? staff_.entries.data() : nullptr;
    *count = staff_.entries.size();
    if (staff_.listed && staff_.entries.empty()) {
      static const kpihub_staff_entry kNone{};
      *out = &kNone;  // listed and empty: present, with no entries
    }
    return KPIHUB_OK;
  } catch (const ChildEnded& e) {
    return failed("staff list", e.why, error);
  } catch (const WireError& e) {
    const std::string pid = std::to_string(pid_);
    end_child(true);
    return failed("staff list",
                  "its process (pid " + pid + ") sent a staff list the hub cannot read (" +
                      e.what() + ") and was killed",
                  error);
  }
}

kpihub_status PluginProcess::deliver(const kpihub_batch& batch, kpihub_delivery* out,
                                     std::string& error) {
  Writer w(Message::deliver);
  plugin_wire::write_batch(w, batch);
  try {
    call(w.finish(), "delivery");
    Reader r(std::string_view(result_).substr(result_at_));
    const kpihub_status st = read_status(r, error);
    if (st != KPIHUB_OK) return st;
    plugin_wire::read_delivery(r, delivery_);
    r.expect_done();
    *out = delivery_.delivery;
    return KPIHUB_OK;
  } catch (const ChildEnded& e) {
    return failed("delivery", e.why, error);
  } catch (const WireError& e) {
    const std::string pid = std::to_string(pid_);
    end_child(true);
    return failed("delivery",
                  "its process (pid " + pid + ") sent results the hub cannot read (" + e.what() +
                      ") and was killed",
                  error);
  }
}

}  // namespace kpihub
