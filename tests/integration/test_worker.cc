// shardps_test_worker: a trainer stand-in that integration tests run as
// separate processes.
//
// Each iteration pushes one gradient to every --tensor (all in flight at
// once) and waits for them. The gradient is --value everywhere, or with
// --ramp element j gets value * (1 + j % 8), so a block applied at the wrong
// offset shows in the weights.
//
// With --table NAME --rows N, each iteration also pushes a gradient of
// --value to rows 0..N-1 of that table (PushRows), in flight with the
// tensor pushes; --tensor may then be left out.
//
// stdout, one line per event, flushed at once so a test can follow along:
//   acked <n>                       n-th iteration acknowledged by every shard
//   error <status>                  an iteration failed (with --retry)
//   done acked=<n> attempts=<m>     the last line, on a normal exit
//
// Exit status: 0 after --pushes acknowledged iterations (or, with
// --until-signal, after SIGTERM/SIGINT once the iteration in flight ended);
// 1 on the first failed iteration without --retry, or a failed connect;
// 2 for bad flags. Failures are explained on stderr.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/curve_keys.h"
#include "shardps/client.h"
#include "tests/integration/worker_args.h"

namespace {

// Set by the signal handler, read by the push loop.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free,
              "the signal handler may only touch lock-free atomics");

extern "C" void OnStopSignal(int) {
  g_stop.store(true, std::memory_order_relaxed);
}

using shardps::testing::WorkerArgs;  // the flags, as the harness writes them

// Pause between retries: a shard that is down fails pushes at once, and a
// tight loop would only burn the CPU the restarting server needs.
constexpr std::chrono::milliseconds kRetryBackoff{10};

void InstallStopHandler() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

std::vector<float> MakeGradient(size_t n, const WorkerArgs& flags) {
  std::vector<float> grad(n);
  for (size_t j = 0; j < n; ++j)
    grad[j] = static_cast<float>(flags.ramp ? flags.value * (1 + j % 8)
                                            : flags.value);
  return grad;
}

// The ids and gradients of an iteration's row push.
struct RowPush {
  std::string table;
  std::vector<uint64_t> ids;
  std::vector<float> grads;
};

// One iteration: a push per tensor (and the row push, if any), all sent
// before any is waited for.
shardps::Status PushAll(shardps::Client& client,
                        const std::vector<std::string>& tensors,
                        const std::vector<std::vector<float>>& grads,
                        const RowPush& rows) {
  std::vector<shardps::Handle> handles;
  for (size_t i = 0; i < tensors.size(); ++i)
    handles.push_back(
        client.Push(tensors[i], grads[i].data(), grads[i].size()));
  if (!rows.ids.empty())
    handles.push_back(client.PushRows(rows.table, rows.ids.data(),
                                      rows.ids.size(), rows.grads.data()));
  shardps::Status first;
  // Wait for all, even after an error: the buffers must outlive the sends.
  for (const shardps::Handle& h : handles) {
    shardps::Status s = h.Wait();
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

int RunWorker(const WorkerArgs& flags) {
  shardps::ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(flags.timeout_ms);
  options.connect_timeout = std::chrono::milliseconds(flags.timeout_ms);
  options.exactly_once = !flags.at_least_once;
  options.client_id = flags.client_id;
  if (!flags.curve_key.empty()) {
    auto pair = shardps::LoadCurveKeyPair(flags.curve_key);
    if (!pair.ok()) {
      std::fprintf(stderr, "test_worker: --curve-key: %s\n",
                   pair.status().ToString().c_str());
      return 1;
    }
    options.curve_public_key = pair->public_key;
    options.curve_secret_key = pair->secret_key;
  }
  auto client = shardps::Client::Connect(flags.cluster, options);
  if (!client.ok()) {
    std::fprintf(stderr, "test_worker: connect: %s\n",
                 client.status().ToString().c_str());
    return 1;
  }
  std::vector<std::vector<float>> grads;
  for (const std::string& name : flags.tensors) {
    const shardps::TensorLayout* t = (*client)->layout().Find(name);
    if (t == nullptr) {
      std::fprintf(stderr, "test_worker: unknown tensor '%s'\n", name.c_str());
      return 1;
    }
    grads.push_back(MakeGradient(t->num_floats, flags));
  }
  RowPush rows;
  if (!flags.table.empty()) {
    uint64_t dim = 0;
    for (const shardps::TableInfo& t : (*client)->tables())
      if (t.name == flags.table) dim = t.dim;
    if (dim == 0) {
      std::fprintf(stderr, "test_worker: unknown table '%s'\n",
                   flags.table.c_str());
      return 1;
    }
    rows.table = flags.table;
    for (int i = 0; i < flags.rows; ++i) rows.ids.push_back(uint64_t(i));
    rows.grads.assign(rows.ids.size() * dim, static_cast<float>(flags.value));
  }

  long acked = 0, attempts = 0;
  for (;;) {
    if (flags.until_signal ? g_stop.load(std::memory_order_relaxed)
                           : acked >= flags.pushes)
      break;
    ++attempts;
    const shardps::Status s = PushAll(**client, flags.tensors, grads, rows);
    if (s.ok()) {
      std::printf("acked %ld\n", ++acked);
      std::fflush(stdout);
      continue;
    }
    if (!flags.retry) {
      std::fprintf(stderr, "test_worker: push %ld failed: %s\n", attempts,
                   s.ToString().c_str());
      return 1;
    }
    std::printf("error %s\n", s.ToString().c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(kRetryBackoff);
  }
  std::printf("done acked=%ld attempts=%ld\n", acked, attempts);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shardps integration-test worker"};
  WorkerArgs flags;
  app.add_option("--cluster", flags.cluster, "Cluster file")->required();
  app.add_option("--tensor", flags.tensors, "Tensor to push (repeatable)");
  app.add_option("--table", flags.table, "Table to push rows to");
  app.add_option("--rows", flags.rows, "Rows 0..N-1 pushed per iteration")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--pushes", flags.pushes, "Iterations to get acknowledged")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--value", flags.value, "Gradient value");
  app.add_flag("--ramp", flags.ramp, "Gradient value * (1 + j % 8)");
  app.add_flag("--retry", flags.retry, "Retry failed iterations");
  app.add_flag("--until-signal", flags.until_signal,
               "Push until SIGTERM/SIGINT instead of --pushes times");
  app.add_flag("--at-least-once", flags.at_least_once,
               "Client without exactly-once retries: outages fail pushes");
  app.add_option("--timeout-ms", flags.timeout_ms, "Client deadlines")
      ->check(CLI::Range(1, 600000));
  app.add_option("--client-id", flags.client_id,
                 "ClientOptions::client_id (0: random)");
  app.add_option("--curve-key", flags.curve_key,
                 "CURVE key pair prefix (PREFIX.key, PREFIX.pub)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (flags.tensors.empty() && (flags.table.empty() || flags.rows == 0)) {
    std::fprintf(stderr, "test_worker: give --tensor, or --table and --rows\n");
    return 2;
  }
  InstallStopHandler();
  return RunWorker(flags);
}
