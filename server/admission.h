// Admission: which connections a shard serves.
//
// Every request passes Admit before it is handled: a connection the shard
// has not seen yet is refused while `max_clients` others are served, and,
// with CURVE, a connection whose key was removed by a reload since it was
// admitted is refused from its next request on. A disconnect (the socket
// monitor) frees the connection's place.
//
// Thread-safety: the frontend thread only.
#ifndef SHARDPS_SERVER_ADMISSION_H_
#define SHARDPS_SERVER_ADMISSION_H_

#include <cstdint>
#include <unordered_map>
#include <zmq.hpp>

#include "server/zap_handler.h"
#include "shardps/status.h"

namespace shardps {

class Admission {
 public:
  explicit Admission(uint32_t max_clients) : max_clients_(max_clients) {}

  // Judges keys with `zap` from now on (CURVE on). `zap` is borrowed and
  // must outlive this object. REQUIRES: before the first Admit.
  void UseCurve(ZapHandler* zap) { zap_ = zap; }

  // Whether a request from connection `fd` (ZMQ_SRCFD, -1 when unknown)
  // may be served: kResourceExhausted when the connection is new and
  // max_clients are already served; with CURVE, kPermissionDenied
  // when the key it was admitted with was removed by a reload since. The
  // key is checked once per connection per reload, not per request.
  // `header` is the request's header frame: it carries the connection's
  // metadata (its key as "User-Id").
  Status Admit(int fd, zmq::message_t& header);

  // Connection `fd` closed: it no longer counts towards max_clients.
  void Disconnected(int fd) { peers_.erase(fd); }
  // Connections that sent a request and have not disconnected.
  size_t connections() const { return peers_.size(); }

 private:
  const uint32_t max_clients_;
  ZapHandler* zap_ = nullptr;  // null: CURVE off
  // Connections that have sent a request, by socket fd (ZMQ_SRCFD), with
  // the CURVE key generation each was last checked at (Admit); a
  // disconnect (socket monitor) removes one. A connection that reuses an
  // fd before the old one's disconnect arrives may inherit its generation
  // G, and that is sound: it was accepted after the old connection closed,
  // so after reload G, and its handshake was judged by set G or a later one
  // (which would bump the generation and force a check).
  std::unordered_map<int, uint64_t> peers_;
};

// "ip:port" of the TCP peer on connection `fd`, for messages that name a
// client; ZeroMQ's Peer-Address (the IP alone) for other transports. The fd
// belongs to ZeroMQ's I/O thread; getpeername only reads it, and a reused
// fd could at worst name the wrong peer in a message.
std::string PeerAddress(int fd, zmq::message_t& header);

}  // namespace shardps

#endif  // SHARDPS_SERVER_ADMISSION_H_
