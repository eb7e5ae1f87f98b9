// IoThread: the client's one thread that owns ZeroMQ sockets.
//
// One DEALER socket per shard (ZMQ_IMMEDIATE, so a message is never queued
// for a shard that is not connected) plus a monitor socket that reports
// handshakes and disconnects. User threads Submit parts of calls through a
// mutex-guarded queue and an eventfd; the thread sends them, matches replies
// by request id, enforces deadlines and fails parts whose shard went away.
//
// Connection rules, which make outages retryable errors rather than hangs:
//   * before a shard's first handshake, parts wait for it (up to their
//     deadline) so start-up races do not fail calls;
//   * a retriable part (one the server may see twice: pulls, clocks, and
//     pushes numbered for exactly-once) survives a disconnect: it waits for
//     the shard to come back and is sent again, as it is after each
//     attempt_timeout without an answer;
//   * other parts fail at once with kUnavailable when their shard is or
//     goes away;
//   * a part past its deadline fails with kTimeout and its shard's socket is
//     reset, which drops queued frames and releases borrowed buffers.
//
// Exactly-once pushes: each Push/PushPull/PushRows/QueuePush part gets the
// next sequence number of its shard when first sent and keeps it through
// retries; a shard never has kDedupeWindow or more numbered pushes
// unanswered (later ones wait), so the server's dedupe windows always cover
// a retry. Each numbered push tells
// the shard its retry horizon (request_timeout). On close, the thread sends
// Release to every shard whose slot it may give back (see Link).
#ifndef SHARDPS_CLIENT_IO_THREAD_H_
#define SHARDPS_CLIENT_IO_THREAD_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "client/call_state.h"
#include "client/client_metrics.h"
#include "common/event_fd.h"
#include "common/mutex.h"
#include "common/wire.h"
#include "shardps/cluster.h"
#include "shardps/layout.h"
#include "shardps/options.h"

namespace shardps::client_internal {

// One shard's share of a call.
struct Part {
  std::shared_ptr<CallState> call;
  uint32_t shard = 0;
  wire::Op op = wire::Op::Hello;
  const TensorLayout* tensor = nullptr;  // dense ops; owned by the layout
  std::vector<uint32_t> blocks;          // tensor blocks on this shard
  const void* grad = nullptr;            // whole-tensor gradient, borrowed
  wire::DType dtype = wire::DType::F32;  // of `grad`
  float* out = nullptr;                  // whole-tensor output, borrowed
  int64_t clock = 0;                     // the worker's clock when called
  float grad_norm = -1;                  // whole gradient's L2 norm, if sent
  // Row ops: the table's name (owned by the Client), the payload frames to
  // send zero-copy (borrowed; kept alive by the call), and a callback that
  // takes the reply's payload frames.
  const std::string* table = nullptr;
  std::string queue;  // QueuePush: the queue's name; `blocks` holds the shape
  std::vector<std::pair<const void*, size_t>> frames;
  std::function<Status(std::vector<zmq::message_t>&)> on_frames;
  // Hello/Stats: turns the reply into the caller's result (I/O thread).
  std::function<Status(const wire::Reply&)> on_reply;
  CallState::Clock::time_point deadline;  // of the whole call
  uint64_t request_id = 0;
  bool sent = false;
  // I/O-thread bookkeeping: the exactly-once number (0: none), whether the
  // part may be sent again, and when its current wait ends (the earlier of
  // `deadline` and the attempt's timeout; the key in deadlines_).
  uint64_t seq = 0;
  bool retriable = false;
  uint32_t attempts = 0;    // times sent whole
  uint64_t started_ns = 0;  // MetricNowNs when the I/O thread took it

  CallState::Clock::time_point armed;
};

class IoThread {
 public:
  // `wake` is the eventfd Submit and the destructor signal; the caller
  // creates it (EventFd::Create) so that running out of descriptors is a
  // Status from Connect, not an abort.
  IoThread(std::vector<ShardAddress> shards, ClientOptions options,
           EventFd wake);
  ~IoThread();  // fails outstanding parts with kUnavailable, joins
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  void Start();
  // Thread-safe. Parts of one call may go to different shards.
  void Submit(std::vector<Part> parts) EXCLUDES(mu_);

  // Dense calls need the layout; set once after Hello, before any dense
  // Submit, and never changed (the I/O thread reads it without a lock).
  void SetLayout(std::unique_ptr<ModelLayout> layout) {
    layout_ = std::move(layout);
  }
  const ModelLayout* layout() const { return layout_.get(); }

