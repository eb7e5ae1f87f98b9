// UpdatePool: the writers that apply optimizer steps in place.
//
// A server has `writers` writers. Writer 0 is the frontend thread itself,
// which applies its blocks inline; writers 1..writers-1 are pool threads.
// Block b of the segment always belongs to writer b % writers, so every
// block has exactly one writer and the weights need no lock; the seqlock
// around each apply lets readers (pulls, ModelViews) detect a torn copy.
//
// Why the frontend writes too: each hand-off to another thread costs a
// wake-up (~20 us here), so with one writer (the default on small machines)
// a push is received, applied and answered by one thread with no hand-off.
//
// Thread-safety: Submit and ApplyInline from the frontend thread only;
// Start/Stop from the owner. Tasks submitted before Stop are all applied
// before it returns.
#ifndef SHARDPS_SERVER_UPDATE_POOL_H_
#define SHARDPS_SERVER_UPDATE_POOL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "common/metric_counters.h"
#include "common/mutex.h"
#include "common/optimizer_config.h"
#include "common/segment.h"
#include "server/completion_queue.h"
#include "server/pending_update.h"
#include "server/update_journal.h"

namespace shardps {

struct BlockTask {
  enum class Kind : uint8_t {
    kApply,             // optimizer step with `grad` (async, ssp)
    kAccumulate,        // bsp: accumulator += grad; weights untouched
    kApplyAccumulated,  // bsp: optimizer step with accumulator * scale for
                        // clock `clock`, then zero the accumulator
  };
  uint32_t block;        // local block index in the segment
  const void* grad;      // borrowed from owner->frames; num_floats of block
  wire::DType dtype;     // of `grad`: F32 is applied in place, 16-bit
                         // gradients are widened into a per-writer buffer
  void* out;             // PushPull: receives the updated block, else null
  PendingUpdate* owner;  // counted down when this block is done
  Kind kind = Kind::kApply;
  // kApply, kAccumulate: multiplies the gradient (clip_norm), 1 = as sent;
  // kApplyAccumulated: 1 (sum) or 1/workers (mean).
  float scale = 1;
  int64_t clock = 0;  // kApplyAccumulated: the bsp clock being applied
  // Exactly-once pushes (seq != 0): the client, its dedupe slot on this
  // shard and the push's sequence number. A block whose window already has
  // the push is skipped; otherwise the update and the window change
  // together, journaled.
  uint64_t client = 0;
  uint32_t slot = 0;
  uint64_t seq = 0;
  // kAccumulate: the pushing worker and the push's clock (bsp apply =
  // "block" counts them: see UpdatePool::MaybeApplyEarly). -1: not a worker.
  int16_t worker = -1;
};

class UpdatePool {
 public:
  // How one tensor is updated.
  struct TensorOptimizer {
    OptimizerKind kind;
    OptimizerParams params;
    uint32_t state_slots;
  };

  // `segment`, `journal` and `done` must outlive the pool. Each tensor is
  // updated by the optimizer `spec` gives it (hyper-parameters as in force
  // now; the kinds match the segment's, which the spec hash guarantees).
  // REQUIRES: writers >= 1; spec validated and the segment's own; the
  // journal opened for `writers` writers.
  UpdatePool(Segment& segment, const ModelSpec& spec, UpdateJournal& journal,
             CompletionQueue& done, uint32_t writers);
  ~UpdatePool();
  UpdatePool(const UpdatePool&) = delete;
  UpdatePool& operator=(const UpdatePool&) = delete;

  void Start();
  void Stop();
  uint32_t writers() const { return writers_; }

  // True when local block `block` belongs to writer 0, the caller.
  bool IsInline(uint32_t block) const { return block % writers_ == 0; }

  // Hands a block owned by a pool thread to that thread. When the pool
  // brings the task's owner to zero remaining blocks, it goes to `done`.
  // REQUIRES: !IsInline(task.block).
  void Submit(const BlockTask& task);

