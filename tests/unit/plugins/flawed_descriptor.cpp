// One deliberately wrong plugin per gate rule. This file is built once per
// flaw (KPIHUB_TEST_FLAW names it); each build exports a descriptor that is
// valid except for that one thing, so the test can check that the gate names
// exactly that mismatch. Written against the C ABI directly: the SDK's macros
// cannot produce a wrong descriptor, which is the point of the SDK.
#include <kpihub/abi.h>

#include <cstddef>
#include <cstring>

#define FLAW_ABI_MAJOR_2 1
#define FLAW_ABI_MINOR_NEWER 2
#define FLAW_DESCRIPTOR_TOO_SMALL 3
#define FLAW_DESCRIPTOR_HEAD_ONLY 4
#define FLAW_MANIFEST_WITHOUT_NAME 5
#define FLAW_SINK_WITHOUT_DELIVER 6
// Passes the gate, but ignores its settings entirely: accepts unknown keys
// and wrong types, which kpihub-adapter-check must report.
#define FLAW_IGNORES_SETTINGS 7
// Passes the gate, then pages wrongly: every page holds the same record twice
// and the cursor never moves past "0", so the hub would pull it for ever.
#define FLAW_REPEATS_ITSELF 8

#ifndef KPIHUB_TEST_FLAW
#error "KPIHUB_TEST_FLAW must name the flaw this plugin is built with"
#endif

namespace {

kpihub_status create(const kpihub_host_api*, kpihub_str, kpihub_str, kpihub_instance** out,
                     kpihub_error_buf) {
  static int instance;
  *out = &instance;
  return KPIHUB_OK;
}
void destroy(kpihub_instance*) {}
#if KPIHUB_TEST_FLAW == FLAW_REPEATS_ITSELF
kpihub_str text(const char* s) {
  return kpihub_str{s, std::strlen(s)};
}

kpihub_record same_record() {
  kpihub_record r{};
  r.struct_size = sizeof(r);
  r.source_id = text("SAME-1");
  r.revision = text("1");
  r.staff_code = text("KH-000123");
  r.task_code = text("B.03.2");
  r.work_date = text("2025-04-01");
  r.declared_minutes = text("60");
  r.quantity = text("1");
  return r;
}

kpihub_status pull(kpihub_instance*, kpihub_str, kpihub_page* page, kpihub_error_buf) {
  static const kpihub_record records[2] = {same_record(), same_record()};
  page->records = records;
  page->record_count = 2;
  page->next_cursor = text("0");
  page->caught_up = 0;
  return KPIHUB_OK;
}
#else
kpihub_status pull(kpihub_instance*, kpihub_str, kpihub_page* page, kpihub_error_buf) {
  page->caught_up = 1;
  return KPIHUB_OK;
}
#endif
kpihub_status deliver(kpihub_instance*, const kpihub_batch*, kpihub_delivery*, kpihub_error_buf) {
  return KPIHUB_OK;
}

#if KPIHUB_TEST_FLAW == FLAW_MANIFEST_WITHOUT_NAME
constexpr const char* kName = nullptr;
#else
constexpr const char* kName = KPIHUB_TEST_PLUGIN_NAME;
#endif

#if KPIHUB_TEST_FLAW == FLAW_SINK_WITHOUT_DELIVER
constexpr kpihub_plugin_kind kKind = KPIHUB_KIND_SINK;
#else
constexpr kpihub_plugin_kind kKind = KPIHUB_KIND_SOURCE;
#endif

const kpihub_manifest manifest = {sizeof(kpihub_manifest),
                                  kName,
                                  kKind,
                                  "0.0.1",
                                  "deliberately broken plugin for the gate's tests",
                                  "test",
                                  "test",
                                  "test",
                                  "{}"};

constexpr uint32_t descriptor_size() {
#if KPIHUB_TEST_FLAW == FLAW_DESCRIPTOR_TOO_SMALL
  // As if built from an older layout that ended before `deliver`.
  return offsetof(kpihub_plugin, deliver);
#elif KPIHUB_TEST_FLAW == FLAW_DESCRIPTOR_HEAD_ONLY
  // Smaller than the fixed head: not even the manifest pointer is promised.
  return offsetof(kpihub_plugin, abi_minor);
#else
  return sizeof(kpihub_plugin);
#endif
}

const kpihub_plugin descriptor = {
    descriptor_size(),
#if KPIHUB_TEST_FLAW == FLAW_ABI_MAJOR_2
    2,
#else
    KPIHUB_ABI_MAJOR,
#endif
#if KPIHUB_TEST_FLAW == FLAW_ABI_MINOR_NEWER
    KPIHUB_ABI_MINOR + 1,
#else
    KPIHUB_ABI_MINOR,
#endif
    &manifest, &create, &destroy, kKind == KPIHUB_KIND_SOURCE ? &pull : nullptr, nullptr,
    // The sink without deliver leaves it NULL: the gate must refuse it
    // before the hub ever calls through it.
    kKind == KPIHUB_KIND_SINK&& KPIHUB_TEST_FLAW != FLAW_SINK_WITHOUT_DELIVER ? &deliver : nullptr};

}  // namespace

extern "C" __attribute__((visibility("default"))) const kpihub_plugin* kpihub_plugin_entry() {
  return &descriptor;
}
