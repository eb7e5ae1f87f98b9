#include "cli/top_frame.h"

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>

namespace shardps::cli {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kBounds =
    sizeof(kLatencyBoundsSeconds) / sizeof(kLatencyBoundsSeconds[0]);

// printf into a std::string, cut to the frame's width.
std::string Line(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Line(const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  std::string line(buffer);
  if (line.size() > kTopWidth) line.resize(kTopWidth);
  return line;
}

uint64_t Delta(uint64_t before, uint64_t after) {
  return after >= before ? after - before : 0;
}

// What changed on one shard between two samples of the same server process.
struct ShardRates {
  bool valid = false;  // false: rates unknown (first sample, restart, down)
  double seconds = 0;
  double pushes = kNaN, pulls = kNaN, bytes_in = kNaN, bytes_out = kNaN;
  double errors = kNaN, replica_bytes = kNaN;
  double apply_mean = kNaN, apply_p99 = kNaN;
  double push_latency = kNaN, pull_latency = kNaN;
};

double MeanLatency(const LatencyStats& before, const LatencyStats& after) {
  const uint64_t n = Delta(before.count, after.count);
  if (n == 0) return kNaN;
  return std::max(0.0, after.seconds - before.seconds) / static_cast<double>(n);
}

ShardRates RatesOf(const ShardSample* before, const ShardSample& after,
                   double elapsed_s) {
  ShardRates r;
  if (before == nullptr || !before->status.ok() || !after.status.ok()) return r;
  const ShardStats& a = before->stats;
  const ShardStats& b = after.stats;
  // Another process (a restart) starts its counters from zero.
  if (a.pid != b.pid || b.uptime_ms < a.uptime_ms) return r;
  // The shard's own clock brackets exactly what it counted; this process's
  // clock also holds the round trips.
  r.seconds = b.uptime_ms > a.uptime_ms
                  ? static_cast<double>(b.uptime_ms - a.uptime_ms) / 1000.0
                  : elapsed_s;
  if (r.seconds <= 0) return r;
  r.valid = true;
  const auto rate = [&](uint64_t x, uint64_t y) {
    return static_cast<double>(Delta(x, y)) / r.seconds;
  };
  r.pushes = rate(a.pushes, b.pushes);
  r.pulls = rate(a.pulls, b.pulls);
  r.bytes_in = rate(a.bytes_in, b.bytes_in);
  r.bytes_out = rate(a.bytes_out, b.bytes_out);
  r.errors = rate(a.errors, b.errors);
  r.replica_bytes = rate(a.replica_bytes, b.replica_bytes);
  r.apply_mean = MeanLatency(a.apply, b.apply);
  r.apply_p99 = LatencyQuantile(a.apply.buckets, b.apply.buckets, 0.99);
  r.push_latency = MeanLatency(a.push_latency, b.push_latency);
  r.pull_latency = MeanLatency(a.pull_latency, b.pull_latency);
  return r;
}

std::string FormatMegabytes(double bytes_per_second) {
  if (std::isnan(bytes_per_second)) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", bytes_per_second / 1e6);
  return text;
}

std::string FormatUptime(uint64_t ms) {
  const uint64_t s = ms / 1000;
  char text[32];
  if (s < 120)
    std::snprintf(text, sizeof(text), "%" PRIu64 "s", s);
  else if (s < 2 * 3600)
    std::snprintf(text, sizeof(text), "%" PRIu64 "m%02" PRIu64 "s", s / 60,
                  s % 60);
  else
    std::snprintf(text, sizeof(text), "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
                  (s / 60) % 60);
  return text;
}

const char* StateName(WorkerStats::State state) {
  switch (state) {
    case WorkerStats::State::kNeverSeen:
      return "never seen";
    case WorkerStats::State::kConnected:
      return "connected";
    case WorkerStats::State::kGone:
      return "gone";
  }
  return "?";
}

const ShardSample* Find(const std::vector<ShardSample>& samples,
                        uint32_t shard) {
  for (const ShardSample& s : samples)
    if (s.shard == shard) return &s;
  return nullptr;
}

void AddShards(const FrameInput& in, const std::vector<ShardRates>& rates,
               std::vector<std::string>* out) {
  out->push_back(Line("%-5s %8s %8s %8s %8s %7s %7s %8s %6s", "shard", "push/s",
                      "pull/s", "in MB/s", "out MB/s", "apply", "p99",
                      "errors/s", "parked"));
  for (size_t i = 0; i < in.current.size(); ++i) {
    const ShardSample& s = in.current[i];
    if (!s.status.ok()) {
      // The reason on a line of its own, so that it fits.
      out->push_back(Line("%-5u DOWN  %s", s.shard, s.endpoint.c_str()));
      out->push_back(Line("      %s", s.status.ToString().c_str()));
      continue;
    }
    const ShardRates& r = rates[i];
    out->push_back(Line(
        "%-5u %8s %8s %8s %8s %7s %7s %8s %6u", s.shard,
        FormatRate(r.pushes).c_str(), FormatRate(r.pulls).c_str(),
        FormatMegabytes(r.bytes_in).c_str(),
        FormatMegabytes(r.bytes_out).c_str(),
        FormatSeconds(r.apply_mean).c_str(), FormatSeconds(r.apply_p99).c_str(),
        FormatRate(r.errors).c_str(), s.stats.waiting));
  }
}

void AddPeers(const FrameInput& in, const std::vector<ShardRates>& rates,
              std::vector<std::string>* out) {
  out->push_back(Line("%-5s %7s %8s %8s %8s %11s %8s", "shard", "clients",
                      "push lat", "pull lat", "replicas", "stream MB/s",
                      "uptime"));
  for (size_t i = 0; i < in.current.size(); ++i) {
    const ShardSample& s = in.current[i];
    if (!s.status.ok()) continue;
    const ShardRates& r = rates[i];
    out->push_back(Line("%-5u %7u %8s %8s %8u %11s %8s", s.shard,
                        s.stats.connected_clients,
                        FormatSeconds(r.push_latency).c_str(),
                        FormatSeconds(r.pull_latency).c_str(), s.stats.replicas,
                        FormatMegabytes(r.replica_bytes).c_str(),
                        FormatUptime(s.stats.uptime_ms).c_str()));
  }
}

// Workers as every shard that answered sees them: the clock range over the
// shards, clocks behind the fastest worker, and the best state any shard
// has (connected anywhere, else gone anywhere, else never seen).
void AddWorkers(const FrameInput& in, std::vector<std::string>* out) {
  uint32_t workers = 0;
  for (const ShardSample& s : in.current)
    if (s.status.ok())
      workers = std::max<uint32_t>(
          workers, static_cast<uint32_t>(s.stats.workers_detail.size()));
  if (workers == 0) return;
  struct Row {
    int64_t lo = INT64_MAX, hi = INT64_MIN, idle_ms = -1;
    WorkerStats::State state = WorkerStats::State::kNeverSeen;
  };
  std::vector<Row> rows(workers);
  int64_t fastest = INT64_MIN;
  for (const ShardSample& s : in.current) {
    if (!s.status.ok()) continue;
    for (size_t w = 0; w < s.stats.workers_detail.size(); ++w) {
      const WorkerStats& ws = s.stats.workers_detail[w];
      Row& row = rows[w];
      row.lo = std::min(row.lo, ws.clock);
      row.hi = std::max(row.hi, ws.clock);
      fastest = std::max(fastest, ws.clock);
      if (ws.idle_ms >= 0 && (row.idle_ms < 0 || ws.idle_ms < row.idle_ms))
        row.idle_ms = ws.idle_ms;
      if (ws.state == WorkerStats::State::kConnected ||
          (ws.state == WorkerStats::State::kGone &&
           row.state == WorkerStats::State::kNeverSeen))
        row.state = ws.state;
    }
  }
  out->push_back("");
  out->push_back(Line("%-6s %13s %6s %-11s %7s", "worker", "clock", "stale",
                      "state", "idle s"));
  size_t shown = 0;
  for (uint32_t w = 0; w < workers; ++w) {
    const Row& row = rows[w];
    if (row.lo == INT64_MAX) continue;
    if (shown == kTopMaxWorkerRows) {
      // Past the limit, name the slowest of the rest: the one others wait
      // for.
      uint32_t slowest = w;
      for (uint32_t v = w; v < workers; ++v)
        if (rows[v].lo < rows[slowest].lo) slowest = v;
      out->push_back(
          Line("... %u more workers; the slowest of them: worker "
               "%u at clock %" PRId64,
               workers - w, slowest, rows[slowest].lo));
      break;
    }
    ++shown;
    const std::string clock = row.lo == row.hi ? std::to_string(row.lo)
                                               : std::to_string(row.lo) + ".." +
                                                     std::to_string(row.hi);
    char idle[32] = "-";
    if (row.idle_ms >= 0)
      std::snprintf(idle, sizeof(idle), "%.1f",
                    static_cast<double>(row.idle_ms) / 1000.0);
    out->push_back(Line("%-6u %13s %6" PRId64 " %-11s %7s", w, clock.c_str(),
                        fastest - row.lo, StateName(row.state), idle));
  }
}

void AddQueues(const FrameInput& in, std::vector<std::string>* out) {
  bool any = false;
  for (const ShardSample& s : in.current)
    if (s.status.ok() && !s.stats.queues.empty()) any = true;
  if (!any) return;
  out->push_back("");
  out->push_back(Line("%-5s %-16s %11s %8s %8s %8s %8s %6s", "shard", "queue",
                      "depth/slots", "prod/s", "cons/s", "blocked", "starved",
                      "closed"));
  for (const ShardSample& s : in.current) {
    if (!s.status.ok()) continue;
    const ShardSample* before = Find(in.previous, s.shard);
    const ShardRates r = RatesOf(before, s, in.elapsed_s);
    for (const HostedQueueStats& q : s.stats.queues) {
      const HostedQueueStats* was = nullptr;
      if (r.valid)
        for (const HostedQueueStats& p : before->stats.queues)
          if (p.name == q.name) was = &p;
      double produced = kNaN, consumed = kNaN, blocked = kNaN, starved = kNaN;
      if (was != nullptr) {
        produced =
            static_cast<double>(Delta(was->produced, q.produced)) / r.seconds;
        consumed =
            static_cast<double>(Delta(was->consumed, q.consumed)) / r.seconds;
        // Seconds waited per second: with several producers waiting at
        // once it passes 100%.
        blocked =
            std::max(0.0, q.producer_blocked_s - was->producer_blocked_s) /
            r.seconds * 100.0;
        starved =
            std::max(0.0, q.consumer_starved_s - was->consumer_starved_s) /
            r.seconds * 100.0;
      }
      const std::string depth =
          std::to_string(q.queued) + "/" + std::to_string(q.slots);
      char blocked_text[16] = "-", starved_text[16] = "-";
      if (!std::isnan(blocked))
        std::snprintf(blocked_text, sizeof(blocked_text), "%.0f%%", blocked);
      if (!std::isnan(starved))
        std::snprintf(starved_text, sizeof(starved_text), "%.0f%%", starved);
      out->push_back(Line("%-5u %-16.16s %11s %8s %8s %8s %8s %6s", s.shard,
                          q.name.c_str(), depth.c_str(),
                          FormatRate(produced).c_str(),
                          FormatRate(consumed).c_str(), blocked_text,
                          starved_text, q.closed ? "yes" : "no"));
    }
  }
}

}  // namespace

double LatencyQuantile(const std::vector<uint64_t>& before,
                       const std::vector<uint64_t>& after, double q) {
  if (after.size() != kBounds + 1 ||
      (!before.empty() && before.size() != after.size()))
    return kNaN;
  std::vector<uint64_t> counts(after.size());
  uint64_t total = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    counts[i] = Delta(before.empty() ? 0 : before[i], after[i]);
    total += counts[i];
  }
  if (total == 0) return kNaN;
  const double rank = q * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    if (static_cast<double>(below + counts[i]) >= rank) {
      if (i == kBounds) return std::numeric_limits<double>::infinity();
      const double lo = i == 0 ? 0.0 : kLatencyBoundsSeconds[i - 1];
      const double hi = kLatencyBoundsSeconds[i];
      const double within =
          (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
      return lo + (hi - lo) * std::clamp(within, 0.0, 1.0);
    }
    below += counts[i];
  }
  return std::numeric_limits<double>::infinity();
}

