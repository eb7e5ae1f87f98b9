// UpdatePool: steps applied in place in a real segment, inline for writer
// 0's blocks and on the owning pool thread for the others, in submission
// order per block, every one before Stop returns; exactly-once skips, bsp
// accumulation, 16-bit and scaled gradients.
//
// Weights start at 1 and gradients are small multiples of 1/8, so every
// expected value is exact in float32 and compared with ==.
#include "server/update_pool.h"

#include <poll.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/dedupe_window.h"
#include "common/segment.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

constexpr uint32_t kBlocks = 6;
constexpr uint64_t kFloats = 1024;  // per block (MakeSpec's block size)
constexpr float kLr = 0.5f;

class Pool {
 public:
  explicit Pool(uint32_t writers,
                ConsistencySpec::Mode mode = ConsistencySpec::Mode::kAsync)
      : dir_("/dev/shm") {
    spec_ = test::MakeSpec("pool", dir_.path(),
                           {{"w", {kBlocks * kFloats}, "constant:1"}}, kLr);
    if (mode == ConsistencySpec::Mode::kBsp) {
      spec_.consistency.mode = mode;
      spec_.consistency.workers = 2;
    }
    REQUIRE(ValidateModelSpec(spec_).ok());
    segment_ = test::OpenServing(spec_, 0, 1, dir_.File("s.seg"));
    REQUIRE(segment_->num_blocks() == kBlocks);
    JournalReport journal_report;
    auto journal = UpdateJournal::Open(*segment_, writers, &journal_report);
    INFO(journal.status().ToString());
    REQUIRE(journal.ok());
    journal_ = std::move(journal).value();
    REQUIRE(done_.Open().ok());
    pool_ = std::make_unique<UpdatePool>(*segment_, spec_, *journal_, done_,
                                         writers);
  }

  UpdatePool& pool() { return *pool_; }
  Segment& segment() { return *segment_; }
  CompletionQueue& done() { return done_; }

  std::vector<float> Weights(uint32_t block) const {
    const float* w = segment_->block_data(block);
    return std::vector<float>(w, w + kFloats);
  }

  // Completions until `want` have arrived, in arrival order; fails the test
  // after 10 s without them.
  std::vector<PendingUpdate*> WaitDone(size_t want) {
    std::vector<PendingUpdate*> got, batch;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got.size() < want) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      pollfd p{done_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      done_.Drain(&batch);
      got.insert(got.end(), batch.begin(), batch.end());
    }
    return got;
  }

 private:
  test::TempDir dir_;
  ModelSpec spec_;
  std::unique_ptr<Segment> segment_;
  std::unique_ptr<UpdateJournal> journal_;
  CompletionQueue done_;
  std::unique_ptr<UpdatePool> pool_;  // last: stopped first
};

BlockTask Task(uint32_t block, const void* grad, PendingUpdate* owner,
               void* out = nullptr) {
  BlockTask t{};
  t.block = block;
  t.grad = grad;
  t.dtype = wire::DType::F32;
  t.out = out;
  t.owner = owner;
  return t;
}

std::vector<float> Filled(float v) { return std::vector<float>(kFloats, v); }

TEST_CASE("UpdatePool applies writer 0's block inline, in place",
          "[update_pool]") {
  Pool p(1);
  for (uint32_t b = 0; b < kBlocks; ++b) CHECK(p.pool().IsInline(b));
  std::vector<float> grad(kFloats), out(kFloats, -7);
  for (uint64_t i = 0; i < kFloats; ++i) grad[i] = 0.125f * (i % 5);
  PendingUpdate owner;
  owner.remaining = 1;
  p.pool().ApplyInline(Task(2, grad.data(), &owner, out.data()));

  const std::vector<float> w = p.Weights(2);
  for (uint64_t i = 0; i < kFloats; ++i) {
    INFO("float " << i);
    REQUIRE(w[i] == 1 - kLr * grad[i]);
  }
  CHECK(out == w);  // a PushPull gets the updated block
  CHECK(p.segment().version(2).seq.load() == 2);  // one step, seqlock even
  CHECK(p.segment().header().updates_applied.load() == 1);
  for (uint32_t b : {0u, 1u, 3u}) CHECK(p.Weights(b) == Filled(1));
  // The frontend settles inline blocks itself: nothing counted, nothing
  // queued.
  CHECK(owner.remaining.load() == 1);
  std::vector<PendingUpdate*> done;
  p.done().Drain(&done);
  CHECK(done.empty());
  CHECK(p.pool().duplicates() == 0);
}

