// QueueService: the batch queues a shard server hosts for remote producers.
//
// `shardps serve --queue NAME:SLOTS:SLOT_BYTES` creates (or reopens, after a
// restart) <storage>/<model>/NAME.queue; consumers on the server's host open
// that file as a BatchQueue. Producers elsewhere send QueuePush: the header
// names the queue (in `tensor`) and the batch shape (in `blocks`: batch,
// window, features, horizon), and two payload frames carry the features and
// labels as float32. The reply comes only once the batch is in the queue, so
// a full queue holds the producer back exactly as a local Push would; after
// Close the reply is kClosed.
//
// A push that finds the queue full is kept (with its frames) and retried by
// the frontend every few milliseconds, never blocking the thread.
//
// Exactly-once: a numbered push (the client's seq for this shard) carries
// its client's queue window (ClientSlot::queue, in the segment). A push
// whose seq is in the window is answered OK without being enqueued again;
// a copy of a push still waiting for space takes over the wait (its reply
// goes to the copy's connection) and is not queued twice. The window
// records a batch right after it is committed to the queue file.
//
// Thread-safety: frontend thread only.
#ifndef SHARDPS_SERVER_QUEUE_SERVICE_H_
#define SHARDPS_SERVER_QUEUE_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/segment_format.h"
#include "protocol_generated.h"
#include "shardps/batch_queue.h"
#include "shardps/status.h"

namespace shardps {

struct QueueOption {
  std::string name;  // [A-Za-z0-9_.-]{1,63}
  uint32_t slots = 0;
  uint64_t slot_bytes = 0;
  // Parses "NAME:SLOTS:SLOT_BYTES".
  static Result<QueueOption> Parse(const std::string& text);
};

// The exactly-once side of one QueuePush (seq 0: at-least-once).
struct QueueOnce {
  uint64_t client = 0;
  uint64_t seq = 0;
  uint32_t slot = 0;               // the client's ClientSlot
  DedupeWindow* window = nullptr;  // its queue window; not null when seq != 0
};

class QueueService {
 public:
  // Finishes a push: sends (identity, request id, status) and gives back
  // the push's slot (once). `identity` is nullptr when no reply is due (a
  // copy merged into a waiting push, which replies for both).
  using Reply = std::function<void(zmq::message_t* identity, uint64_t,
                                   const Status&, const QueueOnce& once)>;

  // Creates or reopens each queue under `dir`. kInvalidArgument for a
  // queue file whose slots differ from `options`.
  static Result<std::unique_ptr<QueueService>> Open(
      const std::string& dir, const std::vector<QueueOption>& options);

  // Handles one QueuePush; its reply goes through `reply`, now or later.
  void Push(const wire::Request& req, std::vector<zmq::message_t>& frames,
            const QueueOnce& once, const Reply& reply);
  // Retries the pushes that found their queue full. Call often while
  // waiting() > 0.
  void Retry(const Reply& reply);
  size_t waiting() const { return waiting_.size(); }
  // Numbered pushes answered without being enqueued again.
  uint64_t duplicates() const { return duplicates_; }

 private:
  struct Waiting {
    BatchQueue* queue;
    BatchShape shape;
    std::vector<zmq::message_t> frames;  // [identity, header, f, l]
    uint64_t request_id;
    uint64_t producer_id;
    std::chrono::steady_clock::time_point deadline;
    QueueOnce once;
  };
  // Tries to place the batch; kTimeout means the queue is full.
  static Status TryPlace(Waiting& w);

  std::map<std::string, std::unique_ptr<BatchQueue>, std::less<>> queues_;
  std::deque<Waiting> waiting_;
  uint64_t duplicates_ = 0;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_QUEUE_SERVICE_H_
