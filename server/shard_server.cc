#include "server/shard_server.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <list>
#include <new>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/curve_keys.h"
#include "common/hello_codec.h"
#include "common/seqlock.h"
#include "common/stats_codec.h"
#include "common/wire.h"
#include "common/zmq_util.h"
#include "server/bind_policy.h"
#include "server/buffer_pool.h"
#include "server/client_slots.h"
#include "server/clock_keeper.h"
#include "server/completion_queue.h"
#include "server/pending_update.h"
#include "server/reply_budget.h"
#include "server/request_validator.h"
#include "server/row_journal.h"
#include "server/table_service.h"
#include "server/update_pool.h"
#include "server/zap_handler.h"

namespace shardps {

namespace {

// How many messages the frontend takes from the socket before it looks at
// completions again, so replies are not starved by a flood of requests.
constexpr int kRecvBatch = 64;

// Idle reply buffers kept for reuse: enough for a few 64 MiB pulls in flight.
constexpr size_t kCachedReplyBytes = 256 << 20;

// Requests parked for slower workers (bsp/ssp). Each holds its frames, so
// the cap bounds memory when clients pile up requests behind a straggler.
constexpr size_t kMaxParked = 4096;

// Messages ZeroMQ buffers per connection before it stops reading that
// connection's socket: a client sending faster than the server applies is
// slowed down by TCP instead of growing the server's memory.
constexpr int kPeerRecvHwm = 128;

// Replies ZeroMQ queues per connection; later ones are dropped (the
// client's requests time out). Only a client that does not read its
// replies reaches it (the client library reads every reply at once); it
// bounds the small replies (errors, acks) such a client can pile up, as
// ReplyBudget bounds the large ones.
constexpr int kPeerSendHwm = 4096;

// "ip:port" of the TCP peer on connection `fd`, for messages that name a
// client; ZeroMQ's Peer-Address (the IP alone) for other transports. The fd
// belongs to ZeroMQ's I/O thread; getpeername only reads it, and a reused
// fd could at worst name the wrong peer in a message.
std::string PeerAddress(int fd, zmq::message_t& header) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (fd >= 0 &&
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (addr.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
      return std::string(ip) + ":" + std::to_string(ntohs(in->sin_port));
    }
    if (addr.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
      return "[" + std::string(ip) +
             "]:" + std::to_string(ntohs(in6->sin6_port));
    }
  }
  const char* address = zmq_msg_gets(header.handle(), "Peer-Address");
  return address != nullptr ? address : "";
}

// ZMTP heartbeats: the shard PINGs every connection this often and drops
// one that sends nothing for kPeerHeartbeatTimeoutMs after a PING. A peer
// whose host vanished (no FIN, no RST: a half-open connection) is thus
// noticed within about 15 s, which frees its worker index (ClockKeeper
// claims). The peer's libzmq answers PINGs from its I/O thread, so a busy
// trainer is never dropped; a stopped (SIGSTOP) one is, and reconnects.
constexpr int kPeerHeartbeatIvlMs = 5000;
constexpr int kPeerHeartbeatTimeoutMs = 10000;

// Longest error message sent: messages quote names from the request, and a
// header may be 64 KiB.
constexpr size_t kMaxErrorMessageBytes = 1024;

// Updates handed to the pool and not yet finished. At the cap the frontend
// stops taking requests until some finish, for the same reason.
constexpr uint64_t kMaxUpdatesInFlight = 1024;

// Checkpoint requests waiting for the checkpointer; more get kBusy.
constexpr size_t kMaxCheckpointRequests = 64;
// How long a pull may wait for a consistent copy of one block. Its writers
// are alive and finish an update in microseconds, so this is only reached
// on a bug; it bounds the frontend's stall.
constexpr std::chrono::seconds kPullReadDeadline{5};

std::string AbsolutePath(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

std::vector<float> ClipNorms(const ModelSpec& spec) {
  std::vector<float> out;
  for (const TensorSpec& t : spec.tensors)
    out.push_back(static_cast<float>(spec.OptimizerFor(t).clip_norm));
  return out;
}

uint64_t MaxFrameBytes(const ServerOptions& options, const Segment& segment) {
  return options.max_frame_bytes != 0
             ? options.max_frame_bytes
             : 2 * segment.header().block_floats * sizeof(float) + 65536;
}

// The largest reply payload one request can make this shard hold: a pull
// of every local block of one tensor, or a PullRows of as many ids as one
// frame can carry.
uint64_t LargestReplyBytes(const Segment& segment, const BufferPool& buffers,
                           uint64_t max_frame) {
  std::vector<uint64_t> by_tensor(segment.num_tensors(), 0);
  for (uint32_t l = 0; l < segment.num_blocks(); ++l)
    by_tensor[segment.block(l).tensor] +=
        buffers.Footprint(segment.block(l).num_floats * sizeof(float));
  uint64_t largest = 0;
  for (uint64_t bytes : by_tensor) largest = std::max(largest, bytes);
  const uint64_t ids = std::min<uint64_t>(kMaxRowsPerRequest, max_frame / 8);
  for (uint32_t i = 0; i < segment.num_tables(); ++i)
    largest = std::max<uint64_t>(
        largest, buffers.Footprint(ids * segment.table(i).dim * sizeof(float)));
  return largest;
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string HostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

class ShardServer::Impl {
 public:
  Impl(ServerOptions options, std::unique_ptr<Segment> segment,
       std::unique_ptr<UpdateJournal> journal,
       std::unique_ptr<RowJournal> row_journal, SegmentOpenReport report,
       std::unique_ptr<QueueService> queues)
      : options_(std::move(options)),
        queues_(std::move(queues)),
        segment_(std::move(segment)),
        journal_(std::move(journal)),
        row_journal_(std::move(row_journal)),
        report_(report),
        segment_path_(AbsolutePath(segment_->path())),
        validator_(*segment_),
        reply_buffers_(segment_->header().block_floats * sizeof(float),
                       kCachedReplyBytes),
        largest_reply_(LargestReplyBytes(*segment_, reply_buffers_,
                                         MaxFrameBytes(options_, *segment_))),
        reply_budget_(
            std::max(options_.max_reply_bytes_per_client, largest_reply_),
            std::max({options_.max_reply_bytes,
                      options_.max_reply_bytes_per_client, largest_reply_})),
        pool_(*segment_, options_.spec, *journal_, completions_,
              options_.threads),
        client_slots_(*segment_),
        clocks_(options_.spec.consistency, *segment_),
        clip_norms_(ClipNorms(options_.spec)),
        tables_(*segment_, options_.spec),
        socket_(context_, zmq::socket_type::router),
        monitor_(context_, zmq::socket_type::pair),
        started_(std::chrono::steady_clock::now()) {}

  ~Impl() { Stop(); }

  Status Bind() {
    const uint64_t max_frame = MaxFrameBytes(options_, *segment_);
    const bool curve = !options_.curve_secret_key.empty();
    if (curve) {
      // The handler must exist before the bind: a CURVE socket whose context
      // has no ZAP handler admits every key.
      auto zap = ZapHandler::Start(context_, options_.authorized_keys);
      if (!zap.ok()) return zap.status();
      zap_ = std::move(zap).value();
    }
    try {
      if (curve) {
        socket_.set(zmq::sockopt::curve_server, 1);
        socket_.set(zmq::sockopt::curve_secretkey, options_.curve_secret_key);
        socket_.set(zmq::sockopt::zap_domain, "shardps");
      }
      socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_frame));
      socket_.set(zmq::sockopt::linger, 0);
      socket_.set(zmq::sockopt::sndhwm, kPeerSendHwm);
      socket_.set(zmq::sockopt::rcvhwm, kPeerRecvHwm);
      socket_.set(zmq::sockopt::heartbeat_ivl, kPeerHeartbeatIvlMs);
      socket_.set(zmq::sockopt::heartbeat_timeout, kPeerHeartbeatTimeoutMs);
      socket_.bind(options_.listen);
      endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
      // Disconnect events tell `status` which workers left, by socket fd.
      const std::string monitor_address =
          "inproc://shardps-monitor-" +
          std::to_string(reinterpret_cast<uintptr_t>(this));
      // With CURVE, failed handshakes too: a peer speaking no CURVE never
      // reaches the ZAP handler, so the monitor counts it. Such a peer sees
      // the mismatch in our greeting as early as we see it in its own, and
      // when it hangs up first we learn only that the connection ended
      // mid-handshake (FAILED_NO_DETAIL), so that is counted too.
      const int events = ZMQ_EVENT_DISCONNECTED |
                         (curve ? ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                : 0);
      if (zmq_socket_monitor(socket_.handle(), monitor_address.c_str(),
                             events) != 0)
        throw zmq::error_t();
      monitor_.connect(monitor_address);
    } catch (const zmq::error_t& e) {
      return Status(Code::kIoError,
                    "cannot listen on " + options_.listen + ": " + e.what());
    }
    return Status::Ok();
  }

  void Start() {
    pool_.SetFaultKillMidUpdate(options_.fault_kill_mid_update);
    pool_.Start();
    frontend_ = std::thread([this] {
      // A bsp apply a crash interrupted (every worker had clocked, not every
      // block was applied) is finished before anything else.
      MaybeStartBspApply();
      Loop();
    });
  }

  Status StartCheckpoints() {
    if (options_.checkpoint.root.empty()) return Status::Ok();
    checkpointer_ = std::make_unique<Checkpointer>(
        segment_path_, options_.shard, options_.shards, options_.checkpoint);
    return checkpointer_->Start();
  }

  void Stop() {
    if (!frontend_.joinable()) return;
    stop_.Signal();
    frontend_.join();
    pool_.Stop();
    segment_->MarkCleanShutdown();
    // Every update is in: the last checkpoint is exact.
    if (checkpointer_) checkpointer_->Stop(/*final=*/true);
  }

  Status ReloadAuthorizedKeys(const std::vector<std::string>& keys) {
    if (zap_ == nullptr)
      return Status(Code::kInvalidArgument,
                    "CURVE is off on this shard: there are no authorized "
                    "keys to reload");
    return zap_->SetAuthorizedKeys(keys);
  }

  const std::string& endpoint() const { return endpoint_; }
  const std::string& segment_path() const { return segment_path_; }
  const SegmentOpenReport& report() const { return report_; }

 private:
  void Loop();
  void HandleMessage(std::vector<zmq::message_t>& frames);
  // Whether a request from connection `fd` (ZMQ_SRCFD, -1 when unknown)
  // may be served: kResourceExhausted when the connection is new and
  // options_.max_clients are already served; with CURVE, kPermissionDenied
  // when the key it was admitted with was removed by a reload since. The
  // key is checked once per connection per reload, not per request.
  // `header` is the request's header frame: it carries the connection's
  // metadata (its key as "User-Id").
  Status AdmitRequest(int fd, zmq::message_t& header);
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
  // Test-only fault (--fault-drop-push-replies N): true for every N-th
  // successful push (dense, row or queue), whose reply is then not sent.
  bool DropPushReply() {
    const uint32_t drop = options_.fault_drop_push_replies;
    return drop != 0 && ++push_replies_ % drop == 0;
  }

  // Consistency (see ClockKeeper). A request whose gate is shut waits in
  // parked_ with its frames until the gate opens or its deadline passes.
  struct Parked {
    std::vector<zmq::message_t> frames;  // [identity, header, payload...]
    Gate gate;
    bool replay;  // true: handle the request again; false: reply OK (Clock)
    uint64_t request_id;
    std::chrono::steady_clock::time_point parked_at, deadline;
  };
  // Returns true when the request may run now; otherwise parks it (or
  // refuses it) and the caller must not touch `frames` again.
  bool PassOrPark(uint64_t request_id, std::vector<zmq::message_t>& frames,
                  const Gate& gate, bool replay);
  void HandleClock(const wire::Request& req,
                   std::vector<zmq::message_t>& frames);
  void MaybeStartBspApply();
  void ReleaseParked();
  void ExpireParked();
  int PollTimeoutMs() const;
  void OnMonitorEvent();
  // Whether the worker index `req` names may be used by this client over
  // `fd` (ClockKeeper::Claim); Ok for non-workers and out-of-range indices
  // (CheckWorker and the client refuse those). `header` carries the peer's
  // address.
  Status ClaimWorker(const wire::Request& req, int fd, zmq::message_t& header);
  void HandleHello(const wire::Request& req, zmq::message_t& identity);
  void HandleRows(const wire::Request& req,
                  std::vector<zmq::message_t>& frames);
  // A numbered QueuePush claims its client's slot first (a refusal
  // enqueues nothing); QueueService gives it back through queue_reply_.
  void HandleQueuePush(const wire::Request& req,
                       std::vector<zmq::message_t>& frames);
  void HandleStats(const wire::Request& req, zmq::message_t& identity);
  // A client's Checkpoint: queued for the checkpointer thread, answered by
  // FinishCheckpoints with the new checkpoint's directory.
  void HandleCheckpoint(const wire::Request& req, zmq::message_t& identity);
  void FinishCheckpoints();
  // A closing client gives back its exactly-once slot (ClientSlots::Release).
  void HandleRelease(const wire::Request& req, zmq::message_t& identity);

  // Sends [identity, header, payload...]; a vanished client is not an error.
  void SendReply(zmq::message_t& identity,
                 flatbuffers::FlatBufferBuilder& header,
                 std::vector<zmq::message_t>* payload);
  void SendError(zmq::message_t& identity, uint64_t request_id,
                 const Status& status);
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
  WakeEvent stop_;
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
  std::list<Parked> parked_;  // a list: replays may park more while we walk
  const QueueService::Reply queue_reply_ =
      [this](zmq::message_t* identity, uint64_t id, const Status& s,
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
  bool releasing_ = false, release_again_ = false;
  uint64_t in_flight_ = 0;
  uint64_t pushes_ = 0, pulls_ = 0, errors_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  uint64_t push_replies_ = 0;  // for options_.fault_drop_push_replies
  uint64_t row_duplicates_ = 0;  // numbered row pushes found applied
  // Connections that have sent a request, by socket fd (ZMQ_SRCFD), with
  // the CURVE key generation each was last checked at (AdmitRequest); a
  // disconnect (socket monitor) removes one. A connection that reuses an
  // fd before the old one's disconnect arrives may inherit its generation
  // G, and that is sound: it was accepted after the old connection closed,
  // so after reload G, and its handshake was judged by set G or a later one
  // (which would bump the generation and force a check).
  std::unordered_map<int, uint64_t> peers_;
  // Checkpoint requests being written: token -> (identity, request id).
  std::unordered_map<uint64_t, std::pair<zmq::message_t, uint64_t>>
      checkpoint_requests_;
  uint64_t next_checkpoint_token_ = 1;
};

void ShardServer::Impl::Loop() {
  // Without periodic checkpoints the last item watches nothing.
  zmq_pollitem_t items[5] = {
      {socket_.handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, completions_.fd(), ZMQ_POLLIN, 0},
      {nullptr, stop_.fd(), ZMQ_POLLIN, 0},
      {monitor_.handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, checkpointer_ ? checkpointer_->done_fd() : stop_.fd(),
       static_cast<short>(checkpointer_ ? ZMQ_POLLIN : 0), 0},
  };
  std::vector<zmq::message_t> frames;
  for (;;) {
    // At the cap, requests wait in ZeroMQ (and then TCP) until updates
    // finish: backpressure rather than memory.
    items[0].events = in_flight_ < kMaxUpdatesInFlight ? ZMQ_POLLIN : 0;
    int timeout = PollTimeoutMs();
    // Pushes waiting for queue space are retried every few milliseconds.
    if (queues_->waiting() > 0)
      timeout = timeout < 0 ? 2 : std::min(timeout, 2);
    PollItems(items, 5, timeout);
    if (queues_->waiting() > 0) queues_->Retry(queue_reply_);
    if (items[2].revents & ZMQ_POLLIN) break;
    if (items[3].revents & ZMQ_POLLIN) OnMonitorEvent();
    if (items[4].revents & ZMQ_POLLIN) FinishCheckpoints();
    if (items[1].revents & ZMQ_POLLIN) FinishUpdates();
    if (!parked_.empty()) ExpireParked();
    if (items[0].revents & ZMQ_POLLIN) {
      for (int i = 0; i < kRecvBatch; ++i) {
        try {
          if (!RecvMultipartNow(socket_, &frames)) break;
          HandleMessage(frames);
        } catch (const zmq::error_t& e) {
          // A socket error concerns one peer's message, never the server.
          ++errors_;
          std::fprintf(stderr, "shardps: socket error: %s\n", e.what());
        } catch (const std::bad_alloc&) {
          // Out of memory for one request's buffers: drop that request (its
          // client times out) and keep serving the others.
          ++errors_;
          std::fprintf(stderr, "shardps: out of memory; request dropped\n");
        }
      }
    }
  }
  // Shutdown: new requests are no longer read, but every update already
  // handed to the pool is finished and answered before the pool stops.
  zmq_pollitem_t done_item = {nullptr, completions_.fd(), ZMQ_POLLIN, 0};
  while (in_flight_ > 0) {
    PollItems(&done_item, 1, 1000);
    FinishUpdates();
  }
}

void ShardServer::Impl::HandleMessage(std::vector<zmq::message_t>& frames) {
  zmq::message_t& identity = frames[0];
  for (size_t i = 1; i < frames.size(); ++i) bytes_in_ += frames[i].size();
  if (frames.size() < 2) {
    SendError(identity, 0,
              Status(Code::kBadMessage, "message has no header frame"));
    return;
  }
  auto parsed = ParseRequest(frames[1].data(), frames[1].size(), scratch_);
  if (!parsed.ok()) {
    SendError(identity, 0, parsed.status());
    return;
  }
  const wire::Request& req = **parsed;
  const int fd = frames[1].get(ZMQ_SRCFD);
  Status admitted = AdmitRequest(fd, frames[1]);
  if (!admitted.ok()) {
    SendError(identity, req.request_id(), admitted);
    return;
  }
  // A Hello without a model name is a client discovering what we serve.
  const bool discovery = req.op() == wire::Op::Hello &&
                         (req.model() == nullptr || req.model()->size() == 0);
  Status model = discovery ? Status::Ok() : validator_.CheckModel(req.model());
  if (!model.ok()) {
    SendError(identity, req.request_id(), model);
    return;
  }
  switch (req.op()) {
    case wire::Op::Hello: {
      // A second live client with this worker index is refused at Connect.
      Status claimed = ClaimWorker(req, fd, frames[1]);
      if (!claimed.ok()) {
        SendError(identity, req.request_id(), claimed);
        return;
      }
      HandleHello(req, identity);
      return;
    }
    case wire::Op::Stats:
      HandleStats(req, identity);
      return;
    case wire::Op::PushRows:
    case wire::Op::PullRows:
      HandleRows(req, frames);
      return;
    case wire::Op::QueuePush:
      HandleQueuePush(req, frames);
      return;
    case wire::Op::Checkpoint:
      HandleCheckpoint(req, identity);
      return;
    case wire::Op::Release:
      HandleRelease(req, identity);
      return;
    case wire::Op::Push:
    case wire::Op::Pull:
    case wire::Op::PushPull:
    case wire::Op::Clock: {
      Status worker = clocks_.CheckWorker(req.op(), req.worker());
      if (!worker.ok()) {
        SendError(identity, req.request_id(), worker);
        return;
      }
      // Claimed here too: claims do not survive a shard restart, and the
      // clients reconnect without a Hello.
      Status claimed = ClaimWorker(req, fd, frames[1]);
      if (!claimed.ok()) {
        SendError(identity, req.request_id(), claimed);
        return;
      }
      if (req.worker() >= 0)
        clocks_.Seen(req.worker(), fd, std::chrono::steady_clock::now());
      if (req.op() == wire::Op::Clock) {
        HandleClock(req, frames);
      } else {
        HandleDense(req, frames);
      }
      return;
    }
    default:
      SendError(
          identity, req.request_id(),
          Status(Code::kUnimplemented, std::string("op ") + OpName(req.op()) +
                                           " is not served by this version"));
  }
}

Status ShardServer::Impl::AdmitRequest(int fd, zmq::message_t& header) {
  // The key generation this connection was last checked at (0: none).
  uint64_t* checked_at = nullptr;
  if (fd >= 0) {
    auto it = peers_.find(fd);
    if (it == peers_.end()) {
      if (peers_.size() >= options_.max_clients)
        return Status(Code::kResourceExhausted,
                      "this shard already serves " +
                          std::to_string(options_.max_clients) +
                          " connections (serve --max-clients); retry after "
                          "another client disconnects");
      it = peers_.emplace(fd, 0).first;
    }
    checked_at = &it->second;
  }
  if (zap_ == nullptr) return Status::Ok();
  // Until the first reload every connection was admitted by the current set.
  const uint64_t generation = zap_->generation();
  if (generation == 0 || (checked_at != nullptr && *checked_at == generation))
    return Status::Ok();
  // zmq_msg_gets, not message_t::gets: a missing property is not an error.
  const char* user_id = zmq_msg_gets(header.handle(), "User-Id");
  const char* address = zmq_msg_gets(header.handle(), "Peer-Address");
  if (!zap_->StillAuthorized(user_id != nullptr ? user_id : "",
                             address != nullptr ? address : ""))
    return Status(Code::kPermissionDenied,
                  "this client's CURVE key was removed from the shard's "
                  "authorized keys");
  if (checked_at != nullptr) *checked_at = generation;
  return Status::Ok();
}

void ShardServer::Impl::HandleDense(const wire::Request& req,
                                    std::vector<zmq::message_t>& frames) {
  payload_sizes_.clear();
  for (size_t i = 2; i < frames.size(); ++i)
    payload_sizes_.push_back(frames[i].size());
  Status valid = validator_.ValidateDense(req, payload_sizes_, &local_);
  if (!valid.ok()) {
    SendError(frames[0], req.request_id(), valid);
    return;
  }
  if (!PassOrPark(req.request_id(), frames,
                  clocks_.RunGate(req.op(), req.worker(), req.clock()),
                  /*replay=*/true))
    return;
  float grad_scale = 1;
  if (req.op() != wire::Op::Pull) {
    if (clocks_.bsp()) {
      Status fresh = clocks_.CheckBspPush(req.worker(), req.clock());
      if (!fresh.ok()) {
        SendError(frames[0], req.request_id(), fresh);
        return;
      }
    }
    Status clip = ClipScale(req, &grad_scale);
    if (!clip.ok()) {
      SendError(frames[0], req.request_id(), clip);
      return;
    }
  }
  // The reply's buffers must fit the budget: a PushPull is refused before
  // it applies anything.
  reply_account_ = reply_budget_.For(frames[1].get(ZMQ_SRCFD));
  if (req.op() != wire::Op::Push) {
    uint64_t reply_bytes = 0;
    for (uint32_t l : local_)
      reply_bytes += reply_buffers_.Footprint(segment_->block(l).num_floats *
                                              sizeof(float));
    Status room = reply_budget_.Admit(*reply_account_, reply_bytes);
    if (!room.ok()) {
      SendError(frames[0], req.request_id(), room);
      return;
    }
  }
  if (req.op() == wire::Op::Pull) {
    HandlePull(req, frames[0], local_);
  } else {
    StartUpdate(req, frames, local_, grad_scale);
  }
}

Status ShardServer::Impl::ClipScale(const wire::Request& req,
                                    float* scale) const {
  const uint32_t tensor = segment_->block(local_.front()).tensor;
  const float clip = clip_norms_[tensor];
  *scale = 1;
  if (clip <= 0) return Status::Ok();
  const float norm = req.grad_norm();
  if (norm < 0)
    return Status(Code::kInvalidArgument,
                  "tensor '" + std::string(segment_->tensor(tensor).name) +
                      "' clips gradients by norm: a push must carry the "
                      "whole gradient's L2 norm (grad_norm)");
  if (!std::isfinite(norm))
    return Status(Code::kInvalidArgument,
                  "gradient of '" + std::string(segment_->tensor(tensor).name) +
                      "' has a non-finite norm; not applied");
  if (norm > clip) *scale = clip / norm;
  return Status::Ok();
}

void ShardServer::Impl::HandlePull(const wire::Request& req,
                                   zmq::message_t& identity,
                                   const std::vector<uint32_t>& local) {
  ++pulls_;
  std::vector<zmq::message_t> payload;
  payload.reserve(local.size());
  std::vector<uint32_t> blocks;
  blocks.reserve(local.size());
  for (uint32_t l : local) {
    const uint64_t bytes = segment_->block(l).num_floats * sizeof(float);
    zmq::message_t msg = reply_buffers_.Message(bytes, reply_account_);
    uint64_t version;
    // The frontend is the only source of new block updates, and it is busy
    // here, so the pool's queue for this block drains and the read succeeds
    // at once; the deadline only fires on a bug, and then the pull gets an
    // error instead of hanging the frontend.
    Status read = ReadConsistent(
        segment_->version(l), segment_->block_data(l), msg.data(), bytes,
        std::chrono::steady_clock::now() + kPullReadDeadline, &version);
    if (!read.ok()) {
      const BlockEntry& b = segment_->block(l);
      SendError(
          identity, req.request_id(),
          read.WithContext("pull of block " + std::to_string(b.block) +
                           " of '" + segment_->tensor(b.tensor).name + "'"));
      return;
    }
    bytes_out_ += bytes;
    payload.push_back(std::move(msg));
    blocks.push_back(segment_->block(l).block);
  }
  SendReply(identity, OkHeader(req.request_id(), &blocks), &payload);
}

void ShardServer::Impl::StartUpdate(const wire::Request& req,
                                    std::vector<zmq::message_t>& frames,
                                    const std::vector<uint32_t>& local,
                                    float grad_scale) {
  // Exactly-once: the client's dedupe slot, claimed before anything is
  // applied so a refusal changes nothing.
  uint32_t slot = 0;
  const uint64_t seq = req.client_id() != 0 ? req.seq() : 0;
  if (seq != 0) {
    auto claimed = client_slots_.Acquire(req.client_id(),
                                         req.retry_horizon_ms(), UnixMs());
    if (!claimed.ok()) {
      SendError(frames[0], req.request_id(), claimed.status());
      return;
    }
    slot = *claimed;
  }
  ++pushes_;
  auto pending = std::make_unique<PendingUpdate>();
  pending->request_id = req.request_id();
  pending->client = req.client_id();
  pending->slot = slot;
  pending->seq = seq;
  pending->op = req.op();
  pending->dtype = req.dtype();
  pending->blocks.reserve(local.size());
  for (uint32_t l : local) pending->blocks.push_back(segment_->block(l).block);
  if (req.op() == wire::Op::PushPull) {
    pending->out.reserve(local.size());
    for (uint32_t l : local)
      pending->out.push_back(reply_buffers_.Message(
          segment_->block(l).num_floats * sizeof(float), reply_account_));
  }
  // `req` points into scratch_, not into the frames, so moving them is safe.
  pending->identity = std::move(frames[0]);
  pending->frames = std::move(frames);
  // bsp sums the gradient into the clock's accumulator; the weights change
  // once per clock, when every worker has called Clock.
  const BlockTask::Kind kind =
      clocks_.bsp() ? BlockTask::Kind::kAccumulate : BlockTask::Kind::kApply;
  pending->grad_scale = grad_scale;
  PendingUpdate* p = pending.get();
  RunTasks(std::move(pending), local.size(), [&local, p, kind](size_t i) {
    BlockTask task;
    task.block = local[i];
    task.grad = p->frames[i + 2].data();
    task.dtype = p->dtype;
    task.out = p->op == wire::Op::PushPull ? p->out[i].data() : nullptr;
    task.owner = p;
    task.kind = kind;
    task.scale = p->grad_scale;
    task.client = p->client;
    task.slot = p->slot;
    task.seq = p->seq;
    return task;
  });
}

template <typename TaskFor>
void ShardServer::Impl::RunTasks(std::unique_ptr<PendingUpdate> pending,
                                 size_t count, TaskFor task_for) {
  pending->remaining.store(static_cast<uint32_t>(count),
                           std::memory_order_relaxed);
  // Pool blocks first, so they are applied while this thread does its own.
  uint32_t inline_blocks = 0;
  for (size_t i = 0; i < count; ++i) {
    const BlockTask task = task_for(i);
    if (pool_.IsInline(task.block)) {
      ++inline_blocks;
    } else {
      pool_.Submit(task);
    }
  }
  for (size_t i = 0; i < count; ++i) {
    const BlockTask task = task_for(i);
    if (pool_.IsInline(task.block)) pool_.ApplyInline(task);
  }
  // Settle the inline blocks at once. If that brings the count to zero, the
  // pool finished first (its last decrement did not reach zero, so it did
  // not queue the request) and this thread finishes it now.
  const bool all_done =
      inline_blocks == count ||
      (inline_blocks > 0 &&
       pending->remaining.fetch_sub(inline_blocks, std::memory_order_acq_rel) ==
           inline_blocks);
  if (all_done) {
    Finish(*pending);
    return;
  }
  // The pool thread that finishes last hands it back through completions_.
  pending.release();
  ++in_flight_;
}

void ShardServer::Impl::FinishUpdates() {
  completions_.Drain(&finished_);
  for (PendingUpdate* raw : finished_) {
    std::unique_ptr<PendingUpdate> done(raw);  // released in RunTasks
    --in_flight_;
    Finish(*done);
  }
}

void ShardServer::Impl::Finish(PendingUpdate& done) {
  if (!done.bsp_apply) {
    if (done.seq != 0) client_slots_.PushDone(done.slot);
    Reply(done);
    return;
  }
  clocks_.ApplyFinished(done.clock);
  ReleaseParked();
  MaybeStartBspApply();
}

void ShardServer::Impl::MaybeStartBspApply() {
  const int64_t clock = clocks_.DueApply();
  if (clock < 0) return;
  clocks_.ApplyStarted(clock);
  auto pending = std::make_unique<PendingUpdate>();
  pending->bsp_apply = true;
  pending->clock = clock;
  const ConsistencySpec& c = clocks_.spec();
  const float scale = c.mean ? 1.0f / static_cast<float>(c.workers) : 1.0f;
  PendingUpdate* p = pending.get();
  RunTasks(std::move(pending), segment_->num_blocks(),
           [p, clock, scale](size_t i) {
             BlockTask task;
             task.block = static_cast<uint32_t>(i);
             task.grad = nullptr;
             task.dtype = wire::DType::F32;
             task.out = nullptr;
             task.owner = p;
             task.kind = BlockTask::Kind::kApplyAccumulated;
             task.scale = scale;
             task.clock = clock;
             return task;
           });
}

void ShardServer::Impl::HandleClock(const wire::Request& req,
                                    std::vector<zmq::message_t>& frames) {
  // Copied out: `req` lives in scratch_, which an apply finishing below may
  // reuse to replay parked requests.
  const uint64_t request_id = req.request_id();
  const int worker = req.worker();
  const int64_t clock = req.clock();
  if (clock < 0) {
    SendError(frames[0], request_id,
              Status(Code::kInvalidArgument, "Clock(" + std::to_string(clock) +
                                                 "): clocks start at 0"));
    return;
  }
  // bsp: Clock(c) waits, like the worker's pushes for clock c, until clock
  // c-1 is applied; recording it earlier would let a fast worker's next
  // clock count towards the apply still running.
  if (!PassOrPark(request_id, frames,
                  clocks_.RunGate(wire::Op::Clock, worker, clock),
                  /*replay=*/true))
    return;
  Status recorded = clocks_.RecordClock(worker, clock);
  if (!recorded.ok()) {
    SendError(frames[0], request_id, recorded);
    return;
  }
  // The reply is the worker's permission to start its next clock; park it
  // before an apply (which may finish at once) releases the gates.
  if (PassOrPark(request_id, frames, clocks_.ClockReplyGate(clock),
                 /*replay=*/false))
    SendReply(frames[0], OkHeader(request_id), nullptr);
  MaybeStartBspApply();
  ReleaseParked();
}

bool ShardServer::Impl::PassOrPark(uint64_t request_id,
                                   std::vector<zmq::message_t>& frames,
                                   const Gate& gate, bool replay) {
  if (clocks_.Passes(gate)) return true;
  if (parked_.size() >= kMaxParked) {
    SendError(frames[0], request_id,
              Status(Code::kBusy, std::to_string(kMaxParked) +
                                      " requests already wait for slower "
                                      "workers; retry later"));
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  Parked p;
  p.gate = gate;
  p.replay = replay;
  p.request_id = request_id;
  p.parked_at = now;
  p.deadline =
      now + std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::duration<double>(clocks_.spec().wait_timeout_s));
  if (replay) {
    p.frames = std::move(frames);
  } else {
    p.frames.push_back(std::move(frames[0]));  // the identity is enough
  }
  parked_.push_back(std::move(p));
  return false;
}

void ShardServer::Impl::ReleaseParked() {
  // A released Clock can open more gates; one walk at a time, repeated
  // until nothing more opens.
  if (releasing_) {
    release_again_ = true;
    return;
  }
  releasing_ = true;
  do {
    release_again_ = false;
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (!clocks_.Passes(it->gate)) {
        ++it;
        continue;
      }
      Parked p = std::move(*it);
      it = parked_.erase(it);
      if (p.replay) {
        HandleMessage(p.frames);
      } else {
        SendReply(p.frames[0], OkHeader(p.request_id), nullptr);
      }
    }
  } while (release_again_);
  releasing_ = false;
}

void ShardServer::Impl::ExpireParked() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    char waited[32];
    std::snprintf(waited, sizeof(waited), "%.1f s",
                  std::chrono::duration<double>(now - it->parked_at).count());
    const std::string what = it->gate.on == Gate::On::kApplied
                                 ? "clock " +
                                       std::to_string(it->gate.at_least - 1) +
                                       " to be applied"
                                 : "every worker to reach clock " +
                                       std::to_string(it->gate.at_least);
    SendError(it->frames[0], it->request_id,
              Status(Code::kTimeout,
                     clocks_.spec().ModeName() + ": waited " + waited +
                         " (consistency.wait_timeout) for " + what + "; " +
                         clocks_.Laggards(it->gate, now)));
    it = parked_.erase(it);
  }
}

