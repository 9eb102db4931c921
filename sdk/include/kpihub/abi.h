/*
 * kpihub plugin ABI: the only thing that crosses between the hub and a plugin.
 *
 * Plain C so that a plugin built by another team, with another compiler
 * version or standard library, cannot break the hub by accident. The rules
 * (docs/plugin-abi.md has them in full):
 *
 *  1. A plugin exports exactly one symbol, `kpihub_plugin_entry`, returning a
 *     pointer to a static `kpihub_plugin` descriptor. The host reads
 *     `struct_size`, `abi_major`, `abi_minor` and the manifest first and calls
 *     nothing else until they pass: abi_major equal to the host's, abi_minor
 *     not newer than the host's, struct_size at least the size of the fields
 *     that minor promises.
 *  2. Structs only grow: new fields are appended and a minor bump announces
 *     them; every struct carries its own size so either side can tell.
 *  3. Ownership is in the names: `borrowed` memory belongs to the side that
 *     handed it over and stays valid only for the stated span; nothing is ever
 *     freed by the side that did not allocate it.
 *  4. No exception and no longjmp crosses the boundary. Every call returns a
 *     `kpihub_status`; on failure the callee fills the error buffer it was
 *     given with one human-readable line.
 *  5. Data crosses a page (source) or a batch (sink) at a time.
 */
#ifndef KPIHUB_ABI_H
#define KPIHUB_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KPIHUB_ABI_MAJOR 1
#define KPIHUB_ABI_MINOR 1
#define KPIHUB_ENTRY_SYMBOL "kpihub_plugin_entry"

/* A byte string that is not NUL-terminated. `data == NULL` means absent
 * (distinct from present and empty: size 0, data non-NULL). */
typedef struct kpihub_str {
  const char* data;
  size_t size;
} kpihub_str;

typedef enum kpihub_status {
  KPIHUB_OK = 0,
  /* Settings are wrong: the operator must fix the configuration. */
  KPIHUB_ERR_CONFIG = 1,
  /* Passing trouble (network, overload): the host retries later. */
  KPIHUB_ERR_TRANSIENT = 2,
  /* The remote side refused our credentials: a configuration error that
   * retrying cannot fix. */
  KPIHUB_ERR_AUTH = 3,
  /* Data could not be understood; the page is not acknowledged. */
  KPIHUB_ERR_DATA = 4,
  /* Anything else, including an exception caught at the boundary. */
  KPIHUB_ERR_INTERNAL = 5
} kpihub_status;

/* Caller-owned buffer for one line of error text. */
typedef struct kpihub_error_buf {
  char* data;
  size_t capacity;
} kpihub_error_buf;

typedef enum kpihub_log_level {
  KPIHUB_LOG_DEBUG = 0,
  KPIHUB_LOG_INFO = 1,
  KPIHUB_LOG_WARN = 2,
  KPIHUB_LOG_ERROR = 3
} kpihub_log_level;

/* ---------------------------------------------------------------- HTTP --- */

typedef struct kpihub_header {
  kpihub_str name;
  kpihub_str value;
} kpihub_header;

typedef struct kpihub_http_options {
  uint32_t struct_size;
  /* PEM bundle of trusted CAs; absent: the system's trust store. */
  kpihub_str ca_file;
  /* Client certificate and key (PEM) for mutual TLS; absent: none. */
  kpihub_str client_cert_file;
  kpihub_str client_key_file;
  /* Certificate and host-name verification are on unless this is non-zero;
   * the host logs a warning naming the plugin whenever it is set. */
  int32_t insecure_skip_verify;
  uint32_t connect_timeout_ms; /* 0: host default (5 s) */
  uint32_t request_timeout_ms; /* 0: host default (30 s) */
} kpihub_http_options;

typedef struct kpihub_http_request {
  uint32_t struct_size;
  kpihub_str method; /* GET, POST, ... */
  kpihub_str url;    /* http:// or https:// absolute URL */
  const kpihub_header* headers;
  size_t header_count;
  kpihub_str body;
} kpihub_http_request;

/* Host-owned. Valid until passed to `http_response_free`. */
typedef struct kpihub_http_response {
  uint32_t struct_size;
  int32_t status; /* HTTP status code */
  const kpihub_header* headers;
  size_t header_count;
  kpihub_str body;
  void* host_private;
} kpihub_http_response;

typedef struct kpihub_http_client kpihub_http_client; /* opaque, host-owned */

/* ------------------------------------------------------------- Host API --- */

