// Template source adapter: copy this folder to start a new adapter.
//
// It serves deterministic demo work records instead of calling a real system,
// so that everything else a real adapter needs fits in one small file: typed
// settings whose errors name the key, mapping onto the KPI model's text
// fields, paging with a cursor that the hub stores, and which exception to
// throw for which failure. Places where a real adapter differs are marked
// "REAL ADAPTER:".
#include <kpihub/sdk.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace {

using kpihub::sdk::ConfigError;
using kpihub::sdk::DataError;

// Work dates cycle through four weeks so that the demo data looks like a
// month of diary entries, whatever the number of records.
constexpr int64_t kDaysOfWorkDates = 28;

// ------------------------------------------------------------ dates -------

// Strict YYYY-MM-DD naming a real day. Settings are checked here, at start,
// so an operator's typo is refused with the key's name instead of turning
// into a page of records that the hub quarantines one by one.
std::optional<std::chrono::sys_days> parse_date(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  auto digits = [&](std::size_t pos, std::size_t len, unsigned& out) {
    const char* end = text.data() + pos + len;
    const auto [stop, ec] = std::from_chars(text.data() + pos, end, out);
    return ec == std::errc() && stop == end;
  };
  unsigned year = 0, month = 0, day = 0;
  if (!digits(0, 4, year) || !digits(5, 2, month) || !digits(8, 2, day)) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{static_cast<int>(year)},
                                         std::chrono::month{month}, std::chrono::day{day}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days{date};
}

std::string format_date(std::chrono::sys_days day) {
  const std::chrono::year_month_day date{day};
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return text;
}

// The hub's local date, from the host's clock: tests and the hub's --today
// fake that clock, so an adapter never asks the system clock itself.
std::chrono::sys_days host_today(const kpihub::sdk::Host& host) {
  const int64_t local_ms = host.now_unix_ms() + int64_t{host.utc_offset_minutes()} * 60'000;
  return std::chrono::floor<std::chrono::days>(
      std::chrono::sys_time<std::chrono::milliseconds>{std::chrono::milliseconds{local_ms}});
}

// --------------------------------------------------------- settings -------

struct TemplateSettings {
  int64_t records = 0;
  std::string staff_code;
  std::string task_code;
  std::chrono::sys_days start_date;
  int64_t page_size = 0;
};

// Every key the adapter accepts is read here, in the constructor: the SDK
// refuses any key that was not read, so a typo in the hub's configuration
// ("page_sise") stops the hub at start with the key's path instead of being
// silently ignored. Wrong types and missing required keys are refused by the
// SDK's getters, with the same path.
TemplateSettings read_settings(const kpihub::sdk::Host& host, kpihub::sdk::Settings& settings) {
  TemplateSettings out;
  out.records = settings.integer("records", 100, 0, 1'000'000);
  // Required: there is no sensible default for whose work this is.
  // REAL ADAPTER: the base URL and the credentials' secret reference are
  // required settings of the same kind ("token_secret": "file:eoffice.token").
  out.staff_code = settings.string("staff_code");
  if (out.staff_code.empty()) {
    throw ConfigError(settings.path() + ".staff_code: must not be empty");
  }
  out.task_code = settings.string("task_code", "B.03.2");
  // By default the four weeks of work dates end today, so the demo data is
  // neither in the future nor older than the hub's retention window.
  const std::string default_start =
      format_date(host_today(host) - std::chrono::days{kDaysOfWorkDates - 1});
  const std::string start_text = settings.string("start_date", default_start);
  const auto start = parse_date(start_text);
  if (!start) {
    throw ConfigError(settings.path() + ".start_date: \"" + start_text +
                      "\" is not a real date (YYYY-MM-DD)");
  }
  out.start_date = *start;
  // Bounded: one page is held in memory by both sides until the next pull.
  out.page_size = settings.integer("page_size", 50, 1, 1000);
  return out;
}

// ---------------------------------------------------------- mapping -------

