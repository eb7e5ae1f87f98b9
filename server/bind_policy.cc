#include "server/bind_policy.h"

#include <cstdio>

namespace shardps {

namespace {

bool StartsWith(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

// The host part of "tcp://HOST:PORT" ("[v6]:PORT" keeps its brackets).
std::string TcpHost(const std::string& endpoint) {
  const std::string rest = endpoint.substr(6);
  const size_t colon = rest.rfind(':');
  return colon == std::string::npos ? rest : rest.substr(0, colon);
}

}  // namespace

bool IsLoopbackEndpoint(const std::string& endpoint) {
  if (StartsWith(endpoint, "ipc://") || StartsWith(endpoint, "inproc://"))
    return true;
  if (!StartsWith(endpoint, "tcp://")) return false;
  const std::string host = TcpHost(endpoint);
  if (host == "localhost" || host == "[::1]") return true;
  // 127.0.0.0/8, written as a dotted quad: "127." followed by digits and dots
  // only, so a host name such as "127.example.com" does not count.
  if (!StartsWith(host, "127.")) return false;
  for (char c : host)
    if (c != '.' && (c < '0' || c > '9')) return false;
  return true;
}

Status CheckBindPolicy(const std::string& listen, bool curve, bool insecure) {
  // No client could reach it: each process, and each Client, owns a private
  // ZeroMQ context, and inproc:// connects only sockets of one context.
  if (StartsWith(listen, "inproc://"))
    return Status::InvalidArgument(
        "cannot listen on " + listen +
        ": an inproc:// endpoint is reachable only from the server's own "
        "ZeroMQ context, so no client could connect; use tcp://HOST:PORT or "
        "ipc://PATH");
  if (curve || IsLoopbackEndpoint(listen)) return Status::Ok();
  if (insecure) {
    std::fprintf(stderr,
                 "shardps serve: WARNING: listening on %s without CURVE: "
                 "anyone who can reach it can read and change the model\n",
                 listen.c_str());
    return Status::Ok();
  }
  return Status(
      Code::kInvalidArgument,
      "refusing to listen on " + listen +
          " without CURVE: any host that reaches it could read and change "
          "the model, in clear text. Enable CURVE (`shardps keygen --out "
          "server`, then --curve-secret-key server.key --authorized-keys "
          "FILE; see docs/security.md), listen on 127.0.0.1, or pass "
          "--insecure on a trusted network");
}

}  // namespace shardps
