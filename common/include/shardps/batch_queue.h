// BatchQueue: a bounded queue of training mini-batches in shared memory.
//
//   // Trainer (consumer): create the queue, consume, close when done.
//   auto q = shardps::BatchQueue::Create("/dev/shm/co2.queue", 16, 1 << 20);
//   if (!q.ok()) return q.status();
//   for (;;) {
//     auto batch = (*q)->Next(std::chrono::seconds(10));
//     if (!batch.ok()) break;  // kClosed: the stream ended; kTimeout: idle
//     train_on(batch->features(), batch->labels());  // zero-copy views
//     (*q)->Release(*batch);
//     if (done) break;
//   }
//   (*q)->Close();   // producers stop: every later Push fails with kClosed
//
//   // Producer (any number of processes):
//   auto q = shardps::BatchQueue::Open("/dev/shm/co2.queue");
//   Status s = (*q)->Push(shape, features, labels, std::chrono::seconds(30));
//   // With Create(..., producers = N): each producer's MarkEnd() when it has
//   // no more; after the N-th, Next returns kClosed once drained.
//
// A queue is one file (tmpfs) holding N fixed-size slots. Push blocks while
// every slot is full (backpressure), so production never runs further ahead
// of training than N batches; Close wakes every blocked producer at once.
// A producer killed between claiming a slot and committing it never hands a
// consumer a half-written batch: its claim is detected (the pid is gone)
// and skipped. A consumer killed while holding a slot gets it recovered the
// same way.
//
// Thread-safety: one BatchQueue object per thread (each keeps its own
// timing of stalled claims); any number of objects, threads and processes
// may open the same file.
#ifndef SHARDPS_BATCH_QUEUE_H_
#define SHARDPS_BATCH_QUEUE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "shardps/status.h"

namespace shardps {

// Shapes of one batch: features [batch, window, features] and labels
// [batch, horizon], both float32, row-major.
struct BatchShape {
  uint32_t batch = 0;
  uint32_t window = 0;
  uint32_t features = 0;
  uint32_t horizon = 0;
  uint64_t feature_floats() const {
    return uint64_t{batch} * window * features;
  }
  uint64_t label_floats() const { return uint64_t{batch} * horizon; }
  uint64_t bytes() const {
    return (feature_floats() + label_floats()) * sizeof(float);
  }
};

// A committed batch, as a consumer sees it: pointers into the slot, valid
// until Release.
class Batch {
 public:
  const BatchShape& shape() const { return shape_; }
  const float* features() const { return features_; }
  const float* labels() const { return labels_; }
  uint64_t ticket() const { return ticket_; }  // queue-wide order
  uint64_t producer_id() const { return producer_id_; }
  uint64_t producer_seq() const { return producer_seq_; }

 private:
  friend class BatchQueue;
  BatchShape shape_;
  const float* features_ = nullptr;
  const float* labels_ = nullptr;
  uint64_t ticket_ = 0, producer_id_ = 0, producer_seq_ = 0;
  uint32_t slot_ = 0;
};

// A claimed slot, as a producer writes it in place.
class SlotWriter {
 public:
  float* data() const { return data_; }  // features, then labels
  uint64_t capacity_bytes() const { return capacity_; }

 private:
  friend class BatchQueue;
  float* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t ticket_ = 0;
  uint32_t slot_ = 0;
};

struct QueueStats {
  uint32_t slots = 0;
  uint64_t slot_bytes = 0;
  uint64_t produced = 0;  // batches committed
  uint64_t consumed = 0;  // batches released
  uint64_t skipped = 0;   // dead producers' claims skipped
  uint64_t refused = 0;   // pushes refused after Close
  uint64_t queued = 0;    // committed, not yet taken
  double producer_blocked_s = 0;
  double consumer_starved_s = 0;
  bool closed = false;
  uint32_t producers = 0;        // the count given to Create (0: none)
  uint32_t ended_producers = 0;  // MarkEnd calls so far
};

class BatchQueue {
 public:
  // Creates a new queue file (mode 0600) of `slots` (>= 2) slots of
  // `slot_bytes` payload bytes each. `producers` > 0 makes the stream
  // finite: once that many producers have called MarkEnd, the queue closes
  // (Next returns kClosed after the last batch). 0: the stream ends only by
  // Close. kBusy if the file exists; kInvalidArgument for fewer than 2
  // slots or absurd sizes.
  static Result<std::unique_ptr<BatchQueue>> Create(const std::string& path,
                                                    uint32_t slots,
                                                    uint64_t slot_bytes,
                                                    uint32_t producers = 0);
  // Opens an existing queue. kNotFound, or kCorrupt for a file that is not
  // a queue (bad magic, version, checksum or size).
  static Result<std::unique_ptr<BatchQueue>> Open(const std::string& path);

  ~BatchQueue();
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  const std::string& path() const;
  uint64_t slot_bytes() const;
  uint32_t slots() const;
  uint32_t producers() const;  // as given to Create; 0: no end marks

  // ---- producers ----
  // Copies one batch in. Blocks while the queue is full, up to `timeout`
  // (kTimeout). kClosed once the consumer closed the queue; kSizeMismatch
  // if the batch does not fit a slot. `producer_id`/`producer_seq` travel
  // with the batch (for ordering checks and debugging); producer_id
  // UINT64_MAX is reserved.
  Status Push(const BatchShape& shape, const float* features,
              const float* labels, std::chrono::milliseconds timeout,
              uint64_t producer_id = 0, uint64_t producer_seq = 0);
  // Zero-copy: claim a slot, write into data(), commit with its shape.
  // Every successful Claim must be followed by Commit (or the process's
  // death, which consumers detect and skip).
  Result<SlotWriter> Claim(std::chrono::milliseconds timeout);
  Status Commit(const SlotWriter& slot, const BatchShape& shape,
                uint64_t producer_id = 0, uint64_t producer_seq = 0);

  // Marks the end of this producer's stream: it pushes no more. The mark
  // that completes the queue's producer count closes the queue (as Close
  // does), so consumers get kClosed once they have taken every batch.
  // Call it once per producer, after its last Push returned. A producer that
  // dies before marking leaves the stream open (consumers see kTimeout).
  // kInvalidArgument for a queue created with producers = 0, or when every
  // producer has already marked its end.
  Status MarkEnd();

  // ---- consumers ----
  // The next committed batch, blocking up to `timeout` (kTimeout). kClosed
  // once the queue is closed (by Close, or by its producers' end marks) and
  // every batch committed before that was taken.
  Result<Batch> Next(std::chrono::milliseconds timeout);
  // Gives the slot back to producers. REQUIRES: `batch` came from Next on
  // this object and was not released yet.
  void Release(const Batch& batch);

  // Closes the queue: blocked producers wake with kClosed and every later
  // Push fails with kClosed. Batches already committed stay readable.
  void Close();
  bool closed() const;

  // Free-form metadata (<= 2 KiB), e.g. the feed's normalisation as text.
  Status SetMeta(std::string_view text);
  std::string Meta() const;

  QueueStats Stats() const;

 private:
  // The mapping, the shared-memory layout and the recovery of dead holders
  // (batch_queue.cc).
  class Impl;
  explicit BatchQueue(std::unique_ptr<Impl> impl);
  const std::unique_ptr<Impl> impl_;
};

}  // namespace shardps

#endif  // SHARDPS_BATCH_QUEUE_H_
