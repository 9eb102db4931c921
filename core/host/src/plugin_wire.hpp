// What the hub and an isolated plugin's process (kpihub-plugin-process) say to each other over
// their socket: length-prefixed frames, each a message type and its fields. Both ends are built
// from this one file, on one machine, so integers go in the machine's own byte order. The hub
// reads what the child sends as hostile: every length and count is checked against what is
// left of the frame before it is used (WireError), and a frame is at most a configured size.
#pragma once

#include <kpihub/abi.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::plugin_wire {

enum class Message : uint8_t {
  // hub -> child: a call, then replies to the child's questions while it runs
  create = 1,      // plugin file, instance name, settings, UTC offset
  pull = 2,        // cursor
  list_staff = 3,  //
  deliver = 4,     // batch
  reply = 5,       // the answer to now, secret or metric_declare
  // child -> hub
  result = 10,  // the call's status, error text and what it returned
  log = 11,
  metric_add = 12,
  metric_add_labeled = 13,
  metric_declare = 14,  // asks: a reply follows
  now = 15,             // asks
  secret = 16,          // asks
};

class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds one frame: the length (4 bytes, filled by finish()), the message type, the fields.
class Writer {
 public:
  explicit Writer(Message type) {
    out_.resize(4);
    u8(static_cast<uint8_t>(type));
  }
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void i32(int32_t v) { raw(&v, sizeof v); }
  void i64(int64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  // Absent (data NULL) and present-but-empty stay apart.
  void str(kpihub_str s) {
    u8(s.data != nullptr ? 1 : 0);
    if (s.data == nullptr) return;
    u64(s.size);
    raw(s.data, s.size);
  }
  void str(std::string_view s) { str(kpihub_str{s.data(), s.size()}); }
  // The frame, its length written in.
  std::string finish() {
    const auto n = static_cast<uint32_t>(out_.size() - 4);
    std::memcpy(out_.data(), &n, 4);
    return std::move(out_);
  }

 private:
  void raw(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

// Reads one frame's payload (without its length). Strings point into the payload, which must
// outlive them.
class Reader {
 public:
  explicit Reader(std::string_view payload) : p_(payload) {}
  Message type() { return static_cast<Message>(u8()); }
  uint8_t u8() { return fixed<uint8_t>(); }
  uint32_t u32() { return fixed<uint32_t>(); }
  uint64_t u64() { return fixed<uint64_t>(); }
  int32_t i32() { return fixed<int32_t>(); }
  int64_t i64() { return fixed<int64_t>(); }
  double f64() { return fixed<double>(); }
  kpihub_str str() {
    const uint8_t present = u8();
    if (present > 1) throw WireError("a text's presence byte is " + std::to_string(present));
    if (present == 0) return {nullptr, 0};
    const uint64_t n = u64();
    if (n > p_.size()) {
      throw WireError("a text of " + std::to_string(n) + " bytes where " +
                      std::to_string(p_.size()) + " are left in the message");
    }
    const kpihub_str s{p_.data(), static_cast<std::size_t>(n)};
    p_.remove_prefix(n);
    return s;
  }
  std::string string() {
    const kpihub_str s = str();
    return s.data ? std::string(s.data, s.size) : std::string();
  }
  // A count of items of at least `min_item_bytes` each: never more than the frame can hold, so
  // a forged count cannot make the reader reserve memory the frame does not carry.
  std::size_t count(std::size_t min_item_bytes) {
    const uint64_t n = u64();
    if (min_item_bytes > 0 && n > p_.size() / min_item_bytes) {
      throw WireError("a count of " + std::to_string(n) + " items where " +
                      std::to_string(p_.size()) + " bytes are left in the message");
    }
    return static_cast<std::size_t>(n);
  }
  bool done() const { return p_.empty(); }
  void expect_done() const {
    if (!p_.empty()) {
      throw WireError(std::to_string(p_.size()) + " bytes left over at the end of the message");
    }
  }

 private:
  template <typename T>
  T fixed() {
    if (p_.size() < sizeof(T)) throw WireError("the message ends in the middle of a field");
    T v;
    std::memcpy(&v, p_.data(), sizeof v);
    p_.remove_prefix(sizeof v);
    return v;
  }
  std::string_view p_;
};

// ---- what crosses: pages, staff lists, batches and deliveries ----

// What reading one message may add to the hub's memory beyond the message itself: the arrays a
// page's records, attributes and rejected items are read into. A message of absent fields is a
// tenth of the records it makes; the budget keeps a forged one from turning a 64 MB message
// into gigabytes. take() throws WireError once it is spent.
class DecodeBudget {
 public:
  explicit DecodeBudget(std::size_t bytes) : left_(bytes) {}
  void take(std::size_t count, std::size_t bytes_each, const char* what);

 private:
  std::size_t left_;
};

// A page as the plugin gave it (records read at the plugin's own record size).
void write_page(Writer& w, const kpihub_page& page);
void write_staff(Writer& w, const kpihub_staff_entry* entries, std::size_t count);
void write_batch(Writer& w, const kpihub_batch& batch);
void write_delivery(Writer& w, const kpihub_delivery& delivery);

// A page read back, over the payload that holds its text: the page's pointers stay valid while
// both live.
struct PageStorage {
  std::vector<kpihub_record> records;
  std::vector<kpihub_attribute> attributes;
  std::vector<uint8_t> value_kinds;
  std::vector<kpihub_rejected_item> rejected;
  kpihub_page page{};
};
void read_page(Reader& r, PageStorage& out, DecodeBudget& budget);

struct StaffStorage {
  bool listed = false;  // false: the source keeps no staff list
  std::vector<kpihub_staff_entry> entries;
};
void read_staff(Reader& r, StaffStorage& out, DecodeBudget& budget);

struct BatchStorage {
  std::vector<kpihub_batch_item> items;
  kpihub_batch batch{};
};
void read_batch(Reader& r, BatchStorage& out, DecodeBudget& budget);

struct DeliveryStorage {
  std::vector<kpihub_item_result> results;
  kpihub_delivery delivery{};
};
void read_delivery(Reader& r, DeliveryStorage& out, DecodeBudget& budget);

}  // namespace kpihub::plugin_wire
