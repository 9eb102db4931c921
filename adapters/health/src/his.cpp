#include <kpihub/health/his.hpp>

#include <openssl/evp.h>
#include <sqlite3.h>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <set>

namespace kpihub::health {
namespace {

using Fields = std::map<std::string, std::string>;

// The fields read from each table; nothing else is ever copied (patient data
// stays in the file).
const std::set<std::string> kXml3Fields = {
    "STT",     "MA_LK",     "MA_DICH_VU",      "TEN_DICH_VU", "MA_NHOM",    "SO_LUONG",
    "MA_KHOA", "MA_BAC_SI", "NGUOI_THUC_HIEN", "NGAY_YL",     "NGAY_TH_YL", "NGAY_KQ"};
const std::set<std::string> kXml4Fields = {"STT", "MA_LK", "MA_DICH_VU", "NGAY_KQ", "MA_BS_DOC_KQ"};
const std::set<std::string> kXml5Fields = {"STT", "MA_LK", "THOI_DIEM_DBLS", "NGUOI_THUC_HIEN",
                                           "NGAY_YL"};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> clinicians(const std::string& field) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= field.size()) {
    const auto end = field.find(';', start);
    std::string one =
        trim(field.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (!one.empty() && std::find(out.begin(), out.end(), one) == out.end())
      out.push_back(std::move(one));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// yyyyMMddHHmm, local time -> minutes since 1970-01-01 local; nullopt if impossible.
std::optional<int64_t> parse_time(const std::string& t) {
  if (t.size() != 12 ||
      !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int y = std::stoi(t.substr(0, 4));
  const unsigned mo = static_cast<unsigned>(std::stoi(t.substr(4, 2)));
  const unsigned d = static_cast<unsigned>(std::stoi(t.substr(6, 2)));
  const int h = std::stoi(t.substr(8, 2));
  const int mi = std::stoi(t.substr(10, 2));
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{mo},
                                        std::chrono::day{d}};
  if (!ymd.ok() || h > 23 || mi > 59) return std::nullopt;
  return int64_t{std::chrono::sys_days{ymd}.time_since_epoch().count()} * 1440 + h * 60 + mi;
}

std::string date_of(const std::string& t) {
  return t.substr(0, 4) + "-" + t.substr(4, 2) + "-" + t.substr(6, 2);
}

// Base64 through OpenSSL; whitespace (line breaks in exports) is ignored.
std::optional<std::string> decode_base64(const std::string& text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') clean += c;
  }
  if (clean.empty() || clean.size() % 4 != 0) return std::nullopt;
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  std::size_t size = static_cast<std::size_t>(n);
  if (clean.back() == '=') --size;
  if (clean[clean.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

// libxml2's message for a broken inner file, without anything quoted from
// the document (an undefined entity's name, a bad attribute value, the bytes
// of a non-UTF-8 sequence): inner files hold patient data.
std::string without_document_text(const std::string& message) {
  std::string out;
  bool quoted = false;
  for (std::size_t i = 0; i < message.size(); ++i) {
    const char c = message[i];
    if (c == '\'' || c == '"') {
      if (quoted) out += "...";  // what was between the quotes is left out
      out += c;
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    if (c == '\n') break;  // libxml2 puts "Bytes: 0x.." and excerpts on later lines
    if (message.compare(i, 6, "Bytes:") == 0) break;
    out += c;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ',')) out.pop_back();
  return out;
}

struct Table {
  std::string kind;  // XML1, XML3, XML4, XML5
  bool legacy_4210 = false;
  std::vector<std::pair<Fields, int>> rows;  // fields, line
  std::string ma_lk;                         // XML1
};

// Reads an inner file; throws xml::ParseError.
Table read_table(const std::string& kind, const std::string& xml, const std::string& name) {
  Table t;
  t.kind = kind;
  std::string_view doc(xml);
  if (doc.size() >= 3 && doc.substr(0, 3) == "\xEF\xBB\xBF") doc.remove_prefix(3);
  auto reader = sdk::xml::Reader::open_memory(doc, name);
  const std::set<std::string>* wanted = kind == "XML3"   ? &kXml3Fields
                                        : kind == "XML4" ? &kXml4Fields
                                        : kind == "XML5" ? &kXml5Fields
                                                         : nullptr;
  const std::string row_name = kind == "XML3"   ? "CHI_TIET_DVKT"
                               : kind == "XML4" ? "CHI_TIET_CLS"
                                                : "CHI_TIET_DIEN_BIEN_BENH";
  bool root = true;
  while (reader.read()) {
    if (reader.node() != sdk::xml::Node::element) continue;
    const std::string element(reader.local_name());
    if (root) {
      root = false;
      t.legacy_4210 = element.rfind("DSACH_", 0) == 0;  // 4210: the list is the root
      continue;
    }
    if (kind == "XML1") {
      if (element == "MA_LK") t.ma_lk = trim(reader.read_text());
      continue;  // nothing else of the summary is read: it holds the patient's data
    }
    if (element != row_name || !wanted) continue;
    Fields row;
    const int line = reader.node_line();
    const int depth = reader.depth();
    if (!reader.is_empty_element()) {
      while (reader.read()) {
        if (reader.node() == sdk::xml::Node::end_element && reader.depth() == depth) break;
        if (reader.node() != sdk::xml::Node::element) continue;
        const std::string field(reader.local_name());
        if (wanted->count(field)) {
          row[field] = trim(reader.read_text());
        } else if (!reader.is_empty_element()) {
          // Not ours: skipped unread.
          const int d = reader.depth();
          while (reader.read() &&
                 !(reader.node() == sdk::xml::Node::end_element && reader.depth() == d)) {
          }
        }
      }
    }
    t.rows.emplace_back(std::move(row), line);
  }
  return t;
}

bool read_kind(const std::string& kind) {
  return kind == "XML1" || kind == "XML3" || kind == "XML4" || kind == "XML5";
}

// Decodes and reads one inner file. Throws sdk::FileRejected naming the
// episode and table: a file any part of which cannot be read is refused whole.
Table inner_table(const std::string& kind, const std::string& content, const std::string& where,
                  const std::string& ma_lk) {
  const std::string lk = ma_lk.empty() ? "" : " (MA_LK " + ma_lk + ")";
  const std::string whole = "; the whole file is refused, nothing of it is applied";
  const auto decoded = decode_base64(content);
  if (!decoded) {
    throw sdk::FileRejected("parse_error",
                            where + " " + kind + ": NOIDUNGFILE is not base64" + lk + whole);
  }
  try {
    return read_table(kind, *decoded, where + " " + kind);
  } catch (const sdk::xml::ParseError& e) {
    throw sdk::FileRejected(e.reason(), without_document_text(e.what()) + lk + whole);
  }
}

// NGAYLAP, the export's date (yyyyMMdd) or time (yyyyMMddHHmm[ss]), as local
// seconds since 1970-01-01; nullopt if it is neither.
std::optional<int64_t> parse_export_time(const std::string& t) {
  if (t.size() == 8) {
    const auto m = parse_time(t + "0000");
    return m ? std::optional<int64_t>(*m * 60) : std::nullopt;
  }
  if (t.size() == 12) {
    const auto m = parse_time(t);
    return m ? std::optional<int64_t>(*m * 60) : std::nullopt;
  }
  if (t.size() == 14 && t[12] >= '0' && t[12] <= '5' && t[13] >= '0' && t[13] <= '9') {
    const auto m = parse_time(t.substr(0, 12));
    return m ? std::optional<int64_t>(*m * 60 + (t[12] - '0') * 10 + (t[13] - '0')) : std::nullopt;
  }
  return std::nullopt;
}

std::string fields_json(const sdk::Record& r) {
  boost::json::object o;
  o["source_id"] = r.source_id;
  o["source_staff_id"] = r.source_staff_id.value_or("");
  o["task_code"] = r.task_code.value_or("");
  o["work_date"] = r.work_date.value_or("");
  o["declared_minutes"] = r.declared_minutes.value_or("");
  o["quantity"] = r.quantity.value_or("");
  o["title"] = r.title.value_or("");
  o["evidence_ref"] = r.evidence_ref.value_or("");
  boost::json::object attrs;
  for (const auto& [k, v] : r.attributes) attrs[k] = v;
  o["attributes"] = std::move(attrs);
  return boost::json::serialize(o);
}

sdk::Record record_from_json(const std::string& text) {
  const auto o = boost::json::parse(text).as_object();
  auto s = [&](const char* k) { return std::string(o.at(k).as_string()); };
  sdk::Record r;
  r.source_id = s("source_id");
  r.source_staff_id = s("source_staff_id");
  r.task_code = s("task_code");
  r.work_date = s("work_date");
  r.declared_minutes = s("declared_minutes");
  r.quantity = s("quantity");
  if (!s("title").empty()) r.title = s("title");
  r.evidence_ref = s("evidence_ref");
  for (const auto& kv : o.at("attributes").as_object()) {
    r.attributes.emplace_back(std::string(kv.key()), std::string(kv.value().as_string()));
  }
  return r;
}

}  // namespace

// ------------------------------------------------------------ state -------

EpisodeState::EpisodeState(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw sdk::ConfigError("health: cannot open state file " + path + ": " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  // NORMAL in WAL mode: a commit survives a killed process (kill -9), not a
  // power cut. The worst a lost last version can do is make the next export
  // of that episode send unchanged credits again at a higher revision (same
  // content, never a different one); FULL would fsync per episode and cut the
  // reader to ~3 MB/s.
  exec("PRAGMA synchronous=NORMAL");
  exec(
      "CREATE TABLE IF NOT EXISTS episode_rows (episode TEXT NOT NULL, file_seq INTEGER NOT NULL, "
      "source_id TEXT NOT NULL, fields TEXT NOT NULL, revision INTEGER NOT NULL, "
      "PRIMARY KEY (episode, file_seq, source_id))");
  // Since issue 18: the export's own time, so that an older export delivered
  // again changes nothing. State files written before have no such column.
  bool has_exported_at = false;
  {
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA table_info(episode_rows)", -1, &q, nullptr) == SQLITE_OK) {
      while (sqlite3_step(q) == SQLITE_ROW) {
        const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(q, 1));
        if (name && std::string_view(name) == "exported_at") has_exported_at = true;
      }
    }
    sqlite3_finalize(q);
  }
  if (!has_exported_at) exec("ALTER TABLE episode_rows ADD COLUMN exported_at INTEGER");
  // Each distinct content an episode was exported with, at the last file it came in.
  exec(
      "CREATE TABLE IF NOT EXISTS episode_exports (episode TEXT NOT NULL, file_seq INTEGER NOT "
      "NULL, digest TEXT NOT NULL, PRIMARY KEY (episode, file_seq))");
  // The rows each version quarantined, as reported to the hub: the same
  // rejection again is not reported again (one quarantine entry per bad row).
  exec(
      "CREATE TABLE IF NOT EXISTS episode_rejections (episode TEXT NOT NULL, file_seq INTEGER NOT "
      "NULL, source_id TEXT NOT NULL, rejection TEXT NOT NULL, PRIMARY KEY (episode, file_seq, "
      "source_id, rejection))");
}

EpisodeState::~EpisodeState() {
  sqlite3_close(db_);
}

void EpisodeState::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw sdk::TransientError("health: state file " + path_ + ": " + why);
  }
}

namespace {
struct Stmt {
  sqlite3_stmt* s = nullptr;
  sqlite3* db;
  const std::string& path;
  Stmt(sqlite3* database, const char* sql, const std::string& state_path)
      : db(database), path(state_path) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
      throw sdk::TransientError("health: state file " + path + ": " + sqlite3_errmsg(db));
    }
  }
  // Runs a statement that returns no rows, ready to run again with new bindings. A failed
  // write throws, naming the state file, so the caller's transaction rolls back.
  void run() {
    const int rc = sqlite3_step(s);
    const std::string why = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) throw sdk::TransientError("health: state file " + path + ": " + why);
  }
  ~Stmt() { sqlite3_finalize(s); }
  void text(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void integer(int i, int64_t v) { sqlite3_bind_int64(s, i, v); }
};
}  // namespace

