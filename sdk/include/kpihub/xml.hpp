// kpihub SDK: a hardened, streaming XML reader over libxml2's xmlTextReader.
//
// Sector exports come from systems we do not control, so the reader is safe
// by construction: no DTD is loaded, no entity is expanded, no network is
// touched, and a document type declaration is refused outright (billion
// laughs, external entities). Input is read as UTF-8 whatever it declares;
// bytes that are not UTF-8 are an error naming the line. Depth, text size and
// total size are limited. Memory stays constant: the reader frees each node
// as it moves past it.
//
// A plugin that includes this header links KpiHub::xml (the SDK with libxml2).
#ifndef KPIHUB_XML_HPP
#define KPIHUB_XML_HPP

#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlschemastypes.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace kpihub::sdk::xml {

namespace detail {
// libxml2 2.9 sets up its globals and its table of built-in schema types on
// first use, without a lock: two source threads reading their first schema at
// the same moment each built a table and one leaked. libxml2 asks to be set up
// on one thread before others use it; this runs when the plugin is loaded
// (the host loads plugins on its main thread, before any source thread runs);
// an inline variable is only emitted where it is named, as Reader does.
inline const bool libxml_ready = [] {
  xmlInitParser();
  xmlSchemaInitTypes();
  return true;
}();
}  // namespace detail

struct Limits {
  int max_depth = 64;
  // Largest text of one element (a base64 inner file is the biggest).
  std::size_t max_text_bytes = std::size_t{64} << 20;
  // Largest document, in bytes of input consumed.
  std::uint64_t max_total_bytes = std::uint64_t{2} << 30;
};

// Why a document could not be read. `reason` is a kpi-model quarantine code:
// "parse_error" (not XML, truncated, refused construct, limit) or
// "bad_encoding" (not UTF-8).
class ParseError : public std::runtime_error {
 public:
  ParseError(std::string reason, const std::string& what, int line)
      : std::runtime_error(what), reason_(std::move(reason)), line_(line) {}
  const std::string& reason() const { return reason_; }
  int line() const { return line_; }

 private:
  std::string reason_;
  int line_;
};

enum class Node {
  element = XML_READER_TYPE_ELEMENT,
  end_element = XML_READER_TYPE_END_ELEMENT,
  text = XML_READER_TYPE_TEXT,
  cdata = XML_READER_TYPE_CDATA,
  whitespace = XML_READER_TYPE_SIGNIFICANT_WHITESPACE,
  other = -1,
};

