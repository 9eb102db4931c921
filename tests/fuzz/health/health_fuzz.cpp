// libFuzzer target: any bytes as a hospital export, through the envelope
// check, the base64 inner files and the mapping, with an in-memory episode
// state. A file must be refused (FileRejected) or read to its end.
#include <kpihub/health/his.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const kpihub::health::Mapping mapping;
  // Shared between inputs so that re-exports (revisions, retractions) are
  // exercised too; renewed now and then so its memory stays bounded.
  static std::unique_ptr<kpihub::health::EpisodeState> state;
  static int64_t seq = 0;
  if (++seq % 1000 == 1) state = std::make_unique<kpihub::health::EpisodeState>(":memory:");
  auto reader = kpihub::health::HisReader::open_memory(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz.xml", seq, mapping, *state);
  try {
    reader->check();
    kpihub::sdk::Page page;
    while (reader->next_unit(page)) {
    }
  } catch (const kpihub::sdk::FileRejected&) {
  }
  return 0;
}