/* ABI 1.1: the type of a metric family (Prometheus' counter and gauge). */
typedef enum kpihub_metric_type {
  KPIHUB_METRIC_COUNTER = 0, /* only goes up; the name ends in _total */
  KPIHUB_METRIC_GAUGE = 1    /* goes up and down */
} kpihub_metric_type;

/* ABI 1.1: one label of a metric series, as plain text: the host escapes it. */
typedef struct kpihub_label {
  kpihub_str name;
  kpihub_str value;
} kpihub_label;

/* Services the host hands to a plugin. Every function pointer is non-NULL and
 * safe to call from any thread; `ctx` must be passed back unchanged. The
 * struct outlives every plugin instance created with it. */
typedef struct kpihub_host_api {
  uint32_t struct_size;
  void* ctx;

  void (*log)(void* ctx, kpihub_log_level level, kpihub_str message);

  /* Wall-clock time in milliseconds since the Unix epoch (tests may fake it),
   * and the host's local UTC offset in minutes (Asia/Ho_Chi_Minh: 420). */
  int64_t (*now_unix_ms)(void* ctx);
  int32_t (*utc_offset_minutes)(void* ctx);

  /* Looks up a secret by reference: "file:/path" or "env:NAME". Writes it
   * into `out` (caller-owned); returns KPIHUB_ERR_CONFIG with a message that
   * names the reference, never the value, when it is missing. */
  kpihub_status (*secret)(void* ctx, kpihub_str reference, char* out, size_t out_capacity,
                          size_t* out_size, kpihub_error_buf err);

  /* ABI 1.0's metric call, kept for plugins built for it; use metric_declare
   * and metric_add_labeled (ABI 1.1). Adds `delta` to `name`; a non-empty
   * `label` becomes the value of a label named `label` (escaped by the host). */
  void (*metric_add)(void* ctx, kpihub_str name, kpihub_str label, double delta);

  /* HTTP(S) client with certificate and host-name verification. */
  kpihub_status (*http_client_create)(void* ctx, const kpihub_http_options* options,
                                      kpihub_http_client** out_client, kpihub_error_buf err);
  /* Performs one request; on KPIHUB_OK the response must be freed with
   * http_response_free. Transport failures (refused, reset, timeout, TLS)
   * return KPIHUB_ERR_TRANSIENT or KPIHUB_ERR_CONFIG (certificate or host name
   * refused) with the reason in `err`. */
  kpihub_status (*http_request)(void* ctx, kpihub_http_client* client,
                                const kpihub_http_request* request,
                                kpihub_http_response* out_response, kpihub_error_buf err);
  void (*http_response_free)(void* ctx, kpihub_http_response* response);
  void (*http_client_destroy)(void* ctx, kpihub_http_client* client);

  /* Returns non-zero once the host asked the plugin to stop: long loops
   * (retry waits, big files) check it and return early. */
  int32_t (*stop_requested)(void* ctx);

  /* Sleeps up to `ms`, returning early when a stop is requested. */
  void (*sleep_ms)(void* ctx, uint32_t ms);

  /* ---- ABI 1.1 (appended) ---- */

  /* Declares the metric family `name` (a Prometheus metric name, prefixed
   * with the plugin's name, e.g. "eoffice_items_total"): its type and one
   * line of help text, for /metrics' # HELP and # TYPE. Declare every family
   * in create(), then add 0 to each series an alert may watch so that it
   * exists from the start. Declaring a family again with the same type is
   * harmless. KPIHUB_ERR_CONFIG, with the reason in `err`, when the name is
   * not a metric name or the family has another type. */
  kpihub_status (*metric_declare)(void* ctx, kpihub_str name, kpihub_metric_type type,
                                  kpihub_str help, kpihub_error_buf err);

  /* Adds `delta` to the series of `name` with `labels` (label_count
   * name/value pairs, plain text: the host escapes the values). The host
   * adds the instance's own label: `source` or `sink`, set to the instance
   * name. A delta of 0 creates the series; a counter never goes down. A
   * sample the host cannot take (a label name that is not
   * [a-zA-Z_][a-zA-Z0-9_]*, a reserved one: instance, job, le, quantile,
   * source, sink, __*; a name given twice; a value that is not UTF-8; a
   * delta that is not finite, or negative for a counter) is dropped and the
   * host logs a warning naming the plugin, the metric and why. */
  void (*metric_add_labeled)(void* ctx, kpihub_str name, const kpihub_label* labels,
                             size_t label_count, double delta);
} kpihub_host_api;

/* --------------------------------------------------------------- Source --- */

