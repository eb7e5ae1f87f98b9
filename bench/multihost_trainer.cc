// The multihost workload's trainer (hidden role `__mh-trainer`), one process
// per worker, started on its host through the bed. Per step: a synthetic
// compute (a sleep: it stands for an accelerator and occupies no core),
// Push of the whole gradient, Clock().Wait() (bsp), then the new model:
//   classic  Pull of the whole tensor into a buffer;
//   replica  wait until this host's replica holds the clock on every shard
//            (ReplicaState::WaitHeldClock on each .fresh), then read the
//            weights straight from the copies through a ModelView.
// Either way it checks that what it reads is exactly that clock's model.
//
// Protocol with the harness: after the warm-up steps it prints "warm" and
// waits for a line on stdin; then it runs the measured steps and prints
// "done push_ms P fetch_ms F cpu_s C" (means per measured step; its CPU
// seconds over them) and exits.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/multihost.h"
#include "bench/workloads.h"
#include "common/replica_state.h"
#include "common/segment.h"
#include "shardps/client.h"
#include "shardps/model_view.h"

namespace shardps::bench {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWait = std::chrono::seconds(600);

struct TrainerArgs {
  std::string cluster, mode, replica_storage;
  int warmup = 0, steps = 0, worker = 0, workers = 0;
  double compute_ms = 0;
  uint32_t shards = 0;
};

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The model a trainer must see after `applied` clocks: every float is
// -applied * workers * kMhGrad * lr (lr = 1, sum of the workers' gradients;
// exact in float for the step counts we run).
Status CheckModel(const float* w, size_t n, int64_t applied, int workers,
                  const std::string& where) {
  const float want =
      -static_cast<float>(applied) * static_cast<float>(workers) * kMhGrad;
  for (size_t i = 0; i < n; i += kMhBlockFloats / 2) {
    if (w[i] != want)
      return Status(Code::kInternal, where + ": float " + std::to_string(i) +
                                         " is " + std::to_string(w[i]) +
                                         ", clock " + std::to_string(applied) +
                                         "'s model has " +
                                         std::to_string(want));
  }
  return w[n - 1] == want
             ? Status::Ok()
             : Status(Code::kInternal,
                      where + ": last float is " + std::to_string(w[n - 1]));
}

// This process's CPU time so far (user + system, all threads).
double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

class Trainer {
 public:
  explicit Trainer(TrainerArgs a) : a_(std::move(a)) {}

  Status Open() {
    ClientOptions options;
    options.worker = a_.worker;
    options.connect_timeout = std::chrono::seconds(60);
    options.request_timeout = kWait;
    options.attempt_timeout = kWait;  // a 256 MB push over a shared link
    // Streamed: the tensor goes front to back in 4 MiB messages, so the
    // shards apply (and stream) its first blocks while the rest travels.
    if (a_.mode == "streamed") options.blocks_per_message = 4;
    auto client = Client::Connect(a_.cluster, options);
    if (!client.ok()) return client.status();
    client_ = std::move(client).value();
    const TensorLayout* t = client_->layout().Find(kMhTensor);
    if (t == nullptr) return Status(Code::kNotFound, "no tensor t");
    n_ = t->num_floats;
    grad_.assign(n_, kMhGrad);
    if (a_.mode == "classic") {
      weights_.assign(n_, 0.0f);
      return Status::Ok();
    }
    return OpenReplica();
  }

  Status OpenReplica() {
    std::vector<std::string> copies;
    for (uint32_t i = 0; i < a_.shards; ++i) {
      auto state = ReplicaState::OpenReadOnly(
          ReplicaState::PathFor(a_.replica_storage, kMhModel, i, a_.shards));
      if (!state.ok()) return state.status().WithContext("replica freshness");
      fresh_.push_back(std::move(state).value());
      copies.push_back(
          Segment::PathFor(a_.replica_storage, kMhModel, i, a_.shards));
    }
    auto view = ModelView::Open(copies);
    if (!view.ok()) return view.status().WithContext("replica copies");
    view_ = std::move(view).value();
    return Status::Ok();
  }

