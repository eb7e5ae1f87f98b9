// ClockKeeper: the consistency rules of one shard (async, bsp, ssp:S).
//
// Workers count their Clock() calls; worker w at clock c has finished c
// clocks. The keeper decides, for each request, whether it may run now or
// must wait at a gate for slower workers:
//
//   mode   Push/PushPull(w, c)       Pull(w, c)            Clock(w, c) reply
//   async  now                       now                   now
//   bsp    applied >= c, then sums   applied >= c          applied >= c + 1
//          into the accumulator
//   ssp:S  now                       min clock >= c - S    min clock >= c + 1 -
//   S
//
// where `applied` is how many clocks' summed gradients the shard has applied
// (bsp applies clock c once every worker has called Clock(c)) and `min clock`
// is the slowest worker's clock. Requests without a worker index (tools,
// evaluators) never wait; in bsp they may not push.
//
// Clocks live in the segment header (they survive a restart); liveness
// (last request, connection) is this process's view only.
//
// Thread-safety: frontend thread only.
#ifndef SHARDPS_SERVER_CLOCK_KEEPER_H_
#define SHARDPS_SERVER_CLOCK_KEEPER_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/segment.h"
#include "protocol_generated.h"
#include "shardps/model_spec.h"
#include "shardps/status.h"

namespace shardps {

// A condition a parked request waits for.
struct Gate {
  enum class On : uint8_t {
    kNone,      // no wait
    kApplied,   // applied clock >= at_least
    kMinClock,  // slowest worker's clock >= at_least
  };
  On on = On::kNone;
  int64_t at_least = 0;
};

class ClockKeeper {
 public:
  using Time = std::chrono::steady_clock::time_point;

  enum class WorkerState : uint8_t { kNeverSeen = 0, kConnected, kGone };

  // `segment` must outlive the keeper and be open for serving.
  ClockKeeper(const ConsistencySpec& spec, Segment& segment);

  const ConsistencySpec& spec() const { return spec_; }
  bool bsp() const { return spec_.mode == ConsistencySpec::Mode::kBsp; }

  // kInvalidArgument when `worker` is out of range for this model, or when
  // a bsp Push comes from a non-worker or a Clock from anyone but a worker.
  Status CheckWorker(wire::Op op, int worker) const;

  // What request (op, worker, clock) must wait for before it runs.
  Gate RunGate(wire::Op op, int worker, int64_t clock) const;
  // What a recorded Clock(worker, clock) must wait for before its reply.
  Gate ClockReplyGate(int64_t clock) const;
  bool Passes(const Gate& gate) const;

  // bsp: whether a Push for `clock` from `worker` may be summed into the
  // current accumulators (it passed its gate). Explains a stale push.
  Status CheckBspPush(int worker, int64_t clock) const;

  // Records Clock(worker, clock). A clock the worker already recorded (a
  // retry) is accepted again; one ahead of the worker's recorded clock
  // means a Clock was lost and is refused.
  Status RecordClock(int worker, int64_t clock);

  // bsp: the clock whose apply should start now, or -1. Call after
  // RecordClock and after ApplyFinished.
  int64_t DueApply() const;
  void ApplyStarted(int64_t clock) { applying_ = clock; }
  void ApplyFinished(int64_t clock);

  int64_t applied() const;
  int64_t clock_of(int worker) const;
  int64_t MinClock() const;

  // Liveness: a request from `worker` arrived over connection `fd`.
  void Seen(int worker, int fd, Time now);
  // The connection `fd` closed: its worker is gone and its claim is free.
  void Disconnected(int fd, Time now);

  // Worker claims: each worker index belongs to one live client at a time,
  // the first whose Hello (or request) names it. A client is its client id
  // (its connection fd when the id is 0); one that reconnects on a new fd
  // keeps its index. True when `client` over `fd` holds `worker` already
  // (the per-request fast path).
  bool Holds(int worker, uint64_t client_id, int fd) const;
  // Claims `worker` for the client: Ok when it was free or already the
  // client's; kBusy naming the index, the holder's address `peer` and how
  // long it has held it when another live client holds it. Claims are
  // freed by Disconnected(holder's fd) and Unclaim. Not enforced for fd < 0
  // (a transport without connections): Ok.
  // REQUIRES: 0 <= worker < spec().workers.
  Status Claim(int worker, uint64_t client_id, int fd, const std::string& peer,
               Time now);
  // A client closed cleanly (Release): frees every index it holds.
  void Unclaim(uint64_t client_id);
  WorkerState state_of(int worker) const { return workers_[worker].state; }
  // Milliseconds since `worker`'s last request; -1 if never seen.
  int64_t IdleMs(int worker, Time now) const;

  // Names the workers that hold `gate` shut, with their clocks and state,
  // for a timeout error: "worker 2 at clock 4 (disconnected 3.1 s ago)".
  std::string Laggards(const Gate& gate, Time now) const;

 private:
  struct Liveness {
    WorkerState state = WorkerState::kNeverSeen;
    int fd = -1;
    Time last_seen{};
    Time gone_at{};
  };

  struct WorkerClaim {
    bool held = false;
    uint64_t client_id = 0;
    int fd = -1;
    std::string peer;  // "ip:port" of the holder's connection
    Time since{};
  };

  const ConsistencySpec spec_;
  SegmentHeader& header_;
  std::vector<Liveness> workers_;
  std::vector<WorkerClaim> claims_;  // by worker index
  int64_t applying_ = -1;            // bsp clock being applied, -1 when idle
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_CLOCK_KEEPER_H_
