// A data-parallel logistic regression trainer on shardps.
//
// Each worker process generates its own slice of a synthetic, linearly
// separable-with-noise data set (a pure function of --seed and --worker, so
// runs are reproducible), then loops: read the current weights, compute the
// mean log-loss gradient of a mini-batch with Eigen, push it. The shard
// servers apply SGD in place. With --mode view (the default when the shards
// run on this host) weights are read straight from the segments through a
// ModelView: the co-processor way, nothing is pulled. With --mode pull every
// step pulls the weights over the socket: the classic parameter-server way.
//
// Spec: examples/logistic_regression.toml (tensors lr.weight [D], lr.bias [1]).
#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "shardps/client.h"
#include "shardps/model_view.h"

namespace {

struct Flags {
  std::string cluster;
  int worker = 0;
  int workers = 1;
  int steps = 300;
  int batch = 128;
  int samples = 16384;  // per worker
  int log_every = 100;
  uint64_t seed = 42;
  std::string mode = "auto";  // auto | view | pull
};

struct DataSet {
  Eigen::MatrixXf x;  // samples x features
  Eigen::VectorXf y;  // 0 or 1
};

// Labels come from a hidden "true" model shared by every worker (it depends
// on the seed only), plus label noise so the loss cannot reach zero.
DataSet Generate(int dim, int samples, uint64_t seed, uint64_t stream) {
  std::mt19937_64 truth_rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  Eigen::VectorXf truth(dim);
  for (int i = 0; i < dim; ++i) truth[i] = normal(truth_rng);
  truth /= std::sqrt(static_cast<float>(dim)) / 3.f;

  std::mt19937_64 rng(seed * 1000003 + stream);
  std::uniform_real_distribution<float> coin(0.f, 1.f);
  DataSet d{Eigen::MatrixXf(samples, dim), Eigen::VectorXf(samples)};
  for (int s = 0; s < samples; ++s) {
    for (int i = 0; i < dim; ++i) d.x(s, i) = normal(rng);
    const float p = 1.f / (1.f + std::exp(-d.x.row(s).dot(truth)));
    d.y[s] = coin(rng) < p ? 1.f : 0.f;
  }
  return d;
}

struct Metrics {
  double loss = 0;
  double accuracy = 0;
};

Metrics Evaluate(const DataSet& d, const Eigen::Ref<const Eigen::VectorXf>& w,
                 float b) {
  const Eigen::ArrayXf z = ((d.x * w).array() + b);
  const Eigen::ArrayXf p = 1.f / (1.f + (-z).exp());
  const Eigen::ArrayXf y = d.y.array();
  const Eigen::ArrayXf eps = Eigen::ArrayXf::Constant(p.size(), 1e-7f);
  const double loss =
      -(y * p.max(eps).log() + (1 - y) * (1 - p).max(eps).log()).mean();
  const double acc = ((p > 0.5f).cast<float>() == y).cast<double>().mean();
  return {loss, acc};
}

// Where the weights come from each step.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual shardps::Status Read(Eigen::VectorXf* w, float* b) = 0;
};

// Co-processor mode: live views of the segments, no copy, no round trip.
class ViewSource : public WeightSource {
 public:
  explicit ViewSource(std::unique_ptr<shardps::ModelView> view)
      : view_(std::move(view)) {}
  shardps::Status Read(Eigen::VectorXf* w, float* b) override {
    auto weight = view_->Tensor("lr.weight");
    auto bias = view_->Tensor("lr.bias");
    if (!weight.ok()) return weight.status();
    if (!bias.ok()) return bias.status();
    *w = *weight;  // the gradient below reads w many times; keep it stable
    *b = (*bias)[0];
    return shardps::Status::Ok();
  }

 private:
  std::unique_ptr<shardps::ModelView> view_;
};

// Classic mode: pull both tensors every step.
class PullSource : public WeightSource {
 public:
  explicit PullSource(shardps::Client& client) : client_(client) {}
  shardps::Status Read(Eigen::VectorXf* w, float* b) override {
    auto hw = client_.Pull("lr.weight", w->data(), w->size());
    auto hb = client_.Pull("lr.bias", b, 1);
    SHARDPS_RETURN_IF_ERROR(hw.Wait());
    return hb.Wait();
  }

 private:
  shardps::Client& client_;
};

int Fail(const char* what, const shardps::Status& s) {
  std::fprintf(stderr, "worker: %s: %s\n", what, s.ToString().c_str());
  return 1;
}

