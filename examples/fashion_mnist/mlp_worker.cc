// One Fashion-MNIST training worker: an MLP (784-256-128-10, ReLU, softmax
// cross-entropy) whose parameters live in the shard servers.
//
// Worker w of W trains on the training images i with i % W == w, in
// shuffled mini-batches, pushing its gradients asynchronously. It reads the
// weights through a ModelView straight from the segments when the shards run
// on this host (--mode coprocessor, the default there) or pulls them every
// step (--mode classic). Worker 0 also measures test accuracy after each
// epoch and appends a line to --log (CSV: epoch, seconds, loss, accuracy,
// samples/s).
//
// Spec: examples/fashion_mnist/mlp.toml. Run with scripts/fashion_mnist.sh.
#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "examples/fashion_mnist/idx_file.h"
#include "shardps/client.h"
#include "shardps/model_view.h"

namespace {

using Matrix =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const Matrix>;

struct Flags {
  std::string cluster;
  std::string data = "/usr/share/datasets/fashion-mnist";
  int worker = 0, workers = 1, epochs = 5, batch = 64;
  size_t train_limit = 0, test_limit = 0;
  std::string mode = "auto";  // auto | coprocessor | classic
  std::string log;
  uint64_t seed = 1;
};

struct Layer {
  const char* weight;
  const char* bias;
  int out, in;
};
constexpr Layer kLayers[] = {{"fc1.weight", "fc1.bias", 256, 784},
                             {"fc2.weight", "fc2.bias", 128, 256},
                             {"fc3.weight", "fc3.bias", 10, 128}};
constexpr int kDepth = 3;

// Where a step reads the weights: live maps over the segments, or local
// copies refreshed by Pull.
class Weights {
 public:
  static shardps::Result<std::unique_ptr<Weights>> Make(
      shardps::Client& client, const std::string& mode) {
    auto w = std::unique_ptr<Weights>(new Weights(client));
    if (mode != "classic") {
      auto view = shardps::ModelView::Open(client.local_segments());
      if (view.ok()) {
        w->view_ = std::move(view).value();
      } else if (mode == "coprocessor") {
        return view.status().WithContext("--mode coprocessor");
      }
    }
    for (const Layer& l : kLayers) {
      w->w_.emplace_back(l.out, l.in);
      w->b_.emplace_back(1, l.out);
    }
    return w;
  }
  bool coprocessor() const { return view_ != nullptr; }

  // Makes W(i) and B(i) current: nothing to do for live maps, a Pull of
  // every tensor otherwise.
  shardps::Status Refresh() {
    if (view_) return shardps::Status::Ok();
    std::vector<shardps::Handle> pulls;
    for (int i = 0; i < kDepth; ++i) {
      pulls.push_back(
          client_.Pull(kLayers[i].weight, w_[i].data(), w_[i].size()));
      pulls.push_back(
          client_.Pull(kLayers[i].bias, b_[i].data(), b_[i].size()));
    }
    shardps::Status first;
    for (auto& h : pulls)
      if (shardps::Status s = h.Wait(); !s.ok() && first.ok()) first = s;
    return first;
  }
  ConstMap W(int i) const {
    if (view_) return *view_->Matrix(kLayers[i].weight);
    return ConstMap(w_[i].data(), w_[i].rows(), w_[i].cols());
  }
  ConstMap B(int i) const {
    if (view_)
      return ConstMap(view_->Tensor(kLayers[i].bias)->data(), 1,
                      kLayers[i].out);
    return ConstMap(b_[i].data(), 1, b_[i].cols());
  }

