// One `kpihub run` per store. Two hubs on one store would each pull every source, score
// and send every batch: nothing would be lost, but the work, the receiver's load and the
// operator's confusion would double. The lock is flock(2) on "<store>.lock", so the kernel
// releases it when the holder dies, kill -9 included; other commands (status, report,
// rescore, replay) do not take it and run beside a hub.
#pragma once

#include <string>

namespace kpihub {

class StoreRunLock {
 public:
  // Takes the lock of the store at `store_path`, or throws StoreError naming the store, the
  // lock file and the pid of the `kpihub run` that holds it.
  explicit StoreRunLock(const std::string& store_path);
  StoreRunLock(const StoreRunLock&) = delete;
  StoreRunLock& operator=(const StoreRunLock&) = delete;
  ~StoreRunLock();

  const std::string& lock_path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

}  // namespace kpihub
