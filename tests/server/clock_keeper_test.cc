// ClockKeeper: the gates of async, bsp and ssp:S over a real segment's
// clocks, the Clock bookkeeping (retries, lost clocks), the bsp apply
// hand-shake, the explanation of a stuck gate, and worker claims.
#include "server/clock_keeper.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "common/segment.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;
using std::chrono::milliseconds;

// A shard of a 3-block tensor, so the bsp clock is read from several blocks.
class Shard {
 public:
  Shard(ConsistencySpec::Mode mode, uint32_t workers, uint32_t staleness = 0)
      : dir_("/dev/shm") {
    spec_ = test::MakeSpec("clocks", dir_.path(), {{"w", {3000}}});
    spec_.consistency.mode = mode;
    spec_.consistency.workers = workers;
    spec_.consistency.staleness = staleness;
    REQUIRE(ValidateModelSpec(spec_).ok());
    Reopen();
  }

  // Closes the segment (keeper first) and opens it again, as a restarted
  // server does.
  void Reopen() {
    keeper_.reset();
    segment_.reset();
    segment_ = test::OpenServing(spec_, 0, 1, dir_.File("s.seg"));
    keeper_ = std::make_unique<ClockKeeper>(spec_.consistency, *segment_);
  }

  ClockKeeper& keeper() { return *keeper_; }
  Segment& segment() { return *segment_; }

 private:
  test::TempDir dir_;
  ModelSpec spec_;
  std::unique_ptr<Segment> segment_;
  std::unique_ptr<ClockKeeper> keeper_;
};

void RequireError(const Status& s, Code code, const std::string& fragment) {
  INFO(s.ToString());
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == code);
  CHECK_THAT(s.message(), Contains(fragment));
}

bool Same(const Gate& a, Gate::On on, int64_t at_least) {
  return a.on == on && (on == Gate::On::kNone || a.at_least == at_least);
}

const ClockKeeper::Time kT0{};

TEST_CASE("ClockKeeper in async mode never makes a request wait",
          "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kAsync, 0);
  ClockKeeper& k = shard.keeper();
  for (wire::Op op : {wire::Op::Push, wire::Op::PushPull, wire::Op::Pull}) {
    CHECK(Same(k.RunGate(op, -1, 0), Gate::On::kNone, 0));
    CHECK(k.CheckWorker(op, -1).ok());
  }
  CHECK(Same(k.ClockReplyGate(7), Gate::On::kNone, 0));
  CHECK(k.MinClock() == 0);  // no workers at all
  CHECK(k.DueApply() == -1);
  // Clock needs a worker, and an async model without workers has none.
  RequireError(k.CheckWorker(wire::Op::Clock, -1), Code::kInvalidArgument,
               "Clock needs a worker index");
  RequireError(k.CheckWorker(wire::Op::Push, 0), Code::kInvalidArgument,
               "has 0 workers");
}

TEST_CASE("ClockKeeper refuses worker indices out of range", "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kBsp, 2);
  ClockKeeper& k = shard.keeper();
  CHECK(k.CheckWorker(wire::Op::Push, 0).ok());
  CHECK(k.CheckWorker(wire::Op::Clock, 1).ok());
  RequireError(k.CheckWorker(wire::Op::Pull, 2), Code::kInvalidArgument,
               "worker index 2 is out of range: this bsp model has 2 "
               "workers (0..1)");
  RequireError(k.CheckWorker(wire::Op::Pull, -2), Code::kInvalidArgument,
               "worker index -2 is out of range");
  // A tool may pull a bsp model, but not push into its exact sums.
  CHECK(k.CheckWorker(wire::Op::Pull, -1).ok());
  CHECK(Same(k.RunGate(wire::Op::Pull, -1, 99), Gate::On::kNone, 0));
  RequireError(k.CheckWorker(wire::Op::Push, -1), Code::kInvalidArgument,
               "only workers push");
  RequireError(k.CheckWorker(wire::Op::PushPull, -1), Code::kInvalidArgument,
               "only workers push");
}

