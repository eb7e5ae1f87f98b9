#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/zmq_util.h"
#include "server/shard_server_impl.h"

// The frontend: the poll loop that owns the socket, the dispatch of each
// request to its handler, the replies, and the socket monitor's events.

namespace shardps {

namespace {

// How many messages the frontend takes from the socket before it looks at
// completions again, so replies are not starved by a flood of requests.
constexpr int kRecvBatch = 64;

// Longest error message sent: messages quote names from the request, and a
// header may be 64 KiB.
constexpr size_t kMaxErrorMessageBytes = 1024;

// Updates handed to the pool and not yet finished. At the cap the frontend
// stops taking requests until some finish, for the same reason.
constexpr uint64_t kMaxUpdatesInFlight = 1024;

}  // namespace

void ShardServer::Impl::Loop() {
  // Without periodic checkpoints item 4 watches nothing.
  zmq_pollitem_t items[6] = {
      {socket_.handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, completions_.fd(), ZMQ_POLLIN, 0},
      {nullptr, stop_.fd(), ZMQ_POLLIN, 0},
      {monitor_.handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, checkpointer_ ? checkpointer_->done_fd() : stop_.fd(),
       static_cast<short>(checkpointer_ ? ZMQ_POLLIN : 0), 0},
      // Pushes that waited for queue space and are now placed (or refused).
      {nullptr, queues_->done_fd(), ZMQ_POLLIN, 0},
  };
  std::vector<zmq::message_t> frames;
  for (;;) {
    // At the cap, requests wait in ZeroMQ (and then TCP) until updates
    // finish: backpressure rather than memory.
    items[0].events = in_flight_ < kMaxUpdatesInFlight ? ZMQ_POLLIN : 0;
    PublishGauges();
    PollItems(items, 6, parked_.PollTimeoutMs());
    if (items[5].revents & ZMQ_POLLIN) {
      ReplyScope scope(*this, wire::Op::QueuePush, 0);
      queues_->Finish(queue_reply_);
    }
    if (items[2].revents & ZMQ_POLLIN) break;
    if (items[3].revents & ZMQ_POLLIN) OnMonitorEvent();
    if (items[4].revents & ZMQ_POLLIN) FinishCheckpoints();
    if (items[1].revents & ZMQ_POLLIN) FinishUpdates();
    if (!parked_.empty()) ExpireParked();
    if (items[0].revents & ZMQ_POLLIN) ReceiveRequests(frames);
  }
  // Shutdown: new requests are no longer read, but every update already
  // handed to the pool is finished and answered before the pool stops.
  zmq_pollitem_t done_item = {nullptr, completions_.fd(), ZMQ_POLLIN, 0};
  while (in_flight_ > 0) {
    PollItems(&done_item, 1, 1000);
    FinishUpdates();
  }
}

void ShardServer::Impl::ReceiveRequests(std::vector<zmq::message_t>& frames) {
  for (int i = 0; i < kRecvBatch; ++i) {
    try {
      if (!RecvMultipartNow(socket_, &frames)) break;
      HandleMessage(frames);
    } catch (const zmq::error_t& e) {
      // A socket error concerns one peer's message, never the server.
      ++errors_;
      std::fprintf(stderr, "shardps: socket error: %s\n", e.what());
    } catch (const std::bad_alloc&) {
      // Out of memory for one request's buffers: drop that request (its
      // client times out) and keep serving the others.
      ++errors_;
      std::fprintf(stderr, "shardps: out of memory; request dropped\n");
    }
  }
}

void ShardServer::Impl::HandleMessage(std::vector<zmq::message_t>& frames) {
  zmq::message_t& identity = frames[0];
  // A replayed (parked) request keeps its first arrival and was counted in
  // then.
  const uint64_t received = replay_received_ns_;
  replay_received_ns_ = 0;
  if (received == 0)
    for (size_t i = 1; i < frames.size(); ++i)
      metrics_.bytes_in.Add(frames[i].size());
  // Until the header parses, a reply answers an op of no name ("other").
  ReplyScope scope(*this, kUnknownOp, received != 0 ? received : MetricNowNs());
  if (frames.size() < 2) {
    SendError(identity, 0,
              Status(Code::kBadMessage, "message has no header frame"));
    return;
  }
  auto parsed = ParseRequest(frames[1].data(), frames[1].size(), scratch_);
  if (!parsed.ok()) {
    SendError(identity, 0, parsed.status());
    return;
  }
  const wire::Request& req = **parsed;
  reply_op_ = req.op();
  const int fd = frames[1].get(ZMQ_SRCFD);
  Status admitted = admission_.Admit(fd, frames[1]);
  if (!admitted.ok()) {
    SendError(identity, req.request_id(), admitted);
    return;
  }
  // A Hello without a model name is a client discovering what we serve.
  const bool discovery = req.op() == wire::Op::Hello &&
                         (req.model() == nullptr || req.model()->size() == 0);
  Status model = discovery ? Status::Ok() : validator_.CheckModel(req.model());
  if (!model.ok()) {
    SendError(identity, req.request_id(), model);
    return;
  }
  switch (req.op()) {
    case wire::Op::Hello: {
      // A second live client with this worker index is refused at Connect.
      Status claimed = ClaimWorker(req, fd, frames[1]);
      if (!claimed.ok()) {
        SendError(identity, req.request_id(), claimed);
        return;
      }
      HandleHello(req, identity);
      return;
    }
    case wire::Op::Stats:
      HandleStats(req, identity);
      return;
    case wire::Op::PushRows:
    case wire::Op::PullRows:
      HandleRows(req, frames);
      return;
    case wire::Op::QueuePush:
      HandleQueuePush(req, frames);
      return;
    case wire::Op::Checkpoint:
      HandleCheckpoint(req, identity);
      return;
    case wire::Op::Release:
      HandleRelease(req, identity);
      return;
    case wire::Op::Subscribe:
      HandleSubscribe(req, frames);
      return;
    case wire::Op::Credit:
      HandleCredit(req, identity);
      return;
    case wire::Op::Push:
    case wire::Op::Pull:
    case wire::Op::PushPull:
    case wire::Op::Clock:
      HandleWorkerRequest(req, fd, frames);
      return;
    default:
      SendError(
          identity, req.request_id(),
          Status(Code::kUnimplemented, std::string("op ") + OpName(req.op()) +
                                           " is not served by this version"));
  }
}

void ShardServer::Impl::HandleWorkerRequest(
    const wire::Request& req, int fd, std::vector<zmq::message_t>& frames) {
  zmq::message_t& identity = frames[0];
  Status worker = clocks_.CheckWorker(req.op(), req.worker());
  if (!worker.ok()) {
    SendError(identity, req.request_id(), worker);
    return;
  }
  // Claimed here too: claims do not survive a shard restart, and the
  // clients reconnect without a Hello.
  Status claimed = ClaimWorker(req, fd, frames[1]);
  if (!claimed.ok()) {
    SendError(identity, req.request_id(), claimed);
    return;
  }
  if (req.worker() >= 0)
    clocks_.Seen(req.worker(), fd, std::chrono::steady_clock::now());
  if (req.op() == wire::Op::Clock) {
    HandleClock(req, frames);
  } else {
    HandleDense(req, frames);
  }
}

void ShardServer::Impl::OnMonitorEvent() {
  // Each event is two frames: [uint16 event, uint32 value (the fd)] and the
  // peer's address.
  zmq::message_t event, address;
  while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
    if (event.more()) (void)monitor_.recv(address);
    if (event.size() < 6) continue;
    uint16_t id;
    uint32_t fd;
    std::memcpy(&id, event.data(), sizeof(id));
    std::memcpy(&fd, static_cast<const char*>(event.data()) + 2, sizeof(fd));
    if (id == ZMQ_EVENT_DISCONNECTED) {
      clocks_.Disconnected(static_cast<int>(fd),
                           std::chrono::steady_clock::now());
      admission_.Disconnected(static_cast<int>(fd));
      reply_budget_.Disconnected(static_cast<int>(fd));
    }
    if (zap_ == nullptr) continue;
    const std::string peer(static_cast<const char*>(address.data()),
                           address.size());
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
      zap_->CountFailedHandshake(peer, fd);  // the value is the protocol error
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
      zap_->CountAbandonedHandshake(peer);
  }
}

