#include "common/segment_id.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/posix_file.h"

namespace shardps {

namespace {

// Fills `buf` with `n` random bytes; false (errno set) when it cannot.
bool FillRandom(void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::getrandom(p + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    got += static_cast<size_t>(r);
  }
  if (got == n) return true;
  if (errno != ENOSYS) return false;
  // Kernels before 3.17 lack getrandom.
  UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd.get(), p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string SegmentId::ToString() const {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64 "%016" PRIx64, hi, lo);
  return buf;
}

Result<SegmentId> NewSegmentId() {
  SegmentId id;
  // The all-zero value means "none"; 2^-128 odds, but never hand it out.
  while (id.empty()) {
    uint64_t words[2];
    if (!FillRandom(words, sizeof(words)))
      return ErrnoStatus("reading random bytes for a segment identity", errno);
    id.hi = words[0];
    id.lo = words[1];
  }
  return id;
}

Result<SegmentId> ParseSegmentId(const std::string& text) {
  if (text.size() != 32)
    return Status(Code::kInvalidArgument,
                  "segment identity '" + text + "' is not 32 hex digits");
  SegmentId id;
  for (size_t i = 0; i < 32; ++i) {
    const int d = HexDigit(text[i]);
    if (d < 0)
      return Status(Code::kInvalidArgument,
                    "segment identity '" + text + "' is not 32 hex digits");
    uint64_t& word = i < 16 ? id.hi : id.lo;
    word = (word << 4) | static_cast<uint64_t>(d);
  }
  return id;
}

}  // namespace shardps