TEST_CASE("ClockKeeper in bsp applies clock c once every worker called Clock",
          "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kBsp, 2);
  ClockKeeper& k = shard.keeper();
  REQUIRE(k.applied() == 0);

  // Clock 0: both workers may push and pull now.
  const Gate push0 = k.RunGate(wire::Op::Push, 0, 0);
  CHECK(Same(push0, Gate::On::kApplied, 0));
  CHECK(k.Passes(push0));
  CHECK(k.CheckBspPush(0, 0).ok());
  RequireError(k.CheckBspPush(0, 1), Code::kInvalidArgument,
               "stale bsp push: worker 0 pushed for clock 1");

  // Worker 0 finishes clock 0; its reply waits for the apply of clock 0.
  REQUIRE(k.RecordClock(0, 0).ok());
  CHECK(k.clock_of(0) == 1);
  CHECK(k.MinClock() == 0);
  const Gate reply = k.ClockReplyGate(0);
  CHECK(Same(reply, Gate::On::kApplied, 1));
  CHECK_FALSE(k.Passes(reply));
  CHECK(k.DueApply() == -1);  // worker 1 has not called Clock(0)
  // Worker 0 already clocked: a push of its for clock 0 is late.
  RequireError(k.CheckBspPush(0, 0), Code::kInvalidArgument,
               "has called Clock 1 times and the shard has applied 0");
  // Its next pull waits for clock 0's apply.
  const Gate pull1 = k.RunGate(wire::Op::Pull, 0, 1);
  CHECK(Same(pull1, Gate::On::kApplied, 1));
  CHECK_FALSE(k.Passes(pull1));

  // The retry of a recorded Clock is accepted and changes nothing; a Clock
  // ahead of the recorded one means one was lost.
  CHECK(k.RecordClock(0, 0).ok());
  CHECK(k.clock_of(0) == 1);
  RequireError(k.RecordClock(0, 2), Code::kInvalidArgument,
               "sent Clock(2) but this shard has only 1 of its clocks");
  CHECK(k.clock_of(0) == 1);

  // The last worker's Clock makes clock 0 due.
  REQUIRE(k.RecordClock(1, 0).ok());
  CHECK(k.MinClock() == 1);
  REQUIRE(k.DueApply() == 0);
  k.ApplyStarted(0);
  CHECK(k.DueApply() == -1);  // one apply at a time
  CHECK_FALSE(k.Passes(reply));
  // While clock 0 is being applied, no push for clock 1 may be summed.
  RequireError(k.CheckBspPush(1, 1), Code::kInvalidArgument, "stale bsp push");
  CHECK_THAT(k.Laggards(reply, kT0),
             Contains("no worker behind (an apply is still running)"));

  k.ApplyFinished(0);
  CHECK(k.applied() == 1);
  CHECK(shard.segment().header().applied_clock.load() == 1);
  CHECK(k.Passes(reply));
  CHECK(k.Passes(pull1));
  CHECK(k.DueApply() == -1);
  CHECK(k.CheckBspPush(0, 1).ok());
  CHECK(k.CheckBspPush(1, 1).ok());
}

TEST_CASE(
    "ClockKeeper keeps bsp clocks across a restart and takes the "
    "slowest block's",
    "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kBsp, 2);
  {
    ClockKeeper& k = shard.keeper();
    for (int64_t c = 0; c < 3; ++c) {
      REQUIRE(k.RecordClock(0, c).ok());
      REQUIRE(k.RecordClock(1, c).ok());
      REQUIRE(k.DueApply() == c);
      k.ApplyStarted(c);
      for (uint32_t b = 0; b < shard.segment().num_blocks(); ++b)
        shard.segment().version(b).clock.store(c + 1);
      k.ApplyFinished(c);
    }
    REQUIRE(k.RecordClock(0, 3).ok());
    REQUIRE(k.RecordClock(1, 3).ok());
    // A crash half-way through applying clock 3: block 1 was not reached.
    REQUIRE(k.DueApply() == 3);
    k.ApplyStarted(3);
    REQUIRE(shard.segment().num_blocks() == 3);
    shard.segment().version(0).clock.store(4);
    shard.segment().version(2).clock.store(4);
  }
  shard.Reopen();
  ClockKeeper& k = shard.keeper();
  CHECK(k.clock_of(0) == 4);
  CHECK(k.clock_of(1) == 4);
  CHECK(k.applied() == 3);
  // So the restarted shard finishes clock 3 (the pool skips the blocks that
  // have it already).
  CHECK(k.DueApply() == 3);
}

TEST_CASE("ClockKeeper in ssp lets a worker run at most S clocks ahead",
          "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kSsp, 2, /*staleness=*/1);
  ClockKeeper& k = shard.keeper();
  // Pushes never wait; pulls wait for the slowest to be within S.
  CHECK(Same(k.RunGate(wire::Op::Push, 0, 5), Gate::On::kNone, 0));
  CHECK(k.CheckWorker(wire::Op::Push, -1).ok());  // ssp allows tools' pushes
  const Gate pull1 = k.RunGate(wire::Op::Pull, 0, 1);
  CHECK(Same(pull1, Gate::On::kMinClock, 0));
  CHECK(k.Passes(pull1));
  const Gate pull2 = k.RunGate(wire::Op::PushPull, 0, 2);
  CHECK(Same(pull2, Gate::On::kMinClock, 1));

  REQUIRE(k.RecordClock(0, 0).ok());
  REQUIRE(k.RecordClock(0, 1).ok());
  CHECK(k.clock_of(0) == 2);
  CHECK(k.MinClock() == 0);
  CHECK_FALSE(k.Passes(pull2));
  // Worker 0's Clock(1) reply waits until it is at most S ahead again.
  const Gate reply = k.ClockReplyGate(1);
  CHECK(Same(reply, Gate::On::kMinClock, 1));
  CHECK_FALSE(k.Passes(reply));
  CHECK(k.DueApply() == -1);  // ssp never applies accumulated sums

  REQUIRE(k.RecordClock(1, 0).ok());
  CHECK(k.MinClock() == 1);
  CHECK(k.Passes(pull2));
  CHECK(k.Passes(reply));
}

