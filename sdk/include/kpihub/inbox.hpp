// kpihub SDK: an inbox folder as a source of files, shared by the file-based
// adapters (teaching logs, hospital XML).
//
// Rules an operator can rely on:
//   * Only finished files are taken: names starting with '.' and names without
//     an accepted suffix (".xml" by default) are ignored, so a writer that
//     writes "x.xml.part" or ".x.xml" and then renames it in is never read
//     half-written; `settle_ms` also skips files modified very recently.
//   * A taken file is first renamed into `<inbox>/.work/<seq>-<name>`, where
//     `seq` numbers files in the order they were taken. The cursor the host
//     stores with each page says which file and how far; after a restart the
//     inbox resumes the same file at the same place, and never takes a file
//     twice.
//   * A file that does not parse (parse_error, bad_encoding) while it is
//     young, modified less than `unfinished_wait_ms` ago, is taken to be still
//     being written under its final name: it stays in the work folder and is
//     looked at again on the next pulls (the writer's open file follows it
//     there). Only when it has stayed unchanged that long is it moved aside.
//   * When the host has stored a file's last page, the file moves to the
//     archive (owner-only permissions). A file that cannot be used moves to
//     the rejected folder with a `.reason` file beside it, and a quarantine
//     entry names it. No file is ever deleted, except archived files older
//     than `archive_retention_days` (0 keeps them forever).
//
// A plugin gives the inbox a function that opens a taken file as a
// FileReader; the reader turns the file into records one "unit" at a time (a
// teacher, an episode). Units are the resume points: a page never splits one.
#ifndef KPIHUB_INBOX_HPP
#define KPIHUB_INBOX_HPP

#include <kpihub/sdk.hpp>
#include <kpihub/time.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::sdk {

// A file taken from the inbox.
struct TakenFile {
  std::filesystem::path path;  // where it is now (the work folder)
  std::string name;            // the name it arrived with
  std::uint64_t seq = 0;       // the order it was taken in, from 1
  std::uintmax_t size = 0;
  // When it arrived: its modification time in the inbox (a rename keeps it),
  // in seconds since 1970 UTC; unset when unknown.
  std::optional<std::int64_t> arrived_unix_s;
  bool complete = false;  // written by Inbox::put (whole and flushed before it was renamed in)
};

inline std::int64_t unix_seconds_of(std::filesystem::file_time_type t) {
  using namespace std::chrono;
  return duration_cast<seconds>(file_clock::to_sys(t).time_since_epoch()).count();
}

// A file that cannot be used as a whole; it is moved aside. `reason` is a
// kpi-model quarantine code (parse_error, bad_encoding, bad_value, ...).
class FileRejected : public std::runtime_error {
 public:
  FileRejected(std::string reason, const std::string& message)
      : std::runtime_error(message), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

class FileReader {
 public:
  virtual ~FileReader() = default;
  // Reads the whole file once before anything is emitted (well-formedness,
  // schema, envelope), so that a broken file yields nothing but its
  // rejection. Throws FileRejected.
  virtual void check() {}
  // Adds the next unit's records and rejections to the page; false when the
  // file has no more units. Must be deterministic: after a restart the inbox
  // reopens the file and skips the units already stored.
  virtual bool next_unit(Page& page) = 0;
};

class Inbox {
 public:
  using Opener = std::function<std::unique_ptr<FileReader>(const TakenFile&)>;
  // Called when the inbox is empty; may put() files into it. `state` is kept
  // in the cursor between calls (for example the last date range fetched).
  using Fetcher = std::function<void(std::string& state)>;

