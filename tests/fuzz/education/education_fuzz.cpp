// libFuzzer target: any bytes as a teaching-log file, through the XSD check
// and the mapping. A file must be refused (FileRejected) or read to its end;
// never a crash, a hang or a sanitizer report.
#include <kpihub/education/teaching_log.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string xsd(kpihub::education::shipped_schema());
  auto reader = kpihub::education::TeachingLogReader::open_memory(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz.xml", xsd);
  try {
    reader->check();
    kpihub::sdk::Page page;
    while (reader->next_unit(page)) {
    }
  } catch (const kpihub::sdk::FileRejected&) {
  }
  return 0;
}