std::string FormatRate(double per_second) {
  if (std::isnan(per_second)) return "-";
  char text[32];
  if (per_second < 1000)
    std::snprintf(text, sizeof(text), "%.1f", per_second);
  else if (per_second < 1e6)
    std::snprintf(text, sizeof(text), "%.1fk", per_second / 1e3);
  else
    std::snprintf(text, sizeof(text), "%.1fM", per_second / 1e6);
  return text;
}

std::string FormatSeconds(double seconds) {
  if (std::isnan(seconds)) return "-";
  if (std::isinf(seconds)) return ">10s";
  char text[32];
  if (seconds < 1e-3)
    std::snprintf(text, sizeof(text), "%.0fus", seconds * 1e6);
  else if (seconds < 1)
    std::snprintf(text, sizeof(text), "%.1fms", seconds * 1e3);
  else
    std::snprintf(text, sizeof(text), "%.2fs", seconds);
  return text;
}

std::vector<std::string> RenderTopFrame(const FrameInput& in) {
  std::vector<std::string> out;
  size_t up = 0;
  std::string consistency;
  for (const ShardSample& s : in.current)
    if (s.status.ok()) {
      ++up;
      if (consistency.empty()) consistency = s.stats.consistency;
    }
  out.push_back(
      Line("shardps top  model %s  %zu shards, %zu up  %s  every "
           "%.1fs  %s",
           in.model.c_str(), in.current.size(), up, consistency.c_str(),
           in.interval_s, in.time_text.c_str()));
  out.push_back("");
  std::vector<ShardRates> rates;
  for (const ShardSample& s : in.current)
    rates.push_back(RatesOf(Find(in.previous, s.shard), s, in.elapsed_s));
  AddShards(in, rates, &out);
  if (up > 0) {
    out.push_back("");
    AddPeers(in, rates, &out);
  }
  AddWorkers(in, &out);
  AddQueues(in, &out);
  for (std::string& line : out)
    while (!line.empty() && line.back() == ' ') line.pop_back();
  return out;
}

}  // namespace shardps::cli