  // Reads inbox_dir (required), create_inbox_dir, archive_dir, rejected_dir, file_suffixes,
  // settle_ms, unfinished_wait_ms, max_file_bytes, archive_retention_days and page_records.
  Inbox(const Host& host, Settings& settings) : host_(host) {
    dir_ = settings.string("inbox_dir");
    if (dir_.empty()) throw ConfigError(settings.path() + ".inbox_dir: must not be empty");
    work_ = dir_ / ".work";
    archive_ = settings.string("archive_dir", (dir_ / ".archive").string());
    rejected_ = settings.string("rejected_dir", (dir_ / ".rejected").string());
    suffixes_ = settings.string_list("file_suffixes", {".xml"});
    for (auto& s : suffixes_) s = lower(s);
    settle_ms_ = settings.integer("settle_ms", 1000, 0, 3'600'000);
    unfinished_wait_ms_ = settings.integer("unfinished_wait_ms", 60'000, 0, 86'400'000);
    max_file_bytes_ =
        static_cast<std::uint64_t>(settings.integer("max_file_bytes", std::int64_t{1} << 30, 1));
    retention_days_ = settings.integer("archive_retention_days", 90, 0, 36500);
    page_records_ = static_cast<std::size_t>(settings.integer("page_records", 500, 1, 100000));
    // A missing inbox is refused: a typo, or a share that is not mounted, would otherwise be
    // read as an empty folder for ever. An inbox the hub owns (in its data folder, as in the
    // default configuration) is created when create_inbox_dir is true.
    const bool create = settings.boolean("create_inbox_dir", false);
    std::error_code ec;
    if (create && !std::filesystem::is_directory(dir_, ec)) {
      std::filesystem::create_directories(dir_, ec);
      if (ec) {
        throw ConfigError(settings.path() + ".inbox_dir: cannot create \"" + dir_.string() +
                          "\": " + ec.message());
      }
    }
    if (!std::filesystem::is_directory(dir_, ec)) {
      throw ConfigError(settings.path() + ".inbox_dir: \"" + dir_.string() +
                        "\" is not a directory" +
                        (create ? "" : " (set create_inbox_dir to true to have it created)"));
    }
    for (const auto& d : {work_, archive_, rejected_}) {
      std::filesystem::create_directories(d, ec);
      if (ec) throw ConfigError("cannot create folder \"" + d.string() + "\": " + ec.message());
      std::filesystem::permissions(d, std::filesystem::perms::owner_all, ec);
    }
  }

  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& archive_dir() const { return archive_; }
  const std::filesystem::path& rejected_dir() const { return rejected_; }

  void pull(std::optional<std::string_view> cursor, Page& page, const Opener& open,
            const Fetcher& fetch = {}) {
    State st = parse_cursor(cursor);
    std::optional<TakenFile> file;
    if (st.done) {
      archive_through(st.seq);
      prune_archive();
      file = pending_work_file(st.seq);
      if (!file) file = take_next(st.seq);
      if (!file && fetch) {
        fetch(st.fetch);
        file = take_next(st.seq);
      }
      if (!file) {
        page.set_cursor(cursor_text(st));
        page.set_caught_up(true);
        page.set_progress("inbox " + dir_.string() + " is empty");
        return;
      }
      st = State{file->seq, 0, false, file->name, st.fetch};
      if (file->size > max_file_bytes_) {
        reject_file(*file, "parse_error",
                    std::to_string(file->size) + " bytes is over max_file_bytes " +
                        std::to_string(max_file_bytes_),
                    page);
        st.done = true;
        page.set_cursor(cursor_text(st));
        return;
      }
    } else {
      file = work_file(st.seq);
      if (!file) {
        host_.error("inbox: file #" + std::to_string(st.seq) + " (\"" + st.name +
                    "\") was being read but is gone from " + work_.string() +
                    "; going on with the next file");
        st.done = true;
        page.set_cursor(cursor_text(st));
        return;
      }
    }

    try {
      if (!reader_ || reader_seq_ != st.seq || reader_unit_ != st.unit) {
        reader_.reset();
        auto reader = open(*file);
        reader->check();
        Page scratch;
        for (std::uint64_t i = 0; i < st.unit; ++i) {
          scratch.clear();
          if (!reader->next_unit(scratch)) break;
        }
        reader_ = std::move(reader);
        reader_seq_ = st.seq;
        reader_unit_ = st.unit;
      }
      while (page.size() < page_records_) {
        if (!reader_->next_unit(page)) {
          st.done = true;
          break;
        }
        ++st.unit;
        ++reader_unit_;
      }
    } catch (const FileRejected& e) {
      reader_.reset();
      if (const auto age = unfinished_age(*file, st, e)) {
        // Still being written under its final name, perhaps: again later.
        host_.info("inbox: file \"" + file->name + "\" (#" + std::to_string(st.seq) +
                   ") does not parse yet and was modified " + std::to_string(*age / 1000) +
                   " s ago; looking at it again later (moved aside if it stays so for " +
                   std::to_string(unfinished_wait_ms_ / 1000) + " s): " + e.what());
        page.set_caught_up(true);
        page.set_progress("file \"" + st.name + "\" (#" + std::to_string(st.seq) +
                          ") does not parse yet; waiting for its writer");
        page.set_cursor(cursor_text(st));
        return;
      }
      reject_file(*file, e.reason(), e.what(), page);
      st.done = true;
    }
    if (st.done) reader_.reset();
    page.set_progress("file \"" + st.name + "\" (#" + std::to_string(st.seq) + "): " +
                      std::to_string(st.unit) + " units read" + (st.done ? ", finished" : ""));
    page.set_cursor(cursor_text(st));
  }

  // Writes a file into the inbox the safe way: a hidden temporary name,
  // flushed to disk, then renamed in. Being complete, it is taken at once
  // (settle_ms applies to files others write).
  void put(const std::string& name, std::string_view bytes) const {
    if (name.empty() || name.find('/') != std::string::npos || name.front() == '.') {
      throw DataError("inbox: refusing file name \"" + name + "\"");
    }
    const auto tmp = dir_ / ("." + name + ".part");
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw TransientError("inbox: cannot write " + tmp.string());
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) {
        ::close(fd);
        throw TransientError("inbox: cannot write " + tmp.string());
      }
      done += static_cast<std::size_t>(n);
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    std::error_code ec;
    if (!synced) throw TransientError("inbox: cannot flush " + tmp.string());
    std::filesystem::rename(tmp, dir_ / name, ec);
    if (ec) throw TransientError("inbox: cannot rename " + tmp.string() + ": " + ec.message());
    put_names_.insert(name);
  }

