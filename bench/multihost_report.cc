// multihost workload: runs the three modes at each model size, reports each
// figure beside its physics bound, and writes the CSV and plots.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/multihost.h"
#include "bench/workloads.h"

namespace shardps::bench {

namespace {

constexpr double kW = 2;  // trainers per host (multihost_workload.cc)
constexpr double kH = 3;  // trainer hosts
constexpr double kMB = 1e6;

// A tc rate ("1gbit", "500mbit", "2gbit") in bytes/s; 0 if unparsable.
double RateBytes(const std::string& rate) {
  double n = 0;
  char unit = 0;
  if (std::sscanf(rate.c_str(), "%lf%c", &n, &unit) != 2) return 0;
  const double scale = unit == 'g'   ? 1e9
                       : unit == 'm' ? 1e6
                       : unit == 'k' ? 1e3
                                     : 0;
  return n * scale / 8;
}

std::string Fixed(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

void AddStepFigures(
    const MultihostRun& a, const MultihostRun& b,
    const std::vector<std::pair<std::string, std::string>>& config,
    Report* report) {
  report->Add({"multihost", "classic-step", config, a.step_ms, "ms", a.bound_ms,
               "link bound 2WM/B + compute",
               "push+clock " + Fixed(a.push_ms, 0) + " ms, pull " +
                   Fixed(a.fetch_ms, 0) + " ms; cpu busy " +
                   Fixed(100 * a.cpu_busy, 0) + "% (bed " + Fixed(a.bed_cpu) +
                   " cores)"});
  report->Add({"multihost", "replica-step", config, b.step_ms, "ms", b.bound_ms,
               "fetch-after-push bound (W+1)M/B + compute",
               "overlapped bound WM/B + compute = " + Fixed(b.overlap_ms, 0) +
                   " ms; push+clock " + Fixed(b.push_ms, 0) +
                   " ms, replica wait " + Fixed(b.fetch_ms, 0) +
                   " ms; cpu busy " + Fixed(100 * b.cpu_busy, 0) + "% (bed " +
                   Fixed(b.bed_cpu) + " cores)"});
  const double speedup = a.step_ms / b.step_ms;
  report->Add({"multihost", "speed-up", config, speedup, "x", 2 * kW / (kW + 1),
               "fetch-after-push bound 2W/(W+1)",
               "vs overlapped bound 2: " + Fixed(speedup / 2) +
                   "; with the compute counted the bounds are " +
                   Fixed(a.bound_ms / b.bound_ms) + " and " +
                   Fixed(a.bound_ms / b.overlap_ms)});
}

// The streamed run (c): replicas with bsp apply = "block", against the
// overlapped bound, and its speed-up over classic against 2.
void AddStreamedFigures(
    const MultihostRun& a, const MultihostRun& c,
    const std::vector<std::pair<std::string, std::string>>& config,
    Report* report) {
  report->Add({"multihost", "streamed-step", config, c.step_ms, "ms",
               c.overlap_ms, "overlapped bound WM/B + compute",
               "push+clock " + Fixed(c.push_ms, 0) + " ms, replica wait " +
                   Fixed(c.fetch_ms, 0) + " ms; cpu busy " +
                   Fixed(100 * c.cpu_busy, 0) + "% (bed " + Fixed(c.bed_cpu) +
                   " cores)"});
  const double speedup = a.step_ms / c.step_ms;
  report->Add({"multihost", "streamed-speed-up", config, speedup, "x", 2,
               "overlapped bound 2",
               "target 1.6; with the compute counted the bound is " +
                   Fixed(a.bound_ms / c.overlap_ms)});
}

void AddByteFigures(
    uint64_t floats, const MultihostRun& a, const MultihostRun& b,
    const std::vector<std::pair<std::string, std::string>>& config,
    Report* report) {
  const double m = static_cast<double>(floats) * 4 / kMB;
  report->Add({"multihost", "classic-server-tx", config, a.server_tx / kMB,
               "MB/step", kH * kW * m, "H·W·M payload (the pulls)", ""});
  report->Add({"multihost", "replica-server-tx", config, b.server_tx / kMB,
               "MB/step", kH * m, "H·M payload (once per host)", ""});
  report->Add({"multihost", "server-tx-b/a", config, b.server_tx / a.server_tx,
               "", 1 / kW, "1/W",
               "bytes from the servers, replicas / classic"});
  report->Add({"multihost", "classic-host-rx", config, a.host_rx / kMB,
               "MB/step", kW * m, "W·M payload", "per trainer host"});
  report->Add({"multihost", "replica-host-rx", config, b.host_rx / kMB,
               "MB/step", m, "M payload", "per trainer host"});
}

void AddStreamedBytes(
    uint64_t floats, const MultihostRun& a, const MultihostRun& c,
    const std::vector<std::pair<std::string, std::string>>& config,
    Report* report) {
  const double m = static_cast<double>(floats) * 4 / kMB;
  report->Add({"multihost", "streamed-server-tx", config, c.server_tx / kMB,
               "MB/step", kH * m, "H·M payload (once per host)",
               "(c)/(a) = " + Fixed(c.server_tx / a.server_tx, 3)});
  report->Add({"multihost", "streamed-host-rx", config, c.host_rx / kMB,
               "MB/step", m, "M payload", "per trainer host"});
}

}  // namespace

Status RunMultihost(const SuiteOptions& o, Report* report) {
  const double bytes_per_s = RateBytes(o.multihost_rate);
  if (bytes_per_s <= 0)
    return Status(Code::kInvalidArgument,
                  "multihost: --rate takes e.g. 1gbit or 500mbit, got '" +
                      o.multihost_rate + "'");
  std::vector<MultihostRun> runs;
  for (uint64_t floats : o.multihost_floats) {
    // One model's transfer over one shaped link, in ms.
    const double transfer_ms =
        static_cast<double>(floats) * 4 / bytes_per_s * 1e3;
    MultihostRun pair[3];
    const char* modes[3] = {"classic", "replica", "streamed"};
    for (int i = 0; i < 3; ++i) {
      std::fprintf(stderr, "multihost: %llu floats, %s\n",
                   static_cast<unsigned long long>(floats), modes[i]);
      auto run = MeasureMultihostRun(o, floats, modes[i]);
      if (!run.ok() && run.status().code() == Code::kUnavailable) {
        std::printf("multihost: SKIPPED: needs the multi-host bed (%s)\n",
                    run.status().message().c_str());
        return Status::Ok();
      }
      if (!run.ok()) return run.status().WithContext("multihost");
      pair[i] = *run;
    }
    pair[0].bound_ms = 2 * kW * transfer_ms + o.multihost_compute_ms;
    pair[1].bound_ms = (kW + 1) * transfer_ms + o.multihost_compute_ms;
    pair[1].overlap_ms = kW * transfer_ms + o.multihost_compute_ms;
    pair[2].bound_ms = pair[1].bound_ms;
    pair[2].overlap_ms = pair[1].overlap_ms;
    const std::vector<std::pair<std::string, std::string>> config = {
        {"floats", std::to_string(floats)},
        {"hosts", "3"},
        {"trainers/host", "2"},
        {"shards", "2"},
        {"rate", o.multihost_rate},
        {"compute_ms", Fixed(o.multihost_compute_ms, 0)}};
    AddStepFigures(pair[0], pair[1], config, report);
    AddByteFigures(floats, pair[0], pair[1], config, report);
    AddStreamedFigures(pair[0], pair[2], config, report);
    AddStreamedBytes(floats, pair[0], pair[2], config, report);
    for (const MultihostRun& r : pair) runs.push_back(r);
  }
  if (o.plot_dir.empty()) return Status::Ok();
  Status s = WriteMultihostResults(o.plot_dir, runs);
  if (!s.ok())
    std::fprintf(stderr, "multihost: results: %s\n", s.ToString().c_str());
  return Status::Ok();
}

Status WriteMultihostResults(const std::string& dir,
                             const std::vector<MultihostRun>& runs) {
  ::mkdir(dir.c_str(), 0755);
  const std::string csv = dir + "/multihost.csv";
  std::ofstream out(csv);
  out << "floats,mode,step_ms,bound_ms,overlap_bound_ms,push_ms,fetch_ms,"
         "server_tx_mb,"
         "server_rx_mb,host_rx_mb,host_tx_mb,cpu_busy,bed_cpu_cores\n";
  for (const MultihostRun& r : runs)
    out << r.floats << "," << r.mode << "," << Fixed(r.step_ms, 1) << ","
        << Fixed(r.bound_ms, 1) << "," << Fixed(r.overlap_ms, 1) << ","
        << Fixed(r.push_ms, 1) << "," << Fixed(r.fetch_ms, 1) << ","
        << Fixed(r.server_tx / kMB, 1) << "," << Fixed(r.server_rx / kMB, 1)
        << "," << Fixed(r.host_rx / kMB, 1) << "," << Fixed(r.host_tx / kMB, 1)
        << "," << Fixed(r.cpu_busy, 3) << "," << Fixed(r.bed_cpu, 3) << "\n";
  out.close();
  if (!out) return Status(Code::kIoError, "cannot write " + csv);
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return Status(Code::kUnavailable, "gnuplot not installed; CSV only");
  // One row per size: classic, replica and streamed side by side (runs
  // come in threes).
  const std::string dat = dir + "/multihost.dat";
  std::ofstream d(dat);
  for (size_t i = 0; i + 2 < runs.size(); i += 3) {
    const MultihostRun &a = runs[i], &b = runs[i + 1], &c = runs[i + 2];
    d << "\"" << (a.floats >> 20) << "M floats\" " << a.step_ms << " "
      << a.bound_ms << " " << b.step_ms << " " << b.bound_ms << " "
      << a.server_tx / kMB << " " << b.server_tx / kMB << " " << a.host_rx / kMB
      << " " << b.host_rx / kMB << " " << b.overlap_ms << " " << c.step_ms
      << " " << c.server_tx / kMB << "\n";
  }
  d.close();
  std::ostringstream gp;
  gp << "set terminal pngcairo size 900,560\nset style data histograms\n"
     << "set style histogram clustered gap 1\nset style fill solid 0.8\n"
     << "set grid ytics\nset key outside below\nset yrange [0:*]\n"
     << "set output '" << dir << "/multihost-step.png'\n"
     << "set ylabel 'ms per step'\n"
     << "set title 'bsp step, 3 hosts x 2 trainers: classic pulls vs host "
        "replicas'\n"
     << "plot '" << dat << "' using 2:xtic(1) title 'classic', '' using 3 "
     << "title 'classic bound 2WM/B', '' using 4 title 'replicas', '' using 5 "
     << "title 'replica bound (W+1)M/B', '' using 11 title 'streamed "
     << "replicas', '' using 10 title 'overlapped bound WM/B'\n"
     << "set output '" << dir << "/multihost-bytes.png'\n"
     << "set ylabel 'MB per step'\n"
     << "set title 'bytes per step: sent by the servers, received per host'\n"
     << "plot '" << dat << "' using 6:xtic(1) title 'servers, classic', '' "
     << "using 7 title 'servers, replicas', '' using 12 title 'servers, "
     << "streamed', '' using 8 title 'per host, classic', '' using 9 title "
     << "'per host, replicas'\n";
  const std::string script = dir + "/multihost.gp";
  std::ofstream(script) << gp.str();
  if (std::system(("gnuplot '" + script + "'").c_str()) != 0)
    return Status(Code::kIoError, "gnuplot failed on " + script);
  return Status::Ok();
}

}  // namespace shardps::bench
