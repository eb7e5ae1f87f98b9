#include "server/update_pool.h"

#include <cstring>

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
                       CompletionQueue& done, uint32_t writers)
    : segment_(segment),
      optimizers_(OptimizersOf(spec)),
      done_(done),
      writers_(writers) {
  for (uint32_t i = 1; i < writers; ++i)
    workers_.push_back(std::make_unique<Worker>());
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
      std::lock_guard<std::mutex> lock(w->mu);
      w->stopping = true;
    }
    w->cv.notify_one();
  }
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

void UpdatePool::Submit(const BlockTask& task) {
  Worker& w = *workers_[task.block % writers_ - 1];
  {
    std::lock_guard<std::mutex> lock(w.mu);
    w.tasks.push_back(task);
  }
  w.cv.notify_one();
}

void UpdatePool::Run(Worker& worker) {
  std::deque<BlockTask> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(worker.mu);
      worker.cv.wait(lock,
                     [&] { return worker.stopping || !worker.tasks.empty(); });
      // Drain queued work even when stopping: every submitted task is applied.
      if (worker.tasks.empty()) return;
      batch.swap(worker.tasks);
    }
    for (const BlockTask& task : batch) {
      Apply(task, worker.scratch);
      if (task.owner->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1)
        done_.Push(task.owner);
    }
    batch.clear();
  }
}

void UpdatePool::Apply(const BlockTask& task, std::vector<float>& scratch) {
  const BlockEntry& entry = segment_.block(task.block);
  const float* grad = static_cast<const float*>(task.grad);
  if (task.dtype != wire::DType::F32) {
    // Half the bytes on the wire; one widening pass per block here.
    scratch.resize(entry.num_floats);
    if (task.dtype == wire::DType::F16) {
      WidenF16(task.grad, scratch.data(), entry.num_floats);
    } else {
      WidenBf16(task.grad, scratch.data(), entry.num_floats);
    }
    grad = scratch.data();
  }
  float* weights = segment_.block_data(task.block);
  const TensorOptimizer& opt = optimizers_[entry.tensor];
  float* state[kMaxStateSlots] = {};
  for (uint32_t k = 0; k < opt.state_slots; ++k)
    state[k] = segment_.state_data(task.block, k);
  BlockVersion& version = segment_.version(task.block);
  // Relaxed: this thread is the block's only writer. Each update adds 2 to
  // the version, so this is the 1-based count Adam's bias correction needs,
  // and it survives restarts with the segment.
  const uint64_t step = version.seq.load(std::memory_order_relaxed) / 2 + 1;
  BeginWrite(version);
  ApplyUpdate(opt.kind, opt.params, step, weights, grad, state,
              entry.num_floats);
  EndWrite(version);
  // We are the block's only writer, so the weights cannot change under this
  // copy; it happens after EndWrite to keep readers' retry window short.
  if (task.out != nullptr)
    std::memcpy(task.out, weights, entry.num_floats * sizeof(float));
  segment_.mutable_header().updates_applied.fetch_add(
      1, std::memory_order_relaxed);
}

}  // namespace shardps