int ShardServer::Impl::PollTimeoutMs() const {
  if (parked_.empty()) return -1;
  auto earliest = parked_.front().deadline;
  for (const Parked& p : parked_) earliest = std::min(earliest, p.deadline);
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      earliest - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count() + 1));
}

void ShardServer::Impl::OnMonitorEvent() {
  // Each event is two frames: [uint16 event, uint32 value (the fd)] and the
  // peer's address.
  zmq::message_t event, address;
  while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
    if (event.more()) (void)monitor_.recv(address);
    if (event.size() < 6) continue;
    uint16_t id;
    uint32_t fd;
    std::memcpy(&id, event.data(), sizeof(id));
    std::memcpy(&fd, static_cast<const char*>(event.data()) + 2, sizeof(fd));
    if (id == ZMQ_EVENT_DISCONNECTED) {
      clocks_.Disconnected(static_cast<int>(fd),
                           std::chrono::steady_clock::now());
      peers_.erase(static_cast<int>(fd));
      reply_budget_.Disconnected(static_cast<int>(fd));
    }
    if (zap_ == nullptr) continue;
    const std::string peer(static_cast<const char*>(address.data()),
                           address.size());
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
      zap_->CountFailedHandshake(peer, fd);  // the value is the protocol error
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
      zap_->CountAbandonedHandshake(peer);
  }
}

