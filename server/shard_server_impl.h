// ShardServer::Impl: the state of one shard server, private to server/.
//
// Impl is the frontend thread's object: every request handler answers
// through the one ROUTER socket and the one reply FlatBufferBuilder, and
// counts into the same statistics, so the handlers stay members of one
// class. Their definitions live in files named for the idea they hold:
//
//   shard_server.cc        option validation and wiring (Start, Bind, Stop)
//   frontend.cc            the poll loop, dispatch, replies, socket monitor
//   admission.cc           Admission (client limit, CURVE key generations)
//                          and ClaimWorker
//   dense_path.cc          Push/Pull/PushPull: clip, pull, fan-out to the
//                          writers, finish; the bsp apply
//   parked_requests.cc     ParkedRequests (bsp/ssp waits, expiry), Clock
//   checkpoint_requests.cc CheckpointRequests, Checkpoint and its reply
//   rows_and_queues.cc     PushRows/PullRows and QueuePush
//   hello_stats.cc         Hello and Stats replies
//   replica_requests.cc    Subscribe and Credit: the stream to host
//                          replicas (ReplicaFeed)
//
// State that is a unit of its own (Admission, ParkedRequests,
// CheckpointRequests, and the services below) is a member object with its
// own header; Impl only wires it to the socket.
#ifndef SHARDPS_SERVER_SHARD_SERVER_IMPL_H_
#define SHARDPS_SERVER_SHARD_SERVER_IMPL_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/hello_codec.h"
#include "common/metrics_export.h"
#include "common/wire.h"
#include "server/admission.h"
#include "server/block_push_ledger.h"
#include "server/buffer_pool.h"
#include "server/checkpoint_requests.h"
#include "server/checkpointer.h"
#include "server/client_slots.h"
#include "server/clock_keeper.h"
#include "server/completion_queue.h"
#include "server/parked_requests.h"
#include "server/pending_update.h"
#include "server/queue_service.h"
#include "server/replica_feed.h"
#include "server/reply_budget.h"
#include "server/request_validator.h"
#include "server/row_journal.h"
#include "server/shard_metrics.h"
#include "server/shard_server.h"
#include "server/table_service.h"
#include "server/update_journal.h"
#include "server/update_pool.h"
#include "server/zap_handler.h"