 private:
  struct State {
    std::uint64_t seq = 0;   // last file taken
    std::uint64_t unit = 0;  // units of it stored
    bool done = true;        // its last unit is stored
    std::string name;
    std::string fetch;
  };

  // How long ago (ms) a file that failed to parse was last modified, when
  // that is recent enough that its writer may still be at it; nullopt when
  // it is to be moved aside now.
  std::optional<std::int64_t> unfinished_age(const TakenFile& f, const State& st,
                                             const FileRejected& e) const {
    if (f.complete || st.unit != 0 || unfinished_wait_ms_ == 0) return std::nullopt;
    if (e.reason() != "parse_error" && e.reason() != "bad_encoding") return std::nullopt;
    std::error_code ec;
    const auto mtime = std::filesystem::last_write_time(f.path, ec);
    if (ec) return std::nullopt;
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::filesystem::file_time_type::clock::now() - mtime)
                         .count();
    if (age >= unfinished_wait_ms_) return std::nullopt;
    return std::max<std::int64_t>(age, 0);
  }

  static std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  State parse_cursor(std::optional<std::string_view> cursor) const {
    State st;
    if (!cursor || cursor->empty()) return st;
    boost::system::error_code ec;
    const auto v = boost::json::parse(*cursor, ec);
    const auto* o = v.if_object();
    if (ec || !o || !o->contains("seq")) {
      throw DataError("inbox: stored cursor is not an inbox cursor: " +
                      std::string(cursor->substr(0, 200)));
    }
    st.seq = boost::json::value_to<std::uint64_t>(o->at("seq"));
    if (const auto* u = o->if_contains("unit")) st.unit = boost::json::value_to<std::uint64_t>(*u);
    if (const auto* d = o->if_contains("done")) st.done = d->as_bool();
    if (const auto* n = o->if_contains("file")) st.name = boost::json::value_to<std::string>(*n);
    if (const auto* f = o->if_contains("fetch")) st.fetch = boost::json::value_to<std::string>(*f);
    return st;
  }

  static std::string cursor_text(const State& st) {
    boost::json::object o;
    o["seq"] = st.seq;
    o["unit"] = st.unit;
    o["done"] = st.done;
    o["file"] = st.name;
    if (!st.fetch.empty()) o["fetch"] = st.fetch;
    return boost::json::serialize(o);
  }

  static std::string work_name(std::uint64_t seq, const std::string& name) {
    std::string s = std::to_string(seq);
    if (s.size() < 10) s.insert(0, 10 - s.size(), '0');
    return s + "-" + name;
  }

  // Taken files in `dir` as (seq, original name, path), in seq order.
  static std::vector<TakenFile> taken_files(const std::filesystem::path& dir) {
    std::vector<TakenFile> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      const std::string fn = e.path().filename().string();
      const auto dash = fn.find('-');
      if (dash != 10 || !e.is_regular_file() ||
          !std::all_of(fn.begin(), fn.begin() + 10, [](char c) { return c >= '0' && c <= '9'; })) {
        continue;
      }
      TakenFile f;
      f.path = e.path();
      f.seq = std::stoull(fn.substr(0, dash));
      f.name = fn.substr(dash + 1);
      f.size = e.file_size();
      if (const auto t = e.last_write_time(ec); !ec) f.arrived_unix_s = unix_seconds_of(t);
      out.push_back(std::move(f));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
    return out;
  }
  std::vector<TakenFile> work_files() const { return taken_files(work_); }

  // File `seq`, in the work folder or, when the host resumes from an older
  // cursor (a store restored from a backup), already in the archive.
  std::optional<TakenFile> work_file(std::uint64_t seq) const {
    for (const auto& dir : {work_, archive_}) {
      for (auto& f : taken_files(dir)) {
        if (f.seq == seq) return f;
      }
    }
    return std::nullopt;
  }

  // The first file after `after_seq` that was taken but whose pages the host
  // has not stored: taken before a crash (work folder), or read after the
  // backup the store was restored from (archive).
  std::optional<TakenFile> pending_work_file(std::uint64_t after_seq) const {
    std::optional<TakenFile> best;
    for (const auto& dir : {work_, archive_}) {
      for (auto& f : taken_files(dir)) {
        if (f.seq > after_seq && (!best || f.seq < best->seq)) best = f;
      }
    }
    return best;
  }