TEST_CASE(
    "UpdatePool gives each block to its writer and reports a request "
    "done once",
    "[update_pool][concurrency]") {
  Pool p(3);
  // Block b belongs to writer b % 3: 0 and 3 are the frontend's.
  for (uint32_t b = 0; b < kBlocks; ++b)
    CHECK(p.pool().IsInline(b) == (b % 3 == 0));
  p.pool().Start();
  const std::vector<float> grad = Filled(0.25f);
  PendingUpdate owner;
  owner.remaining = 4;
  for (uint32_t b : {1u, 2u, 4u, 5u})
    p.pool().Submit(Task(b, grad.data(), &owner));
  const std::vector<PendingUpdate*> done = p.WaitDone(1);
  REQUIRE(done.size() == 1);
  CHECK(done[0] == &owner);
  CHECK(owner.remaining.load() == 0);
  // The completion publishes every block's writes to this thread.
  for (uint32_t b : {1u, 2u, 4u, 5u}) {
    CHECK(p.Weights(b) == Filled(1 - kLr * 0.25f));
    CHECK(p.segment().version(b).seq.load() == 2);
  }
  for (uint32_t b : {0u, 3u}) CHECK(p.Weights(b) == Filled(1));
  std::vector<PendingUpdate*> more;
  p.done().Drain(&more);
  CHECK(more.empty());
  p.pool().Stop();
}

TEST_CASE("UpdatePool applies one block's updates in submission order",
          "[update_pool][concurrency]") {
  Pool p(2);
  p.pool().Start();
  constexpr int kPushes = 20;
  std::vector<std::vector<float>> grads, outs(kPushes, Filled(0));
  std::vector<PendingUpdate> owners(kPushes);
  for (int k = 0; k < kPushes; ++k) grads.push_back(Filled(k + 1));
  for (int k = 0; k < kPushes; ++k) {
    owners[k].remaining = 1;
    p.pool().Submit(Task(1, grads[k].data(), &owners[k], outs[k].data()));
  }
  const std::vector<PendingUpdate*> done = p.WaitDone(kPushes);
  REQUIRE(done.size() == kPushes);
  float w = 1;
  for (int k = 0; k < kPushes; ++k) {
    INFO("push " << k);
    w -= kLr * (k + 1);
    CHECK(done[k] == &owners[k]);  // finished in the order submitted
    CHECK(outs[k] == Filled(w));   // and saw exactly the pushes before it
  }
  CHECK(p.Weights(1) == Filled(w));
  CHECK(p.segment().version(1).seq.load() == 2 * kPushes);
}

TEST_CASE("UpdatePool applies every task submitted before Stop",
          "[update_pool][concurrency]") {
  Pool p(3);
  p.pool().Start();
  constexpr uint32_t kPerBlock = 100;
  const std::vector<float> grad = Filled(0.125f);
  PendingUpdate owner;
  owner.remaining = 2 * kPerBlock;
  for (uint32_t k = 0; k < kPerBlock; ++k) {
    p.pool().Submit(Task(1, grad.data(), &owner));
    p.pool().Submit(Task(5, grad.data(), &owner));
  }
  p.pool().Stop();  // no wait before: Stop itself must drain the queues
  CHECK(owner.remaining.load() == 0);
  for (uint32_t b : {1u, 5u}) {
    CHECK(p.segment().version(b).seq.load() == 2 * kPerBlock);
    CHECK(p.Weights(b) == Filled(1 - kPerBlock * kLr * 0.125f));
  }
  std::vector<PendingUpdate*> done;
  p.done().Drain(&done);
  REQUIRE(done.size() == 1);
  CHECK(done[0] == &owner);
  p.pool().Stop();  // a second Stop is harmless
}

TEST_CASE("UpdatePool applies an exactly-once push once per block",
          "[update_pool]") {
  Pool p(1);
  constexpr uint32_t kSlot = 3;
  const std::vector<float> grad = Filled(0.5f);
  std::vector<float> out(kFloats);
  PendingUpdate owner;
  BlockTask t = Task(0, grad.data(), &owner, out.data());
  t.client = 77;
  t.slot = kSlot;
  t.seq = 1;
  p.pool().ApplyInline(t);
  const std::vector<float> once = Filled(1 - kLr * 0.5f);
  REQUIRE(p.Weights(0) == once);
  CHECK(DedupeSeen(p.segment().dedupe_window(0, kSlot), 77, 1));
  CHECK(p.pool().duplicates() == 0);

  // The retry is skipped, but a PushPull still gets the block.
  std::fill(out.begin(), out.end(), 0.0f);
  p.pool().ApplyInline(t);
  CHECK(p.Weights(0) == once);
  CHECK(out == once);
  CHECK(p.pool().duplicates() == 1);
  CHECK(p.segment().version(0).seq.load() == 2);

  // The same push to another block is that block's first.
  t.block = 1;
  p.pool().ApplyInline(t);
  CHECK(p.Weights(1) == once);
  // The next number applies.
  t.block = 0;
  t.seq = 2;
  p.pool().ApplyInline(t);
  const std::vector<float> twice = Filled(1 - 2 * kLr * 0.5f);
  CHECK(p.Weights(0) == twice);
  // A new client given the slot starts a window of its own: its push 1 is
  // not taken for the old client's.
  t.client = 78;
  t.seq = 1;
  p.pool().ApplyInline(t);
  CHECK(p.Weights(0) == Filled(1 - 3 * kLr * 0.5f));
  CHECK(p.pool().duplicates() == 1);
}

