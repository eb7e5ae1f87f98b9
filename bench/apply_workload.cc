// apply workload: the server's in-place update bandwidth over a real
// segment, against memcpy and a plain `w -= lr * g` loop over the same
// memory. Bytes counted: weights read + gradient read + weights written.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench/cluster.h"
#include "bench/workloads.h"
#include "common/optimizers.h"
#include "common/segment.h"
#include "common/seqlock.h"

namespace shardps::bench {

namespace {

using Clock = std::chrono::steady_clock;

// Repeats `pass` for about `seconds`; returns passes per second.
template <typename Pass>
double PassesPerSecond(double seconds, Pass pass) {
  pass();  // warm caches and TLB
  const auto begin = Clock::now();
  int passes = 0;
  double elapsed = 0;
  do {
    pass();
    ++passes;
    elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  } while (elapsed < seconds);
  return passes / elapsed;
}

// Keeps the compiler from proving a loop's result unused.
void Consume(const float* p) { asm volatile("" : : "r"(p) : "memory"); }

}  // namespace

Status RunApply(const SuiteOptions& o, Report* report) {
  auto dir = MakeTempDir();
  if (!dir.ok()) return dir.status();
  ModelSpec spec;
  spec.name = "apply";
  spec.storage = *dir;
  spec.optimizer.lr = 1e-6;
  TensorSpec tensor;
  tensor.name = "t";
  tensor.shape = {o.apply_floats};
  spec.tensors.push_back(tensor);
  SegmentOpenReport open_report;
  auto seg = Segment::OpenForServing(
      spec, 0, 1, Segment::PathFor(*dir, "apply", 0, 1), &open_report);
  if (!seg.ok()) {
    RemoveTree(*dir);
    return seg.status();
  }
  Segment& s = **seg;
  std::vector<float> grad(spec.block_floats, 1e-3f);
  std::vector<float> sink(spec.block_floats);
  const uint64_t bytes_moved = o.apply_floats * sizeof(float);
  std::fprintf(stderr, "apply: %llu floats in %u blocks\n",
               static_cast<unsigned long long>(o.apply_floats), s.num_blocks());

  const double memcpy_rate = PassesPerSecond(o.seconds, [&] {
    for (uint32_t b = 0; b < s.num_blocks(); ++b) {
      std::memcpy(sink.data(), s.block_data(b),
                  s.block(b).num_floats * sizeof(float));
      Consume(sink.data());
    }
  });
  const double plain_rate = PassesPerSecond(o.seconds, [&] {
    for (uint32_t b = 0; b < s.num_blocks(); ++b) {
      float* w = s.block_data(b);
      const uint64_t n = s.block(b).num_floats;
      for (uint64_t i = 0; i < n; ++i) w[i] -= 1e-6f * grad[i];
      Consume(w);
    }
  });
  // Exactly what an update-pool thread does per block: the server's own
  // kernel inside the block's seqlock.
  OptimizerParams sgd;
  sgd.lr = 1e-6f;
  const double sgd_rate = PassesPerSecond(o.seconds, [&] {
    for (uint32_t b = 0; b < s.num_blocks(); ++b) {
      BeginWrite(s.version(b));
      ApplyUpdate(OptimizerKind::kSgd, sgd, 1, s.block_data(b), grad.data(),
                  nullptr, s.block(b).num_floats);
      EndWrite(s.version(b));
      s.mutable_header().updates_applied.fetch_add(1,
                                                   std::memory_order_relaxed);
    }
  });
  const double memcpy_gbps = memcpy_rate * 2 * bytes_moved / 1e9;
  const double plain_gbps = plain_rate * 3 * bytes_moved / 1e9;
  const double sgd_gbps = sgd_rate * 3 * bytes_moved / 1e9;
  const std::vector<std::pair<std::string, std::string>> config = {
      {"floats", std::to_string(o.apply_floats)}, {"threads", "1"}};
  report->Add({"apply", "memcpy", config, memcpy_gbps, "GB/s", 0, "", ""});
  report->Add({"apply", "sgd", config, sgd_gbps, "GB/s", plain_gbps,
               "plain w-=lr*g loop", ""});
  report->Add({"apply", "sgd", config, sgd_gbps, "GB/s", memcpy_gbps,
               "memcpy (read+write)", ""});
  seg->reset();
  RemoveTree(*dir);
  return Status::Ok();
}

}  // namespace shardps::bench