Status ShardServer::Impl::ClaimWorker(const wire::Request& req, int fd,
                                      zmq::message_t& header) {
  const int worker = req.worker();
  if (worker < 0 || worker >= static_cast<int>(clocks_.spec().workers))
    return Status::Ok();
  if (clocks_.Holds(worker, req.client_id(), fd)) return Status::Ok();
  const std::string peer = PeerAddress(fd, header);
  Status s = clocks_.Claim(worker, req.client_id(), fd, peer,
                           std::chrono::steady_clock::now());
  if (s.ok()) return s;
  // The holder may have closed a moment ago (a restarted worker): its
  // disconnect event is queued before its fd could be reused, so read the
  // monitor once before refusing.
  OnMonitorEvent();
  return clocks_.Claim(worker, req.client_id(), fd, peer,
                       std::chrono::steady_clock::now());
}

void ShardServer::Impl::HandleCheckpoint(const wire::Request& req,
                                         zmq::message_t& identity) {
  if (!checkpointer_) {
    SendError(identity, req.request_id(),
              Status(Code::kInvalidArgument,
                     "this shard was started without --checkpoint-dir, so "
                     "it has nowhere to write a checkpoint"));
    return;
  }
  // Each waiting request holds its identity until the checkpoint is
  // written (seconds); a bound keeps a flood of them from growing the map.
  if (checkpoint_requests_.size() >= kMaxCheckpointRequests) {
    SendError(identity, req.request_id(),
              Status(Code::kBusy,
                     "too many checkpoint requests are already waiting for "
                     "this shard; retry when they finish"));
    return;
  }
  const uint64_t token = next_checkpoint_token_++;
  zmq::message_t who;
  who.copy(identity);
  checkpoint_requests_.emplace(
      token, std::make_pair(std::move(who), req.request_id()));
  checkpointer_->Request(token);
}

