#include "server/shard_metrics.h"

#include <string>

#include "common/wire.h"

namespace shardps {

ShardMetrics::ShardMetrics(uint32_t workers) : workers_(workers) {}

void ShardMetrics::CountReply(wire::Op op, Code code, uint64_t start_ns) {
  const size_t o = std::min(static_cast<size_t>(op), kOps - 1);
  const size_t c = std::min(static_cast<size_t>(code), kCodes - 1);
  replies_[o][c].Add();
  if (start_ns != 0) latency_[o].ObserveNs(MetricNowNs() - start_ns);
}

uint64_t ShardMetrics::replies(wire::Op op) const {
  const size_t o = std::min(static_cast<size_t>(op), kOps - 1);
  uint64_t n = 0;
  for (const OwnedCounter& c : replies_[o]) n += c.value();
  return n;
}

uint64_t ShardMetrics::error_replies() const {
  uint64_t n = 0;
  for (const auto& by_code : replies_)
    for (size_t c = 1; c < kCodes; ++c) n += by_code[c].value();
  return n;
}

void ShardMetrics::CollectRequests(MetricFamilies& out) const {
  // Ops a worker uses always appear (so rate() works from the first
  // scrape); others once they were seen.
  const auto always = [](size_t o) {
    const auto op = static_cast<wire::Op>(o);
    return op == wire::Op::Push || op == wire::Op::Pull ||
           op == wire::Op::PushPull || op == wire::Op::Clock;
  };
  for (size_t o = 0; o < kOps; ++o) {
    const std::string op =
        o + 1 < kOps ? MetricOpLabel(OpName(static_cast<wire::Op>(o)))
                     : std::string("other");
    if (op == "unknown_op" || op == "barrier") continue;  // never served
    for (size_t c = 0; c < kCodes; ++c) {
      const uint64_t n = replies_[o][c].value();
      if (n == 0 && !(c == 0 && always(o))) continue;
      out.Counter("shardps_requests_total",
                  "Requests answered, by operation and result code.",
                  static_cast<double>(n),
                  {{"op", op}, {"code", MetricCodeLabel(static_cast<Code>(c))}});
    }
    const LatencyHistogram::Snapshot s = latency_[o].Read();
    if (s.count == 0 && !always(o)) continue;
    out.Histogram("shardps_request_duration_seconds",
                  "Time from a request's arrival to its reply, as the "
                  "shard sees it (bsp/ssp waits included).",
                  s, {{"op", op}});
  }
}

}  // namespace shardps
