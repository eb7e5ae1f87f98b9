// metrics workload: what a shard's metrics cost its push rate. The same
// pushes, alternating in rounds between a shard with no metrics endpoint
// ("off") and one serving /metrics that a scraper thread fetches every
// 100 ms ("on", ten times a usual Prometheus interval); plus the counting
// itself timed in a micro loop, beside the time of one small push.
//
// The counters are always on (the Stats reply reads them): "off" means no
// endpoint and no scrapes, so the rate ratio is what serving and scraping
// /metrics costs, and the micro loop bounds what counting costs.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench/cluster.h"
#include "bench/metrics_scraper.h"
#include "bench/workloads.h"
#include "common/metric_counters.h"

namespace shardps::bench {

namespace {

using Clock = std::chrono::steady_clock;

// What the server does for a one-block push (frontend.cc, shard_metrics.cc,
// update_pool.cc): bytes_in for the header and the block frame and the
// reply's count (3 Adds); the request's and the block apply's latency (each
// two MetricNowNs and an ObserveNs).
constexpr int kAddsPerPush = 3;
constexpr int kObservationsPerPush = 2;
// A request takes tens of microseconds: observe that, not the clock's own
// few nanoseconds, so the bucket search walks as far as it does in service.
constexpr uint64_t kTypicalLatencyNs = 60'000;

volatile uint64_t g_sink;  // keeps the micro loops' results alive

struct Counting {
  double add_ns = 0;      // OwnedCounter::Add
  double now_ns = 0;      // MetricNowNs alone
  double observe_ns = 0;  // ObserveNs + 2 x MetricNowNs
  double per_push_ns() const {
    return kAddsPerPush * add_ns + kObservationsPerPush * observe_ns;
  }
};

// The fastest of 5 runs of `iterations` calls, in ns per call: the rest are
// the machine's other users.
template <typename Body>
double NsPerCall(uint64_t iterations, Body body) {
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    const auto begin = Clock::now();
    for (uint64_t i = 0; i < iterations; ++i) body();
    const double ns =
        std::chrono::duration<double, std::nano>(Clock::now() - begin).count();
    best = std::min(best, ns / static_cast<double>(iterations));
  }
  return best;
}

Counting MeasureCounting(bool quick) {
  const uint64_t scale = quick ? 20 : 1;
  Counting c;
  // On the heap, as the server's are (a stack slot can be renamed by the
  // CPU and come out faster than any counter in service).
  auto counter = std::make_unique<OwnedCounter>();
  c.add_ns = NsPerCall(20'000'000 / scale, [&] { counter->Add(); });
  uint64_t clocks = 0;
  c.now_ns = NsPerCall(2'000'000 / scale, [&] { clocks += MetricNowNs(); });
  auto histogram = std::make_unique<LatencyHistogram>();
  c.observe_ns = NsPerCall(2'000'000 / scale, [&] {
    const uint64_t start = MetricNowNs();
    histogram->ObserveNs(MetricNowNs() - start + kTypicalLatencyNs);
  });
  g_sink = counter->value() + histogram->Read().count + clocks;
  return c;
}

std::string SizeName(uint64_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0)
    return std::to_string(bytes >> 20) + "MiB";
  if (bytes >= 1024 && bytes % 1024 == 0)
    return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

std::string TensorName(uint64_t bytes) { return "p" + std::to_string(bytes); }

struct Round {
  double off_rps = 0, on_rps = 0;  // pushes per second
  uint64_t scrapes = 0;            // during the "on" run
  double scrape_ms = 0;            // mean time of one scrape
  double ratio() const { return off_rps > 0 ? on_rps / off_rps : 0; }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// "41200 [39000-43100]": median and the range over the rounds.
std::string Spread(const std::vector<double>& v, int digits) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return Fixed(Median(v), digits) + " [" + Fixed(*lo, digits) + "-" +
         Fixed(*hi, digits) + "]";
}

Status MeasureRounds(const SuiteOptions& o, const BenchCluster& off,
                     const BenchCluster& on, const LoadSpec& spec,
                     MetricsScraper& scraper, std::vector<Round>* rounds) {
  const std::string tensor = TensorName(spec.bytes);
  for (int r = 0; r < o.metrics_rounds; ++r) {
    Round round;
    // Odd rounds go on-first, so a drift in either direction shows in
    // both orders instead of favouring one side.
    for (int leg = 0; leg < 2; ++leg) {
      const bool metrics_on = (leg == 0) == (r % 2 == 1);
      if (metrics_on)
        scraper.Start(on.metrics_urls()[0],
                      std::chrono::milliseconds(o.metrics_scrape_ms));
      auto result =
          ShardpsLoad((metrics_on ? on : off).cluster_file(), tensor, spec);
      if (metrics_on) scraper.Stop();
      if (!result.ok()) return result.status();
      const double rps = result->requests / result->seconds;
      if (!metrics_on) {
        round.off_rps = rps;
        continue;
      }
      round.on_rps = rps;
      round.scrapes = scraper.scrapes();
      round.scrape_ms = scraper.scrapes() == 0 ? 0
                                               : scraper.seconds_in_scrapes() *
                                                     1e3 / scraper.scrapes();
      if (scraper.failures() != 0 || scraper.scrapes() == 0)
        return Status(Code::kInternal,
                      "scraping " + on.metrics_urls()[0] + " failed: " +
                          (scraper.first_error().empty()
                               ? std::string("no scrape in the run")
                               : scraper.first_error()));
    }
    std::fprintf(stderr,
                 "metrics: %s, %d in flight, round %d: off %.0f/s, on %.0f/s "
                 "(%.3f), %llu scrapes\n",
                 SizeName(spec.bytes).c_str(), spec.inflight, r + 1,
                 round.off_rps, round.on_rps, round.ratio(),
                 static_cast<unsigned long long>(round.scrapes));
    rounds->push_back(round);
  }
  return Status::Ok();
}

void AddFigures(const SuiteOptions& o, const LoadSpec& spec,
                const std::vector<Round>& rounds, const Counting& counting,
                bool smallest, Report* report) {
  std::vector<double> off, on, ratio, off_mb, on_mb, scrape_ms;
  uint64_t scrapes = 0;
  for (const Round& r : rounds) {
    off.push_back(r.off_rps);
    on.push_back(r.on_rps);
    ratio.push_back(r.ratio());
    off_mb.push_back(r.off_rps * spec.bytes / 1e6);
    on_mb.push_back(r.on_rps * spec.bytes / 1e6);
    scrape_ms.push_back(r.scrape_ms);
    scrapes += r.scrapes;
  }
  const std::vector<std::pair<std::string, std::string>> config = {
      {"bytes", std::to_string(spec.bytes)},
      {"size", SizeName(spec.bytes)},
      {"inflight", std::to_string(spec.inflight)},
      {"rounds", std::to_string(rounds.size())}};
  Figure f;
  f.workload = "metrics";
  f.name = "push-scraped";
  f.config = config;
  f.value = Median(on);
  f.unit = "req/s";
  f.ceiling = Median(off);
  f.ceiling_name = "no /metrics endpoint";
  // A cost shows as every round below 1; a range that spans 1 is noise.
  const auto [lo, hi] = std::minmax_element(ratio.begin(), ratio.end());
  const char* verdict = *hi < 1   ? " (every round slower)"
                        : *lo > 1 ? " (every round faster)"
                                  : " (spans 1: noise)";
  f.note = "per-round on/off " + Spread(ratio, 3) + verdict + "; req/s off " +
           Spread(off, 0) + " on " + Spread(on, 0) + "; MB/s off " +
           Spread(off_mb, 1) + " on " + Spread(on_mb, 1) + "; " +
           std::to_string(scrapes) + " scrapes every " +
           std::to_string(o.metrics_scrape_ms) + " ms, " +
           Fixed(Median(scrape_ms), 2) + " ms each";
  report->Add(f);
  if (!smallest) return;
  // Counting's share of one push: the per-push counting time against the
  // push's measured time (1 / rate with no endpoint).
  Figure c;
  c.workload = "metrics";
  c.name = "counting";
  c.config = config;
  c.value = counting.per_push_ns();
  c.unit = "ns";
  c.ceiling = 1e9 / Median(off);
  c.ceiling_name = "one push (1/rate, off)";
  c.note = Fixed(100 * c.ratio(), 2) +
           "% of a push: " + std::to_string(kAddsPerPush) + " x Add " +
           Fixed(counting.add_ns, 2) + " ns + " +
           std::to_string(kObservationsPerPush) +
           " x (ObserveNs + 2 MetricNowNs) " + Fixed(counting.observe_ns, 1) +
           " ns; MetricNowNs alone " + Fixed(counting.now_ns, 1) + " ns";
  report->Add(c);
}

// bench/results-style CSV of every round, and a chart of the per-round
// ratios (gnuplot, when installed).
void WriteResults(
    const std::string& dir,
    const std::vector<std::pair<LoadSpec, std::vector<Round>>>& measured) {
  ::mkdir(dir.c_str(), 0755);
  std::ofstream csv(dir + "/metrics.csv");
  csv << "bytes,inflight,round,off_pushes_per_s,on_pushes_per_s,off_mb_per_s,"
         "on_mb_per_s,ratio,scrapes,scrape_ms\n";
  std::ofstream dat(dir + "/metrics.dat");
  int column = 0;
  for (const auto& [spec, rounds] : measured) {
    dat << "\"" << SizeName(spec.bytes) << ", " << spec.inflight
        << " in flight\"\n";
    for (size_t r = 0; r < rounds.size(); ++r) {
      const Round& x = rounds[r];
      csv << spec.bytes << "," << spec.inflight << "," << r + 1 << ","
          << Fixed(x.off_rps, 1) << "," << Fixed(x.on_rps, 1) << ","
          << Fixed(x.off_rps * spec.bytes / 1e6, 2) << ","
          << Fixed(x.on_rps * spec.bytes / 1e6, 2) << "," << Fixed(x.ratio(), 4)
          << "," << x.scrapes << "," << Fixed(x.scrape_ms, 3) << "\n";
      dat << r + 1 << " " << x.ratio() << "\n";
    }
    dat << "\n\n";
    ++column;
  }
  dat.close();
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return;
  std::ofstream gp(dir + "/metrics.gp");
  gp << "set terminal pngcairo size 900,500\n"
     << "set output '" << dir << "/metrics.png'\n"
     << "set xlabel 'round'\nset ylabel 'push rate, scraped / no endpoint'\n"
     << "set grid\nset key bottom right\nset logscale y\nset yrange [0.25:4]\n"
     << "set ytics (0.25, 0.5, 0.75, 1, 1.33, 2, 4)\n"
     << "set title 'push rate with /metrics scraped every 100 ms vs off'\n"
     << "plot for [i=0:" << column - 1 << "] '" << dir
     << "/metrics.dat' index i using 1:2 with linespoints title "
        "columnheader(1), 1 with lines dt 2 title 'no cost'\n";
  gp.close();
  if (std::system(("gnuplot '" + dir + "/metrics.gp'").c_str()) != 0)
    std::fprintf(stderr, "metrics: gnuplot failed on %s/metrics.gp\n",
                 dir.c_str());
}

}  // namespace

