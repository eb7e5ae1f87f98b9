// One Fashion-MNIST training worker: an MLP or a small CNN (--model) whose
// parameters live in the shard servers.
//
// Worker w of W trains on the training images i with i % W == w, in
// shuffled mini-batches, pushing its gradients asynchronously. It reads the
// weights through a ModelView straight from the segments when the shards run
// on this host (--mode coprocessor, the default there) or pulls them every
// step (--mode classic). Worker 0 also measures test accuracy after each
// epoch and appends a line to --log (CSV: epoch, seconds, loss, accuracy,
// samples/s).
//
// Specs: examples/fashion_mnist/mlp.toml and cnn.toml. Run with
// scripts/fashion_mnist.sh.
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

int Run(const Flags& f) {
  auto train = fashion_mnist::LoadSplit(f.data + "/train-images-idx3-ubyte.gz",
                                        f.data + "/train-labels-idx1-ubyte.gz",
                                        f.train_limit);
  if (!train.ok()) {
    std::fprintf(stderr, "fashion_mnist: %s\n",
                 train.status().ToString().c_str());
    return 2;
  }
  fashion_mnist::Split test;
  if (f.worker == 0) {
    auto t = fashion_mnist::LoadSplit(f.data + "/t10k-images-idx3-ubyte.gz",
                                      f.data + "/t10k-labels-idx1-ubyte.gz",
                                      f.test_limit);
    if (!t.ok()) {
      std::fprintf(stderr, "fashion_mnist: %s\n",
                   t.status().ToString().c_str());
      return 2;
    }
    test = std::move(t).value();
  }
  // Both networks are built for 28x28 images; a different IDX geometry
  // must stop here, not reach an Eigen product of mismatched sizes.
  constexpr size_t kPixels = 28 * 28;
  if (train->pixels != kPixels || (f.worker == 0 && test.pixels != kPixels)) {
    std::fprintf(
        stderr, "fashion_mnist: %s: images of %zu pixels, expected 28x28\n",
        f.data.c_str(), train->pixels != kPixels ? train->pixels : test.pixels);
    return 2;
  }
  // Workers are clock workers (Clock() after every step) when the model is
  // bsp or ssp; the servers then combine their gradients per step.
  shardps::ClientOptions options;
  options.worker = f.worker;
  options.request_timeout = std::chrono::seconds(120);
  auto client = shardps::Client::Connect(f.cluster, options);
  if (!client.ok() &&
      client.status().code() == shardps::Code::kInvalidArgument) {
    options.worker = -1;  // an async model without a worker count
    client = shardps::Client::Connect(f.cluster, options);
  }
  if (!client.ok()) {
    std::fprintf(stderr, "fashion_mnist: %s\n",
                 client.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<fashion_mnist::Model> model =
      f.model == "cnn" ? fashion_mnist::MakeCnn() : fashion_mnist::MakeMlp();
  auto store =
      fashion_mnist::ParamStore::Make(**client, model->Params(), f.mode);
  if (!store.ok()) {
    std::fprintf(stderr, "fashion_mnist: %s\n",
                 store.status().ToString().c_str());
    return 2;
  }
  fashion_mnist::ParamStore& w = **store;
  const bool clocked = (*client)->consistency() != "async";
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(f.worker); i < train->count;
       i += static_cast<size_t>(f.workers))
    mine.push_back(i);
  if (f.worker == 0)
    std::printf(
        "worker 0: %zu training images of %zu, %zu test images, %s mode\n",
        mine.size(), train->count, test.count,
        w.coprocessor() ? "co-processor (ModelView)" : "classic (Pull)");
  // Closed on every return, the early error ones included.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(nullptr, &std::fclose);
  if (f.worker == 0 && !f.log.empty()) {
    log.reset(std::fopen(f.log.c_str(), "w"));
    if (!log) {
      std::fprintf(stderr, "fashion_mnist: %s: %s\n", f.log.c_str(),
                   std::strerror(errno));
      return 2;
    }
    std::fprintf(log.get(), "epoch,seconds,loss,accuracy,samples_per_s\n");
  }
  std::mt19937_64 rng(f.seed * 7919 + static_cast<uint64_t>(f.worker));
  Matrix x(f.batch, static_cast<Eigen::Index>(train->pixels));
  std::vector<int> y(static_cast<size_t>(f.batch));
  std::vector<Matrix> grads;
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= f.epochs; ++epoch) {
    std::shuffle(mine.begin(), mine.end(), rng);
    const auto epoch_start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    size_t steps = 0, seen = 0;
    for (size_t at = 0; at + static_cast<size_t>(f.batch) <= mine.size();
         at += static_cast<size_t>(f.batch)) {
      for (int r = 0; r < f.batch; ++r) {
        const size_t i = mine[at + static_cast<size_t>(r)];
        x.row(r) = ConstMap(train->images.data() + i * train->pixels, 1,
                            static_cast<Eigen::Index>(train->pixels));
        y[static_cast<size_t>(r)] = train->labels[i];
      }
      if (shardps::Status s = w.Refresh(); !s.ok()) {
        std::fprintf(stderr, "fashion_mnist: %s\n", s.ToString().c_str());
        return 1;
      }
      loss_sum += model->Step(w, x, y, &grads);
      shardps::Status pushed = w.Push(grads);
      if (pushed.ok() && clocked) pushed = (*client)->Clock().Wait();
      if (!pushed.ok()) {
        std::fprintf(stderr, "fashion_mnist: %s\n", pushed.ToString().c_str());
        return 1;
      }
      ++steps;
      seen += static_cast<size_t>(f.batch);
    }
    const double epoch_s = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - epoch_start)
                               .count();
    if (f.worker != 0) continue;
    if (shardps::Status s = w.Refresh(); !s.ok()) {
      std::fprintf(stderr, "fashion_mnist: %s\n", s.ToString().c_str());
      return 1;
    }
    const double acc = TestAccuracy(*model, w, test);
    const double total_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    const double loss = steps ? loss_sum / double(steps) : 0;
    const double rate = epoch_s > 0 ? double(seen) / epoch_s : 0;
    std::printf(
        "epoch %2d  loss %.4f  test accuracy %.4f  %.0f samples/s  "
        "%.1f s\n",
        epoch, loss, acc, rate, total_s);
    std::fflush(stdout);
    if (log) {
      std::fprintf(log.get(), "%d,%.3f,%.5f,%.5f,%.0f\n", epoch, total_s, loss,
                   acc, rate);
      std::fflush(log.get());
    }
  }
  return 0;
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
  CLI11_PARSE(app, argc, argv);
  if (f.worker < 0 || f.worker >= f.workers) {
    std::fprintf(stderr, "fashion_mnist: --worker must be 0..--workers-1\n");
    return 2;
  }
  return Run(f);
}
