#include "server/replica_link.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/futex.h"
#include "common/hello_codec.h"
#include "common/seqlock.h"
#include "common/zmq_util.h"

namespace shardps {

namespace {

// Sent as the version of a block whose copy is not the shard's data (never
// received, or its write was cut off by a crash): never equal to a real one.
constexpr uint64_t kUnknownVersion = std::numeric_limits<uint64_t>::max();

// ZMTP heartbeats, so a shard host that vanished is noticed and the socket
// reconnects (and the replica re-subscribes) when it is back.
constexpr int kHeartbeatIvlMs = 2000;
constexpr int kHeartbeatTimeoutMs = 6000;

void StoreMax(std::atomic<uint64_t>& a, uint64_t v) {
  if (a.load(std::memory_order_relaxed) < v)
    a.store(v, std::memory_order_release);
}

}  // namespace

ReplicaLink::ReplicaLink(zmq::context_t& context,
                         const HostReplicaOptions& options, uint32_t shard)
    : options_(options),
      shard_(shard),
      socket_(context, zmq::socket_type::dealer) {
  stats_.shard = shard;
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::reconnect_ivl, 100);
  socket_.set(zmq::sockopt::reconnect_ivl_max, 1000);
  socket_.set(zmq::sockopt::heartbeat_ivl, kHeartbeatIvlMs);
  socket_.set(zmq::sockopt::heartbeat_timeout, kHeartbeatTimeoutMs);
  if (!options_.curve_server_key.empty()) {
    socket_.set(zmq::sockopt::curve_serverkey, options_.curve_server_key);
    socket_.set(zmq::sockopt::curve_publickey, options_.curve_public_key);
    socket_.set(zmq::sockopt::curve_secretkey, options_.curve_secret_key);
  }
  socket_.connect(options_.cluster.shards[shard].endpoint);
}

void ReplicaLink::Fail(Status status) {
  std::fprintf(stderr, "shardps replica: shard %u not mirrored: %s\n", shard_,
               status.ToString().c_str());
  error_ = std::move(status);
  phase_ = Phase::kFailed;
}

void ReplicaLink::Send(wire::Op op, const zmq::message_t* payload) {
  flatbuffers::FlatBufferBuilder b(256);
  auto model = b.CreateString(options_.cluster.model);
  const SegmentId held = fresh_ ? fresh_->source() : SegmentId{};
  wire::RequestBuilder req(b);
  req.add_op(op);
  const uint64_t id = op == wire::Op::Credit ? 0 : next_request_++;
  req.add_request_id(id);
  req.add_model(model);
  req.add_credits(op == wire::Op::Credit ? credit_owed_ : options_.credits);
  req.add_held_id_hi(held.hi);
  req.add_held_id_lo(held.lo);
  b.Finish(req.Finish());
  const bool more = payload != nullptr;
  // dontwait: while the shard is unreachable the request is dropped and
  // Tick asks again later; the replica thread never blocks on one shard.
  auto sent =
      socket_.send(zmq::buffer(b.GetBufferPointer(), b.GetSize()),
                   more ? zmq::send_flags::sndmore | zmq::send_flags::dontwait
                        : zmq::send_flags::dontwait);
  if (sent && more) {
    zmq::message_t copy;
    copy.copy(const_cast<zmq::message_t&>(*payload));
    (void)socket_.send(copy, zmq::send_flags::dontwait);
  }
  if (op != wire::Op::Credit) {
    awaiting_ = id;
    last_sent_ = std::chrono::steady_clock::now();
  }
}

void ReplicaLink::Tick(std::chrono::steady_clock::time_point now) {
  const auto quiet = options_.resubscribe_after;
  switch (phase_) {
    case Phase::kHello:
      if (awaiting_ == 0 || now - last_sent_ >= quiet)
        Send(wire::Op::Hello, nullptr);
      return;
    case Phase::kSubscribe:
    case Phase::kStreaming:
      if (phase_ == Phase::kStreaming && now - last_heard_ < quiet) return;
      if (awaiting_ != 0 && now - last_sent_ < quiet) return;
      {
        const zmq::message_t held = HeldVersions();
        Send(wire::Op::Subscribe, held.size() > 0 ? &held : nullptr);
      }
      ++stats_.subscribes;
      return;
    case Phase::kLocal:
    case Phase::kFailed:
      return;
  }
}

void ReplicaLink::Receive() {
  std::vector<zmq::message_t> frames;
  while (RecvMultipartNow(socket_, &frames)) {
    if (frames.empty()) continue;
    auto parsed = ParseReply(frames[0].data(), frames[0].size(), scratch_);
    if (!parsed.ok()) continue;  // not from a shard we understand
    last_heard_ = std::chrono::steady_clock::now();
    const wire::Reply& reply = **parsed;
    if (reply.replica() == nullptr) {
      OnReply(reply, frames);
      continue;
    }
    ++credit_owed_;
    if (!copy_ || frames.size() != 2) continue;
    if (reply.replica()->kind() == wire::StreamKind::Block) {
      OnBlock(*reply.replica(), frames[1]);
    } else {
      OnVersions(*reply.replica(), frames[1]);
    }
  }
  if (credit_owed_ > 0 && phase_ == Phase::kStreaming) {
    Send(wire::Op::Credit, nullptr);
    credit_owed_ = 0;
  }
}

