#include "tests/integration/harness.h"

#include <limits.h>
#include <poll.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/segment.h"
#include "shardps/model_spec.h"

namespace shardps::testing {

namespace {

constexpr char kListeningPrefix[] = "listening on ";

std::string ShapeToml(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The spec's storage may be relative; the cluster file must hold the same
// absolute segment paths the servers report.
std::string Absolute(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

}  // namespace

std::string SpecText(const std::string& model, uint64_t block_floats, double lr,
                     const std::vector<TensorDef>& tensors) {
  std::ostringstream toml;
  toml << "[model]\nname = \"" << model << "\"\nblock_floats = " << block_floats
       << "\n\n[optimizer]\nkind = \"sgd\"\nlr = " << lr << "\n";
  for (const TensorDef& t : tensors)
    toml << "\n[[tensor]]\nname = \"" << t.name
         << "\"\nshape = " << ShapeToml(t.shape) << "\ninit = \"" << t.init
         << "\"\n";
  return toml.str();
}

std::string WriteSpec(const std::string& path, const std::string& text) {
  WriteFileBytes(path, text);
  return path;
}

std::vector<std::string> ServeArgv(const ServeArgs& args) {
  std::vector<std::string> argv = {kShardpsBinary, "serve",
                                   "--spec",       args.spec,
                                   "--shard",      std::to_string(args.shard),
                                   "--shards",     std::to_string(args.shards),
                                   "--listen",     args.listen};
  if (!args.storage.empty()) {
    argv.push_back("--storage");
    argv.push_back(args.storage);
  }
  argv.insert(argv.end(), args.extra.begin(), args.extra.end());
  return argv;
}

Result<ServerProcess> StartServer(const ServeArgs& args) {
  auto child = ChildProcess::Spawn(ServeArgv(args));
  if (!child.ok()) return child.status();
  ServerProcess server;
  server.process = std::move(child).value();
  const auto line = server.process->ReadLine(kStartTimeout);
  const std::string prefix = kListeningPrefix;
  if (!line || line->compare(0, prefix.size(), prefix) != 0) {
    const auto exit = server.process->Wait(std::chrono::milliseconds(100));
    return Status(Code::kUnavailable,
                  "shardps serve --shard " + std::to_string(args.shard) +
                      " did not start (" +
                      (exit ? exit->ToString() : std::string("still running")) +
                      "; first line '" + line.value_or("") +
                      "'): " + server.process->Stderr());
  }
  server.endpoint = line->substr(prefix.size());
  return server;
}

Result<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const std::string& spec_path, const std::string& storage, uint32_t shards,
    const std::string& cluster_file,
    const std::vector<std::string>& serve_flags) {
  auto spec = LoadModelSpec(spec_path);
  if (!spec.ok()) return spec.status();
  std::unique_ptr<LocalCluster> cluster(new LocalCluster());
  cluster->base_.spec = spec_path;
  cluster->base_.shards = shards;
  cluster->base_.storage = storage;
  cluster->base_.extra = serve_flags;
  cluster->cluster_file_ = cluster_file;
  cluster->info_.model = spec->name;
  cluster->info_.spec_hash = SpecHash(*spec);
  for (uint32_t i = 0; i < shards; ++i) {
    ServeArgs args = cluster->base_;
    args.shard = i;
    auto server = StartServer(args);
    if (!server.ok()) return server.status();
    cluster->info_.shards.push_back(
        {i, server->endpoint,
         Absolute(Segment::PathFor(storage, spec->name, i, shards))});
    cluster->servers_.push_back(std::move(server).value());
  }
  SHARDPS_RETURN_IF_ERROR(SaveCluster(cluster->info_, cluster_file));
  return cluster;
}

Status LocalCluster::Restart(uint32_t shard) {
  ServeArgs args = base_;
  args.shard = shard;
  args.listen = info_.shards[shard].endpoint;
  auto server = StartServer(args);
  if (!server.ok()) return server.status();
  if (server->endpoint != info_.shards[shard].endpoint)
    return Status(Code::kInternal, "restarted shard listens on " +
                                       server->endpoint + ", not " +
                                       info_.shards[shard].endpoint);
  servers_[shard] = std::move(server).value();
  return Status::Ok();
}

void WorkerProcess::Absorb(const std::string& line) {
  long a = 0, b = 0;
  if (std::sscanf(line.c_str(), "acked %ld", &a) == 1) {
    acked = a;
  } else if (line.rfind("error ", 0) == 0) {
    errors.push_back(line.substr(6));
  } else if (std::sscanf(line.c_str(), "done acked=%ld attempts=%ld", &a, &b) ==
             2) {
    done = true;
    done_acked = a;
    done_attempts = b;
  }
}

std::vector<std::string> WorkerArgv(const WorkerArgs& args) {
  char value[64];
  // %.17g: the worker parses back exactly the double the test computed with.
  std::snprintf(value, sizeof(value), "%.17g", args.value);
  std::vector<std::string> argv = {kWorkerBinary,
                                   "--cluster",
                                   args.cluster,
                                   "--pushes",
                                   std::to_string(args.pushes),
                                   "--value",
                                   value,
                                   "--timeout-ms",
                                   std::to_string(args.timeout_ms)};
  for (const std::string& t : args.tensors) {
    argv.push_back("--tensor");
    argv.push_back(t);
  }
  if (!args.table.empty()) {
    argv.push_back("--table");
    argv.push_back(args.table);
    argv.push_back("--rows");
    argv.push_back(std::to_string(args.rows));
  }
  if (args.ramp) argv.push_back("--ramp");
  if (args.retry) argv.push_back("--retry");
  if (args.until_signal) argv.push_back("--until-signal");
  if (args.at_least_once) argv.push_back("--at-least-once");
  if (args.client_id != 0) {
    argv.push_back("--client-id");
    argv.push_back(std::to_string(args.client_id));
  }
  if (!args.curve_key.empty()) {
    argv.push_back("--curve-key");
    argv.push_back(args.curve_key);
  }
  return argv;
}

Result<WorkerProcess> StartWorker(const WorkerArgs& args) {
  auto child = ChildProcess::Spawn(WorkerArgv(args));
  if (!child.ok()) return child.status();
  WorkerProcess worker;
  worker.process = std::move(child).value();
  return worker;
}

bool PumpWorkers(std::vector<WorkerProcess>& workers,
                 const std::function<bool()>& until,
                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (WorkerProcess& w : workers)
      while (auto line = w.process->ReadLine(std::chrono::milliseconds(0)))
        w.Absorb(*line);
    if (until()) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    std::vector<pollfd> fds;
    for (WorkerProcess& w : workers)
      if (!w.process->eof()) fds.push_back({w.process->stdout_fd(), POLLIN, 0});
    if (fds.empty()) return until();  // every worker is gone; nothing new
    // Wake on any worker's output; the cap re-checks `until` now and then
    // in case it depends on something other than worker output.
    ::poll(fds.data(), fds.size(),
           static_cast<int>(std::min<long>(left.count(), 100)));
  }
}

RunResult Run(const std::vector<std::string>& argv) {
  RunResult result;
  auto child = ChildProcess::Spawn(argv);
  if (!child.ok()) {
    result.status.code = -1;
    result.err = child.status().ToString();
    return result;
  }
  result.out = (*child)->ReadRemainingStdout(kExitTimeout);
  const auto exit = (*child)->Wait(kExitTimeout);
  result.err = (*child)->Stderr();
  if (exit) {
    result.status = *exit;
  } else {
    // Reported as killed by signal 0: no real process ends that way.
    result.err += "\n[test harness: still running after the timeout]";
  }
  return result;
}

std::vector<pid_t> ShardPids(const std::vector<std::string>& lines) {
  std::vector<pid_t> pids;
  for (const std::string& line : lines) {
    unsigned shard = 0;
    int pid = 0;
    if (std::sscanf(line.c_str(), " shard %u pid %d", &shard, &pid) == 2)
      pids.push_back(pid);
  }
  return pids;
}

}  // namespace shardps::testing
