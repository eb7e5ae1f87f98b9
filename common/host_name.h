// HostName(): this machine's name, for display (Stats replies, status);
// HostNameOrdinal(): the trailing ordinal of a StatefulSet pod's name.
//
// Never use them to decide whether two processes share a host: names repeat
// across containers and machines. Locality is decided by segment identity
// (DESIGN.md, "Local" means ...). An ordinal is placement the engine
// guarantees (Kubernetes names pod i of a StatefulSet `<set>-<i>`), which is
// why `serve --shard-from-hostname` may take a shard index from it.
//
// Thread-safety: call from any thread.
#ifndef SHARDPS_COMMON_HOST_NAME_H_
#define SHARDPS_COMMON_HOST_NAME_H_

#include <cstdint>
#include <string>

#include "shardps/status.h"

namespace shardps {

// gethostname(2). An empty string when it fails: the name is only shown, so
// a failure is not worth failing the caller's request for.
std::string HostName();

// The number after the last '-' of `hostname` ("shardps-2" -> 2; a dotted
// name counts up to its first '.'): decimal digits only, no sign, at most
// UINT32_MAX. kInvalidArgument saying what was expected otherwise (no '-',
// nothing or a non-digit after it, too large).
Result<uint32_t> HostNameOrdinal(const std::string& hostname);

}  // namespace shardps

#endif  // SHARDPS_COMMON_HOST_NAME_H_
