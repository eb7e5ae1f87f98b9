// stream workload: training data streamed through a BatchQueue against the
// batch-job way (generate every window, write them to a file, read them
// back), on the same generated series. Training takes a fixed number of
// batches and stops, as it does when it converges early.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench/cluster.h"
#include "bench/workloads.h"
#include "shardps/batch_queue.h"
#include "shardps/windowing.h"

namespace shardps::bench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kColumns = 4, kWindow = 64, kHorizon = 8, kBatch = 128;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Row t of a synthetic multivariate series (seasonal waves plus a trend).
void MakeRow(uint64_t t, float* row) {
  for (uint32_t c = 0; c < kColumns; ++c)
    row[c] = static_cast<float>(std::sin(0.01 * t * (c + 1)) + 1e-5 * t + c);
}

// Windows the series into batches, handing each to `sink` until it says
// stop. Returns the batches made.
uint64_t Produce(uint64_t rows, const BatchBuilder::OnBatch& sink) {
  WindowOptions o;
  o.window = kWindow;
  o.horizon = kHorizon;
  o.features = {0, 1, 2, 3};
  o.target = 0;
  Windower w(o, kColumns);
  BatchBuilder b(kBatch, kWindow, kColumns, kHorizon, 0, 1);
  uint64_t made = 0;
  bool going = true;
  const BatchBuilder::OnBatch counted = [&](const float* f, const float* l,
                                            uint32_t n) {
    ++made;
    return sink(f, l, n);
  };
  float row[kColumns];
  for (uint64_t t = 0; t < rows && going; ++t) {
    MakeRow(t, row);
    w.Add(row, [&](const float* win, const float* lab) {
      if (going) going = b.Add(win, lab, counted);
    });
  }
  if (going) b.Flush(counted);
  return made;
}

// Reads the batch's every float, as a training step would.
double Touch(const float* p, uint64_t n) {
  double s = 0;
  for (uint64_t i = 0; i < n; ++i) s += p[i];
  return s;
}

struct Outcome {
  double first_s = 0, total_s = 0;
  uint64_t generated_bytes = 0, consumed_bytes = 0;
};

Result<Outcome> Streamed(const SuiteOptions& o, const std::string& dir) {
  const BatchShape shape{kBatch, kWindow, kColumns, kHorizon};
  auto q = BatchQueue::Create(dir + "/stream.queue", 16, shape.bytes());
  if (!q.ok()) return q.status();
  Outcome out;
  const auto start = Clock::now();
  std::thread producer([&] {
    Produce(o.stream_rows, [&](const float* f, const float* l, uint32_t n) {
      BatchShape s = shape;
      s.batch = n;
      return (*q)->Push(s, f, l, std::chrono::seconds(60)).ok();
    });
  });
  double sink = 0;
  for (uint64_t i = 0; i < o.stream_batches_used; ++i) {
    auto b = (*q)->Next(std::chrono::seconds(60));
    if (!b.ok()) break;
    if (i == 0) out.first_s = Since(start);
    sink += Touch(b->features(), b->shape().feature_floats());
    out.consumed_bytes += b->shape().bytes();
    (*q)->Release(*b);
  }
  (*q)->Close();
  producer.join();
  out.total_s = Since(start);
  out.generated_bytes = (*q)->Stats().produced * shape.bytes();
  if (sink == 42.0) std::fprintf(stderr, " ");  // keep `sink` alive
  return out;
}

Result<Outcome> BatchJob(const SuiteOptions& o, const std::string& path) {
  Outcome out;
  const auto start = Clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return Status(Code::kIoError, "cannot create " + path);
  Status write_error;
  const BatchShape shape{kBatch, kWindow, kColumns, kHorizon};
  std::vector<float> record(shape.feature_floats() + shape.label_floats());
  Produce(o.stream_rows, [&](const float* f, const float* l, uint32_t) {
    std::copy(f, f + shape.feature_floats(), record.begin());
    std::copy(l, l + shape.label_floats(),
              record.begin() + shape.feature_floats());
    if (::write(fd, record.data(), shape.bytes()) !=
        static_cast<ssize_t>(shape.bytes()))
      write_error = Status(Code::kIoError, "short write to " + path);
    out.generated_bytes += shape.bytes();
    return write_error.ok();
  });
  ::fsync(fd);  // the job's output is durable before training may start
  ::close(fd);
  if (!write_error.ok()) return write_error;
  const int in = ::open(path.c_str(), O_RDONLY);
  if (in < 0) return Status(Code::kIoError, "cannot open " + path);
  double sink = 0;
  for (uint64_t i = 0; i < o.stream_batches_used; ++i) {
    if (::read(in, record.data(), shape.bytes()) !=
        static_cast<ssize_t>(shape.bytes()))
      break;
    if (i == 0) out.first_s = Since(start);
    sink += Touch(record.data(), shape.feature_floats());
    out.consumed_bytes += shape.bytes();
  }
  ::close(in);
  ::unlink(path.c_str());
  out.total_s = Since(start);
  if (sink == 42.0) std::fprintf(stderr, " ");
  return out;
}

Figure StreamFigure(const std::string& name, double value, double ceiling,
                    const std::string& unit, const SuiteOptions& o,
                    const std::string& note) {
  Figure f;
  f.workload = "stream";
  f.name = name;
  f.config = {{"rows", std::to_string(o.stream_rows)},
              {"window", std::to_string(kWindow)},
              {"batch", std::to_string(kBatch)},
              {"used", std::to_string(o.stream_batches_used)}};
  f.value = value;
  f.unit = unit;
  f.ceiling = ceiling;
  f.ceiling_name = "batch job (write, fsync, read)";
  f.note = note;
  return f;
}

}  // namespace

Status RunStream(const SuiteOptions& o, Report* report) {
  auto dir = MakeTempDir();
  if (!dir.ok()) return dir.status();
  // The batch job writes where a job's output would go: a disk, not tmpfs.
  const char* disk = std::getenv("SHARDPS_BENCH_DISK");
  const std::string job_file =
      std::string(disk ? disk : "/tmp") + "/shardps-bench-windows.bin";
  std::fprintf(stderr, "stream: BatchQueue vs batch job, %llu rows\n",
               static_cast<unsigned long long>(o.stream_rows));
  auto streamed = Streamed(o, *dir);
  auto job = BatchJob(o, job_file);
  RemoveTree(*dir);
  if (!streamed.ok()) return streamed.status();
  if (!job.ok()) return job.status();
  report->Add(StreamFigure("time to first batch", streamed->first_s * 1e3,
                           job->first_s * 1e3, "ms", o, "lower is better"));
  report->Add(StreamFigure("total time", streamed->total_s * 1e3,
                           job->total_s * 1e3, "ms", o, "lower is better"));
  char note[96];
  std::snprintf(note, sizeof(note), "consumed %.1f MB of it",
                streamed->consumed_bytes / 1e6);
  report->Add(StreamFigure("bytes generated", streamed->generated_bytes / 1e6,
                           job->generated_bytes / 1e6, "MB", o, note));
  return Status::Ok();
}

}  // namespace shardps::bench
