// One Fashion-MNIST training worker: an MLP or a small CNN (--model) whose
// parameters live in the shard servers.
//
// Worker w of W trains on the training images i with i % W == w, in
// shuffled mini-batches, pushing its gradients. It reads the weights through
// a ModelView (--mode coprocessor, the default where it opens): straight from
// the segments of the shards on this host and, with --replica-storage, from
// this host's replica's copies of the others (`shardps replica`), so no
// trainer on any host pulls; or it pulls them every step (--mode classic).
// Worker 0 also measures test accuracy after each epoch and appends a line
// to --log (CSV: epoch, seconds, loss, accuracy, samples/s). Workers that
// read through a replica end with a "worker W: replica reads: ..." line.
//
// Specs: examples/fashion_mnist/mlp.toml and cnn.toml. Run with
// scripts/fashion_mnist.sh (one host) or scripts/fashion_mnist_multihost.sh.
#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "examples/fashion_mnist/idx_file.h"
#include "examples/fashion_mnist/key_file.h"
#include "examples/fashion_mnist/model.h"
#include "examples/fashion_mnist/param_store.h"
#include "shardps/client.h"

namespace {

using fashion_mnist::ConstMap;
using fashion_mnist::Matrix;

struct Flags {
  std::string cluster;
  std::string data = "/usr/share/datasets/fashion-mnist";
  int worker = 0, workers = 1, epochs = 5, batch = 64;
  size_t train_limit = 0, test_limit = 0;
  std::string mode = "auto";  // auto | coprocessor | classic
  std::string model = "mlp";  // mlp | cnn
  std::string log;
  uint64_t seed = 1;
  std::string replica_storage;  // this host's replica's --storage
  std::string curve_key;        // PREFIX of PREFIX.key / PREFIX.pub
  uint32_t blocks_per_message = 0;
};

double TestAccuracy(fashion_mnist::Model& model,
                    const fashion_mnist::ParamStore& params,
                    const fashion_mnist::Split& test) {
  constexpr size_t kChunk = 500;
  size_t correct = 0;
  Matrix probs;
  for (size_t start = 0; start < test.count; start += kChunk) {
    const size_t n = std::min(kChunk, test.count - start);
    const Matrix x = ConstMap(test.images.data() + start * test.pixels,
                              static_cast<Eigen::Index>(n),
                              static_cast<Eigen::Index>(test.pixels));
    model.Predict(params, x, &probs);
    for (size_t r = 0; r < n; ++r) {
      Eigen::Index best;
      probs.row(static_cast<Eigen::Index>(r)).maxCoeff(&best);
      if (best == test.labels[start + r]) ++correct;
    }
  }
  return static_cast<double>(correct) / static_cast<double>(test.count);
}

int Fail(const shardps::Status& s, int code) {
  std::fprintf(stderr, "fashion_mnist: %s\n", s.ToString().c_str());
  return code;
}

// Loads the training split and, for worker 0, the test split; 0 or the
// exit code.
int LoadData(const Flags& f, fashion_mnist::Split* train,
             fashion_mnist::Split* test) {
  auto tr = fashion_mnist::LoadSplit(f.data + "/train-images-idx3-ubyte.gz",
                                     f.data + "/train-labels-idx1-ubyte.gz",
                                     f.train_limit);
  if (!tr.ok()) return Fail(tr.status(), 2);
  *train = std::move(tr).value();
  if (f.worker == 0) {
    auto t = fashion_mnist::LoadSplit(f.data + "/t10k-images-idx3-ubyte.gz",
                                      f.data + "/t10k-labels-idx1-ubyte.gz",
                                      f.test_limit);
    if (!t.ok()) return Fail(t.status(), 2);
    *test = std::move(t).value();
  }
  // Both networks are built for 28x28 images; a different IDX geometry
  // must stop here, not reach an Eigen product of mismatched sizes.
  constexpr size_t kPixels = 28 * 28;
  if (train->pixels != kPixels || (f.worker == 0 && test->pixels != kPixels)) {
    std::fprintf(stderr,
                 "fashion_mnist: %s: images of %zu pixels, expected 28x28\n",
                 f.data.c_str(),
                 train->pixels != kPixels ? train->pixels : test->pixels);
    return 2;
  }
  return 0;
}

// Workers are clock workers (Clock() after every step) when the model is
// bsp or ssp; the servers then combine their gradients per step.
shardps::Result<std::unique_ptr<shardps::Client>> ConnectClient(
    const Flags& f) {
  shardps::ClientOptions options;
  options.worker = f.worker;
  options.request_timeout = std::chrono::seconds(120);
  options.replica_storage = f.replica_storage;
  options.blocks_per_message = f.blocks_per_message;
  if (!f.curve_key.empty())
    if (shardps::Status s =
            fashion_mnist::LoadClientKeys(f.curve_key, &options);
        !s.ok())
      return s.WithContext("--curve-key");
  auto client = shardps::Client::Connect(f.cluster, options);
  if (!client.ok() &&
      client.status().code() == shardps::Code::kInvalidArgument) {
    options.worker = -1;  // an async model without a worker count
    client = shardps::Client::Connect(f.cluster, options);
  }
  return client;
}

struct Epoch {
  double loss = 0;  // mean over the epoch's steps
  size_t seen = 0;  // training images
  double seconds = 0;
};

// One pass over this worker's images `mine` (shuffled here) in batches.
shardps::Result<Epoch> TrainEpoch(const Flags& f, fashion_mnist::Model& model,
                                  fashion_mnist::ParamStore& w,
                                  shardps::Client& client,
                                  const fashion_mnist::Split& train,
                                  std::vector<size_t>& mine,
                                  std::mt19937_64& rng) {
  const bool clocked = client.consistency() != "async";
  Matrix x(f.batch, static_cast<Eigen::Index>(train.pixels));
  std::vector<int> y(static_cast<size_t>(f.batch));
  std::vector<Matrix> grads;
  std::shuffle(mine.begin(), mine.end(), rng);
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  size_t steps = 0;
  Epoch e;
  for (size_t at = 0; at + static_cast<size_t>(f.batch) <= mine.size();
       at += static_cast<size_t>(f.batch)) {
    for (int r = 0; r < f.batch; ++r) {
      const size_t i = mine[at + static_cast<size_t>(r)];
      x.row(r) = ConstMap(train.images.data() + i * train.pixels, 1,
                          static_cast<Eigen::Index>(train.pixels));
      y[static_cast<size_t>(r)] = train.labels[i];
    }
    SHARDPS_RETURN_IF_ERROR(w.Refresh());
    loss_sum += model.Step(w, x, y, &grads);
    SHARDPS_RETURN_IF_ERROR(w.Push(grads));
    if (clocked) SHARDPS_RETURN_IF_ERROR(client.Clock().Wait());
    ++steps;
    e.seen += static_cast<size_t>(f.batch);
  }
  e.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  e.loss = steps ? loss_sum / double(steps) : 0;
  return e;
}

// Opens --log (worker 0) with its header; false after printing why not.
bool OpenLog(const Flags& f,
             std::unique_ptr<std::FILE, int (*)(std::FILE*)>* log) {
  if (f.worker != 0 || f.log.empty()) return true;
  log->reset(std::fopen(f.log.c_str(), "w"));
  if (!*log) {
    std::fprintf(stderr, "fashion_mnist: %s: %s\n", f.log.c_str(),
                 std::strerror(errno));
    return false;
  }
  std::fprintf(log->get(), "epoch,seconds,loss,accuracy,samples_per_s\n");
  return true;
}

std::string ModeLine(const fashion_mnist::ParamStore& w) {
  if (!w.coprocessor()) return "classic (Pull)";
  auto r = w.ReadsSoFar();
  if (!r.ok() || r->replica_blocks == 0) return "co-processor (ModelView)";
  return "co-processor (ModelView: " + std::to_string(r->local_blocks) +
         " block(s) mapped from this host's shards, " +
         std::to_string(r->replica_blocks) + " through the host replica)";
}

// "worker W: replica reads: ..." when the view reads through a replica:
// the scripts and tests check that the copies were read and kept current.
int PrintReplicaReads(const Flags& f, const fashion_mnist::ParamStore& w) {
  auto r = w.ReadsSoFar();
  if (!r.ok()) return Fail(r.status(), 1);
  if (r->replica_blocks == 0) return 0;
  std::printf(
      "worker %d: replica reads: %llu block reads through the host replica "
      "(%u of %u blocks per step), %llu behind the shard; copies at "
      "versions %llu..%llu\n",
      f.worker, static_cast<unsigned long long>(r->block_reads),
      r->replica_blocks, r->replica_blocks + r->local_blocks,
      static_cast<unsigned long long>(r->behind),
      static_cast<unsigned long long>(r->min_held),
      static_cast<unsigned long long>(r->max_held));
  std::fflush(stdout);
  return 0;
}

int Run(const Flags& f) {
  fashion_mnist::Split train, test;
  if (int rc = LoadData(f, &train, &test); rc != 0) return rc;
  auto client = ConnectClient(f);
  if (!client.ok()) return Fail(client.status(), 1);
  std::unique_ptr<fashion_mnist::Model> model =
      f.model == "cnn" ? fashion_mnist::MakeCnn() : fashion_mnist::MakeMlp();
  auto store =
      fashion_mnist::ParamStore::Make(**client, model->Params(), f.mode);
  if (!store.ok()) return Fail(store.status(), 2);
  fashion_mnist::ParamStore& w = **store;
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(f.worker); i < train.count;
       i += static_cast<size_t>(f.workers))
    mine.push_back(i);
  if (f.worker == 0)
    std::printf(
        "worker 0: %zu training images of %zu, %zu test images, %s "
        "mode\n",
        mine.size(), train.count, test.count, ModeLine(w).c_str());
  // Closed on every return, the early error ones included.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(nullptr, &std::fclose);
  if (!OpenLog(f, &log)) return 2;
  std::mt19937_64 rng(f.seed * 7919 + static_cast<uint64_t>(f.worker));
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= f.epochs; ++epoch) {
    auto e = TrainEpoch(f, *model, w, **client, train, mine, rng);
    if (!e.ok()) return Fail(e.status(), 1);
    if (f.worker != 0) continue;
    if (shardps::Status s = w.Refresh(); !s.ok()) return Fail(s, 1);
    const double acc = TestAccuracy(*model, w, test);
    const double total_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    const double rate = e->seconds > 0 ? double(e->seen) / e->seconds : 0;
    std::printf(
        "epoch %2d  loss %.4f  test accuracy %.4f  %.0f samples/s  "
        "%.1f s\n",
        epoch, e->loss, acc, rate, total_s);
    std::fflush(stdout);
    if (log) {
      std::fprintf(log.get(), "%d,%.3f,%.5f,%.5f,%.0f\n", epoch, total_s,
                   e->loss, acc, rate);
      std::fflush(log.get());
    }
  }
  return PrintReplicaReads(f, w);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Fashion-MNIST worker on shardps"};
  app.add_option("--cluster", f.cluster, "Cluster file")->required();
  app.add_option("--data", f.data, "Directory of the IDX .gz files")
      ->capture_default_str();
  app.add_option("--worker", f.worker)->capture_default_str();
  app.add_option("--workers", f.workers)
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--epochs", f.epochs)->capture_default_str();
  app.add_option("--batch", f.batch)
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--train-limit", f.train_limit,
                 "Use the first N training images")
      ->capture_default_str();
  app.add_option("--test-limit", f.test_limit, "Use the first N test images")
      ->capture_default_str();
  app.add_option("--mode", f.mode, "auto, coprocessor or classic")
      ->check(CLI::IsMember({"auto", "coprocessor", "classic"}))
      ->capture_default_str();
  app.add_option("--log", f.log, "CSV log (worker 0)");
  app.add_option("--model", f.model, "mlp or cnn (the spec must match)")
      ->check(CLI::IsMember({"mlp", "cnn"}))
      ->capture_default_str();
  app.add_option("--seed", f.seed)->capture_default_str();
  app.add_option("--replica-storage", f.replica_storage,
                 "This host's replica storage (`shardps replica --storage`): "
                 "the view reads the shards on other hosts through its "
                 "copies; in bsp, Clock() waits until they hold the clock");
  app.add_option("--curve-key", f.curve_key,
                 "CURVE key pair PREFIX (PREFIX.key, PREFIX.pub from "
                 "`shardps keygen`); the servers' key is the cluster file's");
  app.add_option("--blocks-per-message", f.blocks_per_message,
                 "Blocks per push/pull message (0: one per shard); e.g. 4 "
                 "with replicas and bsp apply = \"block\"")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (f.mode == "classic" && !f.replica_storage.empty()) {
    std::fprintf(stderr,
                 "fashion_mnist: --replica-storage reads through a ModelView; "
                 "--mode classic pulls instead: drop one of them\n");
    return 2;
  }
  if (f.worker < 0 || f.worker >= f.workers) {
    std::fprintf(stderr, "fashion_mnist: --worker must be 0..--workers-1\n");
    return 2;
  }
  return Run(f);
}