std::optional<EpisodeState::Version> EpisodeState::before(const std::string& episode,
                                                          int64_t file_seq) {
  Stmt q(db_,
         "SELECT source_id, fields, revision, file_seq, exported_at FROM episode_rows WHERE "
         "episode = ?1 AND file_seq = (SELECT MAX(file_seq) FROM episode_rows WHERE episode = ?1 "
         "AND file_seq < ?2)",
         path_);
  q.text(1, episode);
  q.integer(2, file_seq);
  std::optional<Version> out;
  while (sqlite3_step(q.s) == SQLITE_ROW) {
    if (!out) {
      out.emplace();
      out->file_seq = sqlite3_column_int64(q.s, 3);
      if (sqlite3_column_type(q.s, 4) != SQLITE_NULL)
        out->exported_at = sqlite3_column_int64(q.s, 4);
    }
    const std::string id = reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0));
    if (id.empty()) continue;  // the marker of an empty version
    out->rows[id] = Row{reinterpret_cast<const char*>(sqlite3_column_text(q.s, 1)),
                        sqlite3_column_int64(q.s, 2)};
  }
  if (!out) return out;
  Stmt r(db_,
         "SELECT source_id, rejection FROM episode_rejections WHERE episode = ?1 AND file_seq = ?2",
         path_);
  r.text(1, episode);
  r.integer(2, out->file_seq);
  while (sqlite3_step(r.s) == SQLITE_ROW) {
    out->rejections.emplace(reinterpret_cast<const char*>(sqlite3_column_text(r.s, 0)),
                            reinterpret_cast<const char*>(sqlite3_column_text(r.s, 1)));
  }
  return out;
}