namespace shardps {

// Milliseconds since the Unix epoch (the clients' retry horizons use it).
inline int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ShardServer::Impl {
 public:
  Impl(ServerOptions options, std::unique_ptr<Segment> segment,
       std::unique_ptr<UpdateJournal> journal,
       std::unique_ptr<RowJournal> row_journal, SegmentOpenReport report,
       std::unique_ptr<QueueService> queues);

  ~Impl() { Stop(); }

  // Creates the frontend's eventfds (completions, stop): kIoError when the
  // process has no descriptors left. Before Bind and Start.
  Status OpenEvents();
  Status Bind();
  void Start();
  Status StartCheckpoints();
  void Stop();
  Status ReloadAuthorizedKeys(const std::vector<std::string>& keys);

  // Serves /metrics on options_.metrics_listen (when set). After Start.
  Status StartMetrics();
  const std::string& metrics_url() const;

  const std::string& endpoint() const { return endpoint_; }
  const std::string& segment_path() const { return segment_path_; }
  const SegmentOpenReport& report() const { return report_; }

 private:
  // ---- frontend.cc
  void Loop();
  // Takes up to a batch of requests off the socket and handles them.
  void ReceiveRequests(std::vector<zmq::message_t>& frames);
  void HandleMessage(std::vector<zmq::message_t>& frames);
  // Push, Pull, PushPull and Clock: the requests of a worker.
  void HandleWorkerRequest(const wire::Request& req, int fd,
                           std::vector<zmq::message_t>& frames);
  void OnMonitorEvent();
  // A closing client gives back its exactly-once slot (ClientSlots::Release).
  void HandleRelease(const wire::Request& req, zmq::message_t& identity);
  // Sends [identity, header, payload...]; a vanished client is not an error.
  void SendReply(zmq::message_t& identity,
                 flatbuffers::FlatBufferBuilder& header,
                 std::vector<zmq::message_t>* payload);
  void SendError(zmq::message_t& identity, uint64_t request_id,
                 const Status& status);
  // Test-only fault (--fault-drop-push-replies N): true for every N-th
  // successful push (dense, row or queue), whose reply is then not sent.
  bool DropPushReply() {
    const uint32_t drop = options_.test_faults.drop_push_replies;
    return drop != 0 && ++push_replies_ % drop == 0;
  }

  // ---- metrics.cc
  // The request a reply answers, for ShardMetrics::CountReply: set by the
  // code that starts answering one (a request's handler, a finished
  // update, a released or expired wait) and restored when it is done, so
  // nested answers (an update finishing inside another request's handler)
  // are each counted as their own.
  class ReplyScope {
   public:
    ReplyScope(Impl& impl, wire::Op op, uint64_t start_ns)
        : impl_(impl), op_(impl.reply_op_), start_ns_(impl.reply_start_ns_) {
      impl.reply_op_ = op;
      impl.reply_start_ns_ = start_ns;
    }
    ~ReplyScope() {
      impl_.reply_op_ = op_;
      impl_.reply_start_ns_ = start_ns_;
    }
    ReplyScope(const ReplyScope&) = delete;
    ReplyScope& operator=(const ReplyScope&) = delete;

   private:
    Impl& impl_;
    const wire::Op op_;
    const uint64_t start_ns_;
  };
  // An op value no request has: counted as "other".
  static constexpr wire::Op kUnknownOp = static_cast<wire::Op>(255);
  // Copies the frontend's plain counters into metrics_'s gauges. Frontend
  // thread, once per loop turn.
  void PublishGauges();
  // One scrape: reads metrics_, the pool's and checkpointer's atomics and
  // the queues' shared headers. Any thread (the exposer's).
  void CollectMetrics(MetricFamilies& out) const;

  // ---- admission.cc
  // Whether the worker index `req` names may be used by this client over
  // `fd` (ClockKeeper::Claim); Ok for non-workers and out-of-range indices
  // (CheckWorker and the client refuse those). `header` carries the peer's
  // address.
  Status ClaimWorker(const wire::Request& req, int fd, zmq::message_t& header);

  // ---- dense_path.cc
  void HandleDense(const wire::Request& req,
                   std::vector<zmq::message_t>& frames);
  void HandlePull(const wire::Request& req, zmq::message_t& identity,
                  const std::vector<uint32_t>& local);
  void StartUpdate(const wire::Request& req,
                   std::vector<zmq::message_t>& frames,
                   const std::vector<uint32_t>& local, float grad_scale);
  // The factor clip_norm puts on this push's gradient (1 when none).
  // REQUIRES: local_ holds the request's validated, non-empty blocks.
  Status ClipScale(const wire::Request& req, float* scale) const;
  // Applies `count` block tasks of `pending` (task_for(i) makes the i-th),
  // pool blocks first, then writer 0's inline; Finish()es it when the last
  // block is done, here or later through the completion queue.
  template <typename TaskFor>
  void RunTasks(std::unique_ptr<PendingUpdate> pending, size_t count,
                TaskFor task_for);
  void FinishUpdates();
  void Finish(PendingUpdate& done);
  void Reply(PendingUpdate& done);
  void MaybeStartBspApply();

  // ---- parked_requests.cc
  // Consistency (see ClockKeeper). A request whose gate is shut waits in
  // parked_ with its frames until the gate opens or its deadline passes.
  // Returns true when the request may run now; otherwise parks it (or
  // refuses it) and the caller must not touch `frames` again.
  bool PassOrPark(uint64_t request_id, std::vector<zmq::message_t>& frames,
                  const Gate& gate, bool replay);
  void HandleClock(const wire::Request& req,
                   std::vector<zmq::message_t>& frames);
  void ReleaseParked();
  void ExpireParked();

  // ---- checkpoint_requests.cc
  // A client's Checkpoint: queued for the checkpointer thread, answered by
  // FinishCheckpoints with the new checkpoint's directory.
  void HandleCheckpoint(const wire::Request& req, zmq::message_t& identity);
  void FinishCheckpoints();

  // ---- rows_and_queues.cc
  void HandleRows(const wire::Request& req,
                  std::vector<zmq::message_t>& frames);
  // A numbered QueuePush claims its client's slot first (a refusal
  // enqueues nothing); QueueService gives it back through queue_reply_.
  void HandleQueuePush(const wire::Request& req,
                       std::vector<zmq::message_t>& frames);

  // ---- replica_requests.cc
  // A host replica's Subscribe: answered with this shard's Hello, then the
  // blocks it lacks stream after it as credit allows.
  void HandleSubscribe(const wire::Request& req,
                       std::vector<zmq::message_t>& frames);
  void HandleCredit(const wire::Request& req, zmq::message_t& identity);
  // Tells the feed which blocks a finished update changed.
  void ReplicasChanged(const PendingUpdate& done);
  // ReplicaFeed's way out: [identity, header, payload] on socket_.
  bool SendStream(const std::string& identity,
                  flatbuffers::FlatBufferBuilder& header,
                  zmq::message_t& payload);

  // ---- hello_stats.cc
  ShardHello BuildHello() const;
  void HandleHello(const wire::Request& req, zmq::message_t& identity);
  void HandleStats(const wire::Request& req, zmq::message_t& identity);
  flatbuffers::FlatBufferBuilder& OkHeader(
      uint64_t request_id, const std::vector<uint32_t>* blocks = nullptr);

  const ServerOptions options_;
  const std::unique_ptr<QueueService> queues_;
  const std::unique_ptr<Segment> segment_;
  const std::unique_ptr<UpdateJournal> journal_;
  const std::unique_ptr<RowJournal> row_journal_;  // frontend thread only
  const SegmentOpenReport report_;
  const std::string segment_path_;
  RequestValidator validator_;  // frontend thread only
  // Declared before context_: they must outlive every message ZeroMQ holds.
  BufferPool reply_buffers_;
  const uint64_t largest_reply_;  // bytes; see LargestReplyBytes
  ReplyBudget reply_budget_;
  CompletionQueue completions_;
  UpdatePool pool_;
  ClientSlots client_slots_;  // frontend thread only
  ClockKeeper clocks_;
  const std::vector<float> clip_norms_;  // by tensor index; 0 = off
  TableService tables_;
  EventFd stop_;
  zmq::context_t context_{1};
  // Declared after context_ and before socket_: it must start before socket_
  // binds and stop only after socket_ is closed (see ZapHandler).
  std::unique_ptr<ZapHandler> zap_;
  zmq::socket_t socket_;
  zmq::socket_t monitor_;  // PAIR end of socket_'s monitor
  std::string endpoint_;
  std::thread frontend_;
  std::unique_ptr<Checkpointer> checkpointer_;
  const std::chrono::steady_clock::time_point started_;

  // Frontend-thread state below: touched by the frontend only.
  HeaderScratch scratch_;
  flatbuffers::FlatBufferBuilder builder_{1024};
  std::vector<uint32_t> local_;
  std::vector<size_t> payload_sizes_;
  // The account the request being handled charges its reply buffers to.
  ReplyBudget::Account* reply_account_ = nullptr;
  std::vector<PendingUpdate*> finished_;
  ParkedRequests parked_{clocks_};
  const QueueService::Reply queue_reply_ = [this](zmq::message_t* identity,
                                                  uint64_t id, const Status& s,
                                                  const QueueOnce& once) {
    if (once.seq != 0) client_slots_.PushDone(once.slot);
    if (identity == nullptr) return;
    if (s.ok()) {
      if (DropPushReply()) return;
      SendReply(*identity, OkHeader(id), nullptr);
    } else {
      SendError(*identity, id, s);
    }
  };
  uint64_t in_flight_ = 0;
  uint64_t pushes_ = 0, pulls_ = 0, errors_ = 0;
  // Counted by the frontend, read by scrapes (ShardMetrics).
  ShardMetrics metrics_{options_.spec.consistency.workers};
  wire::Op reply_op_ = kUnknownOp;  // see ReplyScope
  uint64_t reply_start_ns_ = 0;
  uint64_t replay_received_ns_ = 0;  // set for HandleMessage of a replay
  uint64_t push_replies_ = 0;    // for options_.test_faults.drop_push_replies
  uint64_t row_duplicates_ = 0;  // numbered row pushes found applied
  Admission admission_{options_.max_clients};
  CheckpointRequests checkpoint_requests_;
  BlockPushLedger push_ledger_{*segment_, options_.spec.consistency.workers,
                               options_.spec.consistency.apply_per_block};
  ReplicaFeed replica_feed_{
      *segment_,
      [this](const std::string& identity,
             flatbuffers::FlatBufferBuilder& header, zmq::message_t& payload) {
        return SendStream(identity, header, payload);
      }};
  // The scrape's objects on the hosted queues (StartMetrics).
  mutable Mutex scrape_mu_;
  std::vector<std::pair<std::string, std::unique_ptr<BatchQueue>>>
      scrape_queues_ GUARDED_BY(scrape_mu_);
  // Last: destroyed first, so no scrape runs while the members it reads go.
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_SHARD_SERVER_IMPL_H_
