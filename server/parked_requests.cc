#include "server/parked_requests.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include "server/shard_server_impl.h"

namespace shardps {

namespace {

// Requests parked for slower workers (bsp/ssp). Each holds its frames, so
// the cap bounds memory when clients pile up requests behind a straggler.
constexpr size_t kMaxParked = 4096;

}  // namespace

Status ParkedRequests::Park(uint64_t request_id,
                            std::vector<zmq::message_t>& frames,
                            const Gate& gate, bool replay, wire::Op op,
                            uint64_t received_ns) {
  if (parked_.size() >= kMaxParked)
    return Status(Code::kBusy, std::to_string(kMaxParked) +
                                   " requests already wait for slower "
                                   "workers; retry later");
  const auto now = std::chrono::steady_clock::now();
  Parked p;
  p.gate = gate;
  p.replay = replay;
  p.request_id = request_id;
  p.op = op;
  p.received_ns = received_ns;
  p.parked_at = now;
  p.deadline =
      now + std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::duration<double>(clocks_.spec().wait_timeout_s));
  if (replay) {
    p.frames = std::move(frames);
  } else {
    p.frames.push_back(std::move(frames[0]));  // the identity is enough
  }
  parked_.push_back(std::move(p));
  return Status::Ok();
}

void ParkedRequests::Release(const std::function<void(Parked&)>& run) {
  // A released Clock can open more gates; one walk at a time, repeated
  // until nothing more opens.
  if (releasing_) {
    release_again_ = true;
    return;
  }
  releasing_ = true;
  do {
    release_again_ = false;
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (!clocks_.Passes(it->gate)) {
        ++it;
        continue;
      }
      Parked p = std::move(*it);
      it = parked_.erase(it);
      run(p);
    }
  } while (release_again_);
  releasing_ = false;
}

void ParkedRequests::Expire(
    const std::function<void(Parked&, const Status&)>& refuse) {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    char waited[32];
    std::snprintf(waited, sizeof(waited), "%.1f s",
                  std::chrono::duration<double>(now - it->parked_at).count());
    const std::string what = it->gate.on == Gate::On::kApplied
                                 ? "clock " +
                                       std::to_string(it->gate.at_least - 1) +
                                       " to be applied"
                                 : "every worker to reach clock " +
                                       std::to_string(it->gate.at_least);
    refuse(*it, Status(Code::kTimeout,
                       clocks_.spec().ModeName() + ": waited " + waited +
                           " (consistency.wait_timeout) for " + what + "; " +
                           clocks_.Laggards(it->gate, now)));
    it = parked_.erase(it);
  }
}

int ParkedRequests::PollTimeoutMs() const {
  if (parked_.empty()) return -1;
  auto earliest = parked_.front().deadline;
  for (const Parked& p : parked_) earliest = std::min(earliest, p.deadline);
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      earliest - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count() + 1));
}

// ---- The frontend's side: Clock requests and the gates of every request.

void ShardServer::Impl::HandleClock(const wire::Request& req,
                                    std::vector<zmq::message_t>& frames) {
  // Copied out: `req` lives in scratch_, which an apply finishing below may
  // reuse to replay parked requests.
  const uint64_t request_id = req.request_id();
  const int worker = req.worker();
  const int64_t clock = req.clock();
  if (clock < 0) {
    SendError(frames[0], request_id,
              Status(Code::kInvalidArgument, "Clock(" + std::to_string(clock) +
                                                 "): clocks start at 0"));
    return;
  }
  // bsp: Clock(c) waits, like the worker's pushes for clock c, until clock
  // c-1 is applied; recording it earlier would let a fast worker's next
  // clock count towards the apply still running.
  if (!PassOrPark(request_id, frames,
                  clocks_.RunGate(wire::Op::Clock, worker, clock),
                  /*replay=*/true))
    return;
  Status recorded = clocks_.RecordClock(worker, clock);
  if (!recorded.ok()) {
    SendError(frames[0], request_id, recorded);
    return;
  }
  // The reply is the worker's permission to start its next clock; park it
  // before an apply (which may finish at once) releases the gates.
  if (PassOrPark(request_id, frames, clocks_.ClockReplyGate(clock),
                 /*replay=*/false))
    SendReply(frames[0], OkHeader(request_id), nullptr);
  MaybeStartBspApply();
  ReleaseParked();
}

bool ShardServer::Impl::PassOrPark(uint64_t request_id,
                                   std::vector<zmq::message_t>& frames,
                                   const Gate& gate, bool replay) {
  if (clocks_.Passes(gate)) return true;
  Status parked = parked_.Park(request_id, frames, gate, replay, reply_op_,
                               reply_start_ns_);
  if (!parked.ok()) SendError(frames[0], request_id, parked);
  return false;
}

void ShardServer::Impl::ReleaseParked() {
  parked_.Release([this](ParkedRequests::Parked& p) {
    ReplyScope scope(*this, p.op, p.received_ns);
    if (p.replay) {
      replay_received_ns_ = p.received_ns;
      HandleMessage(p.frames);
    } else {
      SendReply(p.frames[0], OkHeader(p.request_id), nullptr);
    }
  });
}

void ShardServer::Impl::ExpireParked() {
  parked_.Expire([this](ParkedRequests::Parked& p, const Status& timeout) {
    ReplyScope scope(*this, p.op, p.received_ns);
    SendError(p.frames[0], p.request_id, timeout);
  });
}

}  // namespace shardps
