// libFuzzer target: an E-Office diary page as the server sends it, through
// the adapter's normalizer. Any input must end in records, rejections or a
// PageParseError; never a crash, a hang or a sanitizer report. Every record
// and rejection must also pass the host's C view unchanged.
#include <kpihub/eoffice/normalizer.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const kpihub::eoffice::Normalizer normalizer;
  kpihub::sdk::Page page;
  try {
    normalizer.normalize_page(std::string_view(reinterpret_cast<const char*>(data), size),
                              std::nullopt, page);
  } catch (const kpihub::eoffice::PageParseError&) {
    return 0;
  }
  const kpihub_page view = page.c_view();
  if (view.record_count + view.rejected_count != page.size()) __builtin_trap();
  return 0;
}
