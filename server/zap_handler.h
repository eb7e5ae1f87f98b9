// ZapHandler: the ZeroMQ authentication (ZAP, RFC 27) handler of one shard
// server. It decides which CURVE clients may complete a handshake: only those
// whose public key is in the authorized set. A refused client never gets a
// connection, so it can send nothing and receives nothing.
//
// libzmq finds the handler by the fixed endpoint inproc://zeromq.zap.01 in
// the socket's context, so there is at most one ZapHandler per context, and
// it must be running before the CURVE socket binds: a CURVE socket whose
// context has no handler accepts every key.
//
// Threads: the handler owns a REP socket serviced by its own thread. The
// authorized set may be replaced and queried from any thread (a mutex, taken
// once per handshake and, after a replacement, once per connection); the
// refusal counter may be read from any thread.
//
// An admitted client's messages carry its Z85 public key as their ZeroMQ
// "User-Id" property, so the server can refuse requests of a connection
// whose key was removed after it connected (see StillAuthorized).
#ifndef SHARDPS_SERVER_ZAP_HANDLER_H_
#define SHARDPS_SERVER_ZAP_HANDLER_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/event_fd.h"
#include "common/mutex.h"
#include "shardps/status.h"

namespace shardps {

class ZapHandler {
 public:
  // Binds the ZAP endpoint in `context` and starts the handler thread.
  // `authorized_keys` are Z85 public keys; an empty set is refused with
  // kInvalidArgument (nobody could connect). kIoError when the endpoint is
  // taken (another handler in this context). `context` must outlive the
  // handler.
  static Result<std::unique_ptr<ZapHandler>> Start(
      zmq::context_t& context, const std::vector<std::string>& authorized_keys);

  // Replaces the authorized set; handshakes from now on are judged by it.
  // All or nothing: on kInvalidArgument (a key that is not Z85, or an empty
  // list) the old set stays. Thread-safe.
  Status SetAuthorizedKeys(const std::vector<std::string>& authorized_keys)
      EXCLUDES(keys_mu_);

  // How many times SetAuthorizedKeys has replaced the set. While 0, every
  // open connection was admitted under the current set and need not be
  // checked again. Thread-safe.
  uint64_t generation() const {
    // acquire: pairs with the release in SetAuthorizedKeys.
    return generation_.load(std::memory_order_acquire);
  }

  // Whether `user_id` (the "User-Id" of a request: the Z85 key its
  // connection was admitted with; NUL-terminated, never null) is in the
  // current set. Counts and logs a refusal when not. Thread-safe.
  bool StillAuthorized(const char* user_id, const std::string& address)
      EXCLUDES(keys_mu_, log_mu_);

  // Stops and joins the thread and closes the socket. Idempotent.
  void Stop();
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Handshakes refused so far: unknown keys (seen here) plus those that
  // failed earlier or were abandoned (reported through CountFailedHandshake
  // and CountAbandonedHandshake).
  uint64_t refusals() const {
    // relaxed: a statistic; nothing is published through it.
    return refusals_.load(std::memory_order_relaxed);
  }

  // Counts and logs a handshake that failed before reaching ZAP: the peer
  // spoke no CURVE, or encrypted to another server key. `protocol_error` is
  // the ZMQ_PROTOCOL_ERROR_* value of ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
  // which the server's socket monitor sees.
  void CountFailedHandshake(const std::string& peer_address,
                            uint32_t protocol_error) EXCLUDES(log_mu_);

  // Counts and logs a connection that ended before its handshake completed
  // (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL): most often a peer without CURVE
  // that saw the mismatch in our greeting and hung up before we read its
  // own. Same thread rule as CountFailedHandshake.
  void CountAbandonedHandshake(const std::string& peer_address)
      EXCLUDES(log_mu_);

 private:
  using Key = std::array<uint8_t, 32>;

  // Decodes Z85 keys; kInvalidArgument names the first bad one or an
  // empty list.
  static Result<std::set<Key>> ParseKeys(const std::vector<std::string>& z85);

  ZapHandler(zmq::socket_t socket, std::set<Key> keys);
  void Loop();
  void HandleRequest(std::vector<zmq::message_t>& frames)
      EXCLUDES(keys_mu_, log_mu_);
  // Counts one refusal and logs it (`who` is the whole reason, e.g. "client
  // key X not authorized"), at most once per second per `who`, with
  // the number of attempts since the last line.
  void Refuse(const std::string& who, const std::string& address)
      EXCLUDES(log_mu_);

  mutable Mutex keys_mu_;
  std::set<Key> keys_ GUARDED_BY(keys_mu_);
  // Atomic, read without keys_mu_: bumped after each replacement of keys_.
  std::atomic<uint64_t> generation_{0};
  zmq::socket_t socket_;  // REP on inproc://zeromq.zap.01; handler thread only
  EventFd stop_;
  std::thread thread_;
  std::atomic<uint64_t> refusals_{0};  // atomic: read without a lock

  struct LogState {
    std::chrono::steady_clock::time_point last;
    uint64_t unreported = 0;
  };
  Mutex log_mu_;  // Refuse runs on the handler and the frontend thread
  std::map<std::string, LogState> log_ GUARDED_BY(log_mu_);
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_ZAP_HANDLER_H_
