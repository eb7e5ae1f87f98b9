#include "common/host_name.h"

#include <unistd.h>

namespace shardps {

std::string HostName() {
  // Linux names are at most 64 bytes (HOST_NAME_MAX); the margin covers
  // other kernels. The last byte stays NUL whatever gethostname does.
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return {};
  return buf;
}

}  // namespace shardps
