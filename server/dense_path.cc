#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/seqlock.h"
#include "server/shard_server_impl.h"

// The dense path: Push, Pull and PushPull of tensor blocks. A push is
// checked (bsp freshness, clip_norm), fanned out to the blocks' writers
// (UpdatePool) and answered when its last block is applied; a pull copies
// each block out under its seqlock. The bsp apply of a whole clock runs on
// the same writers.

namespace shardps {

namespace {

// How long a pull may wait for a consistent copy of one block. Its writers
// are alive and finish an update in microseconds, so this is only reached
// on a bug; it bounds the frontend's stall.
constexpr std::chrono::seconds kPullReadDeadline{5};

}  // namespace

void ShardServer::Impl::HandleDense(const wire::Request& req,
                                    std::vector<zmq::message_t>& frames) {
  payload_sizes_.clear();
  for (size_t i = 2; i < frames.size(); ++i)
    payload_sizes_.push_back(frames[i].size());
  Status valid = validator_.ValidateDense(req, payload_sizes_, &local_);
  if (!valid.ok()) {
    SendError(frames[0], req.request_id(), valid);
    return;
  }
  if (!PassOrPark(req.request_id(), frames,
                  clocks_.RunGate(req.op(), req.worker(), req.clock()),
                  /*replay=*/true))
    return;
  float grad_scale = 1;
  if (req.op() != wire::Op::Pull) {
    if (clocks_.bsp()) {
      Status fresh = clocks_.CheckBspPush(req.worker(), req.clock());
      if (fresh.ok())
        fresh =
            push_ledger_.Check(req.worker(), req.clock(), req.client_id(),
                               req.client_id() != 0 ? req.seq() : 0, local_);
      if (!fresh.ok()) {
        SendError(frames[0], req.request_id(), fresh);
        return;
      }
    }
    Status clip = ClipScale(req, &grad_scale);
    if (!clip.ok()) {
      SendError(frames[0], req.request_id(), clip);
      return;
    }
  }
  // The reply's buffers must fit the budget: a PushPull is refused before
  // it applies anything.
  reply_account_ = reply_budget_.For(frames[1].get(ZMQ_SRCFD));
  if (req.op() != wire::Op::Push) {
    uint64_t reply_bytes = 0;
    for (uint32_t l : local_)
      reply_bytes += reply_buffers_.Footprint(segment_->block(l).num_floats *
                                              sizeof(float));
    Status room = reply_budget_.Admit(*reply_account_, reply_bytes);
    if (!room.ok()) {
      SendError(frames[0], req.request_id(), room);
      return;
    }
  }
  if (req.op() == wire::Op::Pull) {
    HandlePull(req, frames[0], local_);
  } else {
    StartUpdate(req, frames, local_, grad_scale);
  }
}

Status ShardServer::Impl::ClipScale(const wire::Request& req,
                                    float* scale) const {
  const uint32_t tensor = segment_->block(local_.front()).tensor;
  const float clip = clip_norms_[tensor];
  *scale = 1;
  if (clip <= 0) return Status::Ok();
  const float norm = req.grad_norm();
  if (norm < 0)
    return Status(Code::kInvalidArgument,
                  "tensor '" + std::string(segment_->tensor(tensor).name) +
                      "' clips gradients by norm: a push must carry the "
                      "whole gradient's L2 norm (grad_norm)");
  if (!std::isfinite(norm))
    return Status(Code::kInvalidArgument,
                  "gradient of '" + std::string(segment_->tensor(tensor).name) +
                      "' has a non-finite norm; not applied");
  if (norm > clip) *scale = clip / norm;
  return Status::Ok();
}

void ShardServer::Impl::HandlePull(const wire::Request& req,
                                   zmq::message_t& identity,
                                   const std::vector<uint32_t>& local) {
  ++pulls_;
  std::vector<zmq::message_t> payload;
  payload.reserve(local.size());
  std::vector<uint32_t> blocks;
  blocks.reserve(local.size());
  for (uint32_t l : local) {
    const uint64_t bytes = segment_->block(l).num_floats * sizeof(float);
    zmq::message_t msg = reply_buffers_.Message(bytes, reply_account_);
    uint64_t version;
    // The frontend is the only source of new block updates, and it is busy
    // here, so the pool's queue for this block drains and the read succeeds
    // at once; the deadline only fires on a bug, and then the pull gets an
    // error instead of hanging the frontend.
    Status read = ReadConsistent(
        segment_->version(l), segment_->block_data(l), msg.data(), bytes,
        std::chrono::steady_clock::now() + kPullReadDeadline, &version);
    if (!read.ok()) {
      const BlockEntry& b = segment_->block(l);
      SendError(
          identity, req.request_id(),
          read.WithContext("pull of block " + std::to_string(b.block) +
                           " of '" + segment_->tensor(b.tensor).name + "'"));
      return;
    }
    metrics_.bytes_out.Add(bytes);
    payload.push_back(std::move(msg));
    blocks.push_back(segment_->block(l).block);
  }
  SendReply(identity, OkHeader(req.request_id(), &blocks), &payload);
}

void ShardServer::Impl::StartUpdate(const wire::Request& req,
                                    std::vector<zmq::message_t>& frames,
                                    const std::vector<uint32_t>& local,
                                    float grad_scale) {
  // Exactly-once: the client's dedupe slot, claimed before anything is
  // applied so a refusal changes nothing.
  uint32_t slot = 0;
  const uint64_t seq = req.client_id() != 0 ? req.seq() : 0;
  if (seq != 0) {
    auto claimed = client_slots_.Acquire(req.client_id(),
                                         req.retry_horizon_ms(), UnixMs());
    if (!claimed.ok()) {
      SendError(frames[0], req.request_id(), claimed.status());
      return;
    }
    slot = *claimed;
  }
  ++pushes_;
  if (clocks_.bsp())
    push_ledger_.Record(req.worker(), req.clock(), req.client_id(), seq, local);
  auto pending = std::make_unique<PendingUpdate>();
  pending->request_id = req.request_id();
  pending->received_ns = reply_start_ns_;
  pending->client = req.client_id();
  pending->slot = slot;
  pending->seq = seq;
  pending->op = req.op();
  pending->dtype = req.dtype();
  pending->blocks.reserve(local.size());
  for (uint32_t l : local) pending->blocks.push_back(segment_->block(l).block);
  pending->local = local;
  pending->clock = req.clock();
  if (req.op() == wire::Op::PushPull) {
    pending->out.reserve(local.size());
    for (uint32_t l : local)
      pending->out.push_back(reply_buffers_.Message(
          segment_->block(l).num_floats * sizeof(float), reply_account_));
  }
  // `req` points into scratch_, not into the frames, so moving them is safe.
  pending->identity = std::move(frames[0]);
  pending->frames = std::move(frames);
  // bsp sums the gradient into the clock's accumulator; the weights change
  // once per clock, when every worker has called Clock.
  const BlockTask::Kind kind =
      clocks_.bsp() ? BlockTask::Kind::kAccumulate : BlockTask::Kind::kApply;
  pending->grad_scale = grad_scale;
  PendingUpdate* p = pending.get();
  const auto worker = static_cast<int16_t>(req.worker());
  RunTasks(
      std::move(pending), local.size(), [&local, p, kind, worker](size_t i) {
        BlockTask task;
        task.block = local[i];
        task.grad = p->frames[i + 2].data();
        task.dtype = p->dtype;
        task.out = p->op == wire::Op::PushPull ? p->out[i].data() : nullptr;
        task.owner = p;
        task.kind = kind;
        task.scale = p->grad_scale;
        task.client = p->client;
        task.slot = p->slot;
        task.seq = p->seq;
        task.worker = worker;
        task.clock = p->clock;
        return task;
      });
}

template <typename TaskFor>
void ShardServer::Impl::RunTasks(std::unique_ptr<PendingUpdate> pending,
                                 size_t count, TaskFor task_for) {
  // Relaxed: no pool thread can see `pending` yet; Submit hands it over
  // under the worker's mutex, which orders this store before their reads.
  pending->remaining.store(static_cast<uint32_t>(count),
                           std::memory_order_relaxed);
  // Pool blocks first, so they are applied while this thread does its own.
  uint32_t inline_blocks = 0;
  for (size_t i = 0; i < count; ++i) {
    const BlockTask task = task_for(i);
    if (pool_.IsInline(task.block)) {
      ++inline_blocks;
    } else {
      pool_.Submit(task);
    }
  }
  for (size_t i = 0; i < count; ++i) {
    const BlockTask task = task_for(i);
    if (pool_.IsInline(task.block)) pool_.ApplyInline(task);
  }
  // Settle the inline blocks at once. If that brings the count to zero, the
  // pool finished first (its last decrement did not reach zero, so it did
  // not queue the request) and this thread finishes it now. acq_rel, as
  // the pool's decrements: whichever side reaches zero acquires the other
  // side's block writes (weights, PushPull output) before it replies.
  const bool all_done =
      inline_blocks == count ||
      (inline_blocks > 0 &&
       pending->remaining.fetch_sub(inline_blocks, std::memory_order_acq_rel) ==
           inline_blocks);
  if (all_done) {
    Finish(*pending);
    return;
  }
  // The pool thread that finishes last hands it back through completions_.
  pending.release();
  ++in_flight_;
}

void ShardServer::Impl::FinishUpdates() {
  completions_.Drain(&finished_);
  for (PendingUpdate* raw : finished_) {
    std::unique_ptr<PendingUpdate> done(raw);  // released in RunTasks
    --in_flight_;
    Finish(*done);
  }
}

void ShardServer::Impl::Finish(PendingUpdate& done) {
  if (!done.bsp_apply) {
    if (done.seq != 0) client_slots_.PushDone(done.slot);
    Reply(done);
  } else {
    clocks_.ApplyFinished(done.clock);
    ReleaseParked();
  }
  // After the reply and the released waits: acks are not delayed by the
  // stream to host replicas.
  ReplicasChanged(done);
  if (done.bsp_apply) MaybeStartBspApply();
}

void ShardServer::Impl::MaybeStartBspApply() {
  const int64_t clock = clocks_.DueApply();
  if (clock < 0) return;
  clocks_.ApplyStarted(clock);
  auto pending = std::make_unique<PendingUpdate>();
  pending->bsp_apply = true;
  pending->clock = clock;
  const ConsistencySpec& c = clocks_.spec();
  const float scale = c.mean ? 1.0f / static_cast<float>(c.workers) : 1.0f;
  PendingUpdate* p = pending.get();
  RunTasks(std::move(pending), segment_->num_blocks(),
           [p, clock, scale](size_t i) {
             BlockTask task;
             task.block = static_cast<uint32_t>(i);
             task.grad = nullptr;
             task.dtype = wire::DType::F32;
             task.out = nullptr;
             task.owner = p;
             task.kind = BlockTask::Kind::kApplyAccumulated;
             task.scale = scale;
             task.clock = clock;
             return task;
           });
}

void ShardServer::Impl::Reply(PendingUpdate& done) {
  if (DropPushReply()) return;
  ReplyScope scope(*this, done.op, done.received_ns);
  const bool with_data = done.op == wire::Op::PushPull;
  if (with_data)
    for (const auto& m : done.out) metrics_.bytes_out.Add(m.size());
  SendReply(done.identity,
            OkHeader(done.request_id, with_data ? &done.blocks : nullptr),
            with_data ? &done.out : nullptr);
}

}  // namespace shardps
