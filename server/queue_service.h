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

class QueueService {
 public:
  // Sends a reply for a finished push: (identity, request id, status).
  using Reply = std::function<void(zmq::message_t&, uint64_t, const Status&)>;

  // Creates or reopens each queue under `dir`. kInvalidArgument for a
  // queue file whose slots differ from `options`.
  static Result<std::unique_ptr<QueueService>> Open(
      const std::string& dir, const std::vector<QueueOption>& options);

  // Handles one QueuePush; its reply goes through `reply`, now or later.
  void Push(const wire::Request& req, std::vector<zmq::message_t>& frames,
            const Reply& reply);
  // Retries the pushes that found their queue full. Call often while
  // waiting() > 0.
  void Retry(const Reply& reply);
  size_t waiting() const { return waiting_.size(); }

 private:
  struct Waiting {
    BatchQueue* queue;
    BatchShape shape;
    std::vector<zmq::message_t> frames;  // [identity, header, f, l]
    uint64_t request_id;
    uint64_t producer_id;
    std::chrono::steady_clock::time_point deadline;
  };
  // Tries to place the batch; kTimeout means the queue is full.
  static Status TryPlace(Waiting& w);

  std::map<std::string, std::unique_ptr<BatchQueue>, std::less<>> queues_;
  std::deque<Waiting> waiting_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_QUEUE_SERVICE_H_
