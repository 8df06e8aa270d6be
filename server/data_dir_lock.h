// One server per data directory: an exclusive lock on <dir>/LOCK, held for the process's life (the kernel drops it
// when the process ends, however it ends). A second server on the same directory would wipe the first's uploads in
// progress and race it on the store.
#pragma once

#include <string>

namespace vidgen::server {

class DataDirLock {
 public:
  // Throws Error(FAILED_PRECONDITION) naming the directory and the holder's pid when another process holds it,
  // Error(UNAVAILABLE) when the lock file cannot be made.
  explicit DataDirLock(const std::string& dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace vidgen::server
