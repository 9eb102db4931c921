#include <kpihub/education/teaching_log.hpp>

#include "schema_text.hpp"  // generated: kTeachingLogSchema

#include <utility>

namespace kpihub::education {
namespace {

constexpr std::string_view kNamespace = "urn:vn:edu:teaching-log:1";

sdk::FileRejected rejected(const sdk::xml::ParseError& e) {
  return sdk::FileRejected(e.reason(), e.what());
}

}  // namespace

std::string_view shipped_schema() {
  return kTeachingLogSchema;
}

TeachingLogReader::TeachingLogReader(std::optional<std::string> path, std::string bytes,
                                     std::string name, std::string xsd)
    : path_(std::move(path)),
      bytes_(std::move(bytes)),
      name_(std::move(name)),
      xsd_(std::move(xsd)) {}

std::unique_ptr<TeachingLogReader> TeachingLogReader::open_file(std::string path, std::string name,
                                                                std::string xsd_text) {
  return std::unique_ptr<TeachingLogReader>(
      new TeachingLogReader(std::move(path), {}, std::move(name), std::move(xsd_text)));
}

std::unique_ptr<TeachingLogReader> TeachingLogReader::open_memory(std::string bytes,
                                                                  std::string name,
                                                                  std::string xsd_text) {
  return std::unique_ptr<TeachingLogReader>(
      new TeachingLogReader(std::nullopt, std::move(bytes), std::move(name), std::move(xsd_text)));
}

sdk::xml::Reader TeachingLogReader::open_reader() const {
  return path_ ? sdk::xml::Reader::open_file(*path_, name_)
               : sdk::xml::Reader::open_memory(bytes_, name_);
}

void TeachingLogReader::check() {
  try {
    auto reader = open_reader();
    reader.validate_with_text(xsd_, "teaching-log-1.xsd");
    bool root_seen = false;
    while (reader.read()) {
      if (!root_seen && reader.node() == sdk::xml::Node::element) {
        root_seen = true;
        if (reader.local_name() != "TeachingLog" || reader.namespace_uri() != kNamespace) {
          throw sdk::FileRejected(
              "parse_error", reader.where() + ": the root element is <" +
                                 std::string(reader.local_name()) + "> in namespace \"" +
                                 std::string(reader.namespace_uri()) + "\", not <TeachingLog> in " +
                                 std::string(kNamespace));
        }
      }
    }
    if (!root_seen) throw sdk::FileRejected("parse_error", name_ + ": no root element");
  } catch (const sdk::xml::ParseError& e) {
    throw rejected(e);
  }
  reader_.reset();
  at_end_ = false;
}

void TeachingLogReader::read_root() {
  reader_.emplace(open_reader());
  while (reader_->read()) {
    if (reader_->node() == sdk::xml::Node::element) break;
  }
  school_ = reader_->attribute("schoolCode").value_or("");
  agency_ = reader_->attribute("agencyCode").value_or("");
  level_ = reader_->attribute("level").value_or("");
  // When the school system recorded the work: the export's `generated` time
  // (spec/scoring.md 5.4; local time when it has no offset), or failing that
  // when the file arrived. Read by the host's rule: an xs:dateTime the host
  // would refuse ("24:00:00", a five-digit year) must not quarantine every
  // record of the log.
  changed_at_.reset();
  if (auto g = reader_->attribute("generated")) {
    const auto b = g->find_first_not_of(" \t\r\n");
    const auto e = g->find_last_not_of(" \t\r\n");
    const std::string t = b == std::string::npos ? std::string() : g->substr(b, e - b + 1);
    if (const auto at = sdk::parse_rfc3339(t, utc_offset_minutes_)) {
      changed_at_ = at->rfc3339();
    } else if (log_) {
      log_(name_ + ": generated \"" + t +
           "\" is not a time the hub can use (YYYY-MM-DDThh:mm:ss, hours up to 23, a four-digit "
           "year, an optional offset); the log is dated by when it arrived");
    }
  }
  if (!changed_at_ && arrived_unix_s_)
    changed_at_ = sdk::rfc3339_local(*arrived_unix_s_, utc_offset_minutes_);
  if (reader_->is_empty_element()) at_end_ = true;
}

bool TeachingLogReader::next_unit(sdk::Page& page) {
  try {
    if (!reader_) read_root();
    // Move to the next <Teacher> under the root.
    while (!at_end_) {
      if (!reader_->read()) {
        at_end_ = true;
        break;
      }
      if (reader_->node() == sdk::xml::Node::element && reader_->depth() == 1 &&
          reader_->local_name() == "Teacher") {
        break;
      }
    }
    if (at_end_) return false;

    const std::string teacher = reader_->attribute("id").value_or("");
    if (reader_->is_empty_element()) return true;
    while (reader_->read()) {
      if (reader_->node() == sdk::xml::Node::end_element && reader_->depth() == 1) break;
      if (reader_->node() != sdk::xml::Node::element || reader_->depth() != 2) continue;
      const std::string kind(reader_->local_name());
      auto attr = [&](const char* name) { return reader_->attribute(name); };
      sdk::Record r;
      const std::string id = attr("id").value_or("");
      r.source_id = school_ + "|" + id;
      r.revision = attr("revision").value_or("");
      r.source_staff_id = teacher;
      if (!agency_.empty()) r.agency_code = agency_;
      r.evidence_ref = id;
      r.quantity = "1";
      r.location = reader_->where();
      r.changed_at = changed_at_;
      r.attributes.emplace_back("school_code", school_);
      r.attributes.emplace_back("level", level_);
      if (kind == "Lesson") {
        const std::string status = attr("status").value_or("");
        const std::string subject = attr("subject").value_or("");
        const std::string klass = attr("class").value_or("");
        const std::string period = attr("period").value_or("");
        r.task_code = "EDU.LESSON." + level_;
        r.work_date = attr("date");
        r.declared_minutes = attr("minutes");
        r.product_unit = "tiết";
        r.title = subject + " " + klass + ", tiết " + period;
        if (status == "cancelled") r.retracted = "true";
        r.attributes.emplace_back("class", klass);
        r.attributes.emplace_back("subject", subject);
        r.attributes.emplace_back("period", period);
        r.attributes.emplace_back("status", status);
        if (auto s = attr("substituteFor")) r.attributes.emplace_back("substitute_for", *s);
      } else if (kind == "Duty") {
        const std::string code = attr("code").value_or("");
        r.task_code = "EDU.DUTY." + code + "." + level_;
        r.work_date = attr("from");
        r.declared_minutes = "0";
        r.product_unit = "tuần";
        r.title = "Nhiệm vụ " + code + (attr("class") ? " lớp " + *attr("class") : std::string());
        if (auto c = attr("class")) r.attributes.emplace_back("class", *c);
        if (auto to = attr("to")) r.attributes.emplace_back("to", *to);
      } else {
        continue;  // the XSD admits nothing else
      }
      page.add(std::move(r));
    }
    return true;
  } catch (const sdk::xml::ParseError& e) {
    throw rejected(e);
  }
}

}  // namespace kpihub::education
