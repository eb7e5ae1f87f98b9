// shardps_clock_worker: a bsp/ssp trainer stand-in for the consistency tests.
//
// For each clock c = 0..--clocks-1 it pushes a gradient of (worker+1)*(c+1)
// everywhere in --tensor, calls Clock() and waits for it, then (with --pull)
// pulls the tensor. With --sleep-ms it sleeps before each push, playing a
// slow worker. With --curve-key PREFIX it connects with that CURVE key pair
// (the servers' key from the cluster file).
//
// Host replicas (multi-host tests): with --view SEG for every shard (in
// shard order: a local shard's own segment or the replica's copy) and
// --fresh FILE for each copy's freshness file, after each Clock() it waits
// (up to --timeout-ms) until every copy holds that clock
// (ReplicaState::WaitHeldClock) and reads the tensor through a ModelView of
// the segments: what a trainer on this host sees after the clock.
//
// stdout, one line per event, flushed at once:
//   clock <n>                       the n-th Clock() completed
//   pulled <n> <min> <max>          the tensor's range after clock n
//   view <n> <min> <max>            the same, read through --view
//   error <status>                  a call failed (then exit 1)
//   done
//
// Exit status: 0 after --clocks clocks, 1 on a failed call or connect,
// 2 for bad flags.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/curve_keys.h"
#include "common/replica_state.h"
#include "shardps/client.h"
#include "shardps/model_view.h"

namespace {

int Fail(const char* what, const shardps::Status& s) {
  std::printf("error %s: %s\n", what, s.ToString().c_str());
  std::fflush(stdout);
  return 1;
}

// Waits until every copy in `freshness` holds `clock`, then copies
// `tensor` out of a ModelView over `views` into `out`.
shardps::Status ReadThroughView(const std::vector<std::string>& views,
                                const std::vector<std::string>& freshness,
                                const std::string& tensor, int64_t clock,
                                int timeout_ms, std::vector<float>* out) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (const std::string& path : freshness) {
    auto state = shardps::ReplicaState::OpenReadOnly(path);
    if (!state.ok()) return state.status();
    SHARDPS_RETURN_IF_ERROR((*state)->WaitHeldClock(clock, deadline));
  }
  auto view = shardps::ModelView::Open(views);
  if (!view.ok()) return view.status();
  return (*view)->Copy(tensor, out->data(), out->size(),
                       std::chrono::milliseconds(timeout_ms));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shardps consistency-test worker"};
  std::string cluster, tensor;
  int worker = 0, clocks = 1, sleep_ms = 0, timeout_ms = 20000;
  bool pull = false;
  std::string curve_key;
  std::vector<std::string> views, freshness;
  app.add_option("--cluster", cluster)->required();
  app.add_option("--tensor", tensor)->required();
  app.add_option("--worker", worker)->required();
  app.add_option("--clocks", clocks);
  app.add_option("--sleep-ms", sleep_ms);
  app.add_option("--timeout-ms", timeout_ms);
  app.add_flag("--pull", pull);
  app.add_option("--curve-key", curve_key);
  app.add_option("--view", views);
  app.add_option("--fresh", freshness);
  CLI11_PARSE(app, argc, argv);

  shardps::ClientOptions options;
  options.worker = worker;
  options.request_timeout = std::chrono::milliseconds(timeout_ms);
  options.connect_timeout = std::chrono::milliseconds(timeout_ms);
  if (!curve_key.empty()) {
    auto pair = shardps::LoadCurveKeyPair(curve_key);
    if (!pair.ok()) return Fail("curve key", pair.status());
    options.curve_public_key = pair->public_key;
    options.curve_secret_key = pair->secret_key;
  }
  auto client = shardps::Client::Connect(cluster, options);
  if (!client.ok()) return Fail("connect", client.status());
  const shardps::TensorLayout* t = (*client)->layout().Find(tensor);
  if (t == nullptr) {
    std::printf("error unknown tensor %s\n", tensor.c_str());
    return 1;
  }
  std::vector<float> grad(t->num_floats), weights(t->num_floats);
  for (int c = static_cast<int>((*client)->clock()); c < clocks; ++c) {
    if (sleep_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    std::fill(grad.begin(), grad.end(),
              static_cast<float>((worker + 1) * (c + 1)));
    shardps::Status s =
        (*client)->Push(tensor, grad.data(), grad.size()).Wait();
    if (!s.ok()) return Fail("push", s);
    s = (*client)->Clock().Wait();
    if (!s.ok()) return Fail("clock", s);
    std::printf("clock %d\n", c + 1);
    if (pull) {
      s = (*client)->Pull(tensor, weights.data(), weights.size()).Wait();
      if (!s.ok()) return Fail("pull", s);
      const auto [lo, hi] = std::minmax_element(weights.begin(), weights.end());
      std::printf("pulled %d %.9g %.9g\n", c + 1, *lo, *hi);
    }
    if (!views.empty()) {
      s = ReadThroughView(views, freshness, tensor, c + 1, timeout_ms,
                          &weights);
      if (!s.ok()) return Fail("view", s);
      const auto [lo, hi] = std::minmax_element(weights.begin(), weights.end());
      std::printf("view %d %.9g %.9g\n", c + 1, *lo, *hi);
    }
    std::fflush(stdout);
  }
  std::printf("done\n");
  std::fflush(stdout);
  return 0;
}
