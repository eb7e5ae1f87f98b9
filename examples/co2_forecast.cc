// A CO2 forecaster trained from a stream: `shardps feed` windows the weekly
// Mauna Loa series into a BatchQueue while this trainer consumes it, fits a
// small MLP whose parameters live in the shard servers, stops when its
// validation error stops improving, and closes the queue, which stops the
// feed. It then reports the test error against the naive seasonal baseline
// (the value 52 weeks earlier) and how many batches were made but never used.
//
// The series (co2.csv from Debian's python3-statsmodels, fetched by
// scripts/install-deps.sh) has gaps; they are filled by linear interpolation.
// The first 80% trains, the next 10% validates, the last 10% tests. Each
// window is taken relative to its last value (x - x_last, y - x_last), so the
// net learns the seasonal shape of the increments and not the level, which
// keeps rising out of the training range.
//
// Spec: examples/co2_forecast.toml. Run with scripts/co2.sh.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shardps/batch_queue.h"
#include "shardps/client.h"
#include "shardps/model_view.h"
#include "shardps/windowing.h"

extern char** environ;

namespace {

using Matrix =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int kWindow = 52, kHorizon = 4, kHidden = 32;

struct Flags {
  std::string cluster;
  std::string data = "/usr/local/share/shardps/datasets/co2.csv";
  std::string shardps = "shardps";
  int batch = 32;
  int max_epochs = 60;
  int patience = 6;
  int eval_every = 50;  // batches
};

// Reads "date,co2" rows; empty values are gaps, filled linearly.
shardps::Result<std::vector<float>> LoadSeries(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return shardps::Status(shardps::Code::kNotFound,
                           path + ": missing (run scripts/install-deps.sh)");
  std::string line;
  std::getline(in, line);  // header
  std::vector<float> values;
  std::vector<bool> known;
  while (std::getline(in, line)) {
    const size_t comma = line.find(',');
    if (comma == std::string::npos) continue;
    const std::string v = line.substr(comma + 1);
    const bool ok = !v.empty() && v != "\r";
    values.push_back(ok ? std::stof(v) : 0.0f);
    known.push_back(ok);
  }
  if (values.size() < 500)
    return shardps::Status(shardps::Code::kInvalidArgument,
                           path + ": too short for the example");
  size_t last = values.size();
  for (size_t i = 0; i < values.size(); ++i) {
    if (!known[i]) continue;
    if (last != values.size() && i > last + 1)
      for (size_t j = last + 1; j < i; ++j)
        values[j] = values[last] + (values[i] - values[last]) *
                                       float(j - last) / float(i - last);
    last = i;
  }
  return values;
}

// The model's parameters, as read from the servers.
struct Params {
  Matrix w1{kHidden, kWindow}, w2{kHorizon, kHidden};
  Eigen::RowVectorXf b1{kHidden}, b2{kHorizon};
};

class Model {
 public:
  explicit Model(shardps::Client& client) : client_(client) {
    auto view = shardps::ModelView::Open(client.local_segments());
    if (view.ok()) view_ = std::move(view).value();
  }
  bool co_located() const { return view_ != nullptr; }

  // Fresh weights: straight from the segments when co-located, else pulled.
  shardps::Status Read(Params* p) {
    struct T {
      const char* name;
      float* data;
      size_t n;
    } tensors[] = {{"fc1.weight", p->w1.data(), size_t(p->w1.size())},
                   {"fc1.bias", p->b1.data(), size_t(p->b1.size())},
                   {"fc2.weight", p->w2.data(), size_t(p->w2.size())},
                   {"fc2.bias", p->b2.data(), size_t(p->b2.size())}};
    for (const T& t : tensors) {
      shardps::Status s = view_ ? view_->Copy(t.name, t.data, t.n)
                                : client_.Pull(t.name, t.data, t.n).Wait();
      if (!s.ok()) return s;
    }
    return shardps::Status::Ok();
  }