  // Applies a block owned by writer 0 on the calling (frontend) thread. Does
  // not count the owner down: the frontend settles its inline blocks at once.
  // REQUIRES: IsInline(task.block).
  void ApplyInline(const BlockTask& task) { Apply(task, 0, inline_scratch_); }

  // Test-only fault: the n-th journaled block update (1-based) writes half
  // the block and kills the process with SIGKILL, as a crash would. 0: off.
  // REQUIRES: called before Start.
  void SetFaultKillMidUpdate(uint64_t n) { fault_kill_at_ = n; }

  // Block updates skipped because the block already had that push (client
  // retries). Any thread.
  uint64_t duplicates() const {
    return duplicates_.load(std::memory_order_relaxed);
  }
  // bsp apply = "block": blocks applied before their clock ended. Any thread.
  uint64_t early_applies() const {
    return early_applies_.load(std::memory_order_relaxed);
  }
  // How long block applies took (the optimizer step on one block, journal
  // included), merged over the writers. Any thread.
  LatencyHistogram::Snapshot ApplyLatency() const;

 private:
  struct Worker {
    Mutex mu;
    CondVar cv;
    std::deque<BlockTask> tasks GUARDED_BY(mu);
    bool stopping GUARDED_BY(mu) = false;
    std::thread thread;
    std::vector<float> scratch;  // widened 16-bit gradients; thread-owned
    uint32_t writer = 0;         // its index among the writers (journal entry)
  };

  void Run(Worker& worker) EXCLUDES(worker.mu);
  // `writer` is the caller's index; `scratch` belongs to it and grows to a
  // block once.
  void Apply(const BlockTask& task, uint32_t writer,
             std::vector<float>& scratch);
  [[noreturn]] void TearAndDie(uint32_t block);
  // The update itself, without exactly-once checks or journal.
  void Update(const BlockTask& task, std::vector<float>& scratch);
  // The gradient of `task` as float32 times task.scale: the frame itself,
  // or widened and/or scaled into
  // `scratch`.
  const float* Float32Gradient(const BlockTask& task,
                               std::vector<float>& scratch) const;
  // One optimizer step on block `block` with `grad`, inside its seqlock.
  void Step(uint32_t block, const float* grad);
  void ApplyAccumulated(const BlockTask& task);
  // bsp apply = "block": after a worker's gradient for a block at clock c
  // is accumulated, applies the block's clock-c update at once if every
  // worker's is in (the frontend refuses a second push of a block in one
  // clock, so a full set is the whole clock). Counts live in memory: after
  // a restart a partly pushed block waits for its clock's apply instead.
  void MaybeApplyEarly(const BlockTask& task, uint32_t writer);

  // Which workers pushed a block at `clock` (bsp apply = "block"); touched
  // only by the block's writer.
  struct EarlyCount {
    int64_t clock = -1;
    uint64_t seen = 0;  // bit w: worker w's gradient is in
  };

  Segment& segment_;
  UpdateJournal& journal_;
  const std::vector<TensorOptimizer> optimizers_;  // by tensor index
  CompletionQueue& done_;
  const uint32_t writers_;
  std::vector<std::unique_ptr<Worker>> workers_;  // writers 1..writers_-1
  std::vector<float> inline_scratch_;             // writer 0's (frontend's)
  std::atomic<uint64_t> duplicates_{0};
  // bsp apply = "block": the worker count (0: off), the apply's gradient
  // scale, and per local block the workers seen (sized only when on).
  const uint32_t early_workers_;
  const float early_scale_;
  std::vector<EarlyCount> early_;
  std::atomic<uint64_t> early_applies_{0};
  uint64_t fault_kill_at_ = 0;
  std::atomic<uint64_t> journaled_{0};
  // Indexed by writer; each written only by its writer.
  std::unique_ptr<PerWriter<LatencyHistogram>[]> apply_latency_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_UPDATE_POOL_H_