Status RunMetrics(const SuiteOptions& o, Report* report) {
  if (o.metrics_sizes.empty() || o.metrics_rounds < 1)
    return Status(Code::kInvalidArgument, "metrics: no sizes or rounds");
  std::string tensors;
  for (uint64_t size : o.metrics_sizes)
    tensors += "[[tensor]]\nname = \"" + TensorName(size) + "\"\nshape = [" +
               std::to_string(size / sizeof(float)) + "]\ninit = \"zeros\"\n";
  // Two shards alive side by side, one measured at a time: the same spec,
  // one without and one with an endpoint on a free loopback port.
  auto off = BenchCluster::Start(1024, 1, "tcp", 1, tensors);
  if (!off.ok()) return off.status();
  auto on = BenchCluster::Start(1024, 1, "tcp", 1, tensors, false, "0");
  if (!on.ok()) return on.status();
  if (on->metrics_urls().size() != 1)
    return Status(Code::kInternal, "metrics: the shard printed no URL");
  std::fprintf(stderr, "metrics: counting micro loop\n");
  const Counting counting = MeasureCounting(o.seconds < 0.2);
  MetricsScraper scraper;
  std::vector<std::pair<LoadSpec, std::vector<Round>>> measured;
  const uint64_t smallest =
      *std::min_element(o.metrics_sizes.begin(), o.metrics_sizes.end());
  for (uint64_t size : o.metrics_sizes) {
    for (int inflight : o.inflight) {
      LoadSpec spec{Direction::kPush, size, inflight, o.metrics_seconds, true};
      std::vector<Round> rounds;
      SHARDPS_RETURN_IF_ERROR(
          MeasureRounds(o, *off, *on, spec, scraper, &rounds));
      AddFigures(o, spec, rounds, counting, size == smallest, report);
      measured.emplace_back(spec, std::move(rounds));
    }
  }
  if (!o.plot_dir.empty()) WriteResults(o.plot_dir, measured);
  return Status::Ok();
}

}  // namespace shardps::bench
