#include "common/op_metrics.h"

#include "common/wire.h"

namespace shardps {

uint64_t OpMetrics::count(wire::Op op) const {
  uint64_t n = 0;
  for (const OwnedCounter& c : counts_[OpSlot(op)]) n += c.value();
  return n;
}

uint64_t OpMetrics::errors() const {
  uint64_t n = 0;
  for (const auto& by_code : counts_)
    for (size_t c = 1; c < kCodes; ++c) n += by_code[c].value();
  return n;
}

void OpMetrics::Collect(const Names& names, MetricFamilies& out) const {
  const auto always = [](size_t o) {
    const auto op = static_cast<wire::Op>(o);
    return op == wire::Op::Push || op == wire::Op::Pull ||
           op == wire::Op::PushPull || op == wire::Op::Clock;
  };
  for (size_t o = 0; o < kOps; ++o) {
    const std::string op = o + 1 < kOps
                               ? MetricOpLabel(OpName(static_cast<wire::Op>(o)))
                               : std::string("other");
    // Names the protocol reserves but no version serves.
    if (op == "unknown_op" || op == "barrier") continue;
    for (size_t c = 0; c < kCodes; ++c) {
      const uint64_t n = counts_[o][c].value();
      if (n == 0 && !(c == 0 && always(o))) continue;
      out.Counter(
          names.count, names.count_help, static_cast<double>(n),
          {{"op", op}, {"code", MetricCodeLabel(static_cast<Code>(c))}});
    }
    const LatencyHistogram::Snapshot s = latency_[o].Read();
    if (s.count == 0 && !always(o)) continue;
    out.Histogram(names.duration, names.duration_help, s, {{"op", op}});
  }
}

}  // namespace shardps
