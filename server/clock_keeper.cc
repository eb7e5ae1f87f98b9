#include "server/clock_keeper.h"

#include <algorithm>
#include <cstdio>

namespace shardps {

namespace {

std::string Seconds(std::chrono::steady_clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s",
                std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace

ClockKeeper::ClockKeeper(const ConsistencySpec& spec, Segment& segment)
    : spec_(spec),
      header_(segment.mutable_header()),
      workers_(spec.workers),
      claims_(spec.workers) {
  if (!bsp() || segment.num_blocks() == 0) return;
  // A crash during an apply leaves some blocks a clock ahead; the shard's
  // clock is its slowest block's, and DueApply finishes the rest.
  int64_t applied = segment.version(0).clock.load(std::memory_order_acquire);
  for (uint32_t i = 1; i < segment.num_blocks(); ++i)
    applied = std::min(
        applied, segment.version(i).clock.load(std::memory_order_acquire));
  header_.applied_clock.store(applied, std::memory_order_release);
}

Status ClockKeeper::CheckWorker(wire::Op op, int worker) const {
  if (worker >= static_cast<int>(spec_.workers) || worker < -1)
    return Status(
        Code::kInvalidArgument,
        "worker index " + std::to_string(worker) + " is out of range: this " +
            spec_.ModeName() + " model has " + std::to_string(spec_.workers) +
            " workers (0.." +
            std::to_string(static_cast<int>(spec_.workers) - 1) + ")");
  if (worker >= 0) return Status::Ok();
  if (op == wire::Op::Clock)
    return Status(Code::kInvalidArgument,
                  "Clock needs a worker index (ClientOptions::worker)");
  if (bsp() && (op == wire::Op::Push || op == wire::Op::PushPull))
    return Status(Code::kInvalidArgument,
                  "in a bsp model only workers push (set "
                  "ClientOptions::worker): a push outside the clocks would "
                  "break their exact sums");
  return Status::Ok();
}

Gate ClockKeeper::RunGate(wire::Op op, int worker, int64_t clock) const {
  if (worker < 0) return {};
  switch (spec_.mode) {
    case ConsistencySpec::Mode::kAsync:
      return {};
    case ConsistencySpec::Mode::kBsp:
      // Everything a worker does at clock c needs clock c-1 applied first.
      return {Gate::On::kApplied, clock};
    case ConsistencySpec::Mode::kSsp:
      if (op == wire::Op::Pull || op == wire::Op::PushPull)
        return {Gate::On::kMinClock,
                clock - static_cast<int64_t>(spec_.staleness)};
      return {};
  }
  return {};
}

Gate ClockKeeper::ClockReplyGate(int64_t clock) const {
  switch (spec_.mode) {
    case ConsistencySpec::Mode::kAsync:
      return {};
    case ConsistencySpec::Mode::kBsp:
      return {Gate::On::kApplied, clock + 1};
    case ConsistencySpec::Mode::kSsp:
      return {Gate::On::kMinClock,
              clock + 1 - static_cast<int64_t>(spec_.staleness)};
  }
  return {};
}

bool ClockKeeper::Passes(const Gate& gate) const {
  switch (gate.on) {
    case Gate::On::kNone:
      return true;
    case Gate::On::kApplied:
      return applied() >= gate.at_least;
    case Gate::On::kMinClock:
      return MinClock() >= gate.at_least;
  }
  return true;
}

Status ClockKeeper::CheckBspPush(int worker, int64_t clock) const {
  const int64_t mine = clock_of(worker);
  if (clock == applied() && mine == clock && applying_ < 0) return Status::Ok();
  return Status(Code::kInvalidArgument,
                "stale bsp push: worker " + std::to_string(worker) +
                    " pushed for clock " + std::to_string(clock) +
                    " but has called Clock " + std::to_string(mine) +
                    " times and the shard has applied " +
                    std::to_string(applied()) + " clocks");
}

Status ClockKeeper::RecordClock(int worker, int64_t clock) {
  const int64_t mine = clock_of(worker);
  if (clock < mine) return Status::Ok();  // a retry of a recorded Clock
  if (clock > mine)
    return Status(Code::kInvalidArgument,
                  "worker " + std::to_string(worker) + " sent Clock(" +
                      std::to_string(clock) + ") but this shard has only " +
                      std::to_string(mine) +
                      " of its clocks: a Clock call was lost");
  header_.worker_clocks[worker].store(clock + 1, std::memory_order_release);
  return Status::Ok();
}

int64_t ClockKeeper::DueApply() const {
  if (!bsp() || applying_ >= 0) return -1;
  return MinClock() > applied() ? applied() : -1;
}

void ClockKeeper::ApplyFinished(int64_t clock) {
  applying_ = -1;
  header_.applied_clock.store(clock + 1, std::memory_order_release);
}

int64_t ClockKeeper::applied() const {
  return header_.applied_clock.load(std::memory_order_acquire);
}

int64_t ClockKeeper::clock_of(int worker) const {
  return header_.worker_clocks[worker].load(std::memory_order_acquire);
}

int64_t ClockKeeper::MinClock() const {
  int64_t slowest = INT64_MAX;
  for (uint32_t w = 0; w < spec_.workers; ++w)
    slowest = std::min(slowest, clock_of(static_cast<int>(w)));
  return spec_.workers == 0 ? 0 : slowest;
}

void ClockKeeper::Seen(int worker, int fd, Time now) {
  Liveness& l = workers_[worker];
  l.state = WorkerState::kConnected;
  l.fd = fd;
  l.last_seen = now;
}

void ClockKeeper::Disconnected(int fd, Time now) {
  for (Liveness& l : workers_) {
    if (l.state == WorkerState::kConnected && l.fd == fd) {
      l.state = WorkerState::kGone;
      l.gone_at = now;
    }
  }
  for (WorkerClaim& c : claims_)
    if (c.held && c.fd == fd) c = WorkerClaim{};
}

bool ClockKeeper::Holds(int worker, uint64_t client_id, int fd) const {
  const WorkerClaim& c = claims_[worker];
  return c.held && c.client_id == client_id && c.fd == fd;
}

Status ClockKeeper::Claim(int worker, uint64_t client_id, int fd,
                          const std::string& peer, Time now) {
  if (fd < 0) return Status::Ok();
  WorkerClaim& c = claims_[worker];
  const bool same_client =
      c.held && c.client_id == client_id && (client_id != 0 || c.fd == fd);
  if (c.held && !same_client)
    return Status(
        Code::kBusy,
        "worker index " + std::to_string(worker) +
            " is already in use by another live client (" +
            (c.peer.empty() ? std::string("address unknown") : c.peer) +
            ", holding it for " + Seconds(now - c.since) +
            "): give every trainer process its own worker index, 0.." +
            std::to_string(static_cast<int>(spec_.workers) - 1) +
            ". If that process has just exited, retry: its index is freed "
            "when the shard sees its connection close (at once for a "
            "killed process, within about 15 s when its host vanished)");
  if (!c.held) {
    c.held = true;
    c.client_id = client_id;
    c.since = now;
  }
  c.fd = fd;
  c.peer = peer;
  return Status::Ok();
}

void ClockKeeper::Unclaim(uint64_t client_id) {
  if (client_id == 0) return;
  for (WorkerClaim& c : claims_)
    if (c.held && c.client_id == client_id) c = WorkerClaim{};
}

int64_t ClockKeeper::IdleMs(int worker, Time now) const {
  const Liveness& l = workers_[worker];
  if (l.state == WorkerState::kNeverSeen) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(now -
                                                               l.last_seen)
      .count();
}

std::string ClockKeeper::Laggards(const Gate& gate, Time now) const {
  std::string out;
  for (uint32_t w = 0; w < spec_.workers; ++w) {
    // Either gate opens once every worker's clock reaches at_least (bsp
    // applies clock c-1 when the last worker calls Clock(c-1)).
    const int64_t c = clock_of(static_cast<int>(w));
    if (c >= gate.at_least) continue;
    const Liveness& l = workers_[w];
    std::string state;
    switch (l.state) {
      case WorkerState::kNeverSeen:
        state = "never connected";
        break;
      case WorkerState::kConnected:
        state = "last request " + Seconds(now - l.last_seen) + " ago";
        break;
      case WorkerState::kGone:
        state = "disconnected " + Seconds(now - l.gone_at) + " ago";
        break;
    }
    out += (out.empty() ? "" : ", ") + std::string("worker ") +
           std::to_string(w) + " at clock " + std::to_string(c) + " (" + state +
           ")";
  }
  return out.empty() ? "no worker behind (an apply is still running)" : out;
}

}  // namespace shardps
