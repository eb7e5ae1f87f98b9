#include "server/client_slots.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "common/segment.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;  // unix ms
constexpr int64_t kHorizon = 2000;

std::unique_ptr<Segment> OpenShard(const std::string& storage) {
  ModelSpec spec = test::MakeSpec("slots", storage, {{"w", {100}, "zeros", 0}});
  REQUIRE(ValidateModelSpec(spec).ok());
  return test::OpenServing(spec, 0, 1, storage + "/shard.seg");
}

// What most cases start from: a fresh one-shard segment and its slots.
struct SlotsTest {
  test::TempDir dir;
  std::unique_ptr<Segment> seg = OpenShard(dir.path());
  ClientSlots slots{*seg};
};

// Gives `count` clients first, first + 1, ... a slot each (by default every
// slot to clients 1..kDedupeSlots), each with one push done.
void Fill(ClientSlots& slots, int64_t horizon_ms, int64_t now_ms,
          uint64_t first = 1, uint64_t count = kDedupeSlots) {
  for (uint64_t c = first; c < first + count; ++c) {
    INFO("client " << c);
    auto slot = slots.Acquire(c, horizon_ms, now_ms);
    REQUIRE(slot.ok());
    slots.PushDone(*slot);
  }
}

TEST_CASE_METHOD(
    SlotsTest, "ClientSlots refuses a new client while every client can retry",
    "[client_slots]") {
  Fill(slots, kHorizon, kNow);
  CHECK(slots.used() == kDedupeSlots);
  const int64_t expiry = kNow + kHorizon + kRetryHorizonMarginMs;
  auto refused = slots.Acquire(999, kHorizon, expiry);
  CHECK(refused.status().code() == Code::kResourceExhausted);
  CHECK(refused.status().message().find("frees up in 1 s") !=
        std::string::npos);
  // Known clients keep their slots meanwhile.
  auto again = slots.Acquire(5, kHorizon, expiry);
  REQUIRE(again.ok());
  slots.PushDone(*again);
  // One ms past the horizon and margin of client 1's last push, no retry of
  // it can arrive: its slot goes to the new client, the refreshed one stays.
  auto taken = slots.Acquire(999, kHorizon, expiry + 1);
  REQUIRE(taken.ok());
  CHECK(seg->client_slot(*taken).client_id.load() == 999);
  CHECK(seg->client_slot(*taken).retry_horizon_ms.load() == kHorizon);
  CHECK(slots.used() == kDedupeSlots);
  CHECK(*slots.Acquire(5, kHorizon, expiry + 1) == *again);
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots caps the retry horizon a client claims",
                 "[client_slots]") {
  // 0 (an old client that does not say) and too long both mean the cap.
  Fill(slots, 0, kNow);
  auto slot = slots.Acquire(1, int64_t{1} << 40, kNow);
  REQUIRE(slot.ok());
  slots.PushDone(*slot);
  CHECK(seg->client_slot(*slot).retry_horizon_ms.load() == kMaxRetryHorizonMs);
  const int64_t expiry = kNow + kMaxRetryHorizonMs + kRetryHorizonMarginMs;
  CHECK(!slots.Acquire(999, kHorizon, expiry).ok());
  CHECK(slots.Acquire(999, kHorizon, expiry + 1).ok());
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots frees a released slot once its pushes are done",
                 "[client_slots]") {
  Fill(slots, kMaxRetryHorizonMs, kNow);
  // Client 7 has a push still being applied when it releases.
  auto busy = slots.Acquire(7, kMaxRetryHorizonMs, kNow);
  REQUIRE(busy.ok());
  CHECK(slots.Release(7));
  CHECK(seg->client_slot(*busy).client_id.load() == 7);
  CHECK(!slots.Acquire(999, kHorizon, kNow).ok());
  slots.PushDone(*busy);
  CHECK(seg->client_slot(*busy).client_id.load() == 0);
  CHECK(slots.used() == kDedupeSlots - 1);
  auto taken = slots.Acquire(999, kHorizon, kNow);
  REQUIRE(taken.ok());
  CHECK(*taken == *busy);
  // A release of an id that holds no slot changes nothing.
  slots.PushDone(*taken);
  CHECK(!slots.Release(7));
  CHECK(!slots.Release(123456));
  CHECK(slots.used() == kDedupeSlots);
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots never expires a slot with a push in flight",
                 "[client_slots]") {
  Fill(slots, kHorizon, kNow);
  // Every client starts another push and none finishes.
  for (uint64_t c = 1; c <= kDedupeSlots; ++c)
    REQUIRE(slots.Acquire(c, kHorizon, kNow).ok());
  auto refused = slots.Acquire(999, kHorizon, kNow + 3600 * 1000);
  CHECK(refused.status().code() == Code::kResourceExhausted);
}

