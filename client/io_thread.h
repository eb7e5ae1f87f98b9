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
//   * after that, a part for a disconnected shard fails at once with
//     kUnavailable, and a disconnect fails every part in flight to it;
//   * a part past its deadline fails with kTimeout and its shard's socket is
//     reset, which drops queued frames and releases borrowed buffers.
#ifndef SHARDPS_CLIENT_IO_THREAD_H_
#define SHARDPS_CLIENT_IO_THREAD_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "client/call_state.h"
#include "common/posix_file.h"
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
  CallState::Clock::time_point deadline;
  uint64_t request_id = 0;
  bool sent = false;
};

class IoThread {
 public:
  IoThread(std::vector<ShardAddress> shards, ClientOptions options);
  ~IoThread();  // fails outstanding parts with kUnavailable, joins
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  void Start();
  // Thread-safe. Parts of one call may go to different shards.
  void Submit(std::vector<Part> parts);

  // Dense calls need the layout; set once after Hello, before any dense
  // Submit, and never changed (the I/O thread reads it without a lock).
  void SetLayout(std::unique_ptr<ModelLayout> layout) {
    layout_ = std::move(layout);
  }
  const ModelLayout* layout() const { return layout_.get(); }

  const ClientOptions& options() const { return options_; }
  const std::vector<ShardAddress>& shards() const { return addresses_; }
  uint64_t client_id() const { return client_id_; }
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
    std::vector<uint64_t> backlog;  // parts waiting for the first handshake
  };

  void Loop();
  void OpenLink(Link& link);
  void CloseLink(Link& link);
  void TakeSubmissions();
  void Send(Part part);
  void Transmit(Part& part);
  void OnReply(Link& link);
  void OnMonitorEvent(Link& link);
  void ExpireDeadlines();
  void FailLink(Link& link, const Status& status);
  void Finish(uint64_t request_id, const Status& status);
  Status CompletePart(Part& part, const wire::Reply& reply,
                      std::vector<zmq::message_t>& frames);
  long PollTimeoutMs() const;

  const ClientOptions options_;
  const std::vector<ShardAddress> addresses_;
  const uint64_t client_id_;
  std::string model_;
  std::unique_ptr<ModelLayout> layout_;

  zmq::context_t context_{1};
  UniqueFd wake_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::vector<Part> submitted_;  // guarded by mu_
  std::atomic<uint64_t> next_request_id_{1};

  // I/O-thread state.
  std::vector<Link> links_;
  std::unordered_map<uint64_t, Part> parts_;
  std::set<std::pair<CallState::Clock::time_point, uint64_t>> deadlines_;
  flatbuffers::FlatBufferBuilder builder_{512};
  HeaderScratch scratch_;
};

}  // namespace shardps::client_internal

#endif  // SHARDPS_CLIENT_IO_THREAD_H_
