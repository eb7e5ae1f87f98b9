#include "server/checkpoint_requests.h"

#include <utility>

#include "server/shard_server_impl.h"

namespace shardps {

namespace {

// Checkpoint requests waiting for the checkpointer; more get kBusy.
constexpr size_t kMaxCheckpointRequests = 64;

}  // namespace

Result<uint64_t> CheckpointRequests::Add(zmq::message_t& identity,
                                         uint64_t request_id) {
  // Each waiting request holds its identity until the checkpoint is
  // written (seconds); a bound keeps a flood of them from growing the map.
  if (waiting_.size() >= kMaxCheckpointRequests)
    return Status(Code::kBusy,
                  "too many checkpoint requests are already waiting for "
                  "this shard; retry when they finish");
  const uint64_t token = next_token_++;
  zmq::message_t who;
  who.copy(identity);
  waiting_.emplace(token, Waiting{std::move(who), request_id});
  return token;
}

std::optional<CheckpointRequests::Waiting> CheckpointRequests::Take(
    uint64_t token) {
  auto it = waiting_.find(token);
  if (it == waiting_.end()) return std::nullopt;
  std::optional<Waiting> taken(std::move(it->second));
  waiting_.erase(it);
  return taken;
}

// ---- The frontend's side: a client's Checkpoint and its reply.

void ShardServer::Impl::HandleCheckpoint(const wire::Request& req,
                                         zmq::message_t& identity) {
  if (!checkpointer_) {
    SendError(identity, req.request_id(),
              Status(Code::kInvalidArgument,
                     "this shard was started without --checkpoint-dir, so "
                     "it has nowhere to write a checkpoint"));
    return;
  }
  auto token = checkpoint_requests_.Add(identity, req.request_id());
  if (!token.ok()) {
    SendError(identity, req.request_id(), token.status());
    return;
  }
  checkpointer_->Request(*token);
}

void ShardServer::Impl::FinishCheckpoints() {
  ReplyScope scope(*this, wire::Op::Checkpoint, 0);
  for (Checkpointer::Finished& f : checkpointer_->TakeFinished()) {
    auto waiting = checkpoint_requests_.Take(f.token);
    if (!waiting) continue;
    auto& [identity, request_id] = *waiting;
    if (!f.dir.ok()) {
      SendError(identity, request_id, f.dir.status());
    } else {
      // The reply's message names the checkpoint written.
      builder_.Clear();
      auto dir = builder_.CreateString(*f.dir);
      wire::ReplyBuilder reply(builder_);
      reply.add_request_id(request_id);
      reply.add_message(dir);
      builder_.Finish(reply.Finish());
      SendReply(identity, builder_, nullptr);
    }
  }
}

}  // namespace shardps
