#include "server/replica_feed.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/futex.h"
#include "common/seqlock.h"

namespace shardps {

namespace {

// While blocks keep changing (async), a versions beacon goes out at most
// this often, so a replica learns how far behind it is without a beacon
// per push.
constexpr int64_t kBeaconIntervalNs = 20'000'000;

// How long a copy may wait for a block's writer. Writers finish an update
// in microseconds; this bounds the frontend's stall on a bug.
constexpr std::chrono::seconds kCopyDeadline{5};

// A subscriber's version of a block it may not hold (never equal to one).
constexpr uint64_t kUnknownVersion = ~uint64_t{0};

// See ReplicaFeed::ForgetSilent.
constexpr int64_t kSilentNs = 10'000'000'000;

}  // namespace

ReplicaFeed::ReplicaFeed(const Segment& segment, Send send)
    : segment_(segment), send_(std::move(send)) {}

uint64_t ReplicaFeed::VersionOf(uint32_t local_block) const {
  // A block's version is its count of updates: the even seqlock value / 2
  // (an odd value, mid-update, rounds down to the version being replaced).
  return segment_.version(local_block).seq.load(std::memory_order_acquire) / 2;
}

Status ReplicaFeed::Subscribe(const std::string& identity,
                              const wire::Request& req,
                              const zmq::message_t* held) {
  const uint32_t blocks = segment_.num_blocks();
  if (req.credits() == 0)
    return Status(Code::kInvalidArgument, "Subscribe needs credits > 0");
  if (held != nullptr && held->size() != uint64_t{blocks} * sizeof(uint64_t))
    return Status(
        Code::kInvalidArgument,
        "Subscribe's held versions are " + std::to_string(held->size()) +
            " bytes; this shard has " + std::to_string(blocks) + " blocks (" +
            std::to_string(uint64_t{blocks} * sizeof(uint64_t)) + " bytes)");
  ForgetSilent();
  if (subs_.count(identity) == 0 && subs_.size() >= kMaxSubscribers)
    return Status(Code::kResourceExhausted,
                  "this shard already streams to " +
                      std::to_string(kMaxSubscribers) +
                      " host replicas (one per host is enough)");
  const SegmentId served = segment_.identity();
  const bool same = held != nullptr && req.held_id_hi() == served.hi &&
                    req.held_id_lo() == served.lo;
  Subscriber s;
  s.window = std::min(req.credits(), kMaxCredits);
  s.credits = s.window;
  s.heard_ns = MonotonicNs();
  s.owed.assign(blocks, 1);
  s.owed_count = blocks;
  // What it holds of another segment counts for nothing: versions restart.
  s.sent.assign(blocks, kUnknownVersion);
  if (same) {
    const auto* versions = static_cast<const unsigned char*>(held->data());
    for (uint32_t b = 0; b < blocks; ++b)
      std::memcpy(&s.sent[b], versions + uint64_t{b} * sizeof(uint64_t),
                  sizeof(uint64_t));
  }
  subs_[identity] = std::move(s);
  return Status::Ok();
}

void ReplicaFeed::Credit(const std::string& identity, uint32_t credits) {
  auto it = subs_.find(identity);
  if (it == subs_.end()) return;
  Subscriber& s = it->second;
  s.heard_ns = MonotonicNs();
  s.credits = std::min(s.window, s.credits + std::min(credits, s.window));
}

void ReplicaFeed::Changed(uint32_t local_block) {
  if (subs_.empty()) return;
  const bool beacon = MonotonicNs() - last_beacon_ns_ >= kBeaconIntervalNs;
  for (auto& [id, s] : subs_) {
    if (s.owed[local_block] == 0) {
      s.owed[local_block] = 1;
      ++s.owed_count;
    }
    if (beacon) s.beacon_due = true;
  }
}

void ReplicaFeed::ClockApplied(int64_t applied_clock) {
  applied_clock_ = applied_clock;
  for (auto& [id, s] : subs_) {
    s.owed.assign(segment_.num_blocks(), 1);
    s.owed_count = segment_.num_blocks();
    s.beacon_due = true;
  }
}

void ReplicaFeed::ForgetSilent() {
  const int64_t now = MonotonicNs();
  for (auto it = subs_.begin(); it != subs_.end();)
    it =
        now - it->second.heard_ns > kSilentNs ? subs_.erase(it) : std::next(it);
}

void ReplicaFeed::Pump() {
  if (subs_.empty()) return;
  for (auto it = subs_.begin(); it != subs_.end();) {
    Sent sent = Sent::kNotNow;
    while (it->second.credits > 0 &&
           (sent = SendNext(it->first, it->second)) == Sent::kSent)
      --it->second.credits;
    it = sent == Sent::kGone ? subs_.erase(it) : std::next(it);
  }
}

ReplicaFeed::Sent ReplicaFeed::SendNext(const std::string& identity,
                                        Subscriber& s) {
  if (s.beacon_due) return SendBeacon(identity, s);
  while (s.owed_count > 0) {
    uint32_t b = s.cursor;
    while (s.owed[b] == 0) b = (b + 1) % segment_.num_blocks();
    s.cursor = (b + 1) % segment_.num_blocks();
    s.owed[b] = 0;
    --s.owed_count;
    // Owed but unchanged (a bsp clock apply that skipped a block applied
    // early, a duplicate push): it already has this version.
    if (VersionOf(b) != s.sent[b]) return SendBlock(identity, s, b);
  }
  return Sent::kNotNow;
}

ReplicaFeed::Sent ReplicaFeed::SendBeacon(const std::string& identity,
                                          Subscriber& s) {
  s.beacon_due = false;
  last_beacon_ns_ = MonotonicNs();
  const uint32_t blocks = segment_.num_blocks();
  zmq::message_t versions(uint64_t{blocks} * sizeof(uint64_t));
  auto* out = static_cast<unsigned char*>(versions.data());
  for (uint32_t b = 0; b < blocks; ++b) {
    const uint64_t v = VersionOf(b);
    std::memcpy(out + uint64_t{b} * sizeof(v), &v, sizeof(v));
  }
  builder_.Clear();
  auto update = wire::CreateReplicaUpdate(builder_, wire::StreamKind::Versions,
                                          0, 0, applied_clock_, s.owed_count);
  wire::ReplyBuilder reply(builder_);
  reply.add_replica(update);
  builder_.Finish(reply.Finish());
  return send_(identity, builder_, versions) ? Sent::kSent : Sent::kGone;
}

ReplicaFeed::Sent ReplicaFeed::SendBlock(const std::string& identity,
                                         Subscriber& s, uint32_t local) {
  const auto* cached = CachedCopy(local);
  if (cached == nullptr) {
    // A block stuck mid-update (a bug): owed again, tried next pump.
    s.owed[local] = 1;
    ++s.owed_count;
    return Sent::kNotNow;
  }
  zmq::message_t payload;
  payload.copy(const_cast<zmq::message_t&>(cached->first));
  builder_.Clear();
  auto update =
      wire::CreateReplicaUpdate(builder_, wire::StreamKind::Block, local,
                                cached->second, applied_clock_, s.owed_count);
  wire::ReplyBuilder reply(builder_);
  reply.add_replica(update);
  builder_.Finish(reply.Finish());
  const size_t bytes = payload.size();
  if (!send_(identity, builder_, payload)) return Sent::kGone;
  s.sent[local] = cached->second;
  ++blocks_sent_;
  bytes_sent_ += bytes;
  return Sent::kSent;
}

const std::pair<zmq::message_t, uint64_t>* ReplicaFeed::CachedCopy(
    uint32_t local) {
  auto hit = copies_.find(local);
  // Still this version: a writer mid-update of the next one leaves the
  // version (and so this snapshot of it) as it was.
  if (hit != copies_.end() && hit->second.second == VersionOf(local))
    return &hit->second;
  zmq::message_t copy;
  uint64_t version = 0;
  if (!CopyOf(local, &copy, &version).ok()) return nullptr;
  copies_[local] = std::make_pair(std::move(copy), version);
  // Least recently copied first; at most kCachedCopies distinct blocks.
  order_.erase(std::remove(order_.begin(), order_.end(), local), order_.end());
  order_.push_back(local);
  if (order_.size() > kCachedCopies) {
    copies_.erase(order_.front());
    order_.pop_front();
  }
  return &copies_[local];
}

Status ReplicaFeed::CopyOf(uint32_t local, zmq::message_t* out,
                           uint64_t* version) {
  const uint64_t bytes = segment_.block(local).num_floats * sizeof(float);
  zmq::message_t msg(bytes);
  uint64_t seq = 0;
  SHARDPS_RETURN_IF_ERROR(ReadConsistent(
      segment_.version(local), segment_.block_data(local), msg.data(), bytes,
      std::chrono::steady_clock::now() + kCopyDeadline, &seq));
  *out = std::move(msg);
  *version = seq / 2;
  return Status::Ok();
}

}  // namespace shardps