 private:
  shardps::Client& client_;
  std::unique_ptr<shardps::ModelView> view_;
};

// Forward pass: x [B, W] relative windows -> predictions [B, H].
Matrix Forward(const Params& p, const Matrix& x, Matrix* hidden) {
  *hidden = ((x * p.w1.transpose()).rowwise() + p.b1).array().tanh().matrix();
  return (*hidden * p.w2.transpose()).rowwise() + p.b2;
}

// Mean absolute error in ppm over windows starting in [begin, end) of the
// normalised series, and the seasonal-naive error over the same targets.
std::pair<double, double> Evaluate(const Params& p,
                                   const std::vector<float>& raw,
                                   const shardps::Normalizer& norm,
                                   size_t begin, size_t end) {
  const size_t n = end - begin;
  Matrix x(n, kWindow);
  std::vector<float> last(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t s = begin + i;
    const float base = raw[s + kWindow - 1];
    last[i] = base;
    for (int t = 0; t < kWindow; ++t)
      x(i, t) = static_cast<float>((raw[s + t] - base) / norm.std(0));
  }
  Matrix hidden;
  const Matrix y = Forward(p, x, &hidden);
  double model = 0, naive = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t s = begin + i;
    for (int h = 0; h < kHorizon; ++h) {
      const double truth = raw[s + kWindow + h];
      const double pred = last[i] + y(i, h) * norm.std(0);
      model += std::abs(pred - truth);
      naive += std::abs(raw[s + kWindow + h - 52] - truth);
    }
  }
  return {model / double(n * kHorizon), naive / double(n * kHorizon)};
}

// Runs `shardps feed` over the training CSV once per epoch until the queue
// closes or the epochs run out.
void FeedEpochs(const Flags& flags, const std::string& queue,
                const std::string& csv, std::atomic<bool>* done) {
  for (int e = 0; e < flags.max_epochs; ++e) {
    std::vector<std::string> args = {
        flags.shardps, "feed",   "--queue",   queue,
        "--window",    "52",     "--horizon", "4",
        "--stride",    "1",      "--batch",   std::to_string(flags.batch),
        "--shuffle",   "512",    "--seed",    std::to_string(e + 1),
        "--norm-rows", "100000", csv};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) !=
        0) {
      std::fprintf(stderr, "co2: cannot start %s\n", flags.shardps.c_str());
      break;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    auto q = shardps::BatchQueue::Open(queue);
    if (!q.ok() || (*q)->closed()) break;
  }
  done->store(true);
}

