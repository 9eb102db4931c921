// config/hub.json: read with Boost.PropertyTree for structure and values; the
// same text is parsed with Boost.JSON too, because the plugins' "settings"
// objects must reach them with their JSON types intact, and because secrets
// are looked for everywhere, inside "settings" as well.
#include <kpihub/hub_config.hpp>

#include "json_node.hpp"
#include "text_util.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace kpihub {

using config_detail::JsonNode;
using config_detail::quote_value;

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr int64_t kMaxIntervalMs = 7LL * 24 * 3600 * 1000;

bool ends_with_ci(std::string_view text, std::string_view suffix) {
  if (text.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), text.end() - suffix.size(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
}

bool is_secret_key(std::string_view key) {
  for (std::string_view suffix : {"secret", "password", "token", "api_key"}) {
    if (ends_with_ci(key, suffix)) return true;
  }
  return false;
}

// "file:<path>" or "env:<NAME>": what Host::secret resolves (docs/writing-an-adapter.md).
bool is_secret_reference(const json::value& value) {
  if (!value.is_string()) return false;
  const std::string_view text = value.get_string();
  for (std::string_view scheme : {"file:", "env:"}) {
    if (text.size() > scheme.size() && text.substr(0, scheme.size()) == scheme) return true;
  }
  return false;
}

// Walks the whole document: a key that names a secret must not hold it (a reference to it is
// fine).
void reject_inline_secrets(const json::value& value, const std::string& path,
                           const std::string& file) {
  if (value.is_object()) {
    for (const auto& member : value.get_object()) {
      const std::string key(member.key());
      const std::string key_path = path.empty() ? key : path + "." + key;
      if (is_secret_key(key) && !member.value().is_null() && !is_secret_reference(member.value())) {
        // The value itself is never echoed: it is a secret.
        throw ConfigError(file + ": " + key_path +
                          ": secrets must not be written in the configuration; put it in a file "
                          "and set \"" +
                          key + "_file\", or in an environment variable and set \"" + key +
                          "_env\" (or, for a plugin that reads it with Host::secret, write a "
                          "reference: \"file:<path>\" or \"env:<NAME>\")");
      }
      reject_inline_secrets(member.value(), key_path, file);
    }
  } else if (value.is_array()) {
    const auto& array = value.get_array();
    for (std::size_t i = 0; i < array.size(); ++i) {
      reject_inline_secrets(array[i], path + "[" + std::to_string(i) + "]", file);
    }
  }
}

// Secret files named in a plugin's settings must exist; the plugin reads them
// later, and a typo is better reported at start.
void check_secret_files(const json::object& settings, const std::string& path,
                        const HubConfig& config) {
  for (const auto& member : settings) {
    const std::string key(member.key());
    const std::string key_path = path + "." + key;
    if (member.value().is_object()) {
      check_secret_files(member.value().get_object(), key_path, config);
      continue;
    }
    if (!ends_with_ci(key, "_file") || !is_secret_key(key.substr(0, key.size() - 5))) continue;
    if (!member.value().is_string()) {
      throw ConfigError(config.file + ": " + key_path + ": expected a file path (string)");
    }
    const std::string resolved =
        resolve_config_path(config, std::string(member.value().get_string()));
    if (!fs::is_regular_file(resolved)) {
      throw ConfigError(config.file + ": " + key_path + ": secret file " + quote_value(resolved) +
                        " does not exist");
    }
  }
}

std::string existing_file(const JsonNode& node, const HubConfig& config) {
  std::string resolved = resolve_config_path(config, node.non_empty_string());
  if (!fs::is_regular_file(resolved)) {
    throw node.error("file " + quote_value(resolved) + " does not exist");
  }
  return resolved;
}

}  // namespace

std::string read_hmac_secret(const std::string& path, const std::vector<std::string>& algorithms) {
  std::size_t min_bytes = 32;
  for (const auto& a : algorithms) {
    if (a == "HS384") min_bytes = std::max<std::size_t>(min_bytes, 48);
    if (a == "HS512") min_bytes = std::max<std::size_t>(min_bytes, 64);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  // Editors leave a trailing line break; it is never part of the secret.
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < min_bytes) {
    throw ConfigError(path + " holds " + std::to_string(secret.size()) +
                      " bytes; an HMAC secret needs at least " + std::to_string(min_bytes) +
                      " for the algorithms listed (a random one: openssl rand -hex " +
                      std::to_string(min_bytes) + ")");
  }
  return secret;
}