 private:
  explicit Weights(shardps::Client& client) : client_(client) {}
  shardps::Client& client_;
  std::unique_ptr<shardps::ModelView> view_;
  std::vector<Matrix> w_, b_;
};

// Activations of one forward pass, kept for the backward pass.
struct Pass {
  Matrix z[kDepth], a[kDepth];  // a[i] = relu(z[i]); a[2] = softmax
};

void Forward(const Weights& w, const Matrix& x, Pass* p) {
  const Matrix* in = &x;
  for (int i = 0; i < kDepth; ++i) {
    p->z[i] = (*in * w.W(i).transpose()).rowwise() + w.B(i).row(0);
    if (i + 1 < kDepth) {
      p->a[i] = p->z[i].cwiseMax(0.0f);
    } else {
      // Softmax, shifted by the row max for stability.
      p->a[i] =
          (p->z[i].colwise() - p->z[i].rowwise().maxCoeff()).array().exp();
      p->a[i].array().colwise() /= p->a[i].rowwise().sum().array();
    }
    in = &p->a[i];
  }
}

// Mean cross-entropy of the batch and the gradients of every tensor.
float Backward(const Weights& w, const Matrix& x, const std::vector<int>& y,
               const Pass& p, Matrix* gw, Matrix* gb) {
  const int batch = static_cast<int>(x.rows());
  Matrix d = p.a[kDepth - 1];
  float loss = 0;
  for (int r = 0; r < batch; ++r) {
    loss -= std::log(std::max(d(r, y[r]), 1e-12f));
    d(r, y[r]) -= 1.0f;
  }
  d /= static_cast<float>(batch);
  for (int i = kDepth - 1; i >= 0; --i) {
    const Matrix& in = i == 0 ? x : p.a[i - 1];
    gw[i] = d.transpose() * in;
    gb[i] = d.colwise().sum();
    if (i > 0) {
      Matrix back = d * w.W(i);
      d = (p.z[i - 1].array() > 0.0f).select(back, 0.0f);
    }
  }
  return loss / static_cast<float>(batch);
}

double TestAccuracy(const Weights& w, const fashion_mnist::Split& test) {
  constexpr size_t kChunk = 1000;
  size_t correct = 0;
  Pass p;
  for (size_t start = 0; start < test.count; start += kChunk) {
    const size_t n = std::min(kChunk, test.count - start);
    const Matrix x = ConstMap(test.images.data() + start * test.pixels,
                              static_cast<Eigen::Index>(n),
                              static_cast<Eigen::Index>(test.pixels));
    Forward(w, x, &p);
    for (size_t r = 0; r < n; ++r) {
      Eigen::Index best;
      p.a[kDepth - 1].row(static_cast<Eigen::Index>(r)).maxCoeff(&best);
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
  auto client = shardps::Client::Connect(f.cluster);
  if (!client.ok()) {
    std::fprintf(stderr, "fashion_mnist: %s\n",
                 client.status().ToString().c_str());
    return 1;
  }
  auto weights = Weights::Make(**client, f.mode);
  if (!weights.ok()) {
    std::fprintf(stderr, "fashion_mnist: %s\n",
                 weights.status().ToString().c_str());
    return 2;
  }
  Weights& w = **weights;
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(f.worker); i < train->count;
       i += static_cast<size_t>(f.workers))
    mine.push_back(i);
  if (f.worker == 0)
    std::printf(
        "worker 0: %zu training images of %zu, %zu test images, %s mode\n",
        mine.size(), train->count, test.count,
        w.coprocessor() ? "co-processor (ModelView)" : "classic (Pull)");
  std::FILE* log = nullptr;
  if (f.worker == 0 && !f.log.empty()) {
    log = std::fopen(f.log.c_str(), "w");
    if (log) std::fprintf(log, "epoch,seconds,loss,accuracy,samples_per_s\n");
  }
  std::mt19937_64 rng(f.seed * 7919 + static_cast<uint64_t>(f.worker));
  Matrix x(f.batch, static_cast<Eigen::Index>(train->pixels));
  std::vector<int> y(static_cast<size_t>(f.batch));
  Pass pass;
  Matrix gw[kDepth], gb[kDepth];
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
      Forward(w, x, &pass);
      loss_sum += Backward(w, x, y, pass, gw, gb);
      std::vector<shardps::Handle> pushes;
      for (int i = 0; i < kDepth; ++i) {
        pushes.push_back((*client)->Push(kLayers[i].weight, gw[i].data(),
                                         static_cast<size_t>(gw[i].size())));
        pushes.push_back((*client)->Push(kLayers[i].bias, gb[i].data(),
                                         static_cast<size_t>(gb[i].size())));
      }
      for (auto& h : pushes)
        if (shardps::Status s = h.Wait(); !s.ok()) {
          std::fprintf(stderr, "fashion_mnist: %s\n", s.ToString().c_str());
          return 1;
        }
      ++steps;
      seen += static_cast<size_t>(f.batch);
    }
    const double epoch_s = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - epoch_start)
                               .count();
    if (f.worker != 0) continue;
    if (shardps::Status s = w.Refresh(); !s.ok()) return 1;
    const double acc = TestAccuracy(w, test);
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
      std::fprintf(log, "%d,%.3f,%.5f,%.5f,%.0f\n", epoch, total_s, loss, acc,
                   rate);
      std::fflush(log);
    }
  }
  if (log) std::fclose(log);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Fashion-MNIST MLP worker on shardps"};
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
  app.add_option("--seed", f.seed)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (f.worker < 0 || f.worker >= f.workers) {
    std::fprintf(stderr, "fashion_mnist: --worker must be 0..--workers-1\n");
    return 2;
  }
  return Run(f);
}
