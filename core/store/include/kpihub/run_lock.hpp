// One `kpihub run` per store. Two hubs on one store would each pull every source, score
// and send every batch: nothing would be lost, but the work, the receiver's load and the
// operator's confusion would double. The lock is flock(2) on "<store>.lock", so the kernel
// releases it when the holder dies, kill -9 included; other commands (status, report,
// rescore, replay) do not take it and run beside a hub on SQLite. On RocksDB, which one process
// at a time writes to, the commands that write take it too (kpihub's main.cpp).
#pragma once

#include <kpihub/store/types.hpp>

#include <string>

namespace kpihub {

// The lock is held by another process: what StoreRunLock throws then, with who holds it, so a
// command can say what to do about it in its own words.
class StoreInUse : public StoreError {
 public:
  StoreInUse(const std::string& message, std::string lock_path, std::string holder)
      : StoreError(message), lock_path_(std::move(lock_path)), holder_(std::move(holder)) {}
  const std::string& lock_path() const { return lock_path_; }
  // "pid 4242", or "pid unknown" when the holder has not written it (yet).
  const std::string& holder() const { return holder_; }

 private:
  std::string lock_path_;
  std::string holder_;
};

class StoreRunLock {
 public:
  // Takes the lock of the store at `store_path`, or throws StoreError naming the store, the
  // lock file and the pid of the `kpihub run` that holds it (StoreInUse when one does).
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
