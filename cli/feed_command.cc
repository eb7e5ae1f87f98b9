// `shardps feed`: streams a CSV time series into a BatchQueue as
// (window, label) batches until the input ends or the queue is closed.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "shardps/batch_queue.h"
#include "shardps/client.h"
#include "shardps/windowing.h"

namespace shardps::cli {

namespace {

struct FeedFlags {
  std::string queue;
  std::string input = "-";
  uint32_t window = 0, horizon = 1, stride = 1, batch = 32;
  std::vector<std::string> columns;  // features; default: all
  std::string target;                // default: the last column
  uint64_t norm_rows = 1000;         // 0: no normalisation
  uint32_t shuffle = 0;
  uint64_t seed = 1;
  bool no_header = false;
  bool skip_bad_rows = false;
  bool end_at_eof = false;  // MarkEnd once the input is fed
  bool drop_last = false;   // no short final batch
  int timeout_ms = 60000;
  int connect_timeout_ms = kConnectTimeoutMs;  // remote queues
  uint64_t producer_id = 0;
  ClientCurveFlags curve;  // remote queues only
};

// Where batches go: a queue file on this host, or a queue a shard server
// hosts (QueuePush over ZeroMQ).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Push(const BatchShape& shape, const float* features,
                      const float* labels, uint64_t producer_id,
                      uint64_t seq) = 0;
  virtual bool closed() const = 0;
  virtual uint64_t slot_bytes() const = 0;  // 0: unknown here
  virtual Status RecordMeta(const std::string& text) = 0;
  virtual double blocked_s() const = 0;
  // This producer's end mark (BatchQueue::MarkEnd).
  virtual Status MarkEnd() = 0;
};

class LocalSink : public Sink {
 public:
  LocalSink(std::unique_ptr<BatchQueue> q, int timeout_ms)
      : q_(std::move(q)), timeout_(timeout_ms) {}
  Status Push(const BatchShape& shape, const float* f, const float* l,
              uint64_t id, uint64_t seq) override {
    return q_->Push(shape, f, l, timeout_, id, seq);
  }
  bool closed() const override { return q_->closed(); }
  uint64_t slot_bytes() const override { return q_->slot_bytes(); }
  Status RecordMeta(const std::string& text) override {
    // The first producer records the normalisation for the trainer.
    return q_->Meta().empty() ? q_->SetMeta(text) : Status::Ok();
  }
  double blocked_s() const override { return q_->Stats().producer_blocked_s; }
  Status MarkEnd() override { return q_->MarkEnd(); }
  uint32_t producers() const { return q_->producers(); }

 private:
  std::unique_ptr<BatchQueue> q_;
  const std::chrono::milliseconds timeout_;
};

Status RemoteEndUnsupported() {
  return Status(Code::kInvalidArgument,
                "--end-at-eof needs a queue file on this host (a queue a "
                "server hosts has no end marks yet)");
}

class RemoteSink : public Sink {
 public:
  RemoteSink(std::unique_ptr<Client> c, std::string queue)
      : client_(std::move(c)), queue_(std::move(queue)) {}
  Status Push(const BatchShape& shape, const float* f, const float* l, uint64_t,
              uint64_t) override {
    const auto t0 = std::chrono::steady_clock::now();
    Status s = client_->QueuePush(0, queue_, shape, f, l).Wait();
    waited_s_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    if (s.code() == Code::kClosed) closed_ = true;
    return s.code() == Code::kClosed ? Status(Code::kClosed, "closed") : s;
  }
  bool closed() const override { return closed_; }
  uint64_t slot_bytes() const override { return 0; }
  Status RecordMeta(const std::string&) override { return Status::Ok(); }
  double blocked_s() const override { return waited_s_; }
  Status MarkEnd() override { return RemoteEndUnsupported(); }

 private:
  std::unique_ptr<Client> client_;
  const std::string queue_;
  bool closed_ = false;
  double waited_s_ = 0;
};

struct FeedResult {
  uint64_t rows = 0, windows = 0, batches = 0;
  uint64_t dropped_windows = 0;  // --drop-last
  bool closed = false;
};

