// The hub's configuration file (config/hub.json), read with
// Boost.PropertyTree. Unknown keys and wrong types are errors naming the
// file and key path; relative paths are resolved against the file's folder.
#pragma once

#include <kpihub/reference.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kpihub {

struct PluginInstanceConfig {
  std::string name;    // instance name, e.g. "eoffice" (becomes source_system)
  std::string plugin;  // plugin name from its manifest, e.g. "eoffice"
  bool enabled = true;
  int64_t interval_ms = 60000;  // how often a caught-up source is polled again
  std::string settings_json;    // the "settings" object, passed to the plugin as is
  // "isolation": "process" (a child process) or "none" (the hub's process); unset: the
  // default, process for every plugin not built with the hub (built_with_hub).
  std::optional<bool> isolation_process;
  // How long one pull, staff list or delivery may take (docs/operations.md).
  int64_t time_limit_ms = 900000;
  // Sinks only.
  std::size_t batch_max_items = 500;
  std::size_t batch_max_bytes = 4 * 1024 * 1024;
};

// A bearer token the admin API accepts, stored as its SHA-256 only.
struct AdminToken {
  std::string name;    // who holds it, for the audit log
  std::string sha256;  // lower-case hex
  std::string role;    // "read" or "operate"
};

// JWTs from an identity provider (Poco JWT). Only the listed algorithms are
// accepted; "none" never is.
struct AdminJwt {
  std::vector<std::string> algorithms;  // e.g. ["RS256"] or ["HS256"]
  std::string hmac_secret_file;         // for HS*
  std::string public_key_file;          // PEM, for RS*/ES*
  std::string issuer;                   // required "iss" when set
  std::string audience;                 // required in "aud" when set
  std::string role_claim = "kpihub_role";
};

struct AdminConfig {
  bool enabled = true;
  std::string listen = "127.0.0.1:8080";
  std::vector<AdminToken> tokens;  // token_sha256 entries become role "operate"
  std::optional<AdminJwt> jwt;
  // Dashboard, /metrics, /healthz and /readyz without a token.
  bool open_read_pages = true;
  std::optional<std::string> tls_cert_file;  // HTTPS when set
  std::optional<std::string> tls_key_file;
  std::size_t max_connections = 64;
  std::size_t max_connections_per_client = 16;
};

struct HubConfig {
  std::string file;      // where it was read from
  std::string base_dir;  // folder of that file
  std::string hub_id = "kpihub";
  std::string data_dir = "var";  // resolved to an absolute path
  // The engine: "sqlite" or "rocksdb". A configuration without "store" gets RocksDB, unless it
  // was written for an existing SQLite store (load_hub_config, docs/configuration.md): a
  // store_path that is a file or ends in ".db", or <data_dir>/hub.db existing.
  std::string store = "rocksdb";
  // Why the engine is SQLite when the configuration does not name it (empty otherwise): what
  // check-config and the hub's log say.
  std::string store_inferred;
  // sqlite: the database file, default <data_dir>/hub.db; rocksdb: the store's folder, default
  // <data_dir>/hub.rocksdb. Resolved, without a trailing '/'.
  std::string store_path;
  // rocksdb only: what its block cache and write buffers may use together.
  std::size_t store_memory_mb = 16;
  // How long `kpihub run` checks the store's files when it starts, the newest first
  // (StoreIntegrity); 0: not at all. `kpihub check-store` checks everything.
  int64_t store_check_at_start_ms = 2000;
  std::string plugin_dir;  // resolved
  std::vector<std::string> catalog_files;
  // One file or several: sector generators and teams may keep their own.
  std::vector<std::string> staff_files;
  std::vector<std::string> units_files;
  std::string rules_file;
  std::vector<std::string> holiday_files;
  std::optional<std::string> today;  // fixes the hub's date (tests, backfills)
  std::vector<PluginInstanceConfig> sources;
  std::vector<PluginInstanceConfig> sinks;
  AdminConfig admin;
  std::string log_level = "info";
  // Outbox items every configured sink has delivered are deleted this many days after their
  // delivery (0: kept forever). Dead letters and the batch history stay.
  int outbox_retention_days = 30;
};

// Throws ConfigError("config/hub.json: sources[1].interval_ms: expected an
// integer, got \"ten\"") and the like.
HubConfig load_hub_config(const std::string& path);

// Resolves a path written in the configuration (for example a plugin's
// "client_secret_file" setting, which reaches the plugin verbatim) against
// the folder of the configuration file; absolute paths stay as they are.
std::string resolve_config_path(const HubConfig& config, const std::string& path);

// The engine of the store at `path`, told by what is there (a folder: "rocksdb", anything else:
// "sqlite") or, for a store not made yet, by its name (.db, .sqlite, .sqlite3: "sqlite";
// .rocksdb: "rocksdb"); empty when neither tells. What `kpihub store copy` reads a path
// without an engine with, and load_hub_config a store_path when "store" is not set.
std::string store_engine_of_path(const std::string& path);

// The admin API's JWT HMAC secret in `path`, without the line break the file ends with. Throws
// ConfigError naming the file when it cannot be read or is shorter than the longest hash of the
// HS algorithms listed (RFC 7518 3.2: 32 bytes for HS256, 48 for HS384, 64 for HS512; a
// one-byte secret is guessed).
std::string read_hmac_secret(const std::string& path, const std::vector<std::string>& algorithms);

// Everything the scorer needs, loaded from the files the configuration names.
struct ReferenceData {
  Catalog catalog;
  Directory directory;
  HolidayCalendar holidays;
  Rules rules;
};
// Reads every file, and throws ConfigErrors with every error of every file.
ReferenceData load_reference(const HubConfig& config);

}  // namespace kpihub
