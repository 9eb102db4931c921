// kpihub SDK: header-only C++ wrappers over the C ABI in <kpihub/abi.h>.
//
// An adapter author writes an ordinary C++ class and exports it with one
// macro:
//
//   class MySource : public kpihub::sdk::Source {
//    public:
//     MySource(kpihub::sdk::Host& host, kpihub::sdk::Settings& settings);
//     void pull(std::optional<std::string_view> cursor, kpihub::sdk::Page& page) override;
//   };
//   KPIHUB_SOURCE_PLUGIN(MySource, "my-source", "1.0.0", "What it reads", "{}")
//
// Exceptions thrown by the class are caught in the generated C entry points
// and turned into a status and a message; none crosses into the host.
#ifndef KPIHUB_SDK_HPP
#define KPIHUB_SDK_HPP

#include <kpihub/abi.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <deque>
#include <exception>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#define KPIHUB_SDK_VERSION "0.2.0"

namespace kpihub::sdk {

// ------------------------------------------------------------ errors ------

// The exception type decides how the host treats the failure.
class Error : public std::runtime_error {
 public:
  Error(kpihub_status status, const std::string& what)
      : std::runtime_error(what), status_(status) {}
  kpihub_status status() const noexcept { return status_; }

 private:
  kpihub_status status_;
};
struct ConfigError : Error {
  explicit ConfigError(const std::string& w) : Error(KPIHUB_ERR_CONFIG, w) {}
};
struct TransientError : Error {
  explicit TransientError(const std::string& w) : Error(KPIHUB_ERR_TRANSIENT, w) {}
};
struct AuthError : Error {
  explicit AuthError(const std::string& w) : Error(KPIHUB_ERR_AUTH, w) {}
};
struct DataError : Error {
  explicit DataError(const std::string& w) : Error(KPIHUB_ERR_DATA, w) {}
};

namespace detail {
// The host's status as the SDK's exception of that kind, so a plugin can catch
// TransientError (retry), AuthError or ConfigError by type.
[[noreturn]] inline void throw_status(kpihub_status status, const std::string& what) {
  switch (status) {
    case KPIHUB_ERR_CONFIG:
      throw ConfigError(what);
    case KPIHUB_ERR_TRANSIENT:
      throw TransientError(what);
    case KPIHUB_ERR_AUTH:
      throw AuthError(what);
    case KPIHUB_ERR_DATA:
      throw DataError(what);
    default:
      throw Error(status, what);
  }
}

inline kpihub_str view(std::string_view s) {
  return kpihub_str{s.data(), s.size()};
}
inline kpihub_str view(const std::string& s) {
  return kpihub_str{s.data(), s.size()};
}
inline kpihub_str view(const char* s) {
  return view(std::string_view(s));
}
inline kpihub_str view(const std::optional<std::string>& s) {
  return s ? kpihub_str{s->data(), s->size()} : kpihub_str{nullptr, 0};
}
inline std::string_view as_view(kpihub_str s) {
  return s.data ? std::string_view(s.data, s.size) : std::string_view();
}
inline void write_error(kpihub_error_buf err, std::string_view message) {
  if (err.data == nullptr || err.capacity == 0) return;
  const std::size_t n = std::min(message.size(), err.capacity - 1);
  std::memcpy(err.data, message.data(), n);
  err.data[n] = '\0';
}
}  // namespace detail

// -------------------------------------------------------------- host ------

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Case-insensitive header lookup.
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          })) {
        return v;
      }
    }
    return std::nullopt;
  }
};

struct HttpOptions {
  std::optional<std::string> ca_file;
  std::optional<std::string> client_cert_file;
  std::optional<std::string> client_key_file;
  bool insecure_skip_verify = false;
  unsigned connect_timeout_ms = 0;
  unsigned request_timeout_ms = 0;
};

class Host;

// An HTTP(S) client owned by the host; verification is on by default.
class HttpClient {
 public:
  HttpClient(const kpihub_host_api* api, kpihub_http_client* client) : api_(api), client_(client) {}
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  ~HttpClient() {
    if (client_) api_->http_client_destroy(api_->ctx, client_);
  }