int Run(const Flags& flags) {
  auto series = LoadSeries(flags.data);
  if (!series.ok()) {
    std::fprintf(stderr, "co2: %s\n", series.status().ToString().c_str());
    return 2;
  }
  const std::vector<float>& raw = *series;
  const size_t n = raw.size();
  const size_t train_end = n * 8 / 10, valid_end = n * 9 / 10;
  const size_t span = kWindow + kHorizon;

  // The training part, as the CSV a feed reads.
  const std::string dir = "/dev/shm";
  const std::string tag = std::to_string(::getpid());
  const std::string csv = dir + "/co2-train-" + tag + ".csv";
  const std::string queue_path = dir + "/co2-" + tag + ".queue";
  {
    std::ofstream out(csv);
    out << "co2\n";
    for (size_t i = 0; i < train_end; ++i) out << raw[i] << "\n";
  }
  auto client = shardps::Client::Connect(flags.cluster);
  if (!client.ok()) {
    std::fprintf(stderr, "co2: %s\n", client.status().ToString().c_str());
    return 1;
  }
  Model model(**client);
  const uint64_t slot_bytes =
      uint64_t(flags.batch) * (kWindow + kHorizon) * sizeof(float);
  auto queue = shardps::BatchQueue::Create(queue_path, 8, slot_bytes);
  if (!queue.ok()) {
    std::fprintf(stderr, "co2: %s\n", queue.status().ToString().c_str());
    return 1;
  }
  std::atomic<bool> feeding_done{false};
  std::thread feeder(FeedEpochs, std::cref(flags), queue_path, csv,
                     &feeding_done);
  std::printf("co2: %zu weeks (train %zu, validate %zu, test %zu), %s mode\n",
              n, train_end, valid_end - train_end, n - valid_end,
              model.co_located() ? "co-processor (ModelView)" : "pull");

  Params p;
  Matrix x, t, hidden, grad_w1, grad_w2;
  Eigen::RowVectorXf grad_b1, grad_b2;
  shardps::Normalizer norm;
  double best = 1e30;
  int since_best = 0, batches = 0;
  const auto start = std::chrono::steady_clock::now();
  shardps::Status failure;
  for (;;) {
    auto batch = (*queue)->Next(std::chrono::milliseconds(200));
    if (!batch.ok()) {
      if (batch.status().code() == shardps::Code::kTimeout &&
          !feeding_done.load())
        continue;
      break;  // epochs exhausted
    }
    if (norm.columns() == 0) {
      auto meta = shardps::ParseStreamMeta((*queue)->Meta());
      if (!meta.ok()) {
        failure = meta.status();
        break;
      }
      norm = meta->normalizer;
    }
    const int rows = static_cast<int>(batch->shape().batch);
    x = Eigen::Map<const Matrix>(batch->features(), rows, kWindow);
    t = Eigen::Map<const Matrix>(batch->labels(), rows, kHorizon);
    (*queue)->Release(*batch);
    // Relative to each window's last value (normalisation is linear, so
    // this is the same in normalised units).
    const Eigen::VectorXf last = x.col(kWindow - 1);
    x.colwise() -= last;
    t.colwise() -= last;

    if (failure = model.Read(&p); !failure.ok()) break;
    const Matrix y = Forward(p, x, &hidden);
    const Matrix dy = (y - t) * (2.0f / float(rows * kHorizon));
    grad_w2 = dy.transpose() * hidden;
    grad_b2 = dy.colwise().sum();
    const Matrix dz =
        ((dy * p.w2).array() * (1.0f - hidden.array().square())).matrix();
    grad_w1 = dz.transpose() * x;
    grad_b1 = dz.colwise().sum();
    shardps::Handle pushes[] = {
        (*client)->Push("fc1.weight", grad_w1.data(), grad_w1.size()),
        (*client)->Push("fc1.bias", grad_b1.data(), grad_b1.size()),
        (*client)->Push("fc2.weight", grad_w2.data(), grad_w2.size()),
        (*client)->Push("fc2.bias", grad_b2.data(), grad_b2.size())};
    for (auto& h : pushes)
      if (shardps::Status s = h.Wait(); !s.ok()) failure = s;
    if (!failure.ok()) break;
    if (++batches % flags.eval_every != 0 || norm.columns() == 0) continue;

    if (failure = model.Read(&p); !failure.ok()) break;
    const auto [valid_mae, valid_naive] =
        Evaluate(p, raw, norm, train_end, valid_end - span + 1);
    std::printf(
        "co2: batch %5d  validation MAE %.3f ppm (seasonal naive %.3f)\n",
        batches, valid_mae, valid_naive);
    std::fflush(stdout);
    if (valid_mae < best - 1e-4) {
      best = valid_mae;
      since_best = 0;
    } else if (++since_best >= flags.patience) {
      break;  // no longer improving: stop training, and so the stream
    }
  }
  (*queue)->Close();
  feeder.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const shardps::QueueStats qs = (*queue)->Stats();
  ::unlink(csv.c_str());
  ::unlink(queue_path.c_str());
  if (!failure.ok()) {
    std::fprintf(stderr, "co2: %s\n", failure.ToString().c_str());
    return 1;
  }
  if (norm.columns() == 0 || !model.Read(&p).ok()) {
    std::fprintf(stderr, "co2: no batch arrived\n");
    return 1;
  }
  const auto [test_mae, test_naive] =
      Evaluate(p, raw, norm, valid_end - span + 1, n - span + 1);
  std::printf(
      "co2: trained on %d batches in %.1f s; test MAE %.3f ppm vs seasonal "
      "naive %.3f ppm (%.1fx better)\n",
      batches, seconds, test_mae, test_naive, test_naive / test_mae);
  std::printf(
      "co2: batches generated %llu, consumed %llu, generated but never used "
      "%llu\n",
      static_cast<unsigned long long>(qs.produced),
      static_cast<unsigned long long>(qs.consumed),
      static_cast<unsigned long long>(qs.produced - qs.consumed));
  return test_mae < test_naive ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"CO2 forecaster trained from a shardps feed stream"};
  app.add_option("--cluster", flags.cluster, "Cluster file")->required();
  app.add_option("--data", flags.data, "co2.csv")->capture_default_str();
  app.add_option("--shardps", flags.shardps, "The shardps binary")
      ->capture_default_str();
  app.add_option("--batch", flags.batch)->capture_default_str();
  app.add_option("--max-epochs", flags.max_epochs)->capture_default_str();
  app.add_option("--patience", flags.patience,
                 "Evaluations without improvement before stopping")
      ->capture_default_str();
  app.add_option("--eval-every", flags.eval_every,
                 "Batches between evaluations")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  return Run(flags);
}