/* The record's text fields in the order of kpihub_record, to index value_kinds (ABI 1.1). */
typedef enum kpihub_field {
  KPIHUB_FIELD_SOURCE_ID = 0,
  KPIHUB_FIELD_REVISION,
  KPIHUB_FIELD_RETRACTED,
  KPIHUB_FIELD_STAFF_CODE,
  KPIHUB_FIELD_SOURCE_STAFF_ID,
  KPIHUB_FIELD_AGENCY_CODE,
  KPIHUB_FIELD_TASK_CODE,
  KPIHUB_FIELD_WORK_DATE,
  KPIHUB_FIELD_DECLARED_MINUTES,
  KPIHUB_FIELD_QUANTITY,
  KPIHUB_FIELD_PRODUCT_UNIT,
  KPIHUB_FIELD_TITLE,
  KPIHUB_FIELD_EVIDENCE_REF,
  KPIHUB_FIELD_DEADLINE,
  KPIHUB_FIELD_COMPLETED_AT,
  KPIHUB_FIELD_APPROVAL_STATUS,
  KPIHUB_FIELD_APPROVAL_RATING,
  KPIHUB_FIELD_APPROVAL_BY,
  KPIHUB_FIELD_APPROVAL_AT,
  KPIHUB_FIELD_CHANGED_AT,
  KPIHUB_FIELD_COUNT
} kpihub_field;

/* What a field's value was in the source (ABI 1.1). A format without types (CSV, XML) gives
 * text that the host parses; a typed format (JSON) says which type the value had, so that a
 * value of the wrong type ("minutes": "195") is refused as bad_value rather than read. */
typedef enum kpihub_value_kind {
  KPIHUB_VALUE_TEXT = 0,
  KPIHUB_VALUE_STRING = 1,
  KPIHUB_VALUE_NUMBER = 2,
  KPIHUB_VALUE_BOOLEAN = 3
} kpihub_value_kind;

typedef struct kpihub_attribute {
  kpihub_str key;
  kpihub_str value;
} kpihub_attribute;

/* One normalized work record, field names as in spec/kpi-model.md. Every
 * field is text exactly as the source gave it (numbers too): the host parses
 * and validates uniformly and names field and value in its reasons. */
typedef struct kpihub_record {
  uint32_t struct_size;
  kpihub_str source_id;
  kpihub_str revision;
  kpihub_str retracted; /* "true"/"false" or absent */
  kpihub_str staff_code;
  kpihub_str source_staff_id;
  kpihub_str agency_code;
  kpihub_str task_code;
  kpihub_str work_date;
  kpihub_str declared_minutes;
  kpihub_str quantity;
  kpihub_str product_unit;
  kpihub_str title;
  kpihub_str evidence_ref;
  kpihub_str deadline;
  kpihub_str completed_at;
  kpihub_str approval_status;
  kpihub_str approval_rating;
  kpihub_str approval_by;
  kpihub_str approval_at;
  kpihub_str changed_at;
  const kpihub_attribute* attributes;
  size_t attribute_count;
  /* The item as the source sent it, for quarantine; may be absent. */
  kpihub_str raw;
  /* Where in the page it came from ("item 17", "file.xml:312"); may be absent. */
  kpihub_str location;
  /* ABI 1.1: a kpihub_value_kind per field, indexed by kpihub_field, `value_kind_count`
   * entries (fewer than KPIHUB_FIELD_COUNT, or NULL: the rest are KPIHUB_VALUE_TEXT). */
  const uint8_t* value_kinds;
  size_t value_kind_count;
} kpihub_record;

/* An item the adapter could not turn into a record. */
typedef struct kpihub_rejected_item {
  uint32_t struct_size;
  kpihub_str source_id; /* may be absent when the item had no readable id */
  kpihub_str reason;    /* a reason code of spec/kpi-model.md, e.g. "parse_error" */
  kpihub_str field;     /* may be absent */
  kpihub_str message;   /* names the field and the value */
  kpihub_str raw;       /* the original item, may be absent */
  kpihub_str location;
} kpihub_rejected_item;

/* One page, plugin-owned ("borrowed" by the host) until the next call on the
 * same instance or its destruction. */
typedef struct kpihub_page {
  uint32_t struct_size;
  const kpihub_record* records;
  size_t record_count;
  const kpihub_rejected_item* rejected;
  size_t rejected_count;
  /* The cursor to store with this page; the host passes it back to the next
   * pull. Opaque to the host. */
  kpihub_str next_cursor;
  /* Non-zero when the source has nothing newer right now. */
  int32_t caught_up;
  /* Optional human-readable progress ("page 3, updated_at 2025-04-09…"). */
  kpihub_str progress;
} kpihub_page;