  // Throws TransientError for network trouble, ConfigError for TLS refusals.
  HttpResponse request(std::string_view method, std::string_view url,
                       const std::vector<std::pair<std::string, std::string>>& headers = {},
                       std::string_view body = {}) {
    std::vector<kpihub_header> hs;
    hs.reserve(headers.size());
    for (const auto& [k, v] : headers) hs.push_back({detail::view(k), detail::view(v)});
    kpihub_http_request req{};
    req.struct_size = sizeof(req);
    req.method = detail::view(method);
    req.url = detail::view(url);
    req.headers = hs.data();
    req.header_count = hs.size();
    req.body = detail::view(body);
    kpihub_http_response resp{};
    resp.struct_size = sizeof(resp);
    char buf[1024] = {0};
    const kpihub_status st = api_->http_request(api_->ctx, client_, &req, &resp, {buf, sizeof buf});
    if (st != KPIHUB_OK) detail::throw_status(st, buf);
    HttpResponse out;
    out.status = resp.status;
    out.headers.reserve(resp.header_count);
    for (std::size_t i = 0; i < resp.header_count; ++i) {
      out.headers.emplace_back(std::string(detail::as_view(resp.headers[i].name)),
                               std::string(detail::as_view(resp.headers[i].value)));
    }
    out.body.assign(detail::as_view(resp.body));
    api_->http_response_free(api_->ctx, &resp);
    return out;
  }

 private:
  const kpihub_host_api* api_;
  kpihub_http_client* client_;
};

// One label of a metric series (ABI 1.1), e.g. {"outcome", "delivered"}.
struct MetricLabel {
  std::string_view name;
  std::string_view value;
};

// The host's services, as handed to the plugin's constructor.
class Host {
 public:
  explicit Host(const kpihub_host_api* api) : api_(api) {}

  void debug(std::string_view m) const { log(KPIHUB_LOG_DEBUG, m); }
  void info(std::string_view m) const { log(KPIHUB_LOG_INFO, m); }
  void warn(std::string_view m) const { log(KPIHUB_LOG_WARN, m); }
  void error(std::string_view m) const { log(KPIHUB_LOG_ERROR, m); }
  void log(kpihub_log_level level, std::string_view m) const {
    api_->log(api_->ctx, level, detail::view(m));
  }

  int64_t now_unix_ms() const { return api_->now_unix_ms(api_->ctx); }
  int utc_offset_minutes() const { return api_->utc_offset_minutes(api_->ctx); }
  bool stop_requested() const { return api_->stop_requested(api_->ctx) != 0; }
  void sleep_ms(uint32_t ms) const { api_->sleep_ms(api_->ctx, ms); }

  // `reference` is "file:/path" or "env:NAME". Throws ConfigError naming the
  // reference (never the value) when it cannot be read.
  std::string secret(std::string_view reference) const {
    std::string out(4096, '\0');
    std::size_t size = 0;
    char buf[512] = {0};
    kpihub_status st = api_->secret(api_->ctx, detail::view(reference), out.data(), out.size(),
                                    &size, {buf, sizeof buf});
    if (st == KPIHUB_OK && size > out.size()) {
      out.resize(size);
      st = api_->secret(api_->ctx, detail::view(reference), out.data(), out.size(), &size,
                        {buf, sizeof buf});
    }
    if (st != KPIHUB_OK) detail::throw_status(st, buf);
    out.resize(size);
    return out;
  }

  // Metrics (ABI 1.1). Declare each family once, in the constructor, with one line of help
  // text; then add 0 to every series an alert may watch, so that it exists from the start:
  //
  //   host.declare_counter("my_items_total", "Items read from My System, by outcome");
  //   host.metric_add("my_items_total", {{"outcome", "stored"}}, 0);
  //
  // Labels are plain name/value pairs (the host escapes the values and adds the
  // instance's own label, `source` or `sink`). Throws ConfigError when the name is not a
  // Prometheus metric name or the family was declared with another type.
  void declare_counter(std::string_view name, std::string_view help) const {
    declare_metric(name, KPIHUB_METRIC_COUNTER, help);
  }
  void declare_gauge(std::string_view name, std::string_view help) const {
    declare_metric(name, KPIHUB_METRIC_GAUGE, help);
  }
  void metric_add(std::string_view name, std::initializer_list<MetricLabel> labels,
                  double delta) const {
    std::vector<kpihub_label> raw;
    raw.reserve(labels.size());
    for (const auto& l : labels) raw.push_back({detail::view(l.name), detail::view(l.value)});
    api_->metric_add_labeled(api_->ctx, detail::view(name), raw.data(), raw.size(), delta);
  }
  void metric_add(std::string_view name, double delta) const { metric_add(name, {}, delta); }

