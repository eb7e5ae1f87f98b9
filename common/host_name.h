// HostName(): this machine's name, for display (Stats replies, status).
//
// Never use it to decide whether two processes share a host: names repeat
// across containers and machines. Locality is decided by segment identity
// (DESIGN.md, "Local" means ...).
//
// Thread-safety: call from any thread.
#ifndef SHARDPS_COMMON_HOST_NAME_H_
#define SHARDPS_COMMON_HOST_NAME_H_

#include <string>

namespace shardps {

// gethostname(2). An empty string when it fails: the name is only shown, so
// a failure is not worth failing the caller's request for.
std::string HostName();

}  // namespace shardps

#endif  // SHARDPS_COMMON_HOST_NAME_H_
