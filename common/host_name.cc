#include "common/host_name.h"

#include <unistd.h>

#include <cstdint>

namespace shardps {

std::string HostName() {
  // Linux names are at most 64 bytes (HOST_NAME_MAX); the margin covers
  // other kernels. The last byte stays NUL whatever gethostname does.
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return {};
  return buf;
}

Result<uint32_t> HostNameOrdinal(const std::string& hostname) {
  const std::string name = hostname.substr(0, hostname.find('.'));
  const size_t dash = name.rfind('-');
  const std::string want =
      "has no trailing ordinal: expected <name>-<number>, as Kubernetes names "
      "a StatefulSet's pods (e.g. shardps-2); pass --shard instead";
  if (dash == std::string::npos || dash + 1 == name.size())
    return Status::InvalidArgument("hostname '" + hostname + "' " + want);
  uint64_t ordinal = 0;
  for (size_t i = dash + 1; i < name.size(); ++i) {
    const char c = name[i];
    if (c < '0' || c > '9')
      return Status::InvalidArgument("hostname '" + hostname + "' " + want);
    ordinal = ordinal * 10 + static_cast<uint64_t>(c - '0');
    if (ordinal > UINT32_MAX)
      return Status::InvalidArgument("hostname '" + hostname +
                                     "': ordinal is too large");
  }
  return static_cast<uint32_t>(ordinal);
}

}  // namespace shardps