class Reader {
 public:
  // `name` is what error messages call the document (a file name, "XML3 of
  // MA_LK 123"); it must not contain patient data.
  static Reader open_file(const std::string& path, std::string name, Limits limits = {}) {
    Reader r(std::move(name), limits);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) r.total_bytes_ = static_cast<std::uint64_t>(st.st_size);
    xmlResetLastError();
    r.reader_ = xmlReaderForFile(path.c_str(), "UTF-8", options());
    if (!r.reader_) throw ParseError("parse_error", r.name_ + ": cannot be opened", 0);
    r.install_error_handler();
    return r;
  }
  // The buffer must outlive the reader.
  static Reader open_memory(std::string_view data, std::string name, Limits limits = {}) {
    Reader r(std::move(name), limits);
    if (data.size() > limits.max_total_bytes) {
      throw ParseError("parse_error",
                       r.name_ + ": " + std::to_string(data.size()) +
                           " bytes is over the limit of " + std::to_string(limits.max_total_bytes),
                       0);
    }
    r.total_bytes_ = data.size();
    xmlResetLastError();
    r.reader_ =
        xmlReaderForMemory(data.data(), static_cast<int>(data.size()), nullptr, "UTF-8", options());
    if (!r.reader_) throw ParseError("parse_error", r.name_ + ": cannot be read", 0);
    r.install_error_handler();
    return r;
  }

  Reader(Reader&& o) noexcept { *this = std::move(o); }
  Reader& operator=(Reader&& o) noexcept {
    if (this != &o) {
      close();
      reader_ = std::exchange(o.reader_, nullptr);
      schema_ctx_ = std::exchange(o.schema_ctx_, nullptr);
      schema_ = std::exchange(o.schema_, nullptr);
      name_ = std::move(o.name_);
      limits_ = o.limits_;
      error_ = std::move(o.error_);
      error_line_ = o.error_line_;
      error_code_ = o.error_code_;
      error_domain_ = o.error_domain_;
      error_is_encoding_ = o.error_is_encoding_;
      total_bytes_ = o.total_bytes_;
      root_seen_ = o.root_seen_;
      root_closed_ = o.root_closed_;
      // Once a schema is plugged in the reader is not ours to re-handle (see
      // attach_schema); only the schema context gets the new address.
      if (reader_ && !schema_ctx_) install_error_handler();
      if (schema_ctx_) xmlSchemaSetValidStructuredErrors(schema_ctx_, &Reader::on_error, this);
    }
    return *this;
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() { close(); }

  // Validates the document against an XSD while it is read. Call before the
  // first read(). A validity error surfaces from read() as a parse_error.
  void validate_with(const std::string& xsd_path) {
    attach_schema(xmlSchemaNewParserCtxt(xsd_path.c_str()), xsd_path);
  }
  // The same with the schema's text (a plugin may embed the XSD it ships).
  void validate_with_text(std::string_view xsd_text, const std::string& schema_name) {
    attach_schema(xmlSchemaNewMemParserCtxt(xsd_text.data(), static_cast<int>(xsd_text.size())),
                  schema_name);
  }

 private:
  void attach_schema(xmlSchemaParserCtxtPtr pctx, const std::string& xsd_path) {
    if (!pctx) throw std::runtime_error("cannot open schema " + xsd_path);
    schema_ = xmlSchemaParse(pctx);
    xmlSchemaFreeParserCtxt(pctx);
    if (!schema_) throw std::runtime_error("schema " + xsd_path + " does not parse");
    schema_ctx_ = xmlSchemaNewValidCtxt(schema_);
    xmlSchemaSetValidStructuredErrors(schema_ctx_, &Reader::on_error, this);
    // The reader's own handler must not be set again once the schema is
    // plugged in (libxml2 2.9 then calls a stale pointer); parser errors it
    // no longer sees are read from xmlGetLastError() in fail().
    if (xmlTextReaderSchemaValidateCtxt(reader_, schema_ctx_, 0) != 0) {
      throw std::runtime_error("cannot attach schema " + xsd_path);
    }
  }

 public:
  // Moves to the next node; false at the end of the document. Throws
  // ParseError for malformed input, a refused construct or a limit.
  bool read() {
    const int rc = xmlTextReaderRead(reader_);
    if (rc < 0 || !error_.empty()) fail();
    if (rc == 0) {
      if (schema_ctx_ && xmlTextReaderIsValid(reader_) != 1) fail();
      return false;
    }
    check_node();
    return true;
  }

  // Skips the current element's subtree; false at the end of the document.
  bool skip() {
    const bool on_root = node() == Node::element && depth() == 0;
    const int rc = xmlTextReaderNext(reader_);
    if (rc < 0 || !error_.empty()) fail();
    if (on_root) root_closed_ = true;
    if (rc == 0) return false;
    check_node();
    return true;
  }

  Node node() const {
    switch (xmlTextReaderNodeType(reader_)) {
      case XML_READER_TYPE_ELEMENT:
        return Node::element;
      case XML_READER_TYPE_END_ELEMENT:
        return Node::end_element;
      case XML_READER_TYPE_TEXT:
        return Node::text;
      case XML_READER_TYPE_CDATA:
        return Node::cdata;
      case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
        return Node::whitespace;
      default:
        return Node::other;
    }
  }
  bool is_element(std::string_view local) const {
    return node() == Node::element && local_name() == local;
  }
  bool is_end(std::string_view local) const {
    return node() == Node::end_element && local_name() == local;
  }
  std::string_view local_name() const { return str(xmlTextReaderConstLocalName(reader_)); }
  std::string_view namespace_uri() const { return str(xmlTextReaderConstNamespaceUri(reader_)); }
  int depth() const { return xmlTextReaderDepth(reader_); }
  bool is_empty_element() const { return xmlTextReaderIsEmptyElement(reader_) == 1; }
  int line() const { return xmlTextReaderGetParserLineNumber(reader_); }
  const std::string& name() const { return name_; }

  std::optional<std::string> attribute(const char* attr) const {
    xmlChar* v = xmlTextReaderGetAttribute(reader_, reinterpret_cast<const xmlChar*>(attr));
    if (!v) return std::nullopt;
    std::string out(reinterpret_cast<const char*>(v));
    xmlFree(v);
    return out;
  }

  // On an element: its text (text and CDATA children joined; nested elements
  // are refused), leaving the reader on the element's end. Empty for <TAG/>.
  std::string read_text() {
    std::string out;
    if (is_empty_element()) return out;
    const int start_depth = depth();
    while (read()) {
      const Node n = node();
      if (n == Node::end_element && depth() == start_depth) return out;
      if (n == Node::text || n == Node::cdata || n == Node::whitespace) {
        out += str(xmlTextReaderConstValue(reader_));
        if (out.size() > limits_.max_text_bytes) {
          throw ParseError("parse_error",
                           where() + ": text of an element is over the limit of " +
                               std::to_string(limits_.max_text_bytes) + " bytes",
                           line());
        }
      } else if (n == Node::element) {
        throw ParseError(
            "parse_error",
            where() + ": element <" + std::string(local_name()) + "> where only text is allowed",
            line());
      }
    }
    throw ParseError("parse_error", name_ + ": document ends inside an element", line());
  }

  // The line the current node starts on (a multi-line element's first line).
  int node_line() const {
    xmlNodePtr n = xmlTextReaderCurrentNode(reader_);
    const long l = n ? xmlGetLineNo(n) : -1;
    return l > 0 ? static_cast<int>(l) : line();
  }
  std::string where() const { return name_ + ":" + std::to_string(node_line()); }

 private:
  Reader(std::string name, Limits limits) : name_(std::move(name)), limits_(limits) {
    // Names the set-up so that it is emitted, and so run at load time.
    static_cast<void>(detail::libxml_ready);
  }

  static int options() {
    // No XML_PARSE_NOENT (entities stay unexpanded), no DTDLOAD/DTDATTR, no
    // XML_PARSE_HUGE (libxml2's own limits stay on), no network.
    return XML_PARSE_NONET | XML_PARSE_NOWARNING;
  }
  static std::string_view str(const xmlChar* s) {
    return s ? std::string_view(reinterpret_cast<const char*>(s)) : std::string_view();
  }

  void install_error_handler() {
    xmlTextReaderSetStructuredErrorHandler(reader_, &Reader::on_error, this);
  }

  static void on_error(void* self, xmlErrorPtr e) {
    auto* r = static_cast<Reader*>(self);
    if (!e || e->level < XML_ERR_ERROR || !r->error_.empty()) return;
    std::string msg = e->message ? e->message : "unknown error";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    r->error_ = msg;
    r->error_line_ = e->line;
    r->error_code_ = e->code;
    r->error_domain_ = e->domain;
    r->error_is_encoding_ = e->domain == XML_FROM_IO || e->code == XML_ERR_INVALID_CHAR ||
                            e->code == XML_ERR_INVALID_ENCODING ||
                            msg.find("UTF-8") != std::string::npos ||
                            msg.find("encoding") != std::string::npos;
  }

  [[noreturn]] void fail() {
    if (error_.empty()) {
      if (const xmlError* last = xmlGetLastError(); last && last->level >= XML_ERR_ERROR) {
        on_error(this, const_cast<xmlErrorPtr>(last));
      }
    }
    if (error_.empty())
      throw ParseError("parse_error", name_ + ": not a well-formed or valid document", line());
    // libxml2's reader says "Extra content at the end of the document" for a
    // file that has no content or ends inside its root element: say what is
    // wrong. The input has ended when the parser stopped at its last byte.
    if (!error_is_encoding_ && !root_closed_ && error_domain_ == XML_FROM_PARSER) {
      const long consumed = reader_ ? xmlTextReaderByteConsumed(reader_) : -1;
      const bool at_end =
          total_bytes_ && consumed >= 0 && static_cast<std::uint64_t>(consumed) >= *total_bytes_;
      if (total_bytes_ && *total_bytes_ == 0) {
        throw ParseError("parse_error", name_ + ": empty file (0 bytes)", 0);
      }
      if (root_seen_ && (error_code_ == XML_ERR_DOCUMENT_END || at_end)) {
        throw ParseError("parse_error",
                         name_ + ":" + std::to_string(error_line_) +
                             ": file ends early (cut short inside its root element, after " +
                             std::to_string(consumed < 0 ? 0 : consumed) + " bytes)",
                         error_line_);
      }
      if (!root_seen_ && error_code_ == XML_ERR_DOCUMENT_END && at_end) {
        throw ParseError("parse_error",
                         name_ + ": file ends early (no root element in its " +
                             std::to_string(*total_bytes_) + " bytes)",
                         error_line_);
      }
    }
    throw ParseError(error_is_encoding_ ? "bad_encoding" : "parse_error",
                     name_ + ":" + std::to_string(error_line_) + ": " + error_, error_line_);
  }

  void check_node() {
    const int type = xmlTextReaderNodeType(reader_);
    if (type == XML_READER_TYPE_DOCUMENT_TYPE) {
      throw ParseError(
          "parse_error",
          where() + ": a DOCTYPE declaration is refused (DTDs and entities are not allowed)",
          line());
    }
    if (type == XML_READER_TYPE_ENTITY_REFERENCE || type == XML_READER_TYPE_ENTITY) {
      throw ParseError("parse_error", where() + ": an entity reference is refused", line());
    }
    if (type == XML_READER_TYPE_ELEMENT && depth() == 0) {
      root_seen_ = true;
      if (xmlTextReaderIsEmptyElement(reader_) == 1) root_closed_ = true;
    }
    if (type == XML_READER_TYPE_END_ELEMENT && depth() == 0) root_closed_ = true;
    if (depth() > limits_.max_depth) {
      throw ParseError("parse_error",
                       where() + ": nesting deeper than " + std::to_string(limits_.max_depth),
                       line());
    }
    const long consumed = xmlTextReaderByteConsumed(reader_);
    if (consumed > 0 && static_cast<std::uint64_t>(consumed) > limits_.max_total_bytes) {
      throw ParseError("parse_error",
                       where() + ": document is over the limit of " +
                           std::to_string(limits_.max_total_bytes) + " bytes",
                       line());
    }
  }

  void close() {
    if (reader_) xmlFreeTextReader(reader_);
    if (schema_ctx_) xmlSchemaFreeValidCtxt(schema_ctx_);
    if (schema_) xmlSchemaFree(schema_);
    reader_ = nullptr;
    schema_ctx_ = nullptr;
    schema_ = nullptr;
  }

  xmlTextReaderPtr reader_ = nullptr;
  xmlSchemaValidCtxtPtr schema_ctx_ = nullptr;
  xmlSchemaPtr schema_ = nullptr;
  std::string name_;
  Limits limits_;
  std::string error_;
  int error_line_ = 0;
  int error_code_ = 0;
  int error_domain_ = 0;
  bool error_is_encoding_ = false;
  std::optional<std::uint64_t> total_bytes_;  // the document's size, when known
  bool root_seen_ = false;
  bool root_closed_ = false;
};

}  // namespace kpihub::sdk::xml

#endif  // KPIHUB_XML_HPP
