// coprocessor workload: one training step of W workers against S shards
// where the compute is a fixed synthetic cost, done two ways:
//   classic:      compute, push the gradient, pull the whole model back;
//   co-processor: compute, push the gradient, read weights via ModelView.
// The compute reads every weight once in both modes, so the only difference
// is whether the updated model crosses a socket.
#include <Eigen/Core>
#include <chrono>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "bench/child.h"
#include "bench/cluster.h"
#include "bench/workloads.h"
#include "shardps/client.h"
#include "shardps/model_view.h"

namespace shardps::bench {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kShards = 2;

// Busy work standing in for forward/backward: a pass over the weights plus
// a fixed spin, so every step costs the same whatever the mode.
float Compute(const float* w, size_t n, double ms) {
  const Eigen::Map<const Eigen::VectorXf> weights(w,
                                                  static_cast<Eigen::Index>(n));
  float acc = weights.sum();
  const auto until =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double, std::milli>(ms));
  while (Clock::now() < until) acc += 1e-9f;
  return acc;
}

Result<double> MeasureMode(const SuiteOptions& o, uint64_t floats, int workers,
                           const std::string& mode) {
  auto cluster = BenchCluster::Start(floats, kShards, "tcp");
  if (!cluster.ok()) return cluster.status();
  std::vector<Child> children;
  for (int w = 0; w < workers; ++w) {
    auto c =
        Child::Spawn({"__cop-worker", cluster->cluster_file(), mode,
                      std::to_string(o.steps), std::to_string(o.compute_ms)});
    if (!c.ok()) return c.status();
    children.push_back(std::move(c).value());
  }
  double total_ms = 0;
  for (Child& c : children) {
    auto line = c.ReadLine(std::chrono::seconds(300));
    if (!line.ok()) return line.status().WithContext("coprocessor worker");
    double ms = 0;
    if (std::sscanf(line->c_str(), "step_ms %lf", &ms) != 1)
      return Status(Code::kInternal, "coprocessor worker said: " + *line);
    total_ms += ms;
  }
  return total_ms / workers;
}

}  // namespace

Status RunCoprocessor(const SuiteOptions& o, Report* report) {
  for (uint64_t floats : o.model_floats) {
    for (int workers : o.workers) {
      std::fprintf(stderr, "coprocessor: %llu floats, %d worker(s)\n",
                   static_cast<unsigned long long>(floats), workers);
      auto classic = MeasureMode(o, floats, workers, "classic");
      if (!classic.ok()) return classic.status();
      auto coproc = MeasureMode(o, floats, workers, "view");
      if (!coproc.ok()) return coproc.status();
      const std::vector<std::pair<std::string, std::string>> config = {
          {"floats", std::to_string(floats)},
          {"shards", std::to_string(kShards)},
          {"workers", std::to_string(workers)},
          {"compute_ms", std::to_string(static_cast<int>(o.compute_ms))}};
      // value = co-processor step, ceiling = classic step: a ratio below 1
      // is the co-processor's gain; the speed-up is its inverse.
      Figure step{"coprocessor",
                  "step",
                  config,
                  *coproc,
                  "ms",
                  *classic,
                  "classic push+pull step",
                  ""};
      step.note = "speed-up " + std::to_string(*classic / *coproc) + "x";
      report->Add(step);
    }
  }
  return Status::Ok();
}

// __cop-worker CLUSTER classic|view STEPS COMPUTE_MS; prints "step_ms X".
int RunCoprocessorWorkerRole(const std::vector<std::string>& args) {
  if (args.size() != 4) return 2;
  auto client = Client::Connect(args[0]);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  const size_t n = (*client)->layout().Find("t")->num_floats;
  const bool view_mode = args[1] == "view";
  const int steps = std::stoi(args[2]);
  const double compute_ms = std::stod(args[3]);
  std::unique_ptr<ModelView> view;
  if (view_mode) {
    auto v = ModelView::Open((*client)->local_segments());
    if (!v.ok()) {
      std::fprintf(stderr, "%s\n", v.status().ToString().c_str());
      return 1;
    }
    view = std::move(v).value();
  }
  std::vector<float> weights(n), grad(n, 1e-9f);
  float sink = 0;
  auto step = [&]() -> Status {
    const float* w = view ? (*view->Tensor("t")).data() : weights.data();
    sink += Compute(w, n, compute_ms);
    SHARDPS_RETURN_IF_ERROR((*client)->Push("t", grad.data(), n).Wait());
    if (!view) return (*client)->Pull("t", weights.data(), n).Wait();
    return Status::Ok();
  };
  Status s = step();  // warm-up
  const auto begin = Clock::now();
  for (int i = 0; i < steps && s.ok(); ++i) s = step();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const double ms =
      std::chrono::duration<double, std::milli>(Clock::now() - begin).count() /
      steps;
  std::printf("step_ms %.3f\n", ms + 0 * sink);
  return 0;
}

}  // namespace shardps::bench
