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
// A push that finds the queue full is kept (with its frames) and handed to
// the service's placer thread, which waits for space in BatchQueue::Claim:
// the consumer's Release wakes that wait through the queue's futex, so the
// batch goes in as soon as a slot frees, and the frontend never blocks or
// polls. The placer then signals done_fd(), and the frontend calls Finish
// to send the reply. Pushes wait in order, one queue behind another.
//
// Exactly-once: a numbered push (the client's seq for this shard) carries
// its client's queue window (ClientSlot::queue, in the segment). A push
// whose seq is in the window is answered OK without being enqueued again;
// a copy of a push still waiting for space takes over the wait (its reply
// goes to the copy's connection) and is not queued twice. The window
// records a batch right after it is committed to the queue file.
//
// Thread-safety: every public function from the frontend thread only; the
// placer thread is internal (started at the first push that must wait,
// stopped by Stop or the destructor).
#ifndef SHARDPS_SERVER_QUEUE_SERVICE_H_
#define SHARDPS_SERVER_QUEUE_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/event_fd.h"
#include "common/mutex.h"
#include "common/segment_format.h"
#include "protocol_generated.h"
#include "shardps/batch_queue.h"
#include "shardps/shard_stats.h"
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

  QueueService() = default;
  // Stop()s. Pushes still waiting are dropped unanswered (their clients
  // time out and retry), as at any server exit.
  ~QueueService();
  QueueService(const QueueService&) = delete;
  QueueService& operator=(const QueueService&) = delete;

  // Handles one QueuePush; its reply goes through `reply` now, or through
  // Finish once the push waited for space.
  void Push(const wire::Request& req, std::vector<zmq::message_t>& frames,
            const QueueOnce& once, const Reply& reply) EXCLUDES(mu_);
  // Readable (an eventfd) when pushes that waited for space are placed,
  // refused (closed queue) or timed out: poll it beside the socket, then
  // call Finish. Valid for the service's lifetime.
  int done_fd() const { return done_event_.fd(); }
  // Sends the replies of the pushes the placer finished (clears done_fd).
  void Finish(const Reply& reply) EXCLUDES(mu_);
  // Stops the placer thread; it gives up waiting for space within
  // kStopSlice. Call before the segment the QueueOnce windows live in is
  // unmapped. Idempotent.
  void Stop() EXCLUDES(mu_);
  // Numbered pushes answered without being enqueued again.
  uint64_t duplicates() const { return duplicates_; }
  // Every hosted queue's counters, by name (from the frontend's queue
  // objects, which only the frontend thread uses).
  std::vector<HostedQueueStats> Stats() const;

 private:
  struct Waiting {
    BatchQueue* queue;  // the frontend's object; the placer uses its own
    BatchShape shape;
    std::vector<zmq::message_t> frames;  // [identity, header, f, l]
    uint64_t request_id;
    uint64_t producer_id;
    std::chrono::steady_clock::time_point deadline;
    QueueOnce once;
    Status result;  // set by the placer
  };
  // What Enqueue does once mu_ is released.
  struct Admission {
    bool queued = false;  // for the placer: no reply now
    // Else, reply now with `status` to `identity` (nullptr: no reply due).
    zmq::message_t* identity = nullptr;
    Status status;
  };
  // Tries to place the batch in `queue` (the calling thread's object for
  // w.queue's file) within `timeout`; kTimeout means the queue stayed full.
  Status TryPlace(Waiting& w, BatchQueue& queue,
                  std::chrono::milliseconds timeout) REQUIRES(mu_);
  // Copies the batch into `slot`, commits it and records it in the push's
  // queue window (which mu_ guards). REQUIRES: `slot` claimed from `queue`.
  Status Fill(Waiting& w, BatchQueue& queue, const SlotWriter& slot)
      REQUIRES(mu_);
  // The part of Push after validation: answers a push already enqueued,
  // merges a copy of a waiting one, places it at once when nothing waits,
  // or queues it for the placer.
  void Enqueue(Waiting w, std::vector<zmq::message_t>& frames,
               const Reply& reply) EXCLUDES(mu_);
  // Enqueue's decision, under mu_. `w.frames` and `frames` stay alive
  // until the returned identity is answered.
  Admission AdmitLocked(Waiting& w, std::vector<zmq::message_t>& frames)
      REQUIRES(mu_);
  // Placer thread: places waiting_.front() until it is done, then moves it
  // to done_ and signals done_event_.
  void RunPlacer() EXCLUDES(mu_);
  // Waits for space for `w` (releasing mu_ meanwhile) until it is placed,
  // refused, past its deadline or the service stops.
  Status Place(Waiting& w, BatchQueue& queue) REQUIRES(mu_);

  // The frontend's queue objects (a BatchQueue object serves one thread).
  std::map<std::string, std::unique_ptr<BatchQueue>, std::less<>> queues_;
  // The placer's own objects on the same files, by the frontend's object.
  std::map<const BatchQueue*, std::unique_ptr<BatchQueue>> placer_queues_;
  // Frontend thread only, so not guarded (AdmitLocked counts it while it
  // happens to hold mu_; duplicates() reads it without).
  uint64_t duplicates_ = 0;

  // Shared with the placer thread. mu_ also serialises every access to the
  // exactly-once queue windows (QueueOnce::window, in the segment): the
  // frontend's DedupeSeen and the placer's DedupeRecord.
  // The analysis cannot see that (the windows are in the mapped segment):
  // Fill and AdmitLocked, which touch them, REQUIRE mu_.
  Mutex mu_;
  CondVar work_;  // waiting_ gained a push, or stopping_
  // In order; the placer works on the front one, which stays here until it
  // is done so that a copy can take over its reply (identity, request_id).
  std::deque<Waiting> waiting_ GUARDED_BY(mu_);
  std::deque<Waiting> done_ GUARDED_BY(mu_);  // replies not sent yet
  bool stopping_ GUARDED_BY(mu_) = false;
  EventFd done_event_;
  std::thread placer_;  // started by the first push that waits; frontend only
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_QUEUE_SERVICE_H_
