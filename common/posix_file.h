// Move-only RAII wrappers over POSIX file descriptors (memory mappings are
// in mapping.h).
// errno is turned into a Status here, once.
//
// Thread-safety: none per object; distinct objects are independent.
#ifndef SHARDPS_COMMON_POSIX_FILE_H_
#define SHARDPS_COMMON_POSIX_FILE_H_

#include <cstddef>
#include <string>

#include "shardps/status.h"

namespace shardps {

// The one place errno becomes a Status; message "<what>: <strerror(err)>".
// Pass errno as `err` right after the failed call, before anything else can
// change it.
//
// This overload picks the code from `err`, for opening or reading an input:
// kNotFound for ENOENT, kBusy for EWOULDBLOCK, kIoError otherwise.
Status ErrnoStatus(const std::string& what, int err);
// This one always uses `code`: for writes, where even ENOENT (a missing
// directory) is an I/O failure rather than a missing input.
Status ErrnoStatus(Code code, const std::string& what, int err);

// Refuses a shared file a server is about to write through (segment, queue)
// when another user owns it or group/others may write it: either could
// change the model behind the server's back. kPermissionDenied saying what
// to fix; kIoError when fstat fails.
Status CheckPrivateFile(int fd, const std::string& path);

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() noexcept;
  void Reset() noexcept;

 private:
  int fd_ = -1;
};

// Reads a whole small file (specs, cluster files). kNotFound if missing.
Result<std::string> ReadFileToString(const std::string& path);

}  // namespace shardps

#endif  // SHARDPS_COMMON_POSIX_FILE_H_