void ShardServer::Impl::HandleRelease(const wire::Request& req,
                                      zmq::message_t& identity) {
  if (req.client_id() == 0) {
    SendError(identity, req.request_id(),
              Status(Code::kInvalidArgument,
                     "Release needs the client id whose slot it gives back"));
    return;
  }
  // Unknown ids (never pushed here, already released) are answered OK too:
  // the client's wish, no slot held, already holds.
  (void)client_slots_.Release(req.client_id());
  clocks_.Unclaim(req.client_id());
  SendReply(identity, OkHeader(req.request_id()), nullptr);
}

void ShardServer::Impl::FinishCheckpoints() {
  for (Checkpointer::Finished& f : checkpointer_->TakeFinished()) {
    auto it = checkpoint_requests_.find(f.token);
    if (it == checkpoint_requests_.end()) continue;
    auto& [identity, request_id] = it->second;
    if (!f.dir.ok()) {
      SendError(identity, request_id, f.dir.status());
    } else {
      // The reply's message names the checkpoint written.
      builder_.Clear();
      auto dir = builder_.CreateString(*f.dir);
      wire::ReplyBuilder reply(builder_);
      reply.add_request_id(request_id);
      reply.add_message(dir);
      builder_.Finish(reply.Finish());
      SendReply(identity, builder_, nullptr);
    }
    checkpoint_requests_.erase(it);
  }
}

