// Sources that pass the gate and then fail inside their own code, built once
// per failure (KPIHUB_TEST_THROW). The SDK catches the exception at the C
// boundary; the host must get a status and the exception's message, never
// the exception itself.
#include <kpihub/sdk.hpp>

#include <stdexcept>

#define THROW_IN_CONSTRUCTOR 1
#define THROW_RUNTIME_ERROR_IN_PULL 2
#define THROW_TRANSIENT_ERROR_IN_PULL 3

#ifndef KPIHUB_TEST_THROW
#error "KPIHUB_TEST_THROW must name where this plugin throws"
#endif

namespace {

class ThrowingSource : public kpihub::sdk::Source {
 public:
  ThrowingSource(kpihub::sdk::Host&, kpihub::sdk::Settings&) {
#if KPIHUB_TEST_THROW == THROW_IN_CONSTRUCTOR
    throw std::runtime_error("cannot open the demo system's database");
#endif
  }
  void pull(std::optional<std::string_view>, kpihub::sdk::Page&) override {
#if KPIHUB_TEST_THROW == THROW_RUNTIME_ERROR_IN_PULL
    throw std::runtime_error("index 7 out of range in the demo page");
#elif KPIHUB_TEST_THROW == THROW_TRANSIENT_ERROR_IN_PULL
    throw kpihub::sdk::TransientError("demo system answered 503, try later");
#endif
  }
};

}  // namespace

KPIHUB_SOURCE_PLUGIN(ThrowingSource, KPIHUB_TEST_PLUGIN_NAME, "0.0.1",
                     "deliberately failing plugin for the boundary's tests", "{}")