// Resolves the feature and target columns against the CSV's header.
Status ResolveColumns(const FeedFlags& flags, const CsvReader& csv,
                      size_t columns, WindowOptions* o) {
  if (flags.target.empty()) {
    o->target = static_cast<uint32_t>(columns - 1);
  } else {
    auto t = csv.Column(flags.target);
    if (!t.ok()) return t.status().WithContext("--target");
    o->target = *t;
  }
  if (flags.columns.empty()) {
    for (uint32_t c = 0; c < columns; ++c) o->features.push_back(c);
  } else {
    for (const std::string& name : flags.columns) {
      auto c = csv.Column(name);
      if (!c.ok()) return c.status().WithContext("--columns");
      o->features.push_back(*c);
    }
  }
  return ValidateWindowOptions(*o, columns);
}

// The first rows, up to --norm-rows (at least one), go to `head`: they fix
// the column count and the normalisation, and are fed like the rest
// afterwards. *held = 0 for an empty input.
Status ReadHead(const FeedFlags& flags, CsvReader& csv,
                std::vector<float>* head, size_t* columns, uint64_t* held) {
  std::vector<float> row;
  for (;;) {
    if (*held >= std::max<uint64_t>(flags.norm_rows, 1)) break;
    auto more = csv.Next(&row);
    if (!more.ok()) return more.status();
    if (!*more) break;
    *columns = row.size();
    head->insert(head->end(), row.begin(), row.end());
    ++*held;
  }
  return Status::Ok();
}

// The first producer records the stream's description for the trainer
// (ParseStreamMeta reads it back).
Status RecordStreamMeta(const WindowOptions& o, const Normalizer& norm,
                        Sink& queue) {
  StreamMeta meta;
  meta.normalizer = norm;
  meta.target = o.target;
  meta.columns = o.features;
  meta.window = o.window;
  meta.horizon = o.horizon;
  return queue.RecordMeta(FormatStreamMeta(meta));
}

// A batch must fit the slots of a queue file (a remote queue's slot size
// is not known here).
Status CheckBatchFits(const BatchShape& full, const Sink& queue) {
  if (queue.slot_bytes() > 0 && full.bytes() > queue.slot_bytes())
    return Status(Code::kInvalidArgument,
                  "a batch of " + std::to_string(full.bytes()) +
                      " bytes does not fit the queue's " +
                      std::to_string(queue.slot_bytes()) + "-byte slots");
  return Status::Ok();
}