void ShardServer::Impl::Reply(PendingUpdate& done) {
  if (DropPushReply()) return;
  const bool with_data = done.op == wire::Op::PushPull;
  if (with_data)
    for (const auto& m : done.out) bytes_out_ += m.size();
  SendReply(done.identity,
            OkHeader(done.request_id, with_data ? &done.blocks : nullptr),
            with_data ? &done.out : nullptr);
}

void ShardServer::Impl::HandleRows(const wire::Request& req,
                                   std::vector<zmq::message_t>& frames) {
  // Like dense requests, a refused one counts as an error only.
  if (req.op() == wire::Op::PushRows) {
    // Exactly-once: the client's slot is claimed before anything is
    // applied, so a refusal changes nothing. The push is applied here, at
    // once, so the slot is done with before the next request.
    TableService::Once once;
    const bool numbered = req.client_id() != 0 && req.seq() != 0;
    if (numbered) {
      auto claimed = client_slots_.Acquire(req.client_id(),
                                           req.retry_horizon_ms(), UnixMs());
      if (!claimed.ok()) {
        SendError(frames[0], req.request_id(), claimed.status());
        return;
      }
      once = {req.client_id(), req.seq(), *claimed, row_journal_.get()};
    }
    bool duplicate = false;
    Status s = tables_.PushRows(req, frames, numbered ? &once : nullptr,
                                &duplicate);
    if (numbered) client_slots_.PushDone(once.slot);
    if (!s.ok()) {
      SendError(frames[0], req.request_id(), s);
      return;
    }
    ++pushes_;
    if (duplicate) ++row_duplicates_;
    if (DropPushReply()) return;
    SendReply(frames[0], OkHeader(req.request_id()), nullptr);
    return;
  }
  std::vector<zmq::message_t> payload(1);
  ReplyBudget::Account* account = reply_budget_.For(frames[1].get(ZMQ_SRCFD));
  Status s = tables_.PullRows(
      req, frames,
      [this, account](size_t bytes, zmq::message_t* out) {
        SHARDPS_RETURN_IF_ERROR(
            reply_budget_.Admit(*account, reply_buffers_.Footprint(bytes)));
        *out = reply_buffers_.Message(bytes, account);
        return Status::Ok();
      },
      &payload[0]);
  if (!s.ok()) {
    SendError(frames[0], req.request_id(), s);
    return;
  }
  ++pulls_;
  bytes_out_ += payload[0].size();
  SendReply(frames[0], OkHeader(req.request_id()), &payload);
}

