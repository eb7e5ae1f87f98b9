#include "server/shard_server.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/curve_keys.h"
#include "server/bind_policy.h"
#include "server/shard_server_impl.h"

// ShardServer's wiring: the options are checked, the segment, journals and
// queues opened, and the Impl built, bound and started. The request
// handlers live in the files shard_server_impl.h lists.

namespace shardps {

namespace {

// Idle reply buffers kept for reuse: enough for a few 64 MiB pulls in flight.
constexpr size_t kCachedReplyBytes = 256 << 20;

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

// ZMTP heartbeats: the shard PINGs every connection this often and drops
// one that sends nothing for kPeerHeartbeatTimeoutMs after a PING. A peer
// whose host vanished (no FIN, no RST: a half-open connection) is thus
// noticed within about 15 s, which frees its worker index (ClockKeeper
// claims). The peer's libzmq answers PINGs from its I/O thread, so a busy
// trainer is never dropped; a stopped (SIGSTOP) one is, and reconnects.
constexpr int kPeerHeartbeatIvlMs = 5000;
constexpr int kPeerHeartbeatTimeoutMs = 10000;

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

}  // namespace

ShardServer::Impl::Impl(ServerOptions options, std::unique_ptr<Segment> segment,
                        std::unique_ptr<UpdateJournal> journal,
                        std::unique_ptr<RowJournal> row_journal,
                        SegmentOpenReport report,
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

Status ShardServer::Impl::OpenEvents() {
  SHARDPS_RETURN_IF_ERROR(completions_.Open());
  auto stop = EventFd::Create();
  if (!stop.ok()) return stop.status();
  stop_ = std::move(stop).value();
  return Status::Ok();
}

Status ShardServer::Impl::Bind() {
  const uint64_t max_frame = MaxFrameBytes(options_, *segment_);
  const bool curve = !options_.curve_secret_key.empty();
  if (curve) {
    // The handler must exist before the bind: a CURVE socket whose context
    // has no ZAP handler admits every key.
    auto zap = ZapHandler::Start(context_, options_.authorized_keys);
    if (!zap.ok()) return zap.status();
    zap_ = std::move(zap).value();
    admission_.UseCurve(zap_.get());
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
    if (zmq_socket_monitor(socket_.handle(), monitor_address.c_str(), events) !=
        0)
      throw zmq::error_t();
    monitor_.connect(monitor_address);
  } catch (const zmq::error_t& e) {
    return Status(Code::kIoError,
                  "cannot listen on " + options_.listen + ": " + e.what());
  }
  return Status::Ok();
}

void ShardServer::Impl::Start() {
  pool_.SetFaultKillMidUpdate(options_.test_faults.kill_mid_update);
  pool_.Start();
  frontend_ = std::thread([this] {
    // A bsp apply a crash interrupted (every worker had clocked, not every
    // block was applied) is finished before anything else.
    MaybeStartBspApply();
    Loop();
  });
}

Status ShardServer::Impl::StartCheckpoints() {
  if (options_.checkpoint.root.empty()) return Status::Ok();
  checkpointer_ = std::make_unique<Checkpointer>(
      segment_path_, options_.shard, options_.shards, options_.checkpoint);
  return checkpointer_->Start();
}

void ShardServer::Impl::Stop() {
  metrics_endpoint_.reset();
  if (!frontend_.joinable()) return;
  stop_.Signal();
  frontend_.join();
  // Before the segment goes: the placer records into its queue windows.
  queues_->Stop();
  pool_.Stop();
  segment_->MarkCleanShutdown();
  // Every update is in: the last checkpoint is exact.
  if (checkpointer_) checkpointer_->Stop(/*final=*/true);
}

Status ShardServer::Impl::ReloadAuthorizedKeys(
    const std::vector<std::string>& keys) {
  if (zap_ == nullptr)
    return Status(Code::kInvalidArgument,
                  "CURVE is off on this shard: there are no authorized "
                  "keys to reload");
  return zap_->SetAuthorizedKeys(keys);
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
  auto impl = std::make_unique<Impl>(
      std::move(options), std::move(segment).value(),
      std::move(journal).value(), std::move(row_journal).value(), report,
      std::move(queues).value());
  SHARDPS_RETURN_IF_ERROR(impl->OpenEvents());
  SHARDPS_RETURN_IF_ERROR(impl->Bind());
  SHARDPS_RETURN_IF_ERROR(impl->StartCheckpoints());
  impl->Start();
  SHARDPS_RETURN_IF_ERROR(impl->StartMetrics());
  return std::unique_ptr<ShardServer>(new ShardServer(std::move(impl)));
}

ShardServer::ShardServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ShardServer::~ShardServer() = default;
void ShardServer::Stop() { impl_->Stop(); }
const std::string& ShardServer::endpoint() const { return impl_->endpoint(); }
const std::string& ShardServer::metrics_url() const {
  return impl_->metrics_url();
}
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
