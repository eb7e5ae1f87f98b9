// shardps_clock_worker: a bsp/ssp trainer stand-in for the consistency tests.
//
// For each clock c = 0..--clocks-1 it pushes a gradient of (worker+1)*(c+1)
// everywhere in --tensor, calls Clock() and waits for it, then (with --pull)
// pulls the tensor. With --sleep-ms it sleeps before each push, playing a
// slow worker.
//
// stdout, one line per event, flushed at once:
//   clock <n>                       the n-th Clock() completed
//   pulled <n> <min> <max>          the tensor's range after clock n
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

#include "shardps/client.h"

namespace {

int Fail(const char* what, const shardps::Status& s) {
  std::printf("error %s: %s\n", what, s.ToString().c_str());
  std::fflush(stdout);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shardps consistency-test worker"};
  std::string cluster, tensor;
  int worker = 0, clocks = 1, sleep_ms = 0, timeout_ms = 20000;
  bool pull = false;
  app.add_option("--cluster", cluster)->required();
  app.add_option("--tensor", tensor)->required();
  app.add_option("--worker", worker)->required();
  app.add_option("--clocks", clocks);
  app.add_option("--sleep-ms", sleep_ms);
  app.add_option("--timeout-ms", timeout_ms);
  app.add_flag("--pull", pull);
  CLI11_PARSE(app, argc, argv);

  shardps::ClientOptions options;
  options.worker = worker;
  options.request_timeout = std::chrono::milliseconds(timeout_ms);
  options.connect_timeout = std::chrono::milliseconds(timeout_ms);
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
    std::fflush(stdout);
  }
  std::printf("done\n");
  std::fflush(stdout);
  return 0;
}
