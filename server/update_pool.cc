#include "server/update_pool.h"

#include <signal.h>
#include <unistd.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/dedupe_window.h"
#include "common/half_float.h"
#include "common/seqlock.h"

namespace shardps {

namespace {

std::vector<UpdatePool::TensorOptimizer> OptimizersOf(const ModelSpec& spec) {
  std::vector<UpdatePool::TensorOptimizer> out;
  for (const TensorSpec& t : spec.tensors) {
    const OptimizerSpec& o = spec.OptimizerFor(t);
    const OptimizerKind kind = *ParseOptimizerKind(o.kind);
    out.push_back(
        {kind, ToOptimizerParams(o), static_cast<uint32_t>(StateSlots(kind))});
  }
  return out;
}

}  // namespace

UpdatePool::UpdatePool(Segment& segment, const ModelSpec& spec,
                       UpdateJournal& journal, CompletionQueue& done,
                       uint32_t writers)
    : segment_(segment),
      journal_(journal),
      optimizers_(OptimizersOf(spec)),
      done_(done),
      writers_(writers),
      early_workers_(spec.consistency.apply_per_block ? spec.consistency.workers
                                                      : 0),
      early_scale_(spec.consistency.mean && spec.consistency.workers > 0
                       ? 1.0f / static_cast<float>(spec.consistency.workers)
                       : 1.0f),
      apply_latency_(new PerWriter<LatencyHistogram>[writers]) {
  if (early_workers_ > 0) early_.resize(segment.num_blocks());
  for (uint32_t i = 1; i < writers; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->writer = i;
  }
}

UpdatePool::~UpdatePool() { Stop(); }

void UpdatePool::Start() {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->thread = std::thread([this, worker] { Run(*worker); });
  }
}

void UpdatePool::Stop() {
  for (auto& w : workers_) {
    {
      MutexLock lock(w->mu);
      w->stopping = true;
    }
    w->cv.NotifyOne();
  }
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

void UpdatePool::Submit(const BlockTask& task) {
  Worker& w = *workers_[task.block % writers_ - 1];
  {
    MutexLock lock(w.mu);
    w.tasks.push_back(task);
  }
  w.cv.NotifyOne();
}

void UpdatePool::Run(Worker& worker) {
  std::deque<BlockTask> batch;
  for (;;) {
    {
      MutexLock lock(worker.mu);
      while (!worker.stopping && worker.tasks.empty())
        worker.cv.Wait(worker.mu);
      // Drain queued work even when stopping: every submitted task is applied.
      if (worker.tasks.empty()) return;
      batch.swap(worker.tasks);
    }
    for (const BlockTask& task : batch) {
      Apply(task, worker.writer, worker.scratch);
      if (task.owner->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1)
        done_.Push(task.owner);
    }
    batch.clear();
  }
}

const float* UpdatePool::Float32Gradient(const BlockTask& task,
                                         std::vector<float>& scratch) const {
  const uint64_t n = segment_.block(task.block).num_floats;
  const bool aligned =
      reinterpret_cast<uintptr_t>(task.grad) % alignof(float) == 0;
  if (task.dtype == wire::DType::F32 && task.scale == 1) {
    if (aligned) return static_cast<const float*>(task.grad);
    // ZeroMQ hands small frames out of its receive buffer at any offset;
    // the kernels read floats, so they get an aligned copy.
    scratch.resize(n);
    std::memcpy(scratch.data(), task.grad, n * sizeof(float));
    return scratch.data();
  }
  scratch.resize(n);
  Eigen::Map<Eigen::ArrayXf> out(scratch.data(), static_cast<Eigen::Index>(n));
  if (task.dtype == wire::DType::F32) {
    // Only pushes that clip_norm shortens pay this pass.
    if (!aligned) {
      std::memcpy(scratch.data(), task.grad, n * sizeof(float));
      out *= task.scale;
      return scratch.data();
    }
    out = Eigen::Map<const Eigen::ArrayXf>(static_cast<const float*>(task.grad),
                                           static_cast<Eigen::Index>(n)) *
          task.scale;
    return scratch.data();
  }
  // Half the bytes on the wire; one widening pass per block here.
  if (task.dtype == wire::DType::F16) {
    WidenF16(task.grad, scratch.data(), n);
  } else {
    WidenBf16(task.grad, scratch.data(), n);
  }
  if (task.scale != 1) out *= task.scale;
  return scratch.data();
}

LatencyHistogram::Snapshot UpdatePool::ApplyLatency() const {
  LatencyHistogram::Snapshot all;
  for (uint32_t w = 0; w < writers_; ++w)
    all.Merge(apply_latency_[w].value.Read());
  return all;
}

void UpdatePool::Apply(const BlockTask& task, uint32_t writer,
                       std::vector<float>& scratch) {
  const bool once = task.seq != 0;
  DedupeWindow* window =
      once ? &segment_.dedupe_window(task.block, task.slot) : nullptr;
  bool skip = once && DedupeSeen(*window, task.client, task.seq);
  if (skip) duplicates_.fetch_add(1, std::memory_order_relaxed);
  // Already applied before a crash: the restarted server only finishes the
  // blocks that were not.
  if (task.kind == BlockTask::Kind::kApplyAccumulated &&
      segment_.version(task.block).clock.load(std::memory_order_relaxed) >
          task.clock)
    skip = true;
  if (!skip) {
    // Pushes the client may retry, and bsp applies a restart may repeat,
    // must happen whole or not at all; plain pushes are at-least-once
    // anyway and skip the journal's copy.
    const bool journaled =
        once || task.kind == BlockTask::Kind::kApplyAccumulated;
    if (journaled) {
      journal_.Begin(writer, task.block,
                     once ? task.slot : UpdateJournal::kNoSlot);
      if (fault_kill_at_ != 0 &&
          journaled_.fetch_add(1, std::memory_order_relaxed) + 1 ==
              fault_kill_at_)
        TearAndDie(task.block);
    }
    const uint64_t start = MetricNowNs();
    Update(task, scratch);
    apply_latency_[writer].value.ObserveNs(MetricNowNs() - start);
    if (once) DedupeRecord(*window, task.client, task.seq);
    if (journaled) journal_.Close(writer);
    MaybeApplyEarly(task, writer);
  }
  if (task.out != nullptr)
    // We are the block's only writer, so the weights cannot change under
    // this copy; it happens after the update to keep readers' retry window
    // short.
    std::memcpy(task.out, segment_.block_data(task.block),
                segment_.block(task.block).num_floats * sizeof(float));
}

void UpdatePool::TearAndDie(uint32_t block) {
  BeginWrite(segment_.version(block));
  float* w = segment_.block_data(block);
  const uint64_t half = segment_.block(block).num_floats / 2;
  std::fill(w, w + half, std::numeric_limits<float>::quiet_NaN());
  std::fprintf(stderr, "shardps: fault injection: killed mid-update\n");
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);  // not reached: SIGKILL cannot be caught
}

