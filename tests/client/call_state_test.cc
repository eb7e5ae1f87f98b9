#include "client/call_state.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <thread>

namespace shardps::client_internal {
namespace {

using Catch::Matchers::Contains;
using Clock = CallState::Clock;
using State = ShardOutcome::State;

auto Later() { return Clock::now() + std::chrono::seconds(30); }

TEST_CASE("CallState is done when every part is, with the first error",
          "[call_state]") {
  CallState call(3, Later());
  CHECK_FALSE(call.Done());
  call.PartDone(Status::Ok());
  call.PartDone(Status(Code::kNotFound, "first"));
  CHECK_FALSE(call.Done());
  CHECK(call.WaitUntil(Clock::now()).code() == Code::kTimeout);
  call.PartDone(Status(Code::kInternal, "second"));
  REQUIRE(call.Done());
  const Status s = call.Wait();
  CHECK(s.code() == Code::kNotFound);
  CHECK(s.message() == "first");
}

TEST_CASE("CallState WaitUntil gives up while parts are left", "[call_state]") {
  CallState call(1, Later());
  const Status s = call.WaitUntil(Clock::now() + std::chrono::milliseconds(20));
  CHECK(s.code() == Code::kTimeout);
  CHECK(s.message() == "call still running");
  CHECK_FALSE(call.Done());
}

TEST_CASE("CallState Wait returns once another thread finishes the call",
          "[call_state]") {
  CallState call(2, Later());
  std::thread io([&call] {
    call.PartDone(Status::Ok());
    call.PartDone(Status::Ok());
  });
  const Status s = call.Wait();
  io.join();
  CHECK(s.ok());
}

TEST_CASE("CallState Wait ends by itself after the deadline and its grace",
          "[call_state]") {
  // A part the I/O thread never finishes: Wait must not block forever.
  CallState call(1, Clock::now() - std::chrono::seconds(5));
  const Status s = call.Wait();
  CHECK(s.code() == Code::kTimeout);
}

TEST_CASE("CallState is not done while ZeroMQ holds a borrowed frame",
          "[call_state]") {
  auto call = std::make_shared<CallState>(1, Later());
  call->FrameHeld();
  // As the I/O thread hands a frame to ZeroMQ: the hint owns a reference.
  auto* hint = new std::shared_ptr<CallState>(call);
  call->PartDone(Status(Code::kTimeout, "no answer"));
  CHECK_FALSE(call->Done());
  CHECK(call->WaitUntil(Clock::now()).code() == Code::kTimeout);
  CallState::ReleaseFrame(nullptr, hint);  // takes and frees the hint
  REQUIRE(call->Done());
  CHECK(call->Wait().message() == "no answer");
  CHECK(call.use_count() == 1);
}

TEST_CASE("CallState ignores parts reported after the call failed whole",
          "[call_state]") {
  CallState call(1, Later());
  call.PartDone(Status(Code::kUnavailable, "client closed"));
  call.PartDone(Status(Code::kInternal, "late"));  // must not underflow
  REQUIRE(call.Done());
  CHECK(call.Wait().message() == "client closed");
}

TEST_CASE("CallState names where a push split over shards was applied",
          "[call_state]") {
  CallState call(3, Later());
  call.ReportShards("push of 'w'");
  call.PartDone(Status(Code::kTimeout, "slow"), 2, State::kUnknown);
  CHECK(call.outcomes().empty());  // not done yet
  call.PartDone(Status::Ok(), 0, State::kApplied);
  call.PartDone(Status(Code::kBusy, "busy"), 1, State::kNotApplied);
  REQUIRE(call.Done());
  const Status s = call.Wait();
  CHECK(s.code() == Code::kTimeout);  // the first error's code
  CHECK_THAT(s.message(), Contains("push of 'w' not applied on shard 1 ("));
  CHECK_THAT(s.message(), Contains("maybe applied on shard 2 ("));
  CHECK_THAT(s.message(),
             Contains("applied on shard 0; retrying the whole push may apply "
                      "it twice there"));
  const auto outcomes = call.outcomes();
  REQUIRE(outcomes.size() == 3);
  for (uint32_t i = 0; i < 3; ++i) CHECK(outcomes[i].shard == i);
  CHECK(outcomes[0].state == State::kApplied);
  CHECK(outcomes[1].state == State::kNotApplied);
  CHECK(outcomes[2].state == State::kUnknown);
}

TEST_CASE("CallState keeps a single shard's error as it is", "[call_state]") {
  CallState call(1, Later());
  call.ReportShards("push of 'w'");
  call.PartDone(Status(Code::kBusy, "busy"), 0, State::kNotApplied);
  CHECK(call.Wait().message() == "busy");
  REQUIRE(call.outcomes().size() == 1);
}

TEST_CASE("Handle of a call waits on it; an empty one has failed",
          "[call_state]") {
  auto state = std::make_shared<CallState>(1, Later());
  const Handle handle = HandleAccess::Make(state);
  CHECK_FALSE(handle.Done());
  CHECK(handle.WaitFor(std::chrono::milliseconds(0)).code() == Code::kTimeout);
  state->PartDone(Status::Ok());
  CHECK(handle.Done());
  CHECK(handle.Wait().ok());
  const Handle empty;
  CHECK(empty.Done());
  CHECK(empty.Wait().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace shardps::client_internal

namespace shardps::client_internal {
namespace {

// A gate that passes once `open` is set; counts its runs.
struct TestGate {
  std::atomic<bool> open{false};
  std::atomic<int> runs{0};
  CallState::Gate Make() {
    return [this](Clock::time_point) {
      ++runs;
      return open ? Status::Ok() : Status(Code::kTimeout, "gate closed");
    };
  }
};

TEST_CASE("CallState with a gate is done only once the gate passes",
          "[call_state]") {
  TestGate gate;
  CallState call(1, Later());
  call.SetGate(gate.Make());
  CHECK_FALSE(call.Done());
  CHECK(gate.runs == 0);  // not before the parts
  call.PartDone(Status::Ok());
  CHECK_FALSE(call.Done());
  const Status waiting = call.WaitUntil(Clock::now());
  CHECK(waiting.code() == Code::kTimeout);
  CHECK_THAT(waiting.message(), Contains("gate closed"));
  gate.open = true;
  CHECK(call.Done());
  const int runs = gate.runs;
  CHECK(call.Wait().ok());
  CHECK(gate.runs == runs);  // passed once, remembered
}

TEST_CASE(
    "CallState gate failing at the deadline fails the call; a failed "
    "part skips it",
    "[call_state]") {
  TestGate gate;
  CallState late(1, Clock::now());  // its deadline has passed
  late.SetGate(gate.Make());
  late.PartDone(Status::Ok());
  CHECK(late.Done());
  const Status s = late.Wait();
  CHECK(s.code() == Code::kTimeout);
  CHECK(s.message() == "gate closed");

  TestGate unused;
  CallState failed(1, Later());
  failed.SetGate(unused.Make());
  failed.PartDone(Status(Code::kUnavailable, "shard gone"));
  CHECK(failed.Done());
  CHECK(failed.Wait().code() == Code::kUnavailable);
  CHECK(unused.runs == 0);
}

}  // namespace
}  // namespace shardps::client_internal
