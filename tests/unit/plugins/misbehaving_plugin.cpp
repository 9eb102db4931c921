// A plugin that does what its settings say, for the isolation tests (issue 19 section 2): one
// word in the settings text picks it. Built as a source and as a sink (KPIHUB_TEST_SINK).
// Written against the C ABI directly, as a plugin not built with the SDK could be.
//   "ok"       a page (or delivery) that uses every host service: log, metric, secret, clock
//   "slow"     waits 1.5 s through the host's sleep (which a stop cuts short), then as "ok"
//   "segfault" writes through a null pointer
//   "abort"    aborts
//   "exit"     calls exit(3)
//   "hang"     never returns and never looks at the stop flag
//   "refuse"   refuses its settings in create
//   "chatty"   as "ok", with a thread of its own that logs and reads the clock all the time
//   "stubborn" logs twice a second for ever and never looks at the stop flag
//   "forks"    starts a helper process that sleeps for 5 minutes; the page's progress names it
#include <kpihub/abi.h>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

kpihub_str text(const char* s) {
  return kpihub_str{s, std::strlen(s)};
}
kpihub_str text(const std::string& s) {
  return kpihub_str{s.data(), s.size()};
}

struct Instance {
  const kpihub_host_api* host;
  std::string behaviour;
  std::atomic<bool> done{false};
  std::thread chatter;
  // What the last page points at: valid until the next call.
  std::string cursor, progress, log_line;
  kpihub_record record{};
  kpihub_attribute attribute{};
  uint8_t kinds[KPIHUB_FIELD_COUNT] = {};
  kpihub_rejected_item rejected{};
  kpihub_item_result results[64] = {};
};

void fill_error(kpihub_error_buf err, const char* message) {
  std::snprintf(err.data, err.capacity, "%s", message);
}