void ShardServer::Impl::HandleQueuePush(const wire::Request& req,
                                        std::vector<zmq::message_t>& frames) {
  QueueOnce once;
  if (req.client_id() != 0 && req.seq() != 0) {
    auto claimed = client_slots_.Acquire(req.client_id(),
                                         req.retry_horizon_ms(), UnixMs());
    if (!claimed.ok()) {
      SendError(frames[0], req.request_id(), claimed.status());
      return;
    }
    once = {req.client_id(), req.seq(), *claimed,
            &segment_->client_slot(*claimed).queue};
  }
  queues_->Push(req, frames, once, queue_reply_);
}

void ShardServer::Impl::HandleHello(const wire::Request& req,
                                    zmq::message_t& identity) {
  const SegmentHeader& h = segment_->header();
  ShardHello hello;
  hello.model = h.model;
  hello.spec_hash = h.spec_hash;
  hello.shard = h.shard_index;
  hello.shards = h.shard_count;
  hello.block_floats = h.block_floats;
  hello.optimizer = h.optimizer;
  for (uint32_t i = 0; i < segment_->num_tensors(); ++i) {
    const TensorEntry& t = segment_->tensor(i);
    hello.tensors.push_back({t.name,
                             std::vector<uint64_t>(t.shape, t.shape + t.rank),
                             t.optimizer, clip_norms_[i]});
  }
  hello.segment = segment_path_;
  hello.hostname = HostName();
  hello.segment_id = segment_->identity();
  const ConsistencySpec& c = clocks_.spec();
  hello.consistency = c.ModeName();
  hello.workers = c.workers;
  for (uint32_t w = 0; w < c.workers; ++w)
    hello.clocks.push_back(clocks_.clock_of(static_cast<int>(w)));
  for (const TableSpec& t : options_.spec.tables)
    hello.tables.push_back(
        {t.name, t.dim, t.capacity, options_.spec.OptimizerFor(t).kind});
  EncodeHelloReply(req.request_id(), hello, &builder_);
  SendReply(identity, builder_, nullptr);
}