std::optional<int64_t> EpisodeState::superseded(const std::string& episode, int64_t file_seq,
                                                const std::string& digest) {
  Stmt latest(db_,
              "SELECT digest FROM episode_exports WHERE episode = ?1 AND file_seq < ?2 ORDER BY "
              "file_seq DESC LIMIT 1",
              path_);
  latest.text(1, episode);
  latest.integer(2, file_seq);
  if (sqlite3_step(latest.s) != SQLITE_ROW) return std::nullopt;
  if (reinterpret_cast<const char*>(sqlite3_column_text(latest.s, 0)) == digest)
    return std::nullopt;  // the export applied last, again: nothing older
  Stmt earlier(db_,
               "SELECT MAX(file_seq) FROM episode_exports WHERE episode = ?1 AND file_seq < ?2 "
               "AND digest = ?3",
               path_);
  earlier.text(1, episode);
  earlier.integer(2, file_seq);
  earlier.text(3, digest);
  if (sqlite3_step(earlier.s) != SQLITE_ROW || sqlite3_column_type(earlier.s, 0) == SQLITE_NULL)
    return std::nullopt;
  return sqlite3_column_int64(earlier.s, 0);
}

void EpisodeState::store(const std::string& episode, int64_t file_seq,
                         std::optional<int64_t> exported_at, const std::string& digest,
                         const std::map<std::string, Row>& rows,
                         const std::set<std::pair<std::string, std::string>>& rejections) {
  exec("BEGIN IMMEDIATE");
  try {
    {
      Stmt del(db_, "DELETE FROM episode_rows WHERE episode = ?1 AND file_seq = ?2", path_);
      del.text(1, episode);
      del.integer(2, file_seq);
      del.run();
    }
    // An empty version still marks the episode as seen in this file.
    Stmt ins(db_,
             "INSERT INTO episode_rows (episode, file_seq, source_id, fields, revision, "
             "exported_at) VALUES (?, ?, ?, ?, ?, ?)",
             path_);
    auto put = [&](const std::string& id, const Row& row) {
      ins.text(1, episode);
      ins.integer(2, file_seq);
      ins.text(3, id);
      ins.text(4, row.fields);
      ins.integer(5, row.revision);
      if (exported_at) {
        ins.integer(6, *exported_at);
      } else {
        sqlite3_bind_null(ins.s, 6);
      }
      ins.run();
    };
    for (const auto& [id, row] : rows) put(id, row);
    if (rows.empty()) put("", Row{"", 0});
    {
      Stmt del(db_, "DELETE FROM episode_rejections WHERE episode = ?1 AND file_seq = ?2", path_);
      del.text(1, episode);
      del.integer(2, file_seq);
      del.run();
      Stmt add(db_,
               "INSERT INTO episode_rejections (episode, file_seq, source_id, rejection) VALUES "
               "(?, ?, ?, ?)",
               path_);
      for (const auto& [id, rejection] : rejections) {
        add.text(1, episode);
        add.integer(2, file_seq);
        add.text(3, id);
        add.text(4, rejection);
        add.run();
      }
      Stmt prune(db_,
                 "DELETE FROM episode_rejections WHERE episode = ?1 AND file_seq < "
                 "(SELECT MAX(file_seq) FROM episode_rows WHERE episode = ?1 AND file_seq < ?2)",
                 path_);
      prune.text(1, episode);
      prune.integer(2, file_seq);
      prune.run();
    }
    Stmt prune(db_,
               "DELETE FROM episode_rows WHERE episode = ?1 AND file_seq < "
               "(SELECT MAX(file_seq) FROM episode_rows WHERE episode = ?1 AND file_seq < ?2)",
               path_);
    prune.text(1, episode);
    prune.integer(2, file_seq);
    prune.run();
    {
      // One row per distinct content: the last file it came in.
      Stmt forget(db_, "DELETE FROM episode_exports WHERE episode = ?1 AND digest = ?2", path_);
      forget.text(1, episode);
      forget.text(2, digest);
      forget.run();
      Stmt put(
          db_,
          "INSERT OR REPLACE INTO episode_exports (episode, file_seq, digest) VALUES (?, ?, ?)",
          path_);
      put.text(1, episode);
      put.integer(2, file_seq);
      put.text(3, digest);
      put.run();
    }
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

// ----------------------------------------------------------- reader -------

HisReader::HisReader(std::optional<std::string> path, std::string bytes, std::string name,
                     int64_t file_seq, const Mapping& mapping, EpisodeState& state)
    : path_(std::move(path)),
      bytes_(std::move(bytes)),
      name_(std::move(name)),
      file_seq_(file_seq),
      mapping_(mapping),
      state_(state) {}

std::unique_ptr<HisReader> HisReader::open_file(std::string path, std::string name,
                                                int64_t file_seq, const Mapping& mapping,
                                                EpisodeState& state) {
  return std::unique_ptr<HisReader>(
      new HisReader(std::move(path), {}, std::move(name), file_seq, mapping, state));
}

std::unique_ptr<HisReader> HisReader::open_memory(std::string bytes, std::string name,
                                                  int64_t file_seq, const Mapping& mapping,
                                                  EpisodeState& state) {
  return std::unique_ptr<HisReader>(
      new HisReader(std::nullopt, std::move(bytes), std::move(name), file_seq, mapping, state));
}

sdk::xml::Reader HisReader::open_reader() const {
  return path_ ? sdk::xml::Reader::open_file(*path_, name_)
               : sdk::xml::Reader::open_memory(bytes_, name_);
}

void HisReader::check() {
  std::optional<int64_t> ngaylap;
  std::optional<std::string> ngaylap_text;
  try {
    auto reader = open_reader();
    bool root = true, facility = false;
    int hoso = 0;
    std::string kind, ma_lk;
    while (reader.read()) {
      if (reader.node() != sdk::xml::Node::element) continue;
      const std::string element(reader.local_name());
      if (root) {
        root = false;
        if (element != "GIAMDINHHS") {
          throw sdk::FileRejected("parse_error",
                                  reader.where() + ": the root element is <" + element +
                                      ">, not <GIAMDINHHS> (the Ministry of Health envelope)");
        }
      } else if (element == "MACSKCB") {
        facility = !trim(reader.read_text()).empty();
      } else if (element == "NGAYLAP") {
        ngaylap_text = trim(reader.read_text());
        ngaylap = parse_export_time(*ngaylap_text);
      } else if (element == "HOSO") {
        ++hoso;
        kind.clear();
        ma_lk.clear();
      } else if (element == "LOAIHOSO") {
        kind = trim(reader.read_text());
      } else if (element == "NOIDUNGFILE") {
        // Every table the adapter reads is read here once, before anything of
        // the file is emitted: one that cannot be read refuses the file.
        const std::string content = reader.read_text();
        if (!read_kind(kind)) continue;
        const Table t = inner_table(kind, content, name_ + " HOSO #" + std::to_string(hoso), ma_lk);
        if (t.kind == "XML1" && !t.ma_lk.empty()) ma_lk = t.ma_lk;
      }
    }
    if (root) throw sdk::FileRejected("parse_error", name_ + ": no root element");
    if (!facility)
      throw sdk::FileRejected("missing_field",
                              name_ + ": THONGTINDONVI/MACSKCB is missing or empty");
  } catch (const sdk::xml::ParseError& e) {
    throw sdk::FileRejected(e.reason(), e.what());
  }
  // The export's own time (NGAYLAP) orders the exports of an episode; when
  // the file has none, its arrival only dates its records (changed_at): a
  // file delivered again arrives later than its correction, but is not newer.
  exported_at_ = ngaylap;
  changed_at_.reset();
  if (ngaylap_text && !ngaylap_text->empty() && !ngaylap && log_) {
    log_(name_ + ": NGAYLAP \"" + *ngaylap_text +
         "\" is not a date (yyyyMMdd) or time (yyyyMMddHHmm[ss]); the file is dated by when it "
         "arrived, and its exports are ordered by their content");
  }
  const int64_t offset_s = int64_t{utc_offset_minutes_} * 60;
  if (exported_at_) {
    changed_at_ = sdk::rfc3339_local(*exported_at_ - offset_s, utc_offset_minutes_);
  } else if (arrived_unix_s_) {
    changed_at_ = sdk::rfc3339_local(*arrived_unix_s_, utc_offset_minutes_);
  }
  reader_.reset();
  at_end_ = false;
  episode_index_ = 0;
  episodes_seen_.clear();
  not_creditable_ = 0;
}

bool HisReader::next_unit(sdk::Page& page) {
  try {
    if (!reader_) {
      reader_.emplace(open_reader());
      facility_.clear();
    }
    // To the next <HOSO>, noting the facility on the way.
    while (!at_end_) {
      if (!reader_->read()) {
        at_end_ = true;
        break;
      }
      if (reader_->node() != sdk::xml::Node::element) continue;
      if (reader_->local_name() == "MACSKCB") facility_ = trim(reader_->read_text());
      if (reader_->local_name() == "HOSO") break;
    }
    if (at_end_) {
      if (not_creditable_ > 0 && log_) {
        log_(name_ + ": " + std::to_string(not_creditable_) +
             " result or clinical-note rows of the 4210 layout credit no one (its XML4 and XML5 "
             "have no clinician field); not quarantined");
        not_creditable_ = 0;
      }
      return false;
    }
    ++episode_index_;
    const std::string where = name_ + " HOSO #" + std::to_string(episode_index_);

    // Its files: LOAIHOSO and NOIDUNGFILE pairs (check() read each once already).
    std::vector<Table> tables;
    const int hoso_depth = reader_->depth();
    std::string kind, table_ma_lk;
    // The export's content, to recognise it if it is delivered again.
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!sha || EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr) != 1)
      throw sdk::TransientError("health: cannot start a SHA-256 digest");
    while (reader_->read()) {
      if (reader_->node() == sdk::xml::Node::end_element && reader_->depth() == hoso_depth) break;
      if (reader_->node() != sdk::xml::Node::element) continue;
      if (reader_->local_name() == "LOAIHOSO") kind = trim(reader_->read_text());
      if (reader_->local_name() != "NOIDUNGFILE") continue;
      const std::string content = reader_->read_text();
      if (!read_kind(kind)) continue;  // drugs, papers, ...
      if (kind != "XML1") {            // the credited tables; not the patient's summary
        EVP_DigestUpdate(sha.get(), kind.data(), kind.size() + 1);  // with its '\0'
        EVP_DigestUpdate(sha.get(), content.data(), content.size() + 1);
      }
      tables.push_back(inner_table(kind, content, where, table_ma_lk));
      if (kind == "XML1" && !tables.back().ma_lk.empty()) table_ma_lk = tables.back().ma_lk;
    }

    std::string ma_lk;
    for (const auto& t : tables) {
      if (t.kind == "XML1" && !t.ma_lk.empty()) ma_lk = t.ma_lk;
    }
    for (const auto& t : tables) {
      for (const auto& [row, line] : t.rows) {
        if (ma_lk.empty() && row.count("MA_LK")) ma_lk = row.at("MA_LK");
      }
    }
    if (ma_lk.empty()) {
      if (!tables.empty()) {
        page.reject({std::nullopt, "missing_field", "MA_LK", where + ": no MA_LK in any table",
                     std::nullopt, where});
      }
      return true;
    }
    const std::string episode = facility_ + "|" + ma_lk;
    // Twice in one file: both would carry this file's revision, so the hub
    // could not tell which is the correction. The first is read; the second
    // is quarantined whole and its rows wait for a later export.
    if (const auto [it, first] = episodes_seen_.emplace(episode, episode_index_); !first) {
      page.reject({episode, "bad_value", "MA_LK",
                   where + ": episode MA_LK " + ma_lk + " already came in HOSO #" +
                       std::to_string(it->second) +
                       " of this file; a correction must come in a later export",
                   std::nullopt, where});
      return true;
    }

    // An export older than the one already applied for the episode (the
    // original delivered again after its correction) changes nothing.
    const auto prior = state_.before(episode, file_seq_);
    if (prior && prior->exported_at && exported_at_ && *exported_at_ < *prior->exported_at) {
      const int64_t offset_s = int64_t{utc_offset_minutes_} * 60;
      if (log_) {
        log_(where + ": episode " + episode + " was exported " +
             sdk::rfc3339_local(*exported_at_ - offset_s, utc_offset_minutes_) +
             ", older than its export already applied (" +
             sdk::rfc3339_local(*prior->exported_at - offset_s, utc_offset_minutes_) + ", file #" +
             std::to_string(prior->file_seq) + "); nothing of it is applied");
      }
      return true;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_size = 0;
    EVP_DigestFinal_ex(sha.get(), md, &md_size);
    std::string digest;
    for (unsigned int i = 0; i < md_size; ++i) {
      static const char* hex = "0123456789abcdef";
      digest += hex[md[i] >> 4];
      digest += hex[md[i] & 15];
    }
    // Not known to be newer (the same NGAYLAP, which is often only a date):
    // an export applied before and replaced since, delivered again, is older.
    const bool newer =
        prior && prior->exported_at && exported_at_ && *exported_at_ > *prior->exported_at;
    if (!newer) {
      if (const auto earlier = state_.superseded(episode, file_seq_, digest)) {
        if (log_) {
          log_(where + ": episode " + episode + " is the export of file #" +
               std::to_string(*earlier) + ", replaced since by file #" +
               std::to_string(prior ? prior->file_seq : 0) +
               "; delivered again, it is older than what is applied: nothing of it is applied");
        }
        return true;
      }
    }

    // Credits of this export of the episode.
    std::map<std::string, sdk::Record> credits;
    // Rows quarantined ("XML3|4"): their earlier credits stand until a valid revision.
    std::set<std::string> held;
    // This export's rejections, and which of them the hub was told of before.
    static const std::set<std::pair<std::string, std::string>> kNoRejections;
    const auto& reported = prior ? prior->rejections : kNoRejections;
    std::set<std::pair<std::string, std::string>> rejections;
    auto field = [](const Fields& f, const char* k) {
      auto it = f.find(k);
      return it == f.end() ? std::string() : it->second;
    };
    for (const auto& t : tables) {
      for (const auto& entry : t.rows) {
        // Named, not a structured binding: the lambdas below capture them.
        const Fields& row = entry.first;
        const int line = entry.second;
        const std::string stt = field(row, "STT");
        const std::string at = where + " " + t.kind + " STT " + stt;
        auto reject = [&](const std::string& reason, const std::string& f,
                          const std::string& message) {
          boost::json::object raw;  // only the fields the adapter reads: never patient data
          for (const auto& [k, v] : row) raw[k] = v;
          const std::string id = episode + "|" + t.kind + "|" + stt;
          std::string text = boost::json::serialize(raw);
          if (!stt.empty()) held.insert(t.kind + "|" + stt);
          // The same row rejected for the same reason as in the episode's
          // last export: its quarantine entry is there already.
          auto same = std::make_pair(id, reason + '\n' + f + '\n' + text);
          const bool known = reported.count(same) > 0;
          rejections.insert(std::move(same));
          if (known) return;
          page.reject({id, reason, f, at + ": " + message, std::move(text),
                       name_ + ":" + std::to_string(line)});
        };
        if (stt.empty()) {
          reject("missing_field", "STT", "STT is missing or empty");
          continue;
        }
        std::vector<std::string> who;
        std::string task, date_field, who_field, minutes = "0", quantity = "1", title;
        if (t.kind == "XML3") {
          const std::string group = field(row, "MA_NHOM");
          auto g = mapping_.groups.find(group);
          if (g == mapping_.groups.end())
            continue;  // drugs, supplies, blood, transport: nobody credited
          task = g->second;
          const std::string service = field(row, "MA_DICH_VU");
          for (const auto& [prefix, finer] : mapping_.service_prefixes) {
            if (!prefix.empty() && service.rfind(prefix, 0) == 0) {
              task = finer;
              break;
            }
          }
          quantity = field(row, "SO_LUONG");
          if (quantity.empty()) {
            reject("missing_field", "SO_LUONG", "SO_LUONG is missing or empty");
            continue;
          }
          title = field(row, "TEN_DICH_VU");
          // Examinations and bed days credit the ordering doctor; services the performers.
          const bool performed = g->second != "MED.EXAM" && g->second != "MED.INPATIENT_DAY";
          who_field = !performed || t.legacy_4210 ? "MA_BAC_SI" : "NGUOI_THUC_HIEN";
          who = clinicians(field(row, who_field.c_str()));
          date_field = performed && !t.legacy_4210 ? "NGAY_TH_YL" : "NGAY_YL";
          const std::string ordered = field(row, "NGAY_YL");
          const auto ordered_at = parse_time(ordered);
          if (!ordered_at) {
            reject("bad_value", "NGAY_YL",
                   "NGAY_YL \"" + ordered + "\" is not a time (yyyyMMddHHmm)");
            continue;
          }
          if (performed && !t.legacy_4210) {
            const std::string done = field(row, "NGAY_TH_YL");
            const auto done_at = parse_time(done);
            if (!done_at) {
              reject("bad_value", "NGAY_TH_YL",
                     "NGAY_TH_YL \"" + done + "\" is not a time (yyyyMMddHHmm)");
              continue;
            }
            if (*done_at < *ordered_at) {
              reject("bad_value", "NGAY_TH_YL",
                     "NGAY_TH_YL " + done + " is before NGAY_YL " + ordered +
                         " (the order the standard requires)");
              continue;
            }
            const std::string result = field(row, "NGAY_KQ");
            if (!result.empty()) {
              const auto result_at = parse_time(result);
              if (!result_at) {
                reject("bad_value", "NGAY_KQ",
                       "NGAY_KQ \"" + result + "\" is not a time (yyyyMMddHHmm)");
                continue;
              }
              minutes = std::to_string(std::max<int64_t>(0, *result_at - *done_at));
            }
          } else if (!t.legacy_4210) {
            // An examination or bed day does not use NGAY_TH_YL, but one that
            // is there must still not come before the order.
            const std::string done = field(row, "NGAY_TH_YL");
            const auto done_at = parse_time(done);
            if (done_at && *done_at < *ordered_at) {
              reject("bad_value", "NGAY_TH_YL",
                     "NGAY_TH_YL " + done + " is before NGAY_YL " + ordered +
                         " (the order the standard requires)");
              continue;
            }
          }
        } else if (t.kind == "XML4") {
          task = mapping_.result_read_task;
          who_field = "MA_BS_DOC_KQ";
          who = clinicians(field(row, "MA_BS_DOC_KQ"));
          date_field = "NGAY_KQ";
        } else if (t.kind == "XML5") {
          task = mapping_.clinical_note_task;
          who_field = "NGUOI_THUC_HIEN";
          who = clinicians(field(row, "NGUOI_THUC_HIEN"));
          // 4210 dates a note by NGAY_YL (it has no THOI_DIEM_DBLS).
          date_field = t.legacy_4210 && !row.count("THOI_DIEM_DBLS") ? "NGAY_YL" : "THOI_DIEM_DBLS";
        } else {
          continue;
        }
        // 4210's result and note tables have no clinician field (no
        // MA_BS_DOC_KQ, no NGUOI_THUC_HIEN): such a row credits no one. It is
        // counted, not quarantined: the source cannot correct it.
        if (t.legacy_4210 && who.empty() && t.kind != "XML3") {
          ++not_creditable_;
          continue;
        }
        const std::string when = field(row, date_field.c_str());
        if (!parse_time(when)) {
          reject("bad_value", date_field,
                 date_field + " \"" + when + "\" is not a time (yyyyMMddHHmm)");
          continue;
        }
        if (who.empty()) {
          reject("missing_field", who_field,
                 who_field + " \"" + field(row, who_field.c_str()) +
                     "\" names no clinician to credit");
          continue;
        }
        for (const auto& clinician : who) {
          sdk::Record r;
          r.source_id = episode + "|" + t.kind + "|" + stt + "|" + clinician;
          r.source_staff_id = clinician;
          r.task_code = task;
          r.work_date = date_of(when);
          r.declared_minutes = minutes;
          r.quantity = quantity;
          if (!title.empty()) r.title = title;
          r.evidence_ref = ma_lk;
          r.attributes = {{"facility_code", facility_}, {"table", t.kind}, {"stt", stt}};
          if (t.kind != "XML5") r.attributes.emplace_back("ma_dich_vu", field(row, "MA_DICH_VU"));
          r.location = name_ + ":" + std::to_string(line);
          r.changed_at = changed_at_;
          credits[r.source_id] = std::move(r);
        }
      }
    }

    // Only what changed since this episode's last export.
    static const std::map<std::string, EpisodeState::Row> kNone;
    const auto& before = prior ? prior->rows : kNone;
    std::map<std::string, EpisodeState::Row> now;
    const std::string revision = std::to_string(file_seq_);
    for (auto& [id, r] : credits) {
      const std::string content = fields_json(r);
      auto it = before.find(id);
      if (it != before.end() && it->second.fields == content) {
        now[id] = it->second;  // unchanged: not a new revision
        continue;
      }
      now[id] = EpisodeState::Row{content, file_seq_};
      r.revision = revision;
      page.add(std::move(r));
    }
    for (const auto& [id, row] : before) {
      if (id.empty() || credits.count(id)) continue;
      // <episode>|<table>|<STT>|<clinician>: a row quarantined in this export keeps its credit.
      const std::string rest = id.substr(std::min(id.size(), episode.size() + 1));
      const auto stt_end = rest.find('|', rest.find('|') + 1);
      if (stt_end != std::string::npos && held.count(rest.substr(0, stt_end))) {
        now[id] = row;
        continue;
      }
      sdk::Record gone = record_from_json(row.fields);  // vanished from the re-export: withdrawn
      gone.revision = revision;
      gone.retracted = "true";
      gone.location = where;
      gone.changed_at = changed_at_;
      page.add(std::move(gone));
    }
    // A row quarantined before and not quarantined so again (corrected,
    // removed, or bad in another way reported above): its entries in the
    // hub's quarantine are withdrawn by its id, which stores nothing and
    // resolves them (a rejection's id names the row, a credit's the row and
    // the clinician, so the corrected credit alone would not).
    std::set<std::string> withdrawn;
    for (const auto& [id, rejection] : reported) {
      if (rejections.count({id, rejection}) || withdrawn.count(id)) continue;
      const auto same_row = rejections.lower_bound({id, std::string()});
      bool still = false;  // the same rejection of the row, again, not reported again
      for (auto it = same_row; it != rejections.end() && it->first == id; ++it)
        still = still || reported.count(*it) > 0;
      if (still) continue;
      withdrawn.insert(id);
      sdk::Record gone;
      gone.source_id = id;
      gone.revision = revision;
      gone.retracted = "true";
      gone.location = where;
      gone.changed_at = changed_at_;
      page.add(std::move(gone));
    }
    state_.store(episode, file_seq_, exported_at_, digest, now, rejections);
    return true;
  } catch (const sdk::xml::ParseError& e) {
    throw sdk::FileRejected(e.reason(), e.what());
  }
}

}  // namespace kpihub::health