Result<FeedResult> Feed(const FeedFlags& flags, std::istream& in, Sink& queue) {
  CsvReader csv(in, !flags.no_header, flags.skip_bad_rows);
  std::vector<float> head, row;
  size_t columns = 0;
  uint64_t held = 0;
  SHARDPS_RETURN_IF_ERROR(ReadHead(flags, csv, &head, &columns, &held));
  FeedResult result;
  if (held == 0) return result;  // empty input: nothing to do
  WindowOptions o;
  o.window = flags.window;
  o.horizon = flags.horizon;
  o.stride = flags.stride;
  SHARDPS_RETURN_IF_ERROR(ResolveColumns(flags, csv, columns, &o));
  const Normalizer norm =
      flags.norm_rows > 0 ? Normalizer::Fit(head, columns) : Normalizer();
  SHARDPS_RETURN_IF_ERROR(RecordStreamMeta(o, norm, queue));

  const BatchShape full{flags.batch, flags.window,
                        static_cast<uint32_t>(o.features.size()),
                        flags.horizon};
  SHARDPS_RETURN_IF_ERROR(CheckBatchFits(full, queue));
  Status push_error;
  BatchBuilder builder(flags.batch, flags.window, full.features, flags.horizon,
                       flags.shuffle, flags.seed);
  const auto on_batch = [&](const float* f, const float* l, uint32_t rows) {
    // Only the final batch of a flush can be short.
    if (flags.drop_last && rows < flags.batch) {
      result.dropped_windows += rows;
      return true;
    }
    BatchShape shape = full;
    shape.batch = rows;
    Status s = queue.Push(shape, f, l, flags.producer_id, result.batches);
    if (s.code() == Code::kClosed) {
      result.closed = true;
      return false;
    }
    if (!s.ok()) {
      push_error = s;
      return false;
    }
    ++result.batches;
    return true;
  };
  Windower windower(o, columns);
  bool going = true;
  const auto emit = [&](const float* w, const float* l) {
    if (going) going = builder.Add(w, l, on_batch);
  };
  auto add_row = [&](float* values) {
    if (flags.norm_rows > 0) norm.Apply(values);
    windower.Add(values, emit);
    ++result.rows;
  };
  for (uint64_t r = 0; r < held && going; ++r) add_row(&head[r * columns]);
  while (going) {
    // Checked per row as well as per push, so a closed queue stops the
    // reading even while windows are still filling the shuffle buffer.
    if (queue.closed()) {
      result.closed = true;
      break;
    }
    auto more = csv.Next(&row);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (row.size() != columns) continue;  // CsvReader already checks
    add_row(row.data());
  }
  if (going && !result.closed) builder.Flush(on_batch);
  if (!push_error.ok()) return push_error;
  result.windows = windower.windows();
  // The end mark comes after the last push returned, so consumers that see
  // the queue end have every batch of this feed before them.
  if (flags.end_at_eof && !result.closed)
    SHARDPS_RETURN_IF_ERROR(queue.MarkEnd());
  if (csv.skipped() > 0)
    std::fprintf(stderr, "shardps feed: skipped %llu bad row(s)\n",
                 static_cast<unsigned long long>(csv.skipped()));
  return result;
}

// ENDPOINT/NAME: a queue hosted by a shard server (serve --queue); `scheme`
// is where "://" starts in --queue.
Result<std::unique_ptr<Sink>> OpenRemoteSink(const FeedFlags& flags,
                                             size_t scheme) {
  if (flags.end_at_eof) return RemoteEndUnsupported();
  const size_t slash = flags.queue.rfind('/');
  if (slash <= scheme + 2 || slash + 1 == flags.queue.size())
    return Status(Code::kInvalidArgument, "--queue " + flags.queue +
                                              ": expected ENDPOINT/NAME, e.g. "
                                              "tcp://host:5555/co2");
  ClusterInfo cluster;
  cluster.shards.push_back({0, flags.queue.substr(0, slash), ""});
  ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(flags.timeout_ms);
  options.connect_timeout = std::chrono::milliseconds(flags.connect_timeout_ms);
  Status keys = ApplyClientCurveFlags(flags.curve, &options);
  if (!keys.ok()) return keys;
  if (!options.curve_public_key.empty() && options.curve_server_key.empty())
    return Status(Code::kInvalidArgument,
                  "--curve-key with a remote --queue needs "
                  "--server-key (there is no cluster file to name "
                  "it)");
  auto client = Client::Connect(cluster, options);
  if (!client.ok()) return client.status();
  return std::unique_ptr<Sink>(std::make_unique<RemoteSink>(
      std::move(client).value(), flags.queue.substr(slash + 1)));
}

// A queue file on this host.
Result<std::unique_ptr<Sink>> OpenLocalSink(const FeedFlags& flags) {
  auto queue = BatchQueue::Open(flags.queue);
  if (!queue.ok() && queue.status().code() == Code::kNotFound)
    return Status(Code::kNotFound,
                  queue.status().message() +
                      ": create it with `shardps queue create " + flags.queue +
                      " --slots N --slot-bytes B`, or let a server "
                      "host it (serve --queue) and feed ENDPOINT/NAME");
  if (!queue.ok()) return queue.status();
  // Refused before reading any input: marking at the end would fail
  // after the whole file had been fed (MarkEnd refuses a queue of no
  // producers, so this returns its error).
  if (flags.end_at_eof && (*queue)->producers() == 0)
    return (*queue)->MarkEnd();
  return std::unique_ptr<Sink>(
      std::make_unique<LocalSink>(std::move(queue).value(), flags.timeout_ms));
}

