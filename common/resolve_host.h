// ResolveIPv4(): a host name as the IPv4 address a ZeroMQ tcp:// endpoint
// can bind (ZeroMQ connects to names but binds only addresses and
// interfaces).
//
// Thread-safety: call from any thread (getaddrinfo).
#ifndef SHARDPS_COMMON_RESOLVE_HOST_H_
#define SHARDPS_COMMON_RESOLVE_HOST_H_

#include <string>

#include "shardps/status.h"

namespace shardps {

// The first IPv4 address getaddrinfo gives for `name` (/etc/hosts, DNS),
// in dotted form; an address is returned as it is. Errors: kNotFound
// naming the host and getaddrinfo's reason, with what to fix.
Result<std::string> ResolveIPv4(const std::string& name);

}  // namespace shardps

#endif  // SHARDPS_COMMON_RESOLVE_HOST_H_
