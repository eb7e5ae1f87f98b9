#include "server/admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <string>

#include "server/shard_server_impl.h"

namespace shardps {

std::string PeerAddress(int fd, zmq::message_t& header) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (fd >= 0 &&
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (addr.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
      return std::string(ip) + ":" + std::to_string(ntohs(in->sin_port));
    }
    if (addr.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
      return "[" + std::string(ip) +
             "]:" + std::to_string(ntohs(in6->sin6_port));
    }
  }
  const char* address = zmq_msg_gets(header.handle(), "Peer-Address");
  return address != nullptr ? address : "";
}

Status Admission::Admit(int fd, zmq::message_t& header) {
  // The key generation this connection was last checked at (0: none).
  uint64_t* checked_at = nullptr;
  if (fd >= 0) {
    auto it = peers_.find(fd);
    if (it == peers_.end()) {
      if (peers_.size() >= max_clients_)
        return Status(Code::kResourceExhausted,
                      "this shard already serves " +
                          std::to_string(max_clients_) +
                          " connections (serve --max-clients); retry after "
                          "another client disconnects");
      it = peers_.emplace(fd, 0).first;
    }
    checked_at = &it->second;
  }
  if (zap_ == nullptr) return Status::Ok();
  // Until the first reload every connection was admitted by the current set.
  const uint64_t generation = zap_->generation();
  if (generation == 0 || (checked_at != nullptr && *checked_at == generation))
    return Status::Ok();
  // zmq_msg_gets, not message_t::gets: a missing property is not an error.
  const char* user_id = zmq_msg_gets(header.handle(), "User-Id");
  const char* address = zmq_msg_gets(header.handle(), "Peer-Address");
  if (!zap_->StillAuthorized(user_id != nullptr ? user_id : "",
                             address != nullptr ? address : ""))
    return Status(Code::kPermissionDenied,
                  "this client's CURVE key was removed from the shard's "
                  "authorized keys");
  if (checked_at != nullptr) *checked_at = generation;
  return Status::Ok();
}

// The worker-index half of admitting a connection: the claim is kept in
// ClockKeeper, and a refusal may need the monitor's disconnect events, so
// this stays with the frontend (Impl).
Status ShardServer::Impl::ClaimWorker(const wire::Request& req, int fd,
                                      zmq::message_t& header) {
  const int worker = req.worker();
  if (worker < 0 || worker >= static_cast<int>(clocks_.spec().workers))
    return Status::Ok();
  if (clocks_.Holds(worker, req.client_id(), fd)) return Status::Ok();
  const std::string peer = PeerAddress(fd, header);
  Status s = clocks_.Claim(worker, req.client_id(), fd, peer,
                           std::chrono::steady_clock::now());
  if (s.ok()) return s;
  // The holder may have closed a moment ago (a restarted worker): its
  // disconnect event is queued before its fd could be reused, so read the
  // monitor once before refusing.
  OnMonitorEvent();
  return clocks_.Claim(worker, req.client_id(), fd, peer,
                       std::chrono::steady_clock::now());
}

}  // namespace shardps
