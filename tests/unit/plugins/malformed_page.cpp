// A source whose pull returns a page the host must not read as it is (issue 19 section 2):
// one flaw per build (KPIHUB_TEST_PAGE_FLAW). Written against the C ABI directly, as a plugin
// not built with the SDK could be.
#include <kpihub/abi.h>

#include <cstring>

#define PAGE_NULL_RECORDS 1      // 5 records announced, no array
#define PAGE_NULL_REJECTED 2     // 3 rejected items announced, no array
#define PAGE_NULL_ATTRIBUTES 3   // a record with 2 attributes announced, no array
#define PAGE_RECORD_TOO_SMALL 4  // records of 8 bytes
#define PAGE_WITHOUT_CURSOR 5    // a record and no cursor: a restart would read it again
#define PAGE_RECORD_TOO_LARGE 6  // records larger than any ABI minor the gate lets in
#define PAGE_REJECTED_WITHOUT_CURSOR 7

#ifndef KPIHUB_TEST_PAGE_FLAW
#error "KPIHUB_TEST_PAGE_FLAW must name the flaw this plugin is built with"
#endif

namespace {

kpihub_str text(const char* s) {
  return kpihub_str{s, std::strlen(s)};
}

kpihub_record one_record() {
  kpihub_record r{};
  r.struct_size = sizeof(r);
  r.source_id = text("WD-1");
  r.revision = text("1");
  r.staff_code = text("KH-000123");
  r.task_code = text("B.03.2");
  r.work_date = text("2025-04-01");
  r.declared_minutes = text("60");
  r.quantity = text("1");
  return r;
}

kpihub_status create(const kpihub_host_api*, kpihub_str, kpihub_str, kpihub_instance** out,
                     kpihub_error_buf) {
  static int instance;
  *out = &instance;
  return KPIHUB_OK;
}
void destroy(kpihub_instance*) {}

kpihub_status pull(kpihub_instance*, kpihub_str, kpihub_page* page, kpihub_error_buf) {
  [[maybe_unused]] static kpihub_record records[1] = {one_record()};
  page->next_cursor = text("1");
#if KPIHUB_TEST_PAGE_FLAW == PAGE_NULL_RECORDS
  page->records = nullptr;
  page->record_count = 5;
#elif KPIHUB_TEST_PAGE_FLAW == PAGE_NULL_REJECTED
  page->rejected = nullptr;
  page->rejected_count = 3;
#elif KPIHUB_TEST_PAGE_FLAW == PAGE_NULL_ATTRIBUTES
  records[0].attributes = nullptr;
  records[0].attribute_count = 2;
  page->records = records;
  page->record_count = 1;
#elif KPIHUB_TEST_PAGE_FLAW == PAGE_RECORD_TOO_SMALL
  records[0].struct_size = 8;
  page->records = records;
  page->record_count = 1;
#elif KPIHUB_TEST_PAGE_FLAW == PAGE_WITHOUT_CURSOR
  page->records = records;
  page->record_count = 1;
  page->next_cursor = kpihub_str{nullptr, 0};
#elif KPIHUB_TEST_PAGE_FLAW == PAGE_RECORD_TOO_LARGE
  records[0].struct_size = sizeof(kpihub_record) + 64;
  page->records = records;
  page->record_count = 1;
#elif KPIHUB_TEST_PAGE_FLAW == PAGE_REJECTED_WITHOUT_CURSOR
  static const kpihub_rejected_item rejected[1] = {{sizeof(kpihub_rejected_item),
                                                    text("WD-2"),
                                                    text("parse_error"),
                                                    {},
                                                    text("item 2: not JSON"),
                                                    {},
                                                    text("item 2")}};
  page->rejected = rejected;
  page->rejected_count = 1;
  page->next_cursor = kpihub_str{nullptr, 0};
#endif
  return KPIHUB_OK;
}

const kpihub_manifest manifest = {sizeof(kpihub_manifest),
                                  KPIHUB_TEST_PLUGIN_NAME,
                                  KPIHUB_KIND_SOURCE,
                                  "0.0.1",
                                  "deliberately malformed pages for the host's boundary tests",
                                  "test",
                                  "test",
                                  "test",
                                  "{}"};

const kpihub_plugin descriptor = {sizeof(kpihub_plugin),
                                  KPIHUB_ABI_MAJOR,
                                  KPIHUB_ABI_MINOR,
                                  &manifest,
                                  &create,
                                  &destroy,
                                  &pull,
                                  nullptr,
                                  nullptr};

}  // namespace

extern "C" __attribute__((visibility("default"))) const kpihub_plugin* kpihub_plugin_entry() {
  return &descriptor;
}
