#include <string>
#include <vector>

#include "common/hello_codec.h"
#include "server/shard_server_impl.h"

// Subscribe and Credit: the shard's stream of changed blocks to host
// replicas (ReplicaFeed, docs/multihost.md), wired to the frontend's socket.

namespace shardps {

namespace {

std::string IdentityOf(const zmq::message_t& frame) {
  return std::string(static_cast<const char*>(frame.data()), frame.size());
}

}  // namespace

void ShardServer::Impl::HandleSubscribe(const wire::Request& req,
                                        std::vector<zmq::message_t>& frames) {
  if (frames.size() > 3) {
    SendError(frames[0], req.request_id(),
              Status(Code::kBadMessage,
                     "Subscribe carries at most one payload frame (the held "
                     "versions), got " +
                         std::to_string(frames.size() - 2)));
    return;
  }
  const std::string identity = IdentityOf(frames[0]);
  Status subscribed = replica_feed_.Subscribe(
      identity, req, frames.size() == 3 ? &frames[2] : nullptr);
  if (!subscribed.ok()) {
    SendError(frames[0], req.request_id(), subscribed);
    return;
  }
  // The reply (this shard's Hello: identity, layout) goes before the
  // stream, on the same connection, so the replica reads it first.
  EncodeHelloReply(req.request_id(), BuildHello(), &builder_);
  SendReply(frames[0], builder_, nullptr);
  replica_feed_.Pump();
}

void ShardServer::Impl::HandleCredit(const wire::Request& req,
                                     zmq::message_t& identity) {
  // No reply: credit is a one-way hint, and an unknown peer's is ignored.
  replica_feed_.Credit(IdentityOf(identity), req.credits());
  replica_feed_.Pump();
}

void ShardServer::Impl::ReplicasChanged(const PendingUpdate& done) {
  if (replica_feed_.subscribers() == 0) return;
  if (done.bsp_apply) {
    replica_feed_.ClockApplied(clocks_.applied());
  } else if (!clocks_.bsp()) {
    for (uint32_t l : done.local) replica_feed_.Changed(l);
  } else {
    // A bsp push only adds to the clock's accumulator, unless it completed
    // a block's clock under apply = "block" (the pool applied it at once).
    for (uint32_t l : done.local)
      if (segment_->version(l).clock.load(std::memory_order_acquire) >
          done.clock)
        replica_feed_.Changed(l);
  }
  replica_feed_.Pump();
}

bool ShardServer::Impl::SendStream(const std::string& identity,
                                   flatbuffers::FlatBufferBuilder& header,
                                   zmq::message_t& payload) {
  try {
    socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(header.GetBufferPointer(), header.GetSize()),
                 zmq::send_flags::sndmore);
    const size_t bytes = payload.size();
    socket_.send(payload, zmq::send_flags::none);
    metrics_.bytes_out.Add(bytes);
    return true;
  } catch (const zmq::error_t&) {
    return false;  // the replica left; it re-subscribes if it comes back
  }
}

}  // namespace shardps