int RunFeed(const FeedFlags& flags) {
  signal(SIGPIPE, SIG_IGN);
  if (flags.window == 0)
    return ReportError("feed",
                       Status(Code::kInvalidArgument, "--window must be > 0"));
  const size_t scheme = flags.queue.find("://");
  auto opened = scheme != std::string::npos ? OpenRemoteSink(flags, scheme)
                                            : OpenLocalSink(flags);
  if (!opened.ok()) return ReportError("feed", opened.status());
  std::unique_ptr<Sink> sink = std::move(opened).value();
  std::ifstream file;
  std::istream* in = &std::cin;
  if (flags.input != "-") {
    file.open(flags.input);
    if (!file)
      return ReportError(
          "feed", Status(Code::kNotFound, flags.input + ": cannot open"));
    in = &file;
  }
  const auto start = std::chrono::steady_clock::now();
  const double blocked_before = sink->blocked_s();
  auto result = Feed(flags, *in, *sink);
  if (!result.ok()) return ReportError("feed", result.status());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf(
      "fed %llu batches (%llu windows from %llu rows) in %.2f s; queue "
      "producers blocked %.2f s; stopped: %s\n",
      static_cast<unsigned long long>(result->batches),
      static_cast<unsigned long long>(result->windows),
      static_cast<unsigned long long>(result->rows), seconds,
      sink->blocked_s() - blocked_before,
      result->closed     ? "queue closed"
      : flags.end_at_eof ? "input ended (end marked)"
                         : "input ended");
  if (result->dropped_windows > 0)
    std::printf(
        "dropped the last %llu window(s): a short batch (--drop-last)\n",
        static_cast<unsigned long long>(result->dropped_windows));
  return 0;
}

}  // namespace

void RegisterFeed(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<FeedFlags>();
  CLI::App* cmd = app.add_subcommand(
      "feed", "Stream a CSV time series into a batch queue as windows");
  cmd->add_option("--queue", flags->queue,
                  "Queue file on this host, or ENDPOINT/NAME of a queue a "
                  "shard server hosts (serve --queue)")
      ->required();
  cmd->add_option("--window", flags->window, "Rows per window")->required();
  cmd->add_option("--horizon", flags->horizon, "Label rows after a window")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20));
  cmd->add_option("--stride", flags->stride, "Rows between window starts")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 30));
  cmd->add_option("--batch", flags->batch, "Windows per batch")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20));
  cmd->add_option("--columns", flags->columns,
                  "Feature columns (names or 0-based indices); default all")
      ->delimiter(',');
  cmd->add_option("--target", flags->target,
                  "Label column (name or index); default the last");
  cmd->add_option("--norm-rows", flags->norm_rows,
                  "Rows from the start used for the z-score (0: none)")
      ->capture_default_str();
  cmd->add_option("--shuffle", flags->shuffle,
                  "Shuffle windows through a buffer of this many")
      ->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Shuffle seed")->capture_default_str();
  cmd->add_flag("--no-header", flags->no_header, "The CSV has no header line");
  cmd->add_flag("--skip-bad-rows", flags->skip_bad_rows,
                "Skip and count malformed rows instead of failing");
  cmd->add_flag("--end-at-eof", flags->end_at_eof,
                "At the end of the input, mark this producer's end; the "
                "queue (created with --producers N) ends after N marks");
  cmd->add_flag("--drop-last", flags->drop_last,
                "Drop the final batch when it is short (fewer than --batch "
                "windows) instead of sending it");
  cmd->add_option("--timeout-ms", flags->timeout_ms,
                  "Give up when the queue stays full this long")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400000));
  cmd->add_option("--producer-id", flags->producer_id,
                  "Tags this feed's batches")
      ->capture_default_str();
  AddConnectTimeout(cmd, &flags->connect_timeout_ms);
  AddClientCurveFlags(cmd, &flags->curve);
  cmd->add_option("input", flags->input, "CSV file, or - for stdin")
      ->capture_default_str();
  cmd->callback([flags, exit_code] { *exit_code = RunFeed(*flags); });
}

}  // namespace shardps::cli