TEST_CASE("UpdatePool in bsp sums gradients, then steps once per clock",
          "[update_pool]") {
  Pool p(2, ConsistencySpec::Mode::kBsp);
  p.pool().Start();
  Segment& seg = p.segment();
  const std::vector<float> g1 = Filled(0.25f), g2 = Filled(0.5f);
  PendingUpdate owner;
  owner.remaining = 2;  // block 1's two tasks; block 0's are inline
  for (const std::vector<float>* g : {&g1, &g2}) {
    for (uint32_t b : {0u, 1u}) {
      BlockTask t = Task(b, g->data(), &owner);
      t.kind = BlockTask::Kind::kAccumulate;
      if (p.pool().IsInline(b)) {
        p.pool().ApplyInline(t);
      } else {
        p.pool().Submit(t);
      }
    }
  }
  REQUIRE(p.WaitDone(1).size() == 1);
  for (uint32_t b : {0u, 1u}) {
    INFO("block " << b);
    // Readers see nothing change until the clock's apply.
    CHECK(p.Weights(b) == Filled(1));
    CHECK(seg.version(b).seq.load() == 0);
    CHECK(std::vector<float>(seg.accum_data(b), seg.accum_data(b) + kFloats) ==
          Filled(0.75f));
  }

  // The mean over 2 workers: scale 1/2.
  BlockTask apply = Task(0, nullptr, &owner);
  apply.kind = BlockTask::Kind::kApplyAccumulated;
  apply.scale = 0.5f;
  apply.clock = 0;
  p.pool().ApplyInline(apply);
  const std::vector<float> stepped = Filled(1 - kLr * 0.375f);
  CHECK(p.Weights(0) == stepped);
  CHECK(std::vector<float>(seg.accum_data(0), seg.accum_data(0) + kFloats) ==
        Filled(0));
  CHECK(seg.version(0).clock.load() == 1);
  CHECK(seg.version(0).seq.load() == 2);
  // Applying clock 0 again (a restart finishing an apply) skips the block.
  p.pool().ApplyInline(apply);
  CHECK(p.Weights(0) == stepped);
  CHECK(seg.version(0).seq.load() == 2);
  CHECK(seg.version(0).clock.load() == 1);
  // Block 1 has not had its apply: still waiting with its sum.
  CHECK(seg.version(1).clock.load() == 0);
  CHECK(p.Weights(1) == Filled(1));
}

TEST_CASE("UpdatePool widens 16-bit gradients and applies the clip scale",
          "[update_pool]") {
  Pool p(1);
  PendingUpdate owner;
  SECTION("binary16") {
    const std::vector<uint16_t> half(kFloats, 0x3c00);  // 1.0
    BlockTask t = Task(0, half.data(), &owner);
    t.dtype = wire::DType::F16;
    p.pool().ApplyInline(t);
    CHECK(p.Weights(0) == Filled(1 - kLr * 1.0f));
    t.scale = 0.25f;
    p.pool().ApplyInline(t);
    CHECK(p.Weights(0) == Filled(1 - kLr * 1.25f));
  }
  SECTION("bfloat16") {
    const std::vector<uint16_t> bf(kFloats, 0x4000);  // 2.0
    BlockTask t = Task(0, bf.data(), &owner);
    t.dtype = wire::DType::BF16;
    t.scale = 0.25f;
    p.pool().ApplyInline(t);
    CHECK(p.Weights(0) == Filled(1 - kLr * 0.5f));
  }
  SECTION("float32 at an odd address, as ZeroMQ may hand it") {
    std::vector<char> bytes(kFloats * sizeof(float) + 1);
    const std::vector<float> g = Filled(0.75f);
    std::memcpy(bytes.data() + 1, g.data(), kFloats * sizeof(float));
    BlockTask t = Task(0, bytes.data() + 1, &owner);
    p.pool().ApplyInline(t);
    CHECK(p.Weights(0) == Filled(1 - kLr * 0.75f));
    t.scale = 0.5f;
    p.pool().ApplyInline(t);
    CHECK(p.Weights(0) == Filled(1 - kLr * 0.75f - kLr * 0.375f));
  }
}

}  // namespace
}  // namespace shardps