  const ClientOptions& options() const { return options_; }
  const std::vector<ShardAddress>& shards() const { return addresses_; }
  uint64_t client_id() const { return client_id_; }
  // Counted by the I/O thread; read from any thread.
  const ClientMetrics& metrics() const { return metrics_; }
  const std::string& model() const { return model_; }
  void set_model(std::string model) { model_ = std::move(model); }

 private:
  struct Link {
    uint32_t index = 0;
    std::string endpoint;
    std::unique_ptr<zmq::socket_t> socket;
    std::unique_ptr<zmq::socket_t> monitor;
    uint64_t generation = 0;
    bool connected = false;
    bool ever_connected = false;
    std::vector<uint64_t> backlog;  // parts waiting for a handshake
    // Exactly-once: the next number to give, the numbers sent and not yet
    // finished, and pushes waiting for the window to move.
    uint64_t next_seq = 1;
    std::set<uint64_t> unacked;
    std::vector<uint64_t> window_wait;
    // The shard holds an exactly-once slot for us (a numbered push was
    // sent), and whether giving it back on close is safe: false once a
    // numbered push went unanswered (given up, or its connection ended
    // first), since a copy of it may still reach the shard later, and only
    // the slot remembers it was applied.
    bool holds_slot = false;
    bool release_safe = true;
  };

  void Loop();
  void OpenLink(Link& link);
  void CloseLink(Link& link);
  void TakeSubmissions() EXCLUDES(mu_);
  void Send(Part part);
  // Gives `part` its exactly-once number if the shard's window has room;
  // false (the part waits in window_wait) if not.
  bool Number(Link& link, Part& part);
  void AdmitWindowWaiters(Link& link);
  void Dispatch(Link& link, Part& part);
  void Arm(Part& part, CallState::Clock::time_point when);
  // Sends `part` on its shard's socket now. When the socket has no live
  // connection, a retriable part is tried again shortly and any other
  // fails with kUnavailable.
  void Transmit(Part& part);
  // Builds `part`'s request header in builder_.
  void EncodeRequest(const Part& part);
  // Sends `part`'s payload frames after its header, zero-copy: each frame
  // borrows the caller's memory until ZeroMQ releases it. Throws
  // zmq::error_t as the sends do.
  void SendPayload(Link& link, Part& part);
  void OnReply(Link& link);
  void OnMonitorEvent(Link& link);
  void ExpireDeadlines();
  // Fails the link's parts in flight with `status`, except retriable ones
  // still within their deadline, which wait for the next handshake.
  void FailLink(Link& link, const Status& status);
  // `replied`: the shard answered with `code` (else no answer came).
  void Finish(uint64_t request_id, const Status& status, bool replied = false,
              Code code = Code::kOk);
  // On close: gives back the exactly-once slot of every shard where that is
  // safe (Link::release_safe), waiting at most kReleaseWait for answers.
  void ReleaseSlots();
  Status CompletePart(Part& part, const wire::Reply& reply,
                      std::vector<zmq::message_t>& frames);
  long PollTimeoutMs() const;

  const ClientOptions options_;
  const std::vector<ShardAddress> addresses_;
  const uint64_t client_id_;
  std::string model_;
  std::unique_ptr<ModelLayout> layout_;

  zmq::context_t context_{1};
  EventFd wake_;
  std::thread thread_;
  // Set once by the destructor, read by the I/O thread. Release/acquire:
  // the flag publishes nothing else (submitted_ has its mutex, and the
  // eventfd write after the store wakes the poll), so even relaxed would
  // stop the loop; release/acquire also makes every write the destroying
  // thread made before it visible to the loop's shutdown path, and costs
  // nothing on x86.
  std::atomic<bool> stopping_{false};

  Mutex mu_;
  std::vector<Part> submitted_ GUARDED_BY(mu_);
  // Request ids, taken by user threads (Submit) and the I/O thread
  // (ReleaseSlots). Relaxed: fetch_add is one atomic read-modify-write, so
  // every id is unique whatever the order; a part reaches the I/O thread
  // with its id through mu_.
  std::atomic<uint64_t> next_request_id_{1};

  // I/O-thread state.
  std::vector<Link> links_;
  std::unordered_map<uint64_t, Part> parts_;
  std::set<std::pair<CallState::Clock::time_point, uint64_t>> deadlines_;
  flatbuffers::FlatBufferBuilder builder_{512};
  HeaderScratch scratch_;
  ClientMetrics metrics_;
};

}  // namespace shardps::client_internal

#endif  // SHARDPS_CLIENT_IO_THREAD_H_