// Maps demo item `index` onto the KPI model (spec/kpi-model.md). Every value
// is text exactly as the source gave it: the hub parses and validates all
// adapters' records the same way and names field and value in quarantine, so
// an adapter never drops nor "repairs" a value it does not understand.
kpihub::sdk::Record make_record(const TemplateSettings& settings, int64_t index) {
  const std::string number = std::to_string(index + 1);
  const auto work_day = settings.start_date + std::chrono::days{index % kDaysOfWorkDates};
  const std::string work_date = format_date(work_day);
  // The source states its own UTC offset; an adapter passes it on unchanged.
  const std::string completed_at = work_date + "T15:00:00+07:00";
  const std::string approved_at = work_date + "T16:00:00+07:00";
  static constexpr const char* kRatings[] = {"excellent", "good", "fair"};

  kpihub::sdk::Record record;
  // Stable across revisions: the hub derives record_id ("<source>:<id>") from
  // it, and it is the record's idempotency key everywhere downstream.
  record.source_id =
      "DEMO-" + std::string(6 - std::min<std::size_t>(6, number.size()), '0') + number;
  // REAL ADAPTER: the source's own version counter or change sequence; it
  // must grow whenever the source changes the record, or the hub keeps the
  // old version.
  record.revision = "1";
  record.staff_code = settings.staff_code;
  record.task_code = settings.task_code;
  record.work_date = work_date;
  record.declared_minutes = std::to_string(30 + (index * 17) % 90);
  record.quantity = std::to_string(1 + index % 4);
  record.product_unit = "văn bản";
  record.title = "Xử lý văn bản đến số " + number + "/UBND-VP";
  record.evidence_ref = number + "/UBND-VP";
  record.deadline = format_date(work_day + std::chrono::days{2});
  record.completed_at = completed_at;
  record.approval_status = "approved";
  record.approval_rating = kRatings[index % 3];
  record.approval_by = "KH-000010";
  record.approval_at = approved_at;
  record.changed_at = approved_at;
  record.attributes = {{"document_type", "incoming"}};
  // REAL ADAPTER: set `raw` to the item exactly as the source sent it, so
  // that a quarantined record can be shown to the person who must fix it.
  record.location = "demo item " + number;
  return record;
}

// The cursor is the index of the next record, in decimal. A real cursor is
// whatever lets the source continue where the last page ended (a change
// sequence, an "updated since" timestamp with a tie-breaking id, a page
// token); it is opaque to the hub.
int64_t parse_cursor(std::string_view cursor) {
  int64_t index = 0;
  const auto [stop, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), index);
  if (ec != std::errc() || stop != cursor.data() + cursor.size() || index < 0) {
    // The stored cursor was not written by this adapter (or by an older
    // version with another format): the hub must not guess where to resume.
    throw DataError("cursor \"" + std::string(cursor) + "\" is not a record index");
  }
  return index;
}

// ----------------------------------------------------------- source -------

class TemplateSource : public kpihub::sdk::Source {
 public:
  TemplateSource(kpihub::sdk::Host& host, kpihub::sdk::Settings& settings)
      : host_(host), settings_(read_settings(host, settings)) {
    // Metrics: declared once with their help text, and at 0 from the start so that an
    // alert has a series to watch. The host adds the label source="<instance name>".
    host_.declare_counter("template_records_total", "Records the template source made");
    host_.metric_add("template_records_total", 0);
  }

  // Called by the hub with the cursor it stored with the previous page
  // (nullopt on the very first pull). The same cursor must always give the
  // same records: the hub stores a page and its cursor in one transaction, so
  // after a crash it pulls from the last stored cursor again.
  //
  // Errors: throw kpihub::sdk::TransientError when trying again later can
  // help (timeout, connection refused, HTTP 429/503), AuthError when the
  // source refuses the credentials, ConfigError for settings the operator
  // must fix, DataError when the source's answer cannot be understood at all.
  // One bad item is not an error: page.reject() it with a reason code, and
  // keep its neighbours.
  void pull(std::optional<std::string_view> cursor, kpihub::sdk::Page& page) override {
    const int64_t first = cursor ? parse_cursor(*cursor) : 0;
    // max(): a cursor beyond the end (the operator lowered `records`) stays
    // where it is rather than moving backwards.
    const int64_t end = std::max(first, std::min(settings_.records, first + settings_.page_size));
    for (int64_t index = first; index < end; ++index) page.add(make_record(settings_, index));
    host_.metric_add("template_records_total", static_cast<double>(end - first));
    page.set_cursor(std::to_string(end));
    // caught_up tells the hub to stop pulling until its next run.
    page.set_caught_up(end >= settings_.records);
    page.set_progress("record " + std::to_string(end) + " of " + std::to_string(settings_.records));
  }

 private:
  kpihub::sdk::Host& host_;
  TemplateSettings settings_;
};

}  // namespace

// The manifest: plugin name (what the hub's config refers to), version,
// one-line description, and the accepted settings for `kpihub plugins`.
KPIHUB_SOURCE_PLUGIN(TemplateSource, "template-source", "1.0.0",
                     "Deterministic demo work records: a model for new source adapters",
                     R"({"records": "integer 0..1000000, default 100",
 "staff_code": "string, required: the staff code every record is attributed to",
 "task_code": "string, default \"B.03.2\"",
 "start_date": "YYYY-MM-DD, default 27 days before the hub's date; work dates cycle over 28 days",
 "page_size": "integer 1..1000, default 50"})")
