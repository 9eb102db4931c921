#include <kpihub/run_lock.hpp>
#include <kpihub/store/types.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace kpihub {

namespace {

std::string errno_text(int error) {
  return std::strerror(error);
}

// What the holder wrote: its pid, or "" when it is not there (yet).
std::string holder_of(int fd) {
  std::array<char, 32> buffer{};
  const ssize_t n = ::pread(fd, buffer.data(), buffer.size() - 1, 0);
  if (n <= 0) return "";
  std::string text(buffer.data(), static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string lock_path_of(const std::string& store_path) {
  std::error_code ignored;  // a path that cannot be resolved is locked as written
  std::filesystem::path real = std::filesystem::weakly_canonical(store_path, ignored);
  if (real.empty()) real = store_path;
  // A store that is a folder (RocksDB) written "hub.rocksdb/" keeps its trailing '/' until the
  // folder exists: its lock goes beside the folder all the same, never into it.
  while (!real.has_filename() && real.has_relative_path()) real = real.parent_path();
  return real.string() + ".lock";
}

}  // namespace

StoreRunLock::StoreRunLock(const std::string& store_path)
    // Named after the file the path leads to, so a store reached through a symbolic link has
    // one lock, whichever path a configuration gives.
    : lock_path_(lock_path_of(store_path)) {
  fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  // A lock file another user left (a one-off `sudo kpihub run`) locks as well read-only;
  // only the pid is not written then.
  const bool writable = fd_ >= 0;
  if (fd_ < 0 && errno == EACCES) fd_ = ::open(lock_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    throw StoreError("store " + store_path + ": cannot open its lock file " + lock_path_ + ": " +
                     errno_text(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    const std::string holder = holder_of(fd_);
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      const std::string who = holder.empty() ? std::string("pid unknown") : "pid " + holder;
      throw StoreInUse("store " + store_path + " is in use by another `kpihub run` (" + who +
                           ", lock file " + lock_path_ +
                           "); stop it first, or give this one another data_dir or store_path",
                       lock_path_, who);
    }
    throw StoreError("store " + store_path + ": cannot lock " + lock_path_ + ": " +
                     errno_text(error));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (writable && (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0)) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw StoreError("store " + store_path + ": cannot write to its lock file " + lock_path_ +
                     ": " + errno_text(error));
  }
}

StoreRunLock::~StoreRunLock() {
  // Closing releases the lock; the file stays (removing it would race with the next hub
  // locking the old inode).
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace kpihub
