#include <vector>

#include "server/shard_server_impl.h"

// The frontend's row requests (PushRows, PullRows: TableService) and queue
// requests (QueuePush: QueueService), each with its exactly-once slot.

namespace shardps {

void ShardServer::Impl::HandleRows(const wire::Request& req,
                                   std::vector<zmq::message_t>& frames) {
  // Like dense requests, a refused one counts as an error only.
  if (req.op() == wire::Op::PushRows) {
    // Exactly-once: the client's slot is claimed before anything is
    // applied, so a refusal changes nothing. The push is applied here, at
    // once, so the slot is done with before the next request.
    TableService::Once once;
    const bool numbered = req.client_id() != 0 && req.seq() != 0;
    if (numbered) {
      auto claimed = client_slots_.Acquire(req.client_id(),
                                           req.retry_horizon_ms(), UnixMs());
      if (!claimed.ok()) {
        SendError(frames[0], req.request_id(), claimed.status());
        return;
      }
      once = {req.client_id(), req.seq(), *claimed, row_journal_.get()};
    }
    bool duplicate = false;
    Status s =
        tables_.PushRows(req, frames, numbered ? &once : nullptr, &duplicate);
    if (numbered) client_slots_.PushDone(once.slot);
    if (!s.ok()) {
      SendError(frames[0], req.request_id(), s);
      return;
    }
    ++pushes_;
    if (duplicate) ++row_duplicates_;
    if (DropPushReply()) return;
    SendReply(frames[0], OkHeader(req.request_id()), nullptr);
    return;
  }
  std::vector<zmq::message_t> payload(1);
  ReplyBudget::Account* account = reply_budget_.For(frames[1].get(ZMQ_SRCFD));
  Status s = tables_.PullRows(
      req, frames,
      [this, account](size_t bytes, zmq::message_t* out) {
        SHARDPS_RETURN_IF_ERROR(
            reply_budget_.Admit(*account, reply_buffers_.Footprint(bytes)));
        *out = reply_buffers_.Message(bytes, account);
        return Status::Ok();
      },
      &payload[0]);
  if (!s.ok()) {
    SendError(frames[0], req.request_id(), s);
    return;
  }
  ++pulls_;
  metrics_.bytes_out.Add(payload[0].size());
  SendReply(frames[0], OkHeader(req.request_id()), &payload);
}

void ShardServer::Impl::HandleQueuePush(const wire::Request& req,
                                        std::vector<zmq::message_t>& frames) {
  QueueOnce once;
  if (req.client_id() != 0 && req.seq() != 0) {
    auto claimed = client_slots_.Acquire(req.client_id(),
                                         req.retry_horizon_ms(), UnixMs());
    if (!claimed.ok()) {
      SendError(frames[0], req.request_id(), claimed.status());
      return;
    }
    once = {req.client_id(), req.seq(), *claimed,
            &segment_->client_slot(*claimed).queue};
  }
  queues_->Push(req, frames, once, queue_reply_);
}

}  // namespace shardps
