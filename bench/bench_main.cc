// shardps-bench: every figure against its ceiling, measured in one run.
//
//   shardps-bench                       # default suite (all workloads)
//   shardps-bench transport latency     # some workloads
//   shardps-bench --quick --json out.json --plot plots/
//   shardps-bench multihost --rate 1gbit --plot bench/results  # root only
//   shardps-bench metrics --plot bench/results  # /metrics on vs off
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cluster.h"
#include "bench/drivers.h"
#include "bench/workloads.h"
#include "common/malloc_tuning.h"

namespace {

using shardps::Status;
using namespace shardps::bench;

// Hidden roles: the harness runs copies of itself as servers and clients.
int RunRole(int argc, char** argv) {
  const std::string role = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (role == "__raw-sink" && args.size() == 1) return RunRawSink(args[0]);
  // __server SPEC SHARD SHARDS LISTEN THREADS [KEY AUTHORIZED]
  //          [--metrics-listen=ADDR]
  std::string metrics_listen;
  const std::string metrics_flag = "--metrics-listen=";
  if (role == "__server" && !args.empty() &&
      args.back().rfind(metrics_flag, 0) == 0) {
    metrics_listen = args.back().substr(metrics_flag.size());
    args.pop_back();
  }
  if (role == "__server" && (args.size() == 5 || args.size() == 7))
    return RunBenchServer(args[0], std::stoul(args[1]), std::stoul(args[2]),
                          args[3], std::stoul(args[4]),
                          args.size() == 7 ? args[5] : "",
                          args.size() == 7 ? args[6] : "", metrics_listen);
  if (role == "__client") return RunClientRole(args);
  if (role == "__cop-worker") return RunCoprocessorWorkerRole(args);
  if (role == "__mh-trainer") return RunMultihostTrainerRole(args);
  std::fprintf(stderr, "shardps-bench: unknown role %s\n", role.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Servers, clients and the raw ceiling processes all get the same malloc
  // settings, so the comparison stays like for like.
  shardps::TuneMallocForBlocks();
  if (argc > 1 && std::string(argv[1]).rfind("__", 0) == 0)
    return RunRole(argc, argv);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"shardps-bench: shardps figures beside raw ceilings"};
  std::vector<std::string> workloads;
  bool quick = false;
  double seconds = 0;
  std::string json, plot;
  app.add_option("workloads", workloads,
                 "transport latency sparse apply coprocessor stream "
                 "exactly-once, multihost (root; not in all), metrics (not in "
                 "all), or all")
      ->check(CLI::IsMember({"all", "transport", "latency", "sparse", "apply",
                             "coprocessor", "stream", "exactly-once",
                             "multihost", "metrics"}));
  app.add_flag("--quick", quick, "Small, fast suite (a smoke test)");
  bool curve = false;
  app.add_flag("--curve", curve,
               "transport/latency: also measure shardps with CURVE on (tcp) "
               "and report each figure against the plain one");
  app.add_option("--seconds", seconds, "Time per measurement")
      ->check(CLI::Range(0.01, 60.0));
  int rounds = 0;
  app.add_option("--rounds", rounds,
                 "metrics: off/on rounds per measurement (default 7)")
      ->check(CLI::Range(1, 1000));
  std::string rate;
  app.add_option("--rate", rate,
                 "multihost: each trainer host's link rate (tc), default "
                 "1gbit");
  app.add_option("--json", json, "Write every figure as JSON here");
  app.add_option("--plot", plot, "Write PNG charts into this directory");
  CLI11_PARSE(app, argc, argv);
  if (workloads.empty() ||
      std::find(workloads.begin(), workloads.end(), "all") != workloads.end())
    workloads = {"transport",   "latency", "sparse",      "apply",
                 "coprocessor", "stream",  "exactly-once"};

  SuiteOptions options = quick ? QuickSuite() : DefaultSuite();
  if (seconds > 0) options.seconds = options.metrics_seconds = seconds;
  options.curve = curve;
  if (rounds > 0) options.metrics_rounds = rounds;
  if (!rate.empty()) options.multihost_rate = rate;
  options.plot_dir = plot;
  Report report;
  for (const std::string& w : workloads) {
    Status s = w == "transport"     ? RunTransport(options, &report)
               : w == "latency"     ? RunLatency(options, &report)
               : w == "sparse"      ? RunSparse(options, &report)
               : w == "apply"       ? RunApply(options, &report)
               : w == "coprocessor" ? RunCoprocessor(options, &report)
               : w == "stream"      ? RunStream(options, &report)
               : w == "multihost"   ? RunMultihost(options, &report)
               : w == "metrics"     ? RunMetrics(options, &report)
                                    : RunExactlyOnce(options, &report);
    if (!s.ok()) {
      std::fprintf(stderr, "shardps-bench: %s: %s\n", w.c_str(),
                   s.ToString().c_str());
      return 1;
    }
  }
  std::printf("machine: %s\n", MachineDescription().c_str());
  report.PrintTable(stdout);
  if (!json.empty()) {
    Status s = report.WriteJson(json, quick ? "quick" : "default");
    if (!s.ok()) {
      std::fprintf(stderr, "shardps-bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  if (!plot.empty()) {
    Status s = report.WritePlots(plot);
    if (!s.ok())
      std::fprintf(stderr, "shardps-bench: plots: %s\n", s.ToString().c_str());
  }
  return 0;
}