  std::unique_ptr<HttpClient> http_client(const HttpOptions& o = {}) const {
    kpihub_http_options opts{};
    opts.struct_size = sizeof(opts);
    opts.ca_file = detail::view(o.ca_file);
    opts.client_cert_file = detail::view(o.client_cert_file);
    opts.client_key_file = detail::view(o.client_key_file);
    opts.insecure_skip_verify = o.insecure_skip_verify ? 1 : 0;
    opts.connect_timeout_ms = o.connect_timeout_ms;
    opts.request_timeout_ms = o.request_timeout_ms;
    kpihub_http_client* client = nullptr;
    char buf[1024] = {0};
    const kpihub_status st = api_->http_client_create(api_->ctx, &opts, &client, {buf, sizeof buf});
    if (st != KPIHUB_OK) detail::throw_status(st, buf);
    return std::make_unique<HttpClient>(api_, client);
  }

  const kpihub_host_api* raw() const { return api_; }

 private:
  void declare_metric(std::string_view name, kpihub_metric_type type, std::string_view help) const {
    char buf[512] = {0};
    const kpihub_status st = api_->metric_declare(api_->ctx, detail::view(name), type,
                                                  detail::view(help), {buf, sizeof buf});
    if (st != KPIHUB_OK) detail::throw_status(st, buf);
  }
  const kpihub_host_api* api_;
};

// ---------------------------------------------------------- settings ------

// The plugin's settings object, with typed getters whose errors name the key
// path and value, and a check that refuses keys the plugin did not read.
class Settings {
 public:
  Settings(std::string_view json_text, std::string path) : path_(std::move(path)) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(json_text, ec);
    if (ec) throw ConfigError(path_ + ": settings are not valid JSON: " + ec.message());
    if (v.is_null()) v = boost::json::object();
    if (!v.is_object()) throw ConfigError(path_ + ": settings must be a JSON object");
    obj_ = std::move(v.as_object());
  }
  Settings(boost::json::object obj, std::string path)
      : path_(std::move(path)), obj_(std::move(obj)) {}

  const std::string& path() const { return path_; }
  bool has(std::string_view key) const { return obj_.contains(key); }

  std::string string(std::string_view key,
                     const std::optional<std::string>& fallback = std::nullopt) {
    const auto* v = find(key);
    if (!v) return require(key, fallback);
    if (!v->is_string()) throw wrong_type(key, "a string", *v);
    return std::string(v->as_string());
  }
  std::optional<std::string> optional_string(std::string_view key) {
    const auto* v = find(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw wrong_type(key, "a string", *v);
    return std::string(v->as_string());
  }
  int64_t integer(std::string_view key, std::optional<int64_t> fallback = std::nullopt,
                  int64_t min = INT64_MIN, int64_t max = INT64_MAX) {
    const auto* v = find(key);
    if (!v) return require(key, fallback);
    int64_t out = 0;
    if (v->is_int64()) {
      out = v->as_int64();
    } else if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      out = static_cast<int64_t>(v->as_uint64());
    } else {
      throw wrong_type(key, "an integer", *v);
    }
    if (out < min || out > max) {
      throw ConfigError(path_ + "." + std::string(key) + ": " + std::to_string(out) +
                        " is outside " + std::to_string(min) + ".." + std::to_string(max));
    }
    return out;
  }
  double number(std::string_view key, std::optional<double> fallback = std::nullopt) {
    const auto* v = find(key);
    if (!v) return require(key, fallback);
    if (v->is_double()) return v->as_double();
    if (v->is_int64()) return static_cast<double>(v->as_int64());
    if (v->is_uint64()) return static_cast<double>(v->as_uint64());
    throw wrong_type(key, "a number", *v);
  }
  bool boolean(std::string_view key, std::optional<bool> fallback = std::nullopt) {
    const auto* v = find(key);
    if (!v) return require(key, fallback);
    if (!v->is_bool()) throw wrong_type(key, "true or false", *v);
    return v->as_bool();
  }
  Settings object(std::string_view key) {
    const auto* v = find(key);
    if (!v) return Settings(boost::json::object(), path_ + "." + std::string(key));
    if (!v->is_object()) throw wrong_type(key, "an object", *v);
    return Settings(v->as_object(), path_ + "." + std::string(key));
  }
  std::vector<std::string> string_list(std::string_view key,
                                       std::vector<std::string> fallback = {}) {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_array()) throw wrong_type(key, "a list of strings", *v);
    std::vector<std::string> out;
    for (const auto& e : v->as_array()) {
      if (!e.is_string()) throw wrong_type(key, "a list of strings", *v);
      out.emplace_back(e.as_string());
    }
    return out;
  }
  const boost::json::object& raw() const { return obj_; }

  // Call after reading every key: an unknown key is a typo the operator must
  // hear about, not a setting silently ignored.
  void reject_unknown() const {
    for (const auto& kv : obj_) {
      if (!read_.count(std::string(kv.key()))) {
        std::string known;
        for (const auto& k : read_) known += (known.empty() ? "" : ", ") + k;
        throw ConfigError(path_ + "." + std::string(kv.key()) +
                          ": unknown setting (known: " + known + ")");
      }
    }
  }

 private:
  const boost::json::value* find(std::string_view key) {
    read_.insert(std::string(key));
    return obj_.if_contains(key);
  }
  template <typename T>
  T require(std::string_view key, const std::optional<T>& fallback) const {
    if (fallback) return *fallback;
    throw ConfigError(path_ + "." + std::string(key) + ": required setting is missing");
  }
  ConfigError wrong_type(std::string_view key, const char* expected,
                         const boost::json::value& v) const {
    return ConfigError(path_ + "." + std::string(key) + ": expected " + expected + ", got " +
                       boost::json::serialize(v));
  }

  std::string path_;
  boost::json::object obj_;
  std::set<std::string> read_;
};

