// A Clock the test sets: what the hub, the scorer or a forwarder take as "now".
#pragma once

#include <kpihub/host_services.hpp>

#include <cstdint>

namespace kpihub::test {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t unix_ms) : unix_ms_(unix_ms) {}
  int64_t now_unix_ms() const override { return unix_ms_; }
  void set(int64_t unix_ms) { unix_ms_ = unix_ms; }

 private:
  int64_t unix_ms_;
};

}  // namespace kpihub::test