TEST_CASE("ClientSlots keep their clients and horizons across a restart",
          "[client_slots]") {
  test::TempDir dir;
  uint32_t slot = 0;
  {
    auto seg = OpenShard(dir.path());
    ClientSlots slots(*seg);
    Fill(slots, kHorizon, kNow);
    auto s = slots.Acquire(3, kHorizon, kNow);
    REQUIRE(s.ok());
    slot = *s;
  }
  auto seg = OpenShard(dir.path());
  ClientSlots slots(*seg);
  CHECK(slots.used() == kDedupeSlots);
  CHECK(*slots.Acquire(3, kHorizon, kNow + 1) == slot);
  // The restarted server counts from the stored last pushes.
  CHECK(!slots.Acquire(999, kHorizon, kNow + kHorizon).ok());
  CHECK(
      slots.Acquire(999, kHorizon, kNow + kHorizon + kRetryHorizonMarginMs + 1)
          .ok());
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots keep the longest retry horizon a client has sent",
                 "[client_slots]") {
  Fill(slots, kHorizon, kNow);
  // Client 4 sends one push with a long horizon, then one with a short
  // one: a retry of the first may still come until the long one ends.
  uint32_t fours = 0;
  for (int64_t horizon : {4 * kHorizon, kHorizon}) {
    auto slot = slots.Acquire(4, horizon, kNow);
    REQUIRE(slot.ok());
    slots.PushDone(*slot);
    fours = *slot;
    CHECK(seg->client_slot(*slot).retry_horizon_ms.load() == 4 * kHorizon);
  }
  // Every other slot expires first; client 4's slot is the last to go.
  const int64_t short_expiry = kNow + kHorizon + kRetryHorizonMarginMs + 1;
  Fill(slots, kHorizon, short_expiry, 1000, kDedupeSlots - 1);
  auto refused = slots.Acquire(5000, kHorizon, short_expiry);
  CHECK(refused.status().code() == Code::kResourceExhausted);
  CHECK(*slots.Acquire(4, kHorizon, short_expiry) == fours);
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots keep a slot whose client pushes again after its "
                 "release",
                 "[client_slots]") {
  auto first = slots.Acquire(9, kHorizon, kNow);
  REQUIRE(first.ok());
  REQUIRE(slots.Release(9));  // freed once the push is done...
  auto late = slots.Acquire(9, kHorizon, kNow + 1);  // ...but it pushes again
  REQUIRE(late.ok());
  CHECK(*late == *first);
  slots.PushDone(*first);
  slots.PushDone(*late);
  CHECK(seg->client_slot(*first).client_id.load() == 9);
  CHECK(slots.used() == 1);
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots ignore a PushDone without a push in flight",
                 "[client_slots]") {
  Fill(slots, kHorizon, kNow);
  slots.PushDone(kDedupeSlots + 5);  // no such slot
  slots.PushDone(0);                 // nothing in flight there
  // Nothing wrapped around: every slot still expires on time.
  const int64_t expiry = kNow + kHorizon + kRetryHorizonMarginMs + 1;
  Fill(slots, kHorizon, expiry, 1000);
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots count from now a last push stamped in the future",
                 "[client_slots]") {
  // Pushes stamped an hour ahead, then the clock is stepped back.
  const int64_t ahead = kNow + 3600 * 1000;
  Fill(slots, kHorizon, ahead);
  CHECK(!slots.Acquire(999, kHorizon, kNow).ok());
  for (uint32_t i = 0; i < kDedupeSlots; ++i)
    CHECK(seg->client_slot(i).last_seen_ms.load() == kNow);
  // So the slots free up one horizon after now, not after the old stamps.
  CHECK(
      slots.Acquire(999, kHorizon, kNow + kHorizon + kRetryHorizonMarginMs + 1)
          .ok());
}

TEST_CASE_METHOD(
    SlotsTest,
    "ClientSlots say when a slot frees up if every client is pushing",
    "[client_slots]") {
  for (uint64_t c = 1; c <= kDedupeSlots; ++c)
    REQUIRE(slots.Acquire(c, kHorizon, kNow).ok());
  auto refused = slots.Acquire(999, kHorizon, kNow);
  CHECK(refused.status().code() == Code::kResourceExhausted);
  CHECK(refused.status().message().find("when one of their pushes finishes") !=
        std::string::npos);
  CHECK(slots.used() == kDedupeSlots);
}

TEST_CASE_METHOD(SlotsTest,
                 "ClientSlots give a client whose slot was taken a new one",
                 "[client_slots]") {
  auto old = slots.Acquire(1, kHorizon, kNow);
  REQUIRE(old.ok());
  slots.PushDone(*old);
  // Client 1 went silent past its horizon; the only other client takes
  // slots until the table is full, reusing client 1's.
  const int64_t later = kNow + kHorizon + kRetryHorizonMarginMs + 1;
  Fill(slots, kHorizon, later, 2);
  CHECK(seg->client_slot(*old).client_id.load() != 1);
  CHECK_FALSE(slots.Release(1));  // it holds nothing now
  // Client 1 coming back is a new client: it waits for a free slot.
  CHECK(slots.Acquire(1, kHorizon, later).status().code() ==
        Code::kResourceExhausted);
}

}  // namespace
}  // namespace shardps