void UpdatePool::Update(const BlockTask& task, std::vector<float>& scratch) {
  switch (task.kind) {
    case BlockTask::Kind::kApply:
      Step(task.block, Float32Gradient(task, scratch));
      break;
    case BlockTask::Kind::kAccumulate: {
      // Not a weight update: readers see nothing change, so no seqlock.
      const uint64_t n = segment_.block(task.block).num_floats;
      Eigen::Map<Eigen::ArrayXf>(segment_.accum_data(task.block),
                                 static_cast<Eigen::Index>(n)) +=
          Eigen::Map<const Eigen::ArrayXf>(Float32Gradient(task, scratch),
                                           static_cast<Eigen::Index>(n));
      break;
    }
    case BlockTask::Kind::kApplyAccumulated:
      ApplyAccumulated(task);
      break;
  }
}

void UpdatePool::ApplyAccumulated(const BlockTask& task) {
  BlockVersion& version = segment_.version(task.block);
  const uint64_t n = segment_.block(task.block).num_floats;
  Eigen::Map<Eigen::ArrayXf> accum(segment_.accum_data(task.block),
                                   static_cast<Eigen::Index>(n));
  if (task.scale != 1) accum *= task.scale;
  Step(task.block, accum.data());
  accum.setZero();
  version.clock.store(task.clock + 1, std::memory_order_release);
}

static_assert(kMaxConsistencyWorkers <= 64, "EarlyCount::seen is 64 bits");

void UpdatePool::MaybeApplyEarly(const BlockTask& task, uint32_t writer) {
  if (early_workers_ == 0 || task.kind != BlockTask::Kind::kAccumulate ||
      task.worker < 0 ||
      task.worker >= static_cast<int>(kMaxConsistencyWorkers))
    return;
  EarlyCount& e = early_[task.block];
  if (e.clock != task.clock) e = EarlyCount{task.clock, 0};
  e.seen |= uint64_t{1} << task.worker;
  if (static_cast<uint32_t>(__builtin_popcountll(e.seen)) < early_workers_)
    return;
  // Relaxed: this thread is the block's only writer.
  if (segment_.version(task.block).clock.load(std::memory_order_relaxed) >
      task.clock)
    return;
  BlockTask apply = task;
  apply.kind = BlockTask::Kind::kApplyAccumulated;
  apply.scale = early_scale_;
  // Journaled like the clock's own apply, which then skips this block
  // (its version's clock is past), also after a restart.
  journal_.Begin(writer, task.block, UpdateJournal::kNoSlot);
  ApplyAccumulated(apply);
  journal_.Close(writer);
  early_applies_.fetch_add(1, std::memory_order_relaxed);
}

void UpdatePool::Step(uint32_t block, const float* grad) {
  const BlockEntry& entry = segment_.block(block);
  float* weights = segment_.block_data(block);
  const TensorOptimizer& opt = optimizers_[entry.tensor];
  float* state[kMaxStateSlots] = {};
  for (uint32_t k = 0; k < opt.state_slots; ++k)
    state[k] = segment_.state_data(block, k);
  BlockVersion& version = segment_.version(block);
  // Relaxed: this thread is the block's only writer. Each update adds 2 to
  // the version, so this is the 1-based count Adam's bias correction needs,
  // and it survives restarts with the segment.
  const uint64_t step = version.seq.load(std::memory_order_relaxed) / 2 + 1;
  BeginWrite(version);
  ApplyUpdate(opt.kind, opt.params, step, weights, grad, state,
              entry.num_floats);
  EndWrite(version);
  segment_.mutable_header().updates_applied.fetch_add(
      1, std::memory_order_relaxed);
}

}  // namespace shardps
