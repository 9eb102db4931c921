#include "engine.hpp"

#include <cstring>
#include <stdexcept>

namespace kpihub::bench::engines {

void put_big_endian(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

std::uint64_t get_big_endian(std::string_view in) {
  if (in.size() < 8) throw std::runtime_error("big-endian value shorter than 8 bytes");
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
  return v;
}

std::string log_value(const Record& r) {
  std::string v;
  v.reserve(6 + r.record_id.size() + r.body.size());
  const std::uint32_t revision = r.revision;
  v.append(reinterpret_cast<const char*>(&revision), sizeof revision);
  const auto id_len = static_cast<std::uint16_t>(r.record_id.size());
  v.append(reinterpret_cast<const char*>(&id_len), sizeof id_len);
  v += r.record_id;
  v += r.body;
  return v;
}

ReadTotals read_log_value(std::string_view value) {
  if (value.size() < 6) throw std::runtime_error("log value shorter than its header");
  std::uint32_t revision = 0;
  std::memcpy(&revision, value.data(), sizeof revision);
  return ReadTotals{1, revision, value.size()};
}

std::string staff_day_prefix(std::string_view staff, std::uint8_t day) {
  std::string k;
  k.push_back(static_cast<char>(staff.size()));
  k += staff;
  k.push_back(static_cast<char>(day));
  return k;
}

std::string staff_day_key(std::string_view staff, std::uint8_t day, std::uint64_t hash) {
  std::string k = staff_day_prefix(staff, day);
  put_big_endian(k, hash);
  return k;
}

}  // namespace kpihub::bench::engines