void ShardServer::Impl::HandleRelease(const wire::Request& req,
                                      zmq::message_t& identity) {
  if (req.client_id() == 0) {
    SendError(identity, req.request_id(),
              Status(Code::kInvalidArgument,
                     "Release needs the client id whose slot it gives back"));
    return;
  }
  // Unknown ids (never pushed here, already released) are answered OK too:
  // the client's wish, no slot held, already holds.
  (void)client_slots_.Release(req.client_id());
  clocks_.Unclaim(req.client_id());
  SendReply(identity, OkHeader(req.request_id()), nullptr);
}

void ShardServer::Impl::SendError(zmq::message_t& identity, uint64_t request_id,
                                  const Status& status) {
  ++errors_;
  builder_.Clear();
  const std::string& text = status.message();
  auto message = builder_.CreateString(
      text.data(), std::min(text.size(), kMaxErrorMessageBytes));
  wire::ReplyBuilder reply(builder_);
  reply.add_request_id(request_id);
  reply.add_code(static_cast<uint8_t>(status.code()));
  reply.add_message(message);
  builder_.Finish(reply.Finish());
  SendReply(identity, builder_, nullptr);
}

void ShardServer::Impl::SendReply(zmq::message_t& identity,
                                  flatbuffers::FlatBufferBuilder& header,
                                  std::vector<zmq::message_t>* payload) {
  const bool has_payload = payload != nullptr && !payload->empty();
  const auto* sent =
      flatbuffers::GetRoot<wire::Reply>(header.GetBufferPointer());
  metrics_.replies.Count(reply_op_, static_cast<Code>(sent->code()),
                         reply_start_ns_);
  try {
    socket_.send(identity, zmq::send_flags::sndmore);
    socket_.send(
        zmq::buffer(header.GetBufferPointer(), header.GetSize()),
        has_payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (has_payload) {
      for (size_t i = 0; i < payload->size(); ++i)
        socket_.send((*payload)[i], i + 1 < payload->size()
                                        ? zmq::send_flags::sndmore
                                        : zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH and friends: the client left. Its loss, not ours.
    std::fprintf(stderr, "shardps: reply dropped: %s\n", e.what());
  }
}

}  // namespace shardps
