// A plugin that links (undefined symbols allowed, see CMakeLists.txt) but
// needs a symbol no loaded library provides, like a plugin built against a
// library the hub's machine lacks. The host loads with RTLD_NOW, so the gate
// refuses it at load instead of the process dying at the first call.
#include <kpihub/sdk.hpp>

extern "C" int kpihub_test_symbol_that_no_library_defines(int);

namespace {

class NeedsMissingSymbol : public kpihub::sdk::Source {
 public:
  NeedsMissingSymbol(kpihub::sdk::Host&, kpihub::sdk::Settings&) {}
  void pull(std::optional<std::string_view>, kpihub::sdk::Page& page) override {
    page.set_cursor(std::to_string(kpihub_test_symbol_that_no_library_defines(1)));
    page.set_caught_up(true);
  }
};

}  // namespace

KPIHUB_SOURCE_PLUGIN(NeedsMissingSymbol, "needs-missing-symbol", "0.0.1",
                     "deliberately broken plugin for the gate's tests", "{}")
