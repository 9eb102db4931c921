#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/metrics.hpp>
#include <kpihub/net.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kpihub {

int64_t SystemClock::now_unix_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
// Tokens, keys and passwords are far below this; a certificate chain is not a secret here.
constexpr off_t kMaxSecretBytes = 64 * 1024;
}  // namespace

std::string SecretResolver::resolve(std::string_view reference) const {
  const std::string ref(reference);
  if (ref.rfind("env:", 0) == 0) {
    const std::string name = ref.substr(4);
    const char* v = std::getenv(name.c_str());
    if (v == nullptr || *v == '\0') {
      throw std::runtime_error("secret " + ref + ": environment variable " + name + " is not set");
    }
    return v;
  }
  if (ref.rfind("file:", 0) == 0) {
    std::filesystem::path p = ref.substr(5);
    if (p.is_relative()) p = std::filesystem::path(base_dir_) / p;
    // A secret is a small regular file. Anything else (a device that never ends, a FIFO that
    // never opens, a log file named by mistake) is refused, and nothing blocks: a plugin in a
    // process of its own may name any reference, and the hub's thread answers it.
    const int fd = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("secret " + ref + ": cannot read file " + p.string());
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw std::runtime_error("secret " + ref + ": " + p.string() + " is not a regular file");
    }
    if (st.st_size > kMaxSecretBytes) {
      ::close(fd);
      throw std::runtime_error("secret " + ref + ": file " + p.string() + " is " +
                               std::to_string(st.st_size) + " bytes, more than a secret's " +
                               std::to_string(kMaxSecretBytes));
    }
    std::string value(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < value.size()) {
      const ssize_t n = ::read(fd, value.data() + got, value.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    value.resize(got);
    // Editors leave a trailing newline; it is never part of the secret.
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    if (value.empty())
      throw std::runtime_error("secret " + ref + ": file " + p.string() + " is empty");
    return value;
  }
  throw std::runtime_error("secret reference \"" + ref + "\" must start with file: or env:");
}

namespace {

std::string_view view(kpihub_str s) {
  return s.data ? std::string_view(s.data, s.size) : std::string_view();
}

std::optional<std::string> opt(kpihub_str s) {
  if (!s.data || s.size == 0) return std::nullopt;
  return std::string(view(s));
}

struct ClientBox {
  std::mutex mutex;  // net::HttpClient is not thread-safe; a plugin may share one across threads
  std::unique_ptr<net::HttpClient> client;
};

struct ResponseBox {
  net::Response response;
  std::vector<kpihub_header> headers;
};

}  // namespace

struct HostServicesAccess {
  static HostServices& self(void* ctx) { return *static_cast<HostServices*>(ctx); }

  static void log(void* ctx, kpihub_log_level level, kpihub_str message) {
    auto& s = self(ctx);
    s.logger_.log(log_level_of(level), s.instance_, view(message));
  }
  static int64_t now(void* ctx) { return self(ctx).clock_.now_unix_ms(); }
  static int32_t offset(void* ctx) { return self(ctx).utc_offset_minutes_; }

  static kpihub_status secret(void* ctx, kpihub_str reference, char* out, size_t capacity,
                              size_t* out_size, kpihub_error_buf err) {
    try {
      const std::string value = self(ctx).secrets_.resolve(view(reference));
      *out_size = value.size();
      if (value.size() <= capacity)
        std::copy_n(value.data(), value.size(),
                    out);  // not a C string: the size goes out beside it
      return KPIHUB_OK;
    } catch (const std::exception& e) {
      write_error(err, e.what());
      return KPIHUB_ERR_CONFIG;
    }
  }

  // ABI 1.0: one bare label value, which becomes the label `label`.
  static void metric_add(void* ctx, kpihub_str name, kpihub_str label, double delta) {
    MetricLabels labels;
    if (label.data && label.size) labels.push_back({"label", std::string(view(label))});
    add_sample(self(ctx), view(name), std::move(labels), delta);
  }

  static void metric_add_labeled(void* ctx, kpihub_str name, const kpihub_label* labels,
                                 size_t count, double delta) {
    auto& s = self(ctx);
    MetricLabels given;
    given.reserve(count);
    for (std::size_t i = 0; labels && i < count; ++i) {
      const std::string label_name(view(labels[i].name));
      if (label_name == "source" || label_name == "sink") {
        s.warn_metric_once(view(name), "label \"" + label_name +
                                           "\" is the host's (the instance's name); the sample "
                                           "is dropped");
        return;
      }
      given.push_back({label_name, std::string(view(labels[i].value))});
    }
    add_sample(s, view(name), std::move(given), delta);
  }

  static void add_sample(HostServices& s, std::string_view name, MetricLabels labels,
                         double delta) {
    if (!s.metrics_) return;
    labels.push_back({s.instance_label_, s.instance_});
    try {
      s.metrics_->add(name, labels, delta, MetricOwner::plugin);
    } catch (const std::invalid_argument& e) {
      s.warn_metric_once(name, std::string(e.what()) + "; the sample is dropped");
    }
  }

  static kpihub_status metric_declare(void* ctx, kpihub_str name, kpihub_metric_type type,
                                      kpihub_str help, kpihub_error_buf err) {
    auto& s = self(ctx);
    if (!s.metrics_) return KPIHUB_OK;
    if (type != KPIHUB_METRIC_COUNTER && type != KPIHUB_METRIC_GAUGE) {
      write_error(err, "metric " + std::string(view(name)) + ": unknown type " +
                           std::to_string(static_cast<int>(type)));
      return KPIHUB_ERR_CONFIG;
    }
    try {
      s.metrics_->declare(view(name),
                          type == KPIHUB_METRIC_COUNTER ? MetricType::counter : MetricType::gauge,
                          view(help), MetricOwner::plugin);
      return KPIHUB_OK;
    } catch (const std::invalid_argument& e) {
      write_error(err, e.what());
      return KPIHUB_ERR_CONFIG;
    }
  }

  static kpihub_status client_create(void* ctx, const kpihub_http_options* options,
                                     kpihub_http_client** out, kpihub_error_buf err) {
    try {
      net::ClientOptions o;
      if (options) {
        o.ca_file = opt(options->ca_file);
        o.client_cert_file = opt(options->client_cert_file);
        o.client_key_file = opt(options->client_key_file);
        o.verify = options->insecure_skip_verify == 0;
        if (options->connect_timeout_ms)
          o.connect_timeout = std::chrono::milliseconds(options->connect_timeout_ms);
        if (options->request_timeout_ms)
          o.request_timeout = std::chrono::milliseconds(options->request_timeout_ms);
      }
      if (!o.verify) {
        self(ctx).logger_.warn(
            self(ctx).instance_,
            "TLS certificate and host-name verification is OFF (insecure_skip_verify)");
      }
      auto box = std::make_unique<ClientBox>();
      box->client = std::make_unique<net::HttpClient>(o);
      *out = reinterpret_cast<kpihub_http_client*>(box.release());
      return KPIHUB_OK;
    } catch (const std::exception& e) {
      write_error(err, e.what());
      return KPIHUB_ERR_CONFIG;
    }
  }

  static kpihub_status request(void* ctx, kpihub_http_client* client,
                               const kpihub_http_request* req, kpihub_http_response* out,
                               kpihub_error_buf err) {
    auto* box = reinterpret_cast<ClientBox*>(client);
    const auto started = std::chrono::steady_clock::now();
    // log_level trace: every request, its URL without the query (which may carry tokens).
    const auto trace = [&](const std::string& outcome) {
      std::string url(view(req->url));
      url = url.substr(0, url.find('?'));
      const auto authority = url.find("://");
      const auto at = authority == std::string::npos ? authority : url.find('@', authority + 3);
      if (at != std::string::npos && at < url.find('/', authority + 3)) {
        url.erase(authority + 3, at - authority - 2);  // user:password@
      }
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
      self(ctx).logger_.trace(self(ctx).instance_, std::string(view(req->method)) + " " + url +
                                                       ": " + outcome + " in " +
                                                       std::to_string(ms) + " ms");
    };
    try {
      net::Headers headers;
      headers.reserve(req->header_count);
      for (std::size_t i = 0; i < req->header_count; ++i) {
        headers.emplace_back(std::string(view(req->headers[i].name)),
                             std::string(view(req->headers[i].value)));
      }
      auto rb = std::make_unique<ResponseBox>();
      {
        std::lock_guard<std::mutex> lock(box->mutex);
        rb->response = box->client->request(std::string(view(req->method)),
                                            std::string(view(req->url)), headers, view(req->body));
      }
      rb->headers.reserve(rb->response.headers.size());
      for (const auto& [k, v] : rb->response.headers) {
        rb->headers.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
      }
      out->struct_size = sizeof(*out);
      out->status = rb->response.status;
      out->headers = rb->headers.data();
      out->header_count = rb->headers.size();
      out->body = {rb->response.body.data(), rb->response.body.size()};
      trace("HTTP " + std::to_string(out->status) + ", " + std::to_string(out->body.size) +
            " bytes");
      out->host_private = rb.release();
      return KPIHUB_OK;
    } catch (const net::HttpError& e) {
      trace(std::string("failed: ") + e.what());
      write_error(err, e.what());
      return e.kind() == net::FailureKind::transient ? KPIHUB_ERR_TRANSIENT : KPIHUB_ERR_CONFIG;
    } catch (const std::exception& e) {
      write_error(err, e.what());
      return KPIHUB_ERR_INTERNAL;
    }
  }

  static void response_free(void*, kpihub_http_response* resp) {
    if (resp == nullptr) return;
    delete static_cast<ResponseBox*>(resp->host_private);
    resp->host_private = nullptr;
  }

  static void client_destroy(void*, kpihub_http_client* client) {
    delete reinterpret_cast<ClientBox*>(client);
  }

  static int32_t stop_requested(void* ctx) { return self(ctx).stop_requested() ? 1 : 0; }

  static void sleep_ms(void* ctx, uint32_t ms) {
    self(ctx).stop_->wait_for(std::chrono::milliseconds(ms));
  }
};

HostServices::HostServices(std::string plugin_instance, Logger& logger, const Clock& clock,
                           const SecretResolver& secrets, Metrics* metrics,
                           int32_t utc_offset_minutes, StopSignal* stop)
    : instance_(std::move(plugin_instance)),
      logger_(logger),
      clock_(clock),
      secrets_(secrets),
      metrics_(metrics),
      utc_offset_minutes_(utc_offset_minutes),
      stop_(stop ? stop : &own_stop_) {
  api_.struct_size = sizeof(api_);
  api_.ctx = this;
  api_.log = &HostServicesAccess::log;
  api_.now_unix_ms = &HostServicesAccess::now;
  api_.utc_offset_minutes = &HostServicesAccess::offset;
  api_.secret = &HostServicesAccess::secret;
  api_.metric_add = &HostServicesAccess::metric_add;
  api_.http_client_create = &HostServicesAccess::client_create;
  api_.http_request = &HostServicesAccess::request;
  api_.http_response_free = &HostServicesAccess::response_free;
  api_.http_client_destroy = &HostServicesAccess::client_destroy;
  api_.stop_requested = &HostServicesAccess::stop_requested;
  api_.sleep_ms = &HostServicesAccess::sleep_ms;
  api_.metric_declare = &HostServicesAccess::metric_declare;
  api_.metric_add_labeled = &HostServicesAccess::metric_add_labeled;
}

LogLevel log_level_of(kpihub_log_level level) {
  switch (level) {
    case KPIHUB_LOG_DEBUG:
      return LogLevel::debug;
    case KPIHUB_LOG_WARN:
      return LogLevel::warn;
    case KPIHUB_LOG_ERROR:
      return LogLevel::error;
    default:
      return LogLevel::info;
  }
}

void write_error(kpihub_error_buf err, std::string_view message) {
  if (err.data == nullptr || err.capacity == 0) return;
  const std::size_t n = std::min(message.size(), err.capacity - 1);
  std::memcpy(err.data, message.data(), n);
  err.data[n] = '\0';
}

void HostServices::log(LogLevel level, std::string_view message) {
  logger_.log(level, instance_, message);
}

void HostServices::warn_metric_once(std::string_view metric, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(metric_warnings_mutex_);
    if (!metric_warnings_.emplace(metric).second) return;
  }
  logger_.warn(instance_, why + " (said once per metric)");
}

HostServices::~HostServices() = default;

void StopSignal::request() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
}

void StopSignal::wait_for(std::chrono::milliseconds ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, ms, [&] { return stop_.load(); });
}

}  // namespace kpihub