// ------------------------------------------------------------ source ------

// A work record as text fields (spec/kpi-model.md names). Numbers are text
// exactly as the source had them; the host validates. A source whose format has types
// (JSON) sets each field with set_json, which keeps what type the value had, so that the
// host refuses a string where a number belongs.
struct Record {
  std::string source_id;
  std::string revision;
  std::optional<std::string> retracted;
  std::optional<std::string> staff_code;
  std::optional<std::string> source_staff_id;
  std::optional<std::string> agency_code;
  std::optional<std::string> task_code;
  std::optional<std::string> work_date;
  std::optional<std::string> declared_minutes;
  std::optional<std::string> quantity;
  std::optional<std::string> product_unit;
  std::optional<std::string> title;
  std::optional<std::string> evidence_ref;
  std::optional<std::string> deadline;
  std::optional<std::string> completed_at;
  std::optional<std::string> approval_status;
  std::optional<std::string> approval_rating;
  std::optional<std::string> approval_by;
  std::optional<std::string> approval_at;
  std::optional<std::string> changed_at;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::optional<std::string> raw;
  std::optional<std::string> location;
  // A kpihub_value_kind per field, indexed by kpihub_field: KPIHUB_VALUE_TEXT unless set.
  std::array<uint8_t, KPIHUB_FIELD_COUNT> value_kinds{};

  // Sets a field's text and what kind of value it was.
  void set(kpihub_field f, std::string text, kpihub_value_kind kind = KPIHUB_VALUE_TEXT) {
    value_kinds.at(static_cast<std::size_t>(f)) = static_cast<uint8_t>(kind);
    switch (f) {
      case KPIHUB_FIELD_SOURCE_ID:
        source_id = std::move(text);
        return;
      case KPIHUB_FIELD_REVISION:
        revision = std::move(text);
        return;
      default:
        *optional_field(f) = std::move(text);
    }
  }

  // Sets a field from a JSON scalar (string, number or boolean), keeping its kind; numbers in
  // their shortest round-trip text. Returns false, setting nothing, for an object, an array
  // or null.
  bool set_json(kpihub_field f, const boost::json::value& v) {
    switch (v.kind()) {
      case boost::json::kind::string:
        set(f, std::string(v.get_string()), KPIHUB_VALUE_STRING);
        return true;
      case boost::json::kind::int64:
        set(f, std::to_string(v.get_int64()), KPIHUB_VALUE_NUMBER);
        return true;
      case boost::json::kind::uint64:
        set(f, std::to_string(v.get_uint64()), KPIHUB_VALUE_NUMBER);
        return true;
      case boost::json::kind::double_: {
        char buf[32];
        const auto res = std::to_chars(buf, buf + sizeof buf, v.get_double());
        set(f, std::string(buf, res.ptr), KPIHUB_VALUE_NUMBER);
        return true;
      }
      case boost::json::kind::bool_:
        set(f, v.get_bool() ? "true" : "false", KPIHUB_VALUE_BOOLEAN);
        return true;
      default:
        return false;
    }
  }