void ReplicaLink::OnReply(const wire::Reply& reply,
                          std::vector<zmq::message_t>&) {
  if (reply.request_id() != awaiting_) return;  // a stale answer
  awaiting_ = 0;
  const Code code = CodeFromWire(reply.code());
  if (code != Code::kOk) {
    // Busy, full or refused for now: asked again after resubscribe_after.
    last_sent_ = std::chrono::steady_clock::now();
    awaiting_ = ~uint64_t{0};
    std::fprintf(stderr, "shardps replica: shard %u: %s\n", shard_,
                 reply.message() ? reply.message()->c_str() : "refused");
    return;
  }
  if (phase_ == Phase::kHello) {
    OnHello(reply);
  } else {
    OnSubscribed(reply);
  }
}

void ReplicaLink::OnHello(const wire::Reply& reply) {
  auto hello = DecodeHello(reply);
  if (!hello.ok()) return Fail(hello.status());
  const uint32_t shards = static_cast<uint32_t>(options_.cluster.shards.size());
  if (hello->spec_hash != SpecHash(options_.spec) || hello->shard != shard_ ||
      hello->shards != shards)
    return Fail(Status(
        Code::kSpecMismatch,
        "shard at " + options_.cluster.shards[shard_].endpoint +
            " serves shard " + std::to_string(hello->shard) + " of " +
            std::to_string(hello->shards) + " of a model with spec hash " +
            std::to_string(hello->spec_hash) +
            "; the replica's spec and "
            "cluster file say shard " +
            std::to_string(shard_) + " of " + std::to_string(shards) +
            ", hash " + std::to_string(SpecHash(options_.spec))));
  if (!options_.all_shards && !hello->segment.empty() &&
      !hello->segment_id.empty()) {
    auto here = ReadSegmentIdentity(hello->segment);
    if (here.ok() && *here == hello->segment_id) {
      phase_ = Phase::kLocal;  // trainers here map the shard's own segment
      stats_.local = true;
      return;
    }
  }
  Status opened = OpenCopy();
  if (!opened.ok()) return Fail(opened);
  stats_.mirrored = true;
  phase_ = Phase::kSubscribe;
  Tick(std::chrono::steady_clock::now());
}

Status ReplicaLink::OpenCopy() {
  const uint32_t shards = static_cast<uint32_t>(options_.cluster.shards.size());
  const std::string& model = options_.cluster.model;
  SegmentOpenReport report;
  auto copy = Segment::OpenForServing(
      options_.spec, shard_, shards,
      Segment::PathFor(options_.storage, model, shard_, shards), &report,
      Segment::TornBlocks::kKeepOdd);
  if (!copy.ok()) return copy.status();
  auto fresh = ReplicaState::OpenForWriting(
      ReplicaState::PathFor(options_.storage, model, shard_, shards),
      SpecHash(options_.spec), shard_, shards, (*copy)->num_blocks());
  if (!fresh.ok()) return fresh.status();
  copy_ = std::move(copy).value();
  fresh_ = std::move(fresh).value();
  // A block whose copy is not the shard's data (never received, or a crash
  // cut its write off: received_ns is cleared before each write) is made
  // odd, so a seqlock reader never takes it for a snapshot until the shard
  // sends it again. We hold the copy's flock: no other writer.
  for (uint32_t b = 0; b < copy_->num_blocks(); ++b) {
    if (fresh_->block(b).received_ns.load(std::memory_order_relaxed) != 0)
      continue;
    auto& seq = copy_->version(b).seq;
    const uint64_t v = seq.load(std::memory_order_relaxed);
    if ((v & 1) == 0) seq.store(v + 1, std::memory_order_release);
  }
  return Status::Ok();
}

void ReplicaLink::OnSubscribed(const wire::Reply& reply) {
  auto hello = DecodeHello(reply);
  if (!hello.ok()) return Fail(hello.status());
  ReplicaStateHeader& h = fresh_->header();
  if (hello->segment_id != fresh_->source()) {
    // Another segment (the shard was restored elsewhere, or this copy is
    // new): its versions start again, so nothing held counts. The shard
    // owes us every block (our held_id did not match).
    for (uint32_t b = 0; b < fresh_->num_blocks(); ++b) {
      BlockFreshness& f = fresh_->block(b);
      f.held.store(0, std::memory_order_relaxed);
      f.latest.store(0, std::memory_order_relaxed);
      f.received_ns.store(0, std::memory_order_release);
    }
    h.held_clock.store(-1, std::memory_order_release);
    h.source_id_hi.store(hello->segment_id.hi, std::memory_order_release);
    h.source_id_lo.store(hello->segment_id.lo, std::memory_order_release);
    pending_clock_ = -1;
  }
  phase_ = Phase::kStreaming;
  stats_.subscribed = true;
}

