// The run lock of a store that is a folder (a RocksDB store, issue 20): one lock file beside the
// folder, whichever way the path is written and whether or not the folder exists yet.
#include <kpihub/run_lock.hpp>
#include <kpihub/store/types.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

namespace kpihub {
namespace {

namespace fs = std::filesystem;

TEST(StoreRunLock, AFolderStoreHasOneLockBesideItWrittenWithOrWithoutItsTrailingSlash) {
  std::string pattern = (fs::temp_directory_path() / "kpihub-lock-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  const std::string folder = (dir / "hub.rocksdb").string();
  {
    // Before the store exists (a first `kpihub run`), as a configuration may write it.
    const StoreRunLock first(folder + "/");
    EXPECT_EQ(first.lock_path(), folder + ".lock");
    fs::create_directory(folder);  // the engine makes its folder
    EXPECT_THROW(StoreRunLock second(folder), StoreError);
    EXPECT_THROW(StoreRunLock third(folder + "/"), StoreError);
  }
  EXPECT_EQ(StoreRunLock(folder + "//").lock_path(), folder + ".lock");
  EXPECT_TRUE(fs::is_empty(folder));  // nothing of the lock's inside the store
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kpihub