 private:
  std::optional<std::string>* optional_field(kpihub_field f) {
    switch (f) {
      case KPIHUB_FIELD_RETRACTED:
        return &retracted;
      case KPIHUB_FIELD_STAFF_CODE:
        return &staff_code;
      case KPIHUB_FIELD_SOURCE_STAFF_ID:
        return &source_staff_id;
      case KPIHUB_FIELD_AGENCY_CODE:
        return &agency_code;
      case KPIHUB_FIELD_TASK_CODE:
        return &task_code;
      case KPIHUB_FIELD_WORK_DATE:
        return &work_date;
      case KPIHUB_FIELD_DECLARED_MINUTES:
        return &declared_minutes;
      case KPIHUB_FIELD_QUANTITY:
        return &quantity;
      case KPIHUB_FIELD_PRODUCT_UNIT:
        return &product_unit;
      case KPIHUB_FIELD_TITLE:
        return &title;
      case KPIHUB_FIELD_EVIDENCE_REF:
        return &evidence_ref;
      case KPIHUB_FIELD_DEADLINE:
        return &deadline;
      case KPIHUB_FIELD_COMPLETED_AT:
        return &completed_at;
      case KPIHUB_FIELD_APPROVAL_STATUS:
        return &approval_status;
      case KPIHUB_FIELD_APPROVAL_RATING:
        return &approval_rating;
      case KPIHUB_FIELD_APPROVAL_BY:
        return &approval_by;
      case KPIHUB_FIELD_APPROVAL_AT:
        return &approval_at;
      case KPIHUB_FIELD_CHANGED_AT:
        return &changed_at;
      default:
        throw std::out_of_range("kpihub::sdk::Record: no field " + std::to_string(f));
    }
  }
};

struct RejectedItem {
  std::optional<std::string> source_id;
  std::string reason;  // parse_error, missing_field, bad_value, bad_encoding, ...
  std::optional<std::string> field;
  std::string message;
  std::optional<std::string> raw;
  std::optional<std::string> location;
};

// A page under construction; it owns the memory the C view points into until
// the next pull, as the ABI promises.
class Page {
 public:
  void add(Record r) { records_.push_back(std::move(r)); }
  // Room for `n` records in all, so that adding a page's records moves none of them again.
  void reserve_records(std::size_t n) { records_.reserve(n); }
  void reject(RejectedItem r) { rejected_.push_back(std::move(r)); }
  void set_cursor(std::string c) { cursor_ = std::move(c); }
  void set_caught_up(bool v) { caught_up_ = v; }
  void set_progress(std::string p) { progress_ = std::move(p); }

  std::size_t size() const { return records_.size() + rejected_.size(); }
  const std::vector<Record>& records() const { return records_; }
  const std::vector<RejectedItem>& rejected() const { return rejected_; }
  const std::optional<std::string>& cursor() const { return cursor_; }
  bool caught_up() const { return caught_up_; }

  void clear() {
    records_.clear();
    rejected_.clear();
    cursor_.reset();
    caught_up_ = false;
    progress_.clear();
  }

