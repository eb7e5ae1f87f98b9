// UpdatePool: the threads that apply optimizer steps in place.
//
// Block b of the segment is always applied by thread b % threads, so every
// block has exactly one writer and the weights need no lock; the seqlock
// around each apply lets readers (pulls, ModelViews) detect a torn copy.
//
// Thread-safety: Submit from the frontend thread only; Start/Stop from the
// owner. Tasks submitted before Stop are all applied before it returns.
#ifndef SHARDPS_SERVER_UPDATE_POOL_H_
#define SHARDPS_SERVER_UPDATE_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/segment.h"
#include "server/completion_queue.h"
#include "server/pending_update.h"

namespace shardps {

struct BlockTask {
  uint32_t block;        // local block index in the segment
  const float* grad;     // borrowed from owner->frames; num_floats of block
  void* out;             // PushPull: receives the updated block, else null
  PendingUpdate* owner;  // counted down when this block is done
};

class UpdatePool {
 public:
  // `segment` and `done` must outlive the pool.
  UpdatePool(Segment& segment, CompletionQueue& done, uint32_t threads);
  ~UpdatePool();
  UpdatePool(const UpdatePool&) = delete;
  UpdatePool& operator=(const UpdatePool&) = delete;

  void Start();
  void Stop();
  uint32_t threads() const { return static_cast<uint32_t>(workers_.size()); }

  void Submit(const BlockTask& task);

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<BlockTask> tasks;  // guarded by mu
    bool stopping = false;        // guarded by mu
    std::thread thread;
  };

  void Run(Worker& worker);
  void Apply(const BlockTask& task);

  Segment& segment_;
  CompletionQueue& done_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_UPDATE_POOL_H_