int Train(const Flags& flags) {
  auto client = shardps::Client::Connect(flags.cluster);
  if (!client.ok()) return Fail("connect", client.status());
  const shardps::TensorLayout* wl = (*client)->layout().Find("lr.weight");
  if (wl == nullptr || (*client)->layout().Find("lr.bias") == nullptr)
    return Fail("spec", shardps::Status(shardps::Code::kNotFound,
                                        "model needs lr.weight and lr.bias"));
  const int dim = static_cast<int>(wl->num_floats);

  std::unique_ptr<WeightSource> source;
  bool local = true;
  for (const std::string& s : (*client)->local_segments()) local &= !s.empty();
  const bool use_view = flags.mode == "view" || (flags.mode == "auto" && local);
  if (use_view) {
    auto view = shardps::ModelView::Open((*client)->local_segments());
    if (!view.ok()) return Fail("model view", view.status());
    source = std::make_unique<ViewSource>(std::move(view).value());
  } else {
    source = std::make_unique<PullSource>(**client);
  }

  const DataSet train = Generate(dim, flags.samples, flags.seed,
                                 static_cast<uint64_t>(flags.worker) + 1);
  const DataSet test = Generate(dim, 2048, flags.seed, 0);
  if (flags.worker == 0)
    std::printf("worker 0: %d features, %d workers, %s mode, %d steps\n", dim,
                flags.workers, use_view ? "co-processor (ModelView)" : "pull",
                flags.steps);

  Eigen::VectorXf w(dim), grad_w(dim);
  float b = 0, grad_b = 0;
  if (flags.worker == 0) {
    shardps::Status s = source->Read(&w, &b);
    if (!s.ok()) return Fail("read weights", s);
    const Metrics m = Evaluate(test, w, b);
    std::printf("worker 0: step %4d  test loss %.4f  accuracy %.3f\n", 0,
                m.loss, m.accuracy);
  }
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < flags.steps; ++step) {
    shardps::Status s = source->Read(&w, &b);
    if (!s.ok()) return Fail("read weights", s);
    const int first = (step * flags.batch) % (flags.samples - flags.batch);
    const auto xb = train.x.middleRows(first, flags.batch);
    const auto yb = train.y.segment(first, flags.batch);
    const Eigen::ArrayXf p = 1.f / (1.f + (-((xb * w).array() + b)).exp());
    const Eigen::VectorXf err = (p - yb.array()).matrix() / flags.batch;
    grad_w.noalias() = xb.transpose() * err;
    grad_b = err.sum();
    auto hw = (*client)->Push("lr.weight", grad_w.data(), dim);
    auto hb = (*client)->Push("lr.bias", &grad_b, 1);
    if (!(s = hw.Wait()).ok() || !(s = hb.Wait()).ok()) return Fail("push", s);
    if (flags.worker == 0 && (step + 1) % flags.log_every == 0) {
      const Metrics m = Evaluate(test, w, b);
      std::printf("worker 0: step %4d  test loss %.4f  accuracy %.3f\n",
                  step + 1, m.loss, m.accuracy);
      std::fflush(stdout);
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  shardps::Status s = source->Read(&w, &b);
  if (!s.ok()) return Fail("read weights", s);
  const Metrics m = Evaluate(test, w, b);
  std::printf(
      "worker %d: done, %d steps in %.2f s (%.0f steps/s), final test "
      "loss %.4f accuracy %.3f\n",
      flags.worker, flags.steps, secs, flags.steps / secs, m.loss, m.accuracy);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Logistic regression trained through a shardps cluster"};
  app.add_option("--cluster", flags.cluster, "Cluster file")->required();
  app.add_option("--worker", flags.worker, "This worker's index")
      ->capture_default_str();
  app.add_option("--workers", flags.workers, "Number of workers")
      ->capture_default_str();
  app.add_option("--steps", flags.steps, "Training steps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", flags.batch, "Mini-batch size")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--samples", flags.samples, "Training samples per worker")
      ->capture_default_str()
      ->check(CLI::Range(8192, 1 << 22));
  app.add_option("--log-every", flags.log_every, "Steps between reports")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", flags.seed, "Data seed")->capture_default_str();
  app.add_option("--mode", flags.mode, "auto, view (ModelView) or pull")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "view", "pull"}));
  CLI11_PARSE(app, argc, argv);
  return Train(flags);
}