namespace {

std::vector<std::string> existing_files(const JsonNode& node, const HubConfig& config) {
  std::vector<std::string> files;
  for (const auto& element : node.list()) files.push_back(existing_file(element, config));
  if (files.empty()) throw node.error("needs at least one file");
  return files;
}

std::vector<std::string> one_or_more_files(const JsonNode& node, const HubConfig& config) {
  if (node.is_array()) return existing_files(node, config);
  return {existing_file(node, config)};
}

bool is_instance_name(const std::string& name) {
  // It becomes the source_system and the prefix of record ids ("<name>:<id>").
  if (name.empty() || !std::islower(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Settings named "*_dir" or "*_file" are paths: relative ones are resolved
// against the configuration's folder (as the hub's own paths are), so a
// plugin gets the same folder whatever directory the hub was started from.
void resolve_setting_paths(json::object& settings, const HubConfig& config) {
  for (auto& member : settings) {
    const std::string key(member.key());
    if (member.value().is_object()) {
      resolve_setting_paths(member.value().get_object(), config);
    } else if (member.value().is_string() &&
               (ends_with_ci(key, "_dir") || ends_with_ci(key, "_file"))) {
      const std::string text(member.value().get_string());
      if (!text.empty()) member.value() = resolve_config_path(config, text);
    }
  }
}

std::string settings_text(const json::value& document, const char* list, std::size_t index,
                          const JsonNode& node, const HubConfig& config) {
  const json::value* settings = nullptr;
  if (const auto* instances = document.as_object().if_contains(list)) {
    if (instances->is_array() && index < instances->get_array().size()) {
      const auto& instance = instances->get_array()[index];
      if (instance.is_object()) settings = instance.get_object().if_contains("settings");
    }
  }
  if (settings == nullptr) return "{}";
  if (!settings->is_object()) {
    throw ConfigError(config.file + ": " + node.path() + ".settings: expected an object, got " +
                      json::serialize(*settings));
  }
  check_secret_files(settings->get_object(), node.path() + ".settings", config);
  json::object resolved = settings->get_object();
  resolve_setting_paths(resolved, config);
  return json::serialize(resolved);
}

PluginInstanceConfig read_instance(const JsonNode& node, bool sink, const json::value& document,
                                   std::size_t index, const HubConfig& config) {
  std::vector<std::string> keys = {"name",     "plugin",    "enabled",      "interval_ms",
                                   "settings", "isolation", "time_limit_ms"};
  if (sink) keys.insert(keys.end(), {"batch_max_items", "batch_max_bytes"});
  node.expect_object(keys);
  PluginInstanceConfig instance;
  const JsonNode name = node.required("name");
  instance.name = name.string();
  if (!is_instance_name(instance.name)) {
    throw name.error(quote_value(instance.name) +
                     " is not a valid name (lower-case letters, digits, '_' and '-', starting "
                     "with a letter)");
  }
  instance.plugin = node.required("plugin").non_empty_string();
  if (auto n = node.child("enabled")) instance.enabled = n->boolean();
  if (auto n = node.child("interval_ms")) instance.interval_ms = n->integer(1, kMaxIntervalMs);
  if (auto n = node.child("isolation")) {
    const std::string isolation = n->string();
    if (isolation != "process" && isolation != "none") {
      throw n->error(quote_value(isolation) +
                     " is not an isolation: \"process\" (the plugin in a process of its own) or "
                     "\"none\" (in the hub's process)");
    }
    instance.isolation_process = isolation == "process";
  }
  if (auto n = node.child("time_limit_ms")) instance.time_limit_ms = n->integer(100, 86400000);
  if (auto n = node.child("batch_max_items")) {
    instance.batch_max_items = static_cast<std::size_t>(n->integer(1, 100000));
  }
  if (auto n = node.child("batch_max_bytes")) {
    instance.batch_max_bytes = static_cast<std::size_t>(n->integer(1024, 1LL << 30));
  }
  instance.settings_json = settings_text(document, sink ? "sinks" : "sources", index, node, config);
  return instance;
}

std::string sha256_hex(const JsonNode& node) {
  std::string hex = node.string();
  const bool ok = hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
                    return std::isxdigit(static_cast<unsigned char>(c));
                  });
  if (!ok) throw node.error(quote_value(hex) + " is not a SHA-256 in hex (64 characters)");
  std::transform(hex.begin(), hex.end(), hex.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return hex;
}

AdminConfig read_admin(const JsonNode& node, const HubConfig& config) {
  node.expect_object({"enabled", "listen", "token_sha256", "tokens", "jwt", "open_read_pages",
                      "tls_cert_file", "tls_key_file", "max_connections",
                      "max_connections_per_client"});
  AdminConfig admin;
  if (auto n = node.child("enabled")) admin.enabled = n->boolean();
  if (auto n = node.child("listen")) {
    admin.listen = n->string();
    const auto colon = admin.listen.rfind(':');
    const auto port =
        colon == std::string::npos
            ? std::nullopt
            : config_detail::parse_int(std::string_view(admin.listen).substr(colon + 1));
    if (colon == 0 || !port || *port < 0 || *port > 65535) {
      throw n->error(quote_value(admin.listen) + " is not host:port (e.g. 127.0.0.1:8080)");
    }
  }
  if (auto n = node.child("token_sha256")) {
    std::size_t i = 0;
    for (const auto& element : n->list()) {
      admin.tokens.push_back(
          {"token_sha256[" + std::to_string(i++) + "]", sha256_hex(element), "operate"});
    }
  }
  if (auto n = node.child("tokens")) {
    for (const auto& element : n->list()) {
      element.expect_object({"name", "sha256", "role"});
      AdminToken t;
      t.name = element.required("name").non_empty_string();
      t.sha256 = sha256_hex(element.required("sha256"));
      const auto role = element.required("role");
      t.role = role.string();
      if (t.role != "read" && t.role != "operate") {
        throw role.error(quote_value(t.role) + " is not read or operate");
      }
      admin.tokens.push_back(std::move(t));
    }
  }
  if (auto n = node.child("jwt")) {
    n->expect_object(
        {"algorithms", "hmac_secret_file", "public_key_file", "issuer", "audience", "role_claim"});
    AdminJwt jwt;
    const auto algorithms = n->required("algorithms");
    jwt.algorithms = algorithms.string_list();
    if (jwt.algorithms.empty()) throw algorithms.error("needs at least one algorithm");
    bool hmac = false, keyed = false;
    for (const auto& a : jwt.algorithms) {
      if (a == "HS256" || a == "HS384" || a == "HS512") {
        hmac = true;
      } else if (a == "RS256" || a == "RS384" || a == "RS512" || a == "ES256" || a == "ES384" ||
                 a == "ES512") {
        keyed = true;
      } else {
        throw algorithms.error(quote_value(a) +
                               " is not an accepted algorithm (HS256/384/512, RS256/384/512, "
                               "ES256/384/512; never none)");
      }
    }
    if (hmac && keyed)
      throw algorithms.error("mixes HMAC and public-key algorithms; list one kind");
    if (hmac) {
      const auto secret_file = n->required("hmac_secret_file");
      jwt.hmac_secret_file = existing_file(secret_file, config);
      try {
        read_hmac_secret(jwt.hmac_secret_file, jwt.algorithms);
      } catch (const ConfigError& e) {
        throw secret_file.error(e.what());
      }
    }
    if (keyed) jwt.public_key_file = existing_file(n->required("public_key_file"), config);
    if (auto c = n->child("issuer")) jwt.issuer = c->string();
    if (auto c = n->child("audience")) jwt.audience = c->string();
    if (auto c = n->child("role_claim")) jwt.role_claim = c->non_empty_string();
    admin.jwt = std::move(jwt);
  }
  if (auto n = node.child("open_read_pages")) admin.open_read_pages = n->boolean();
  if (auto n = node.child("tls_cert_file")) admin.tls_cert_file = existing_file(*n, config);
  if (auto n = node.child("tls_key_file")) admin.tls_key_file = existing_file(*n, config);
  if (admin.tls_cert_file.has_value() != admin.tls_key_file.has_value()) {
    throw node.error("tls_cert_file and tls_key_file go together");
  }
  if (auto n = node.child("max_connections")) {
    admin.max_connections = static_cast<std::size_t>(n->integer(1, 10000));
  }
  if (auto n = node.child("max_connections_per_client")) {
    admin.max_connections_per_client = static_cast<std::size_t>(n->integer(1, 10000));
  }
  return admin;
}

}  // namespace

std::string resolve_config_path(const HubConfig& config, const std::string& path) {
  return config_detail::resolve_path(config.base_dir, path);
}

namespace {

// The engine of a configuration that names none (no "store" key). RocksDB has been the default
// since issue 20; a configuration written for the SQLite store before then must keep opening its
// file, never start an empty RocksDB store beside it. So SQLite when:
//   - "store_path" names a SQLite store: an existing file, or a name of SQLite's (.db, .sqlite,
//     .sqlite3) for one not made yet, as `kpihub store copy` tells them (store_engine_of_path);
//   - there is no "store_path" and <data_dir>/hub.db exists (the SQLite default's path).
// When <data_dir>/hub.db and <data_dir>/hub.rocksdb both exist, the configuration must name one.
void infer_store_engine(HubConfig& config, const std::optional<fs::path>& named_path) {
  std::error_code ec;
  if (named_path) {
    if (store_engine_of_path(named_path->string()) != "sqlite") return;
    config.store = "sqlite";
    config.store_inferred =
        "no \"store\" key, and store_path " + named_path->string() +
        (fs::exists(*named_path, ec) ? " is a file, which only a SQLite store is"
                                     : " has a SQLite store's name");
    return;
  }
  const fs::path sqlite_file = fs::path(config.data_dir) / "hub.db";
  const fs::path rocksdb_folder = fs::path(config.data_dir) / "hub.rocksdb";
  if (!fs::exists(sqlite_file, ec)) return;
  if (fs::exists(rocksdb_folder, ec)) {
    throw ConfigError(config.file + ": store: no \"store\" key, and both " + sqlite_file.string() +
                      " (a SQLite store) and " + rocksdb_folder.string() +
                      " (a RocksDB store) exist: name the engine to use (\"store\": \"sqlite\" or "
                      "\"rocksdb\")");
  }
  config.store = "sqlite";
  config.store_inferred = "no \"store\" key, and the SQLite store " + sqlite_file.string() +
                          " exists (RocksDB is the default for a new store; `kpihub store copy` "
                          "moves this one)";
}

}  // namespace

std::string store_engine_of_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return "rocksdb";
  if (fs::exists(path, ec)) return "sqlite";
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".db" || ext == ".sqlite" || ext == ".sqlite3") return "sqlite";
  if (ext == ".rocksdb") return "rocksdb";
  return "";
}

