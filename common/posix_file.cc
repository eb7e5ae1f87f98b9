#include "common/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace shardps {

Status ErrnoStatus(const std::string& what, int err) {
  Code code = Code::kIoError;
  if (err == ENOENT) code = Code::kNotFound;
  if (err == EWOULDBLOCK) code = Code::kBusy;
  return ErrnoStatus(code, what, err);
}

Status ErrnoStatus(Code code, const std::string& what, int err) {
  return Status(code, what + ": " + std::strerror(err));
}

Status CheckPrivateFile(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return ErrnoStatus(Code::kIoError, "stat " + path, errno);
  if (st.st_uid != ::geteuid())
    return Status(Code::kPermissionDenied,
                  path + " is owned by uid " + std::to_string(st.st_uid) +
                      ", not by this server's uid " +
                      std::to_string(::geteuid()) +
                      "; refusing to serve a file another user controls");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return Status(Code::kPermissionDenied,
                  path + " has mode " + mode +
                      ": group or others may write it; refusing to serve it "
                      "(chmod 600 " +
                      path + ")");
  }
  return Status::Ok();
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.Release();
  }
  return *this;
}

int UniqueFd::Release() noexcept { return std::exchange(fd_, -1); }

void UniqueFd::Reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<std::string> ReadFileToString(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(path, errno);
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(path, errno);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace shardps