// A real segfault, not the sanitizers' report of a null store (CI builds plugins with them).
__attribute__((no_sanitize("undefined"))) void misbehave(Instance& in) {
  if (in.behaviour == "segfault") {
    volatile int* nowhere = nullptr;
    *nowhere = 1;
  }
  if (in.behaviour == "abort") std::abort();
  if (in.behaviour == "exit") std::exit(3);
  if (in.behaviour == "hang") {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (in.behaviour == "slow") in.host->sleep_ms(in.host->ctx, 1500);
  if (in.behaviour == "stubborn") {
    for (;;) {
      in.host->log(in.host->ctx, KPIHUB_LOG_INFO, text("still working"));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

// Uses every service the host gives: what an isolated plugin's process must carry to the hub.
void use_host(Instance& in) {
  const kpihub_host_api& h = *in.host;
  in.log_line = "working in process " + std::to_string(::getpid());
  h.log(h.ctx, KPIHUB_LOG_WARN, text(in.log_line));
  char err[256] = {0};
  h.metric_declare(h.ctx, text("misbehaving_calls_total"), KPIHUB_METRIC_COUNTER,
                   text("Calls the misbehaving test plugin answered."), {err, sizeof err});
  const kpihub_label label{text("call"), text("ok")};
  h.metric_add_labeled(h.ctx, text("misbehaving_calls_total"), &label, 1, 1);
  char secret[64];
  std::size_t size = 0;
  if (h.secret(h.ctx, text("env:KPIHUB_TEST_PLUGIN_SECRET"), secret, sizeof secret, &size,
               {err, sizeof err}) == KPIHUB_OK) {
    in.progress = "secret of " + std::to_string(size) + " bytes";
  } else {
    in.progress = std::string("no secret: ") + err;
  }
  in.cursor = std::to_string(h.now_unix_ms(h.ctx));
}

kpihub_status create(const kpihub_host_api* host, kpihub_str, kpihub_str settings,
                     kpihub_instance** out, kpihub_error_buf err) {
  const std::string s(settings.data ? settings.data : "", settings.size);
  auto* in = new Instance{};
  in->host = host;
  for (const char* b : {"ok", "slow", "segfault", "abort", "exit", "hang", "refuse", "chatty",
                        "stubborn", "forks"}) {
    if (s.find(std::string("\"") + b + "\"") != std::string::npos) in->behaviour = b;
  }
  if (in->behaviour == "refuse" || in->behaviour.empty()) {
    delete in;
    fill_error(err, "settings.behaviour: not one this plugin knows");
    return KPIHUB_ERR_CONFIG;
  }
  if (in->behaviour == "chatty") {
    in->chatter = std::thread([in] {
      while (!in->done) {
        in->host->log(in->host->ctx, KPIHUB_LOG_INFO, text("chatter"));
        (void)in->host->now_unix_ms(in->host->ctx);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  *out = in;
  return KPIHUB_OK;
}

void destroy(kpihub_instance* instance) {
  auto* in = static_cast<Instance*>(instance);
  in->done = true;
  if (in->chatter.joinable()) in->chatter.join();
  delete in;
}

[[maybe_unused]] kpihub_status pull(kpihub_instance* instance, kpihub_str, kpihub_page* page,
                                    kpihub_error_buf) {
  Instance& in = *static_cast<Instance*>(instance);
  misbehave(in);
  use_host(in);
  kpihub_record& r = in.record;
  r = kpihub_record{};
  r.struct_size = sizeof r;
  r.source_id = text("MB-1");
  r.revision = text("1");
  r.staff_code = text("KH-000123");
  r.task_code = text("B.03.2");
  r.work_date = text("2025-04-01");
  r.declared_minutes = text("60");
  r.quantity = text("");  // present and empty
  r.title = text("Xử lý văn bản đến");
  in.attribute = {text("room"), text("B2")};
  r.attributes = &in.attribute;
  r.attribute_count = 1;
  r.raw = text("{\"id\":\"MB-1\"}");
  r.location = text("item 1");
  in.kinds[KPIHUB_FIELD_DECLARED_MINUTES] = KPIHUB_VALUE_NUMBER;
  r.value_kinds = in.kinds;
  r.value_kind_count = KPIHUB_FIELD_COUNT;
  in.rejected = {sizeof(kpihub_rejected_item), text("MB-2"),  text("parse_error"), {},
                 text("item 2: not JSON"),     text("{oops"), text("item 2")};
  page->records = &r;
  page->record_count = 1;
  page->rejected = &in.rejected;
  page->rejected_count = 1;
  page->next_cursor = text(in.cursor);
  page->caught_up = 1;
  if (in.behaviour == "forks") {
    const pid_t helper = ::fork();
    if (helper == 0) {
      ::execl("/bin/sleep", "sleep", "300", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    in.progress = "helper " + std::to_string(helper);
  }
  page->progress = text(in.progress);
  return KPIHUB_OK;
}

[[maybe_unused]] kpihub_status deliver(kpihub_instance* instance, const kpihub_batch* batch,
                                       kpihub_delivery* out, kpihub_error_buf err) {
  Instance& in = *static_cast<Instance*>(instance);
  misbehave(in);
  use_host(in);
  if (batch->item_count > 64) {
    fill_error(err, "at most 64 items");
    return KPIHUB_ERR_DATA;
  }
  for (std::size_t i = 0; i < batch->item_count; ++i) {
    // The second item of every batch is refused, with the receiver's reason.
    in.results[i] = i == 1 ? kpihub_item_result{KPIHUB_ITEM_REJECTED, text("bad_item"),
                                                text("refused by the test sink")}
                           : kpihub_item_result{KPIHUB_ITEM_DELIVERED, {}, {}};
  }
  out->results = in.results;
  out->result_count = batch->item_count;
  out->retry_after_ms = 0;
  return KPIHUB_OK;
}

#ifdef KPIHUB_TEST_SINK
constexpr kpihub_plugin_kind kKind = KPIHUB_KIND_SINK;
constexpr const char* kName = "misbehaving-sink";
#else
constexpr kpihub_plugin_kind kKind = KPIHUB_KIND_SOURCE;
constexpr const char* kName = "misbehaving-source";
#endif

const kpihub_manifest kManifest = {sizeof(kpihub_manifest),
                                   kName,
                                   kKind,
                                   "1.0.0",
                                   "does what its settings say (isolation tests)",
                                   "test",
                                   "test",
                                   "test",
                                   "{}"};

const kpihub_plugin kDescriptor = {sizeof(kpihub_plugin),
                                   KPIHUB_ABI_MAJOR,
                                   KPIHUB_ABI_MINOR,
                                   &kManifest,
                                   &create,
                                   &destroy,
#ifdef KPIHUB_TEST_SINK
                                   nullptr,
                                   nullptr,
                                   &deliver};
#else
                                   &pull,
                                   nullptr,
                                   nullptr};
#endif

}  // namespace

extern "C" __attribute__((visibility("default"))) const kpihub_plugin* kpihub_plugin_entry() {
  return &kDescriptor;
}