HubConfig load_hub_config(const std::string& path) {
  const std::string text = config_detail::read_text_file(path);
  const auto tree = config_detail::read_json_tree(path, text);
  const json::value document = config_detail::read_json_value(path, text);
  if (!document.is_object()) throw ConfigError(path + ": top level: expected an object");
  reject_inline_secrets(document, "", path);

  HubConfig config;
  config.file = path;
  config.base_dir = fs::absolute(fs::path(path)).parent_path().lexically_normal().string();

  const JsonNode root(tree, &document, path, "");
  root.expect_object({"hub_id", "data_dir", "store", "store_path", "store_memory_mb",
                      "store_check_at_start_ms", "plugin_dir",
                      "catalog_files", "staff_file", "units_file", "rules_file", "holiday_files",
                      "today", "sources", "sinks", "admin", "log_level", "outbox_retention_days"});

  if (auto n = root.child("hub_id")) {
    config.hub_id = n->string();
    const bool ok =
        !config.hub_id.empty() &&
        std::all_of(config.hub_id.begin(), config.hub_id.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (!ok)
      throw n->error(quote_value(config.hub_id) + " is not a valid id (letters, digits, -_.)");
  }
  if (auto n = root.child("data_dir")) config.data_dir = n->non_empty_string();
  config.data_dir = resolve_config_path(config, config.data_dir);
  const auto store_key = root.child("store");
  if (store_key) {
    config.store = store_key->string();
    if (config.store != "sqlite" && config.store != "rocksdb") {
      throw store_key->error(quote_value(config.store) +
                             " is not a supported store (supported: sqlite, rocksdb)");
    }
  }
  std::optional<fs::path> named_path;
  if (auto n = root.child("store_path")) {
    // "var/hub.rocksdb/" names the folder "var/hub.rocksdb": its lock file goes beside it.
    fs::path path = resolve_config_path(config, n->non_empty_string());
    while (!path.has_filename() && path.has_relative_path()) path = path.parent_path();
    named_path = path;
  }
  if (!store_key) infer_store_engine(config, named_path);
  // A SQLite store is a file, a RocksDB store a folder: each has its own default name, so
  // switching the engine never opens the other engine's store.
  config.store_path =
      named_path
          ? named_path->string()
          : (fs::path(config.data_dir) / (config.store == "rocksdb" ? "hub.rocksdb" : "hub.db"))
                .string();
  if (auto n = root.child("store_memory_mb")) {
    if (config.store != "rocksdb") {
      throw n->error("only the rocksdb store has a memory budget (this configuration's store is " +
                     quote_value(config.store) +
                     (config.store_inferred.empty() ? "" : ": " + config.store_inferred) + ")");
    }
    config.store_memory_mb = static_cast<std::size_t>(n->integer(8, 1 << 20));
  }
  if (auto n = root.child("store_check_at_start_ms")) {
    config.store_check_at_start_ms = n->integer(0, 3600000);
  }
  config.plugin_dir = "plugins";
  if (auto n = root.child("plugin_dir")) config.plugin_dir = n->non_empty_string();
  config.plugin_dir = resolve_config_path(config, config.plugin_dir);

  config.catalog_files = existing_files(root.required("catalog_files"), config);
  config.staff_files = one_or_more_files(root.required("staff_file"), config);
  config.units_files = one_or_more_files(root.required("units_file"), config);
  config.rules_file = existing_file(root.required("rules_file"), config);
  config.holiday_files = existing_files(root.required("holiday_files"), config);

  if (auto n = root.child("today")) {
    const std::string today = n->string();
    if (!Date::parse(today)) throw n->error(quote_value(today) + " is not a date (YYYY-MM-DD)");
    config.today = today;
  }
  if (auto n = root.child("outbox_retention_days")) {
    config.outbox_retention_days = static_cast<int>(n->integer(0, 36500));
  }
  if (auto n = root.child("log_level")) {
    config.log_level = n->string();
    static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error"};
    if (std::find(levels.begin(), levels.end(), config.log_level) == levels.end()) {
      throw n->error(quote_value(config.log_level) +
                     " is not a log level (trace, debug, info, warn, error)");
    }
  }

  std::set<std::string> names;
  const auto read_instances = [&](const char* key, bool sink,
                                  std::vector<PluginInstanceConfig>& out) {
    const auto node = root.child(key);
    if (!node) return;
    const auto elements = node->list();
    for (std::size_t i = 0; i < elements.size(); ++i) {
      PluginInstanceConfig instance = read_instance(elements[i], sink, document, i, config);
      if (!names.insert(instance.name).second) {
        throw elements[i].required("name").error(quote_value(instance.name) +
                                                 " is already the name of another source or sink");
      }
      out.push_back(std::move(instance));
    }
  };
  read_instances("sources", false, config.sources);
  read_instances("sinks", true, config.sinks);

  // No "admin" object: no admin server (tests and batch jobs run many hubs).
  if (auto n = root.child("admin")) {
    config.admin = read_admin(*n, config);
  } else {
    config.admin.enabled = false;
  }
  return config;
}

ReferenceData load_reference(const HubConfig& config) {
  // Every file is read, whatever the others hold: an operator fixes all in one go.
  ConfigProblems problems;
  ReferenceData data;
  problems.check([&] { data.catalog = load_catalog(config.catalog_files); });
  problems.check([&] { data.directory = load_directory(config.staff_files, config.units_files); });
  problems.check([&] { data.holidays = load_holidays(config.holiday_files); });
  problems.check([&] { data.rules = load_rules(config.rules_file); });
  problems.throw_if_any();
  return data;
}

}  // namespace kpihub