  // Builds the C view; valid while this Page lives unchanged.
  kpihub_page c_view() {
    c_records_.clear();
    c_records_.reserve(records_.size());
    // Every record's attributes in one array, sized first: the records point into it.
    std::size_t attribute_count = 0;
    for (const Record& r : records_) attribute_count += r.attributes.size();
    c_attrs_.clear();
    c_attrs_.reserve(attribute_count);
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const Record& r = records_[i];
      const std::size_t first = c_attrs_.size();
      for (const auto& [k, v] : r.attributes)
        c_attrs_.push_back({detail::view(k), detail::view(v)});
      kpihub_record c{};
      c.struct_size = sizeof(c);
      c.source_id = detail::view(r.source_id);
      c.revision = detail::view(r.revision);
      c.retracted = detail::view(r.retracted);
      c.staff_code = detail::view(r.staff_code);
      c.source_staff_id = detail::view(r.source_staff_id);
      c.agency_code = detail::view(r.agency_code);
      c.task_code = detail::view(r.task_code);
      c.work_date = detail::view(r.work_date);
      c.declared_minutes = detail::view(r.declared_minutes);
      c.quantity = detail::view(r.quantity);
      c.product_unit = detail::view(r.product_unit);
      c.title = detail::view(r.title);
      c.evidence_ref = detail::view(r.evidence_ref);
      c.deadline = detail::view(r.deadline);
      c.completed_at = detail::view(r.completed_at);
      c.approval_status = detail::view(r.approval_status);
      c.approval_rating = detail::view(r.approval_rating);
      c.approval_by = detail::view(r.approval_by);
      c.approval_at = detail::view(r.approval_at);
      c.changed_at = detail::view(r.changed_at);
      c.attributes = c_attrs_.data() + first;
      c.attribute_count = r.attributes.size();
      c.raw = detail::view(r.raw);
      c.location = detail::view(r.location);
      c.value_kinds = r.value_kinds.data();
      c.value_kind_count = r.value_kinds.size();
      c_records_.push_back(c);
    }
    c_rejected_.clear();
    c_rejected_.reserve(rejected_.size());
    for (const auto& r : rejected_) {
      kpihub_rejected_item c{};
      c.struct_size = sizeof(c);
      c.source_id = detail::view(r.source_id);
      c.reason = detail::view(r.reason);
      c.field = detail::view(r.field);
      c.message = detail::view(r.message);
      c.raw = detail::view(r.raw);
      c.location = detail::view(r.location);
      c_rejected_.push_back(c);
    }
    kpihub_page p{};
    p.struct_size = sizeof(p);
    p.records = c_records_.data();
    p.record_count = c_records_.size();
    p.rejected = c_rejected_.data();
    p.rejected_count = c_rejected_.size();
    p.next_cursor = detail::view(cursor_);
    p.caught_up = caught_up_ ? 1 : 0;
    p.progress = detail::view(progress_);
    return p;
  }

 private:
  std::vector<Record> records_;
  std::vector<RejectedItem> rejected_;
  std::optional<std::string> cursor_;
  bool caught_up_ = false;
  std::string progress_;
  std::vector<kpihub_record> c_records_;
  std::vector<kpihub_attribute> c_attrs_;
  std::vector<kpihub_rejected_item> c_rejected_;
};

struct StaffEntry {
  std::string staff_code;
  std::string full_name;
  std::string agency_code;
  bool leader = false;
  bool active = true;
};

class Source {
 public:
  virtual ~Source() = default;
  // Fill `page` with what comes after `cursor` (nullopt on the first pull)
  // and set its cursor. Throw TransientError to have the host retry later.
  virtual void pull(std::optional<std::string_view> cursor, Page& page) = 0;
  // The staff list the source knows, if it knows one.
  virtual std::optional<std::vector<StaffEntry>> list_staff() { return std::nullopt; }
};

// -------------------------------------------------------------- sink ------

struct BatchItem {
  kpihub_item_kind kind;
  std::string_view key;
  std::string_view json;
};

struct Batch {
  std::string_view batch_id;
  std::string_view hub_id;
  std::vector<BatchItem> items;
  uint32_t attempt = 1;
};

struct ItemResult {
  kpihub_item_outcome outcome = KPIHUB_ITEM_RETRY;
  std::string code;
  std::string message;
};

struct Delivery {
  std::vector<ItemResult> results;  // one per batch item, in order
  uint32_t retry_after_ms = 0;
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual Delivery deliver(const Batch& batch) = 0;
};

// --------------------------------------------------- export machinery -----