void ReplicaLink::OnBlock(const wire::ReplicaUpdate& u,
                          const zmq::message_t& payload) {
  const uint32_t b = u.block();
  if (b >= copy_->num_blocks() ||
      payload.size() != copy_->block(b).num_floats * sizeof(float))
    return;  // not this layout's block: ignored, never written
  BlockFreshness& f = fresh_->block(b);
  const bool was_missing =
      pending_clock_ >= 0 &&
      (f.received_ns.load(std::memory_order_relaxed) == 0 ||
       f.held.load(std::memory_order_relaxed) < pending_versions_[b]);
  // Cleared first: a crash inside the write leaves the block marked as not
  // the shard's (see OpenCopy).
  f.received_ns.store(0, std::memory_order_relaxed);
  BlockVersion& v = copy_->version(b);
  // An odd block (never received, or torn) is already "inside a write".
  if ((v.seq.load(std::memory_order_relaxed) & 1) == 0) BeginWrite(v);
  std::memcpy(copy_->block_data(b), payload.data(), payload.size());
  EndWrite(v);
  const int64_t now = MonotonicNs();
  f.held.store(u.version(), std::memory_order_release);
  StoreMax(f.latest, u.version());
  if (u.version() >= f.latest.load(std::memory_order_relaxed))
    f.behind_since_ns.store(0, std::memory_order_relaxed);
  f.received_ns.store(now, std::memory_order_release);
  fresh_->header().heard_ns.store(now, std::memory_order_relaxed);
  ++stats_.blocks_received;
  stats_.bytes_received += payload.size();
  if (was_missing && u.version() >= pending_versions_[b] && missing_ > 0)
    --missing_;
  SettleClock();
  FutexBump(fresh_->header().events);
}

void ReplicaLink::OnVersions(const wire::ReplicaUpdate& u,
                             const zmq::message_t& payload) {
  const uint32_t blocks = copy_->num_blocks();
  if (payload.size() != uint64_t{blocks} * sizeof(uint64_t)) return;
  ReplicaStateHeader& h = fresh_->header();
  const int64_t now = MonotonicNs();
  const auto* in = static_cast<const unsigned char*>(payload.data());
  std::vector<uint64_t> versions(blocks);
  uint32_t missing = 0;
  for (uint32_t b = 0; b < blocks; ++b) {
    std::memcpy(&versions[b], in + uint64_t{b} * sizeof(uint64_t),
                sizeof(uint64_t));
    BlockFreshness& f = fresh_->block(b);
    StoreMax(f.latest, versions[b]);
    const bool behind = f.received_ns.load(std::memory_order_relaxed) == 0 ||
                        f.held.load(std::memory_order_relaxed) < versions[b];
    if (behind) {
      ++missing;
      if (f.behind_since_ns.load(std::memory_order_relaxed) == 0)
        f.behind_since_ns.store(now, std::memory_order_relaxed);
    }
  }
  h.heard_ns.store(now, std::memory_order_relaxed);
  h.shard_applied_clock.store(u.applied_clock(), std::memory_order_release);
  if (u.applied_clock() >= 0 &&
      u.applied_clock() > h.held_clock.load(std::memory_order_relaxed)) {
    pending_clock_ = u.applied_clock();
    pending_versions_ = std::move(versions);
    missing_ = missing;
    SettleClock();
  }
  FutexBump(h.events);
}

void ReplicaLink::SettleClock() {
  if (pending_clock_ < 0 || missing_ > 0) return;
  fresh_->header().held_clock.store(pending_clock_, std::memory_order_release);
  stats_.held_clock = pending_clock_;
  pending_clock_ = -1;
}

zmq::message_t ReplicaLink::HeldVersions() const {
  if (!fresh_ || fresh_->source().empty()) return zmq::message_t();
  const uint32_t blocks = fresh_->num_blocks();
  zmq::message_t out(uint64_t{blocks} * sizeof(uint64_t));
  auto* p = static_cast<unsigned char*>(out.data());
  for (uint32_t b = 0; b < blocks; ++b) {
    const BlockFreshness& f = fresh_->block(b);
    const uint64_t v = f.received_ns.load(std::memory_order_relaxed) == 0
                           ? kUnknownVersion
                           : f.held.load(std::memory_order_relaxed);
    std::memcpy(p + uint64_t{b} * sizeof(v), &v, sizeof(v));
  }
  return out;
}

void ReplicaLink::Close() {
  if (fresh_) fresh_->header().replica_pid.store(0, std::memory_order_release);
  if (copy_) copy_->MarkCleanShutdown();
  fresh_.reset();
  copy_.reset();
}

}  // namespace shardps