  bool accepted_name(const std::string& fn) const {
    if (fn.empty() || fn.front() == '.') return false;
    const std::string l = lower(fn);
    return std::any_of(suffixes_.begin(), suffixes_.end(), [&](const std::string& s) {
      return l.size() > s.size() && l.compare(l.size() - s.size(), s.size(), s) == 0;
    });
  }

  std::optional<TakenFile> take_next(std::uint64_t last_seq) const {
    struct Candidate {
      std::filesystem::file_time_type mtime;
      std::string name;
      std::uintmax_t size;
    };
    std::vector<Candidate> candidates;
    const auto settle_before =
        std::filesystem::file_time_type::clock::now() - std::chrono::milliseconds(settle_ms_);
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      const std::string fn = e.path().filename().string();
      if (!accepted_name(fn) || !e.is_regular_file(ec)) continue;
      const auto mtime = e.last_write_time(ec);
      if (ec || (mtime > settle_before && !put_names_.count(fn))) continue;
      candidates.push_back({mtime, fn, e.file_size(ec)});
    }
    if (ec) throw TransientError("inbox: cannot list " + dir_.string() + ": " + ec.message());
    if (candidates.empty()) return std::nullopt;
    const auto& c =
        *std::min_element(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
          return a.mtime != b.mtime ? a.mtime < b.mtime : a.name < b.name;
        });
    std::uint64_t seq = last_seq;
    for (const auto& f : work_files()) seq = std::max(seq, f.seq);
    for (const auto& f : taken_files(archive_)) seq = std::max(seq, f.seq);
    ++seq;
    TakenFile f{work_ / work_name(seq, c.name), c.name, seq, c.size, unix_seconds_of(c.mtime),
                put_names_.count(c.name) > 0};
    std::filesystem::rename(dir_ / c.name, f.path, ec);
    if (ec)
      throw TransientError("inbox: cannot take " + (dir_ / c.name).string() + ": " + ec.message());
    put_names_.erase(c.name);
    host_.info("inbox: took \"" + c.name + "\" as file #" + std::to_string(seq) + " (" +
               std::to_string(c.size) + " bytes)");
    return f;
  }

  void archive_through(std::uint64_t seq) const {
    for (const auto& f : work_files()) {
      if (f.seq > seq) break;
      const auto to = archive_ / f.path.filename();
      std::error_code ec;
      std::filesystem::rename(f.path, to, ec);
      if (ec) {
        host_.error("inbox: cannot archive " + f.path.string() + ": " + ec.message());
        continue;
      }
      std::filesystem::permissions(
          to, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
      std::filesystem::last_write_time(to, std::filesystem::file_time_type::clock::now(), ec);
    }
  }

  void prune_archive() {
    if (retention_days_ == 0) return;
    const auto now = std::filesystem::file_time_type::clock::now();
    if (now - last_prune_ < std::chrono::hours(1)) return;
    last_prune_ = now;
    const auto cutoff = now - std::chrono::hours(24 * retention_days_);
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(archive_, ec)) {
      if (e.is_regular_file(ec) && e.last_write_time(ec) < cutoff) {
        std::filesystem::remove(e.path(), ec);
        host_.info("inbox: removed archived " + e.path().filename().string() + " (older than " +
                   std::to_string(retention_days_) + " days)");
      }
    }
  }

  void reject_file(const TakenFile& f, const std::string& reason, const std::string& message,
                   Page& page) const {
    const auto to = rejected_ / f.path.filename();
    std::error_code ec;
    std::filesystem::rename(f.path, to, ec);
    std::filesystem::permissions(
        to, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    std::ofstream(to.string() + ".reason") << reason << ": " << message << "\n";
    const std::string text = "file \"" + f.name + "\" (#" + std::to_string(f.seq) + ") moved to " +
                             to.string() + ": " + message;
    host_.warn("inbox: " + text);
    RejectedItem r;
    r.reason = reason;
    r.message = text;
    r.location = f.name;
    page.reject(std::move(r));
  }

  const Host& host_;
  std::filesystem::path dir_, work_, archive_, rejected_;
  std::vector<std::string> suffixes_;
  std::int64_t settle_ms_ = 1000;
  std::int64_t unfinished_wait_ms_ = 60'000;
  std::uint64_t max_file_bytes_ = 0;
  std::int64_t retention_days_ = 90;
  std::size_t page_records_ = 500;
  std::filesystem::file_time_type last_prune_{};
  std::unique_ptr<FileReader> reader_;
  mutable std::set<std::string> put_names_;  // written by put(), not yet taken
  std::uint64_t reader_seq_ = 0;
  std::uint64_t reader_unit_ = 0;
};

}  // namespace kpihub::sdk

#endif  // KPIHUB_INBOX_HPP