TEST_CASE("ClockKeeper names the workers that hold a gate shut",
          "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kSsp, 3, /*staleness=*/0);
  ClockKeeper& k = shard.keeper();
  CHECK(k.state_of(1) == ClockKeeper::WorkerState::kNeverSeen);
  CHECK(k.IdleMs(1, kT0) == -1);
  k.Seen(0, /*fd=*/10, kT0);
  k.Seen(1, /*fd=*/11, kT0);
  REQUIRE(k.RecordClock(0, 0).ok());
  CHECK(k.state_of(0) == ClockKeeper::WorkerState::kConnected);
  CHECK(k.IdleMs(1, kT0 + milliseconds(1500)) == 1500);

  k.Disconnected(11, kT0 + milliseconds(1000));
  CHECK(k.state_of(1) == ClockKeeper::WorkerState::kGone);
  CHECK(k.state_of(0) == ClockKeeper::WorkerState::kConnected);

  const Gate gate = k.ClockReplyGate(0);  // every clock >= 1
  CHECK(k.Laggards(gate, kT0 + milliseconds(4100)) ==
        "worker 1 at clock 0 (disconnected 3.1 s ago), "
        "worker 2 at clock 0 (never connected)");
  k.Seen(2, 12, kT0 + milliseconds(4000));
  CHECK_THAT(k.Laggards(gate, kT0 + milliseconds(4500)),
             Contains("worker 2 at clock 0 (last request 0.5 s ago)"));
  CHECK_THAT(k.Laggards(gate, kT0), !Contains("worker 0"));
}

TEST_CASE("ClockKeeper gives each worker index to one live client",
          "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kBsp, 2);
  ClockKeeper& k = shard.keeper();
  const std::string peer = "10.0.0.7:4242";
  REQUIRE(k.Claim(0, /*client=*/11, /*fd=*/5, peer, kT0).ok());
  CHECK(k.Holds(0, 11, 5));
  CHECK_FALSE(k.Holds(0, 11, 6));
  CHECK_FALSE(k.Holds(0, 12, 5));
  CHECK_FALSE(k.Holds(1, 11, 5));
  // Claiming again is idempotent.
  REQUIRE(k.Claim(0, 11, 5, peer, kT0 + milliseconds(10)).ok());

  // Another client is refused, told who holds it and for how long.
  const Status busy = k.Claim(0, 12, 6, "10.0.0.8:1", kT0 + milliseconds(2000));
  RequireError(busy, Code::kBusy, "worker index 0 is already in use");
  CHECK_THAT(busy.message(), Contains("10.0.0.7:4242, holding it for 2.0 s"));
  CHECK_THAT(busy.message(), Contains("0..1"));
  CHECK(k.Claim(1, 12, 6, "10.0.0.8:1", kT0).ok());

  // The holder reconnects on a new fd and keeps its index; the old
  // connection closing afterwards no longer frees it.
  REQUIRE(k.Claim(0, 11, 9, peer, kT0).ok());
  CHECK(k.Holds(0, 11, 9));
  CHECK_FALSE(k.Holds(0, 11, 5));
  k.Disconnected(5, kT0);
  CHECK(k.Holds(0, 11, 9));
  CHECK(k.Claim(0, 12, 6, "", kT0).code() == Code::kBusy);

  // Its connection closing frees the index.
  k.Disconnected(9, kT0);
  CHECK_FALSE(k.Holds(0, 11, 9));
  REQUIRE(k.Claim(0, 12, 6, "", kT0).ok());
  // A clean Release frees every index the client holds.
  k.Unclaim(12);
  CHECK_FALSE(k.Holds(0, 12, 6));
  CHECK_FALSE(k.Holds(1, 12, 6));
  CHECK(k.Claim(0, 13, 7, "", kT0).ok());
  CHECK(k.Claim(1, 14, 8, "", kT0).ok());
}

TEST_CASE("ClockKeeper tells anonymous clients apart by their connection",
          "[clock_keeper]") {
  Shard shard(ConsistencySpec::Mode::kBsp, 2);
  ClockKeeper& k = shard.keeper();
  REQUIRE(k.Claim(0, /*client=*/0, /*fd=*/3, "", kT0).ok());
  CHECK(k.Holds(0, 0, 3));
  // Client id 0 on another connection is another client.
  const Status busy = k.Claim(0, 0, 4, "", kT0);
  CHECK(busy.code() == Code::kBusy);
  CHECK_THAT(busy.message(), Contains("address unknown"));
  // Unclaim names a client by id; 0 names nobody.
  k.Unclaim(0);
  CHECK(k.Holds(0, 0, 3));
  k.Disconnected(3, kT0);
  CHECK(k.Claim(0, 0, 4, "", kT0).ok());
  // Without connections (fd < 0) claims are not enforced, nor recorded.
  CHECK(k.Claim(1, 20, -1, "", kT0).ok());
  CHECK(k.Claim(1, 21, -1, "", kT0).ok());
  CHECK_FALSE(k.Holds(1, 20, -1));
}

}  // namespace
}  // namespace shardps
