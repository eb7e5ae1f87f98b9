// Where a shard server may listen without CURVE.
//
// A server without CURVE accepts requests from anyone who can reach its
// socket and sends weights in clear text. On a loopback or local-IPC endpoint
// that is only this host's users; on any other address it is the network.
// Such a bind is refused unless the operator says --insecure.
//
// Thread-safety: pure functions.
#ifndef SHARDPS_SERVER_BIND_POLICY_H_
#define SHARDPS_SERVER_BIND_POLICY_H_

#include <string>

#include "shardps/status.h"

namespace shardps {

// True for endpoints only this host can reach: ipc://, inproc://, and tcp://
// on 127.x.y.z, [::1] or localhost. False for wildcards (tcp://*:P,
// tcp://0.0.0.0:P), interface names and every other address.
bool IsLoopbackEndpoint(const std::string& endpoint);

// OK when `listen` is loopback, `curve` is on, or `insecure` allows it.
// Otherwise kInvalidArgument explaining the risk and how to enable CURVE.
// With `insecure` on a non-loopback endpoint without CURVE, prints a warning
// to stderr and returns OK.
Status CheckBindPolicy(const std::string& listen, bool curve, bool insecure);

}  // namespace shardps

#endif  // SHARDPS_SERVER_BIND_POLICY_H_