namespace detail {

template <typename F>
kpihub_status guarded(kpihub_error_buf err, F&& f) noexcept {
  try {
    f();
    return KPIHUB_OK;
  } catch (const Error& e) {
    write_error(err, e.what());
    return e.status();
  } catch (const std::exception& e) {
    write_error(err, std::string("unexpected error: ") + e.what());
    return KPIHUB_ERR_INTERNAL;
  } catch (...) {
    write_error(err, "unexpected error of unknown type");
    return KPIHUB_ERR_INTERNAL;
  }
}

template <typename Plugin>
struct SourceInstance {
  Host host;
  std::unique_ptr<Plugin> plugin;
  Page page;
  std::vector<StaffEntry> staff;
  std::vector<kpihub_staff_entry> c_staff;
};

template <typename Plugin>
struct SinkInstance {
  Host host;
  std::unique_ptr<Plugin> plugin;
  Delivery delivery;
  std::vector<kpihub_item_result> c_results;
};

template <typename Plugin>
kpihub_status source_create(const kpihub_host_api* host, kpihub_str name, kpihub_str settings,
                            kpihub_instance** out, kpihub_error_buf err) noexcept {
  return guarded(err, [&] {
    auto inst = std::make_unique<SourceInstance<Plugin>>(
        SourceInstance<Plugin>{Host(host), nullptr, {}, {}, {}});
    Settings s(as_view(settings), "sources." + std::string(as_view(name)) + ".settings");
    inst->plugin = std::make_unique<Plugin>(inst->host, s);
    s.reject_unknown();
    *out = inst.release();
  });
}
template <typename Plugin>
void source_destroy(kpihub_instance* instance) noexcept {
  delete static_cast<SourceInstance<Plugin>*>(instance);
}
template <typename Plugin>
kpihub_status source_pull(kpihub_instance* instance, kpihub_str cursor, kpihub_page* out,
                          kpihub_error_buf err) noexcept {
  auto* inst = static_cast<SourceInstance<Plugin>*>(instance);
  return guarded(err, [&] {
    inst->page.clear();
    // The staff list the host borrowed until this call: 11 MB for 35,000 staff, held for the
    // instance's life otherwise.
    std::vector<StaffEntry>().swap(inst->staff);
    std::vector<kpihub_staff_entry>().swap(inst->c_staff);
    std::optional<std::string_view> c;
    if (cursor.data) c = as_view(cursor);
    inst->plugin->pull(c, inst->page);
    *out = inst->page.c_view();
  });
}
template <typename Plugin>
kpihub_status source_list_staff(kpihub_instance* instance, const kpihub_staff_entry** out,
                                size_t* count, kpihub_error_buf err) noexcept {
  auto* inst = static_cast<SourceInstance<Plugin>*>(instance);
  return guarded(err, [&] {
    auto staff = inst->plugin->list_staff();
    inst->staff = staff ? std::move(*staff) : std::vector<StaffEntry>{};
    inst->c_staff.clear();
    inst->c_staff.reserve(inst->staff.size());
    for (const auto& s : inst->staff) {
      kpihub_staff_entry e{};
      e.struct_size = sizeof(e);
      e.staff_code = view(s.staff_code);
      e.full_name = view(s.full_name);
      e.agency_code = view(s.agency_code);
      e.leader = s.leader ? 1 : 0;
      e.active = s.active ? 1 : 0;
      inst->c_staff.push_back(e);
    }
    // A NULL list means "this source keeps no staff list", unlike an empty one.
    static const kpihub_staff_entry no_entries[1] = {};
    *out = staff ? (inst->c_staff.empty() ? no_entries : inst->c_staff.data()) : nullptr;
    *count = inst->c_staff.size();
  });
}

template <typename Plugin>
kpihub_status sink_create(const kpihub_host_api* host, kpihub_str name, kpihub_str settings,
                          kpihub_instance** out, kpihub_error_buf err) noexcept {
  return guarded(err, [&] {
    auto inst =
        std::make_unique<SinkInstance<Plugin>>(SinkInstance<Plugin>{Host(host), nullptr, {}, {}});
    Settings s(as_view(settings), "sinks." + std::string(as_view(name)) + ".settings");
    inst->plugin = std::make_unique<Plugin>(inst->host, s);
    s.reject_unknown();
    *out = inst.release();
  });
}
template <typename Plugin>
void sink_destroy(kpihub_instance* instance) noexcept {
  delete static_cast<SinkInstance<Plugin>*>(instance);
}
template <typename Plugin>
kpihub_status sink_deliver(kpihub_instance* instance, const kpihub_batch* batch,
                           kpihub_delivery* out, kpihub_error_buf err) noexcept {
  auto* inst = static_cast<SinkInstance<Plugin>*>(instance);
  return guarded(err, [&] {
    Batch b;
    b.batch_id = as_view(batch->batch_id);
    b.hub_id = as_view(batch->hub_id);
    b.attempt = batch->attempt;
    b.items.reserve(batch->item_count);
    for (std::size_t i = 0; i < batch->item_count; ++i) {
      b.items.push_back(
          {batch->items[i].kind, as_view(batch->items[i].key), as_view(batch->items[i].json)});
    }
    inst->delivery = inst->plugin->deliver(b);
    if (inst->delivery.results.size() != b.items.size()) {
      throw Error(KPIHUB_ERR_INTERNAL,
                  "sink returned " + std::to_string(inst->delivery.results.size()) +
                      " results for a batch of " + std::to_string(b.items.size()));
    }
    inst->c_results.clear();
    for (const auto& r : inst->delivery.results) {
      inst->c_results.push_back({r.outcome, view(r.code), view(r.message)});
    }
    out->struct_size = sizeof(*out);
    out->results = inst->c_results.data();
    out->result_count = inst->c_results.size();
    out->retry_after_ms = inst->delivery.retry_after_ms;
  });
}

#if defined(__clang__)
#define KPIHUB_SDK_COMPILER "Clang " __clang_version__
#elif defined(__GNUC__)
#define KPIHUB_SDK_COMPILER "GCC " __VERSION__
#else
#define KPIHUB_SDK_COMPILER "unknown"
#endif

#if defined(_GLIBCXX_RELEASE)
#define KPIHUB_SDK_STDLIB_STR2(x) #x
#define KPIHUB_SDK_STDLIB_STR(x) KPIHUB_SDK_STDLIB_STR2(x)
#define KPIHUB_SDK_STDLIB "libstdc++ " KPIHUB_SDK_STDLIB_STR(_GLIBCXX_RELEASE)
#elif defined(_LIBCPP_VERSION)
#define KPIHUB_SDK_STDLIB_STR2(x) #x
#define KPIHUB_SDK_STDLIB_STR(x) KPIHUB_SDK_STDLIB_STR2(x)
#define KPIHUB_SDK_STDLIB "libc++ " KPIHUB_SDK_STDLIB_STR(_LIBCPP_VERSION)
#else
#define KPIHUB_SDK_STDLIB "unknown"
#endif

}  // namespace detail
}  // namespace kpihub::sdk