/* Staff directory entries a source may publish (E-Office's staff list). */
typedef struct kpihub_staff_entry {
  uint32_t struct_size;
  kpihub_str staff_code;
  kpihub_str full_name;
  kpihub_str agency_code;
  int32_t leader;
  int32_t active;
} kpihub_staff_entry;

/* ----------------------------------------------------------------- Sink --- */

typedef enum kpihub_item_kind {
  KPIHUB_ITEM_RECORD = 0,
  KPIHUB_ITEM_STAFF_MONTH = 1,
  KPIHUB_ITEM_AGENCY_MONTH = 2
} kpihub_item_kind;

typedef struct kpihub_batch_item {
  uint32_t struct_size;
  kpihub_item_kind kind;
  kpihub_str key;  /* record_id, "staff:<month>:<code>" or "agency:<month>:<code>" */
  kpihub_str json; /* the item as the receiver gets it (kpi-model.md) */
} kpihub_batch_item;

/* Host-owned ("borrowed" by the plugin) for the duration of deliver(). The
 * same batch id always comes with the same items in the same order. */
typedef struct kpihub_batch {
  uint32_t struct_size;
  kpihub_str batch_id;
  kpihub_str hub_id;
  const kpihub_batch_item* items;
  size_t item_count;
  uint32_t attempt; /* 1 for the first send of this batch */
} kpihub_batch;

typedef enum kpihub_item_outcome {
  KPIHUB_ITEM_DELIVERED = 0, /* stored by the receiver (or held already) */
  KPIHUB_ITEM_REJECTED = 1,  /* refused for good: goes to dead letters */
  KPIHUB_ITEM_RETRY = 2      /* not delivered yet: the host retries later */
} kpihub_item_outcome;

/* Plugin-owned; the plugin fills one per batch item, in order. */
typedef struct kpihub_item_result {
  kpihub_item_outcome outcome;
  kpihub_str code;    /* receiver's reason code for REJECTED */
  kpihub_str message; /* receiver's message for REJECTED or RETRY */
} kpihub_item_result;

typedef struct kpihub_delivery {
  uint32_t struct_size;
  const kpihub_item_result* results; /* item_count entries */
  size_t result_count;
  uint32_t retry_after_ms; /* when any item is RETRY: wait at least this long */
} kpihub_delivery;

/* ----------------------------------------------------------- Descriptor --- */

typedef enum kpihub_plugin_kind { KPIHUB_KIND_SOURCE = 1, KPIHUB_KIND_SINK = 2 } kpihub_plugin_kind;

typedef struct kpihub_manifest {
  uint32_t struct_size;
  const char* name;           /* e.g. "eoffice" */
  kpihub_plugin_kind kind;
  const char* version;        /* the plugin's own version, e.g. "1.2.0" */
  const char* description;    /* one line for `kpihub plugins` */
  const char* compiler;       /* e.g. "GCC 12.2.0" */
  const char* cxx_stdlib;     /* e.g. "libstdc++ 20230528" */
  const char* sdk_version;    /* version of the SDK headers it was built with */
  const char* settings_help;  /* JSON text describing the accepted settings */
} kpihub_manifest;

typedef void kpihub_instance; /* opaque, plugin-owned */

typedef struct kpihub_plugin {
  /* Fixed head, read before anything else. Never moves. */
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  const kpihub_manifest* manifest;

  /* Creates an instance from the source's or sink's `settings` (JSON text).
   * `host` outlives the instance. */
  kpihub_status (*create)(const kpihub_host_api* host, kpihub_str instance_name,
                          kpihub_str settings_json, kpihub_instance** out_instance,
                          kpihub_error_buf err);
  void (*destroy)(kpihub_instance* instance);

  /* Source: pulls the next page after `cursor` (absent on the first pull). */
  kpihub_status (*pull)(kpihub_instance* instance, kpihub_str cursor, kpihub_page* out_page,
                        kpihub_error_buf err);
  /* Source, optional (may be NULL): the staff list the source knows, plugin-owned
   * ("borrowed" by the host) until the next call on the same instance or its destruction, as
   * a page is: a province's list is megabytes, and the host copies what it keeps at once. */
  kpihub_status (*list_staff)(kpihub_instance* instance, const kpihub_staff_entry** out_entries,
                              size_t* out_count, kpihub_error_buf err);

  /* Sink: delivers one batch. */
  kpihub_status (*deliver)(kpihub_instance* instance, const kpihub_batch* batch,
                           kpihub_delivery* out_delivery, kpihub_error_buf err);
} kpihub_plugin;

typedef const kpihub_plugin* (*kpihub_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* KPIHUB_ABI_H */