void ShardServer::Impl::HandleStats(const wire::Request& req,
                                    zmq::message_t& identity) {
  const SegmentHeader& h = segment_->header();
  const auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_);
  const ConsistencySpec& c = clocks_.spec();
  const auto now = std::chrono::steady_clock::now();
  ShardStats stats;
  stats.shard = h.shard_index;
  stats.model = h.model;
  stats.blocks = h.num_blocks;
  stats.threads = pool_.writers();
  stats.pushes = pushes_;
  stats.pulls = pulls_;
  stats.updates_applied = h.updates_applied.load(std::memory_order_relaxed);
  stats.errors = errors_;
  stats.bytes_in = bytes_in_;
  stats.bytes_out = bytes_out_;
  stats.uptime_ms = static_cast<uint64_t>(uptime.count());
  stats.pid = ::getpid();
  stats.consistency = c.ModeName();
  stats.workers = c.workers;
  stats.applied_clock = clocks_.applied();
  for (uint32_t w = 0; w < c.workers; ++w) {
    WorkerStats ws;
    ws.clock = clocks_.clock_of(static_cast<int>(w));
    ws.state = static_cast<WorkerStats::State>(
        static_cast<uint8_t>(clocks_.state_of(static_cast<int>(w))));
    ws.idle_ms = clocks_.IdleMs(static_cast<int>(w), now);
    stats.workers_detail.push_back(ws);
  }
  stats.waiting = static_cast<uint32_t>(parked_.size());
  stats.duplicates =
      pool_.duplicates() + row_duplicates_ + queues_->duplicates();
  stats.exactly_once_clients = client_slots_.used();
  stats.auth_refusals = zap_ != nullptr ? zap_->refusals() : 0;
  EncodeStatsReply(req.request_id(), stats, &builder_);
  SendReply(identity, builder_, nullptr);
}