  // One step; adds its push+clock and fetch times.
  Status Step() {
    std::this_thread::sleep_for(
        std::chrono::duration<double, std::milli>(a_.compute_ms));
    const auto t0 = Clock::now();
    const int64_t clock = client_->clock();
    SHARDPS_RETURN_IF_ERROR(client_->Push(kMhTensor, grad_.data(), n_).Wait());
    SHARDPS_RETURN_IF_ERROR(client_->Clock().Wait());
    const auto t1 = Clock::now();
    const float* w = weights_.data();
    if (view_ == nullptr) {
      SHARDPS_RETURN_IF_ERROR(
          client_->Pull(kMhTensor, weights_.data(), n_).Wait());
    } else {
      // The copy holds clock `clock` once held_clock reaches clock + 1 (the
      // shards' applied-clock unit), on every shard.
      for (const auto& f : fresh_)
        SHARDPS_RETURN_IF_ERROR(
            f->WaitHeldClock(clock + 1, Clock::now() + kWait));
      auto t = view_->Tensor(kMhTensor);
      if (!t.ok()) return t.status();
      w = t->data();  // the live copy: no pull, no copy
    }
    push_ms_ += Ms(t1 - t0);
    fetch_ms_ += Ms(Clock::now() - t1);
    return CheckModel(w, n_, clock + 1, a_.workers, a_.mode);
  }

  Status Run() {
    for (int i = 0; i < a_.warmup; ++i) SHARDPS_RETURN_IF_ERROR(Step());
    std::printf("warm\n");
    std::fflush(stdout);
    std::string go;
    if (!std::getline(std::cin, go))
      return Status(Code::kUnavailable, "harness closed stdin");
    push_ms_ = fetch_ms_ = 0;
    const double cpu0 = CpuSeconds();
    for (int i = 0; i < a_.steps; ++i) SHARDPS_RETURN_IF_ERROR(Step());
    std::printf("done push_ms %.3f fetch_ms %.3f cpu_s %.3f\n",
                push_ms_ / a_.steps, fetch_ms_ / a_.steps, CpuSeconds() - cpu0);
    std::fflush(stdout);
    return Status::Ok();
  }

 private:
  const TrainerArgs a_;
  std::unique_ptr<Client> client_;
  size_t n_ = 0;
  std::vector<float> grad_, weights_;
  std::vector<std::unique_ptr<ReplicaState>> fresh_;
  std::unique_ptr<ModelView> view_;
  double push_ms_ = 0, fetch_ms_ = 0;
};

}  // namespace

std::vector<std::string> MultihostTrainerArgv(
    const std::string& cluster, const std::string& mode, int warmup, int steps,
    double compute_ms, int worker, int workers,
    const std::string& replica_storage, uint32_t shards) {
  return {"__mh-trainer",
          cluster,
          mode,
          std::to_string(warmup),
          std::to_string(steps),
          std::to_string(compute_ms),
          std::to_string(worker),
          std::to_string(workers),
          replica_storage,
          std::to_string(shards)};
}

// __mh-trainer CLUSTER MODE WARMUP STEPS COMPUTE_MS WORKER WORKERS STORAGE
//              SHARDS (MultihostTrainerArgv)
int RunMultihostTrainerRole(const std::vector<std::string>& args) {
  if (args.size() != 9) return 2;
  TrainerArgs a;
  a.cluster = args[0];
  a.mode = args[1];
  a.warmup = std::stoi(args[2]);
  a.steps = std::stoi(args[3]);
  a.compute_ms = std::stod(args[4]);
  a.worker = std::stoi(args[5]);
  a.workers = std::stoi(args[6]);
  a.replica_storage = args[7];
  a.shards = static_cast<uint32_t>(std::stoul(args[8]));
  Trainer trainer(a);
  Status s = trainer.Open();
  if (s.ok()) s = trainer.Run();
  if (!s.ok()) {
    std::fprintf(stderr, "mh-trainer %d: %s\n", a.worker, s.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace shardps::bench