#define KPIHUB_DETAIL_MANIFEST(NAME, KIND, VERSION, DESCRIPTION, SETTINGS_HELP)   \
  static const kpihub_manifest kpihub_detail_manifest = {sizeof(kpihub_manifest), \
                                                         NAME,                    \
                                                         KIND,                    \
                                                         VERSION,                 \
                                                         DESCRIPTION,             \
                                                         KPIHUB_SDK_COMPILER,     \
                                                         KPIHUB_SDK_STDLIB,       \
                                                         KPIHUB_SDK_VERSION,      \
                                                         SETTINGS_HELP};

// Exports a Source class as the plugin of this shared library.
#define KPIHUB_SOURCE_PLUGIN(CLASS, NAME, VERSION, DESCRIPTION, SETTINGS_HELP)                   \
  KPIHUB_DETAIL_MANIFEST(NAME, KPIHUB_KIND_SOURCE, VERSION, DESCRIPTION, SETTINGS_HELP)          \
  extern "C" __attribute__((visibility("default"))) const kpihub_plugin* kpihub_plugin_entry() { \
    static const kpihub_plugin descriptor = {sizeof(kpihub_plugin),                              \
                                             KPIHUB_ABI_MAJOR,                                   \
                                             KPIHUB_ABI_MINOR,                                   \
                                             &kpihub_detail_manifest,                            \
                                             &::kpihub::sdk::detail::source_create<CLASS>,       \
                                             &::kpihub::sdk::detail::source_destroy<CLASS>,      \
                                             &::kpihub::sdk::detail::source_pull<CLASS>,         \
                                             &::kpihub::sdk::detail::source_list_staff<CLASS>,   \
                                             nullptr};                                           \
    return &descriptor;                                                                          \
  }

// Exports a Sink class as the plugin of this shared library.
#define KPIHUB_SINK_PLUGIN(CLASS, NAME, VERSION, DESCRIPTION, SETTINGS_HELP)                     \
  KPIHUB_DETAIL_MANIFEST(NAME, KPIHUB_KIND_SINK, VERSION, DESCRIPTION, SETTINGS_HELP)            \
  extern "C" __attribute__((visibility("default"))) const kpihub_plugin* kpihub_plugin_entry() { \
    static const kpihub_plugin descriptor = {sizeof(kpihub_plugin),                              \
                                             KPIHUB_ABI_MAJOR,                                   \
                                             KPIHUB_ABI_MINOR,                                   \
                                             &kpihub_detail_manifest,                            \
                                             &::kpihub::sdk::detail::sink_create<CLASS>,         \
                                             &::kpihub::sdk::detail::sink_destroy<CLASS>,        \
                                             nullptr,                                            \
                                             nullptr,                                            \
                                             &::kpihub::sdk::detail::sink_deliver<CLASS>};       \
    return &descriptor;                                                                          \
  }

#endif  // KPIHUB_SDK_HPP