flatbuffers::FlatBufferBuilder& ShardServer::Impl::OkHeader(
    uint64_t request_id, const std::vector<uint32_t>* blocks) {
  builder_.Clear();
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> block_list;
  if (blocks != nullptr) block_list = builder_.CreateVector(*blocks);
  wire::ReplyBuilder reply(builder_);
  reply.add_request_id(request_id);
  if (blocks != nullptr) reply.add_blocks(block_list);
  builder_.Finish(reply.Finish());
  return builder_;
}

void ShardServer::Impl::SendError(zmq::message_t& identity, uint64_t request_id,
                                  const Status& status) {
  ++errors_;
  builder_.Clear();
  const std::string& text = status.message();
  auto message = builder_.CreateString(
      text.data(), std::min(text.size(), kMaxErrorMessageBytes));
  wire::ReplyBuilder reply(builder_);
  reply.add_request_id(request_id);
  reply.add_code(static_cast<uint8_t>(status.code()));
  reply.add_message(message);
  builder_.Finish(reply.Finish());
  SendReply(identity, builder_, nullptr);
}

void ShardServer::Impl::SendReply(zmq::message_t& identity,
                                  flatbuffers::FlatBufferBuilder& header,
                                  std::vector<zmq::message_t>* payload) {
  const bool has_payload = payload != nullptr && !payload->empty();
  try {
    socket_.send(identity, zmq::send_flags::sndmore);
    socket_.send(
        zmq::buffer(header.GetBufferPointer(), header.GetSize()),
        has_payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (has_payload) {
      for (size_t i = 0; i < payload->size(); ++i)
        socket_.send((*payload)[i], i + 1 < payload->size()
                                        ? zmq::send_flags::sndmore
                                        : zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH and friends: the client left. Its loss, not ours.
    std::fprintf(stderr, "shardps: reply dropped: %s\n", e.what());
  }
}

Result<std::unique_ptr<ShardServer>> ShardServer::Start(ServerOptions options) {
  if (options.shards == 0 || options.shard >= options.shards)
    return Status(Code::kInvalidArgument, "--shard " +
                                              std::to_string(options.shard) +
                                              " must be below --shards " +
                                              std::to_string(options.shards));
  if (options.threads == 0 || options.threads > 256)
    return Status(Code::kInvalidArgument, "--threads must be 1..256");
  if (!options.curve_secret_key.empty() &&
      !IsCurveKey(options.curve_secret_key))
    return Status(Code::kInvalidArgument,
                  "the CURVE secret key is not a 40-character Z85 key");
  SHARDPS_RETURN_IF_ERROR(CheckBindPolicy(options.listen,
                                          !options.curve_secret_key.empty(),
                                          options.allow_insecure_bind));
  SHARDPS_RETURN_IF_ERROR(ValidateModelSpec(options.spec));
  const ConsistencySpec& consistency = options.spec.consistency;
  if (consistency.waits() && consistency.workers == 0)
    return Status(Code::kInvalidArgument,
                  consistency.ModeName() +
                      " needs the number of workers: set consistency.workers "
                      "in the spec or pass --workers");
  if (options.segment_path.empty())
    options.segment_path = Segment::PathFor(
        options.spec.storage, options.spec.name, options.shard, options.shards);
  SegmentOpenReport report;
  auto segment =
      Segment::OpenForServing(options.spec, options.shard, options.shards,
                              options.segment_path, &report);
  if (!segment.ok()) return segment.status();
  // Before anything reads or writes the blocks: put back any block a crash
  // left half-updated.
  JournalReport journal_report;
  auto journal =
      UpdateJournal::Open(**segment, options.threads, &journal_report);
  if (!journal.ok()) return journal.status();
  report.journal_restored = journal_report.restored_blocks;
  report.journal_discarded = journal_report.discarded;
  std::string rows_discarded;
  auto row_journal = RowJournal::Open(**segment, &report.journal_restored_rows,
                                      &rows_discarded);
  if (!row_journal.ok()) return row_journal.status();
  if (!rows_discarded.empty())
    report.journal_discarded += (report.journal_discarded.empty() ? "" : "; ") +
                                std::string("row journal: ") + rows_discarded;
  const std::string dir =
      options.segment_path.substr(0, options.segment_path.rfind('/'));
  auto queues = QueueService::Open(dir.empty() ? "." : dir, options.queues);
  if (!queues.ok()) return queues.status();
  auto impl =
      std::make_unique<Impl>(std::move(options), std::move(segment).value(),
                             std::move(journal).value(),
                             std::move(row_journal).value(), report,
                             std::move(queues).value());
  SHARDPS_RETURN_IF_ERROR(impl->Bind());
  SHARDPS_RETURN_IF_ERROR(impl->StartCheckpoints());
  impl->Start();
  return std::unique_ptr<ShardServer>(new ShardServer(std::move(impl)));
}

ShardServer::ShardServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ShardServer::~ShardServer() = default;
void ShardServer::Stop() { impl_->Stop(); }
const std::string& ShardServer::endpoint() const { return impl_->endpoint(); }
const std::string& ShardServer::segment_path() const {
  return impl_->segment_path();
}
const SegmentOpenReport& ShardServer::open_report() const {
  return impl_->report();
}
Status ShardServer::ReloadAuthorizedKeys(const std::vector<std::string>& keys) {
  return impl_->ReloadAuthorizedKeys(keys);
}
std::string ShardServer::queue_path(const std::string& name) const {
  const std::string& seg = impl_->segment_path();
  return seg.substr(0, seg.rfind('/')) + "/" + name + ".queue";
}

}  // namespace shardps
