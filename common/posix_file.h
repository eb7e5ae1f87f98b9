// Move-only RAII wrappers over POSIX file descriptors and memory mappings.
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

// A shared mapping of a whole file region; unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  // Maps [0, size) of `fd` MAP_SHARED. `populate` prefaults every page now
  // (first touch of tmpfs pages is slow, so servers pay it at start-up).
  static Result<Mapping> Map(int fd, size_t size, bool writable, bool populate);

  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole small file (specs, cluster files). kNotFound if missing.
Result<std::string> ReadFileToString(const std::string& path);

}  // namespace shardps

#endif  // SHARDPS_COMMON_POSIX_FILE_H_
