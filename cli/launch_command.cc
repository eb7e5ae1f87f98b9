// `shardps launch`: start N local shard servers, write the cluster file,
// restart crashed shards on their old endpoint, stop them all on a signal.
// With --this-host ADDR: start only the shards an existing (multi-host)
// cluster file places on ADDR, on exactly its endpoints, and leave the file
// alone (every host's launch reads it).
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/shard_count_check.h"
#include "common/curve_keys.h"
#include "common/posix_file.h"
#include "common/segment.h"
#include "shardps/cluster.h"
#include "shardps/model_spec.h"

namespace shardps::cli {

namespace {

using Clock = std::chrono::steady_clock;

// A shard that keeps crashing is given up on after this many restarts in
// kRestartWindow; the whole cluster is then stopped, loudly.
constexpr int kMaxRestarts = 5;
constexpr std::chrono::seconds kRestartWindow{60};
constexpr std::chrono::seconds kStartTimeout{120};
constexpr std::chrono::seconds kStopTimeout{15};

struct LaunchFlags {
  std::string spec;
  uint32_t shards = 1;
  std::string cluster_file = "cluster.toml";
  uint32_t threads = 1;
  uint32_t workers = 0;  // 0: the spec's
  std::string storage;
  std::string host = "127.0.0.1";
  std::string curve_secret_key;  // passed through to every server
  std::string authorized_keys;
  bool insecure = false;
  bool allow_new = false;  // --new, passed through to every server
  std::string this_host;   // non-empty: start this host's part of the file
  // Non-zero: shard i serves /metrics on 127.0.0.1:metrics_port+i (kept
  // across its restarts, so a scrape config stays right).
  uint32_t metrics_port = 0;
};

struct Shard {
  uint32_t index = 0;
  pid_t pid = -1;
  std::string endpoint;  // resolved; reused when restarting
  std::string segment;
  std::deque<Clock::time_point> restarts;
};

constexpr int kProbeTimeoutMs = 1000;

// Whether something accepts connections on a tcp:// or ipc:// endpoint
// within kProbeTimeoutMs. A transport-level probe, so it also sees a CURVE
// cluster whose keys this process does not hold.
bool EndpointAnswers(const std::string& endpoint) {
  const std::string tcp = "tcp://", ipc = "ipc://";
  if (endpoint.compare(0, ipc.size(), ipc) == 0) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = endpoint.substr(ipc.size());
    if (path.size() >= sizeof(addr.sun_path)) return false;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    return fd.valid() && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr),
                                   sizeof(addr)) == 0;
  }
  if (endpoint.compare(0, tcp.size(), tcp) != 0) return false;
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon < tcp.size()) return false;
  std::string host = endpoint.substr(tcp.size(), colon - tcp.size());
  if (host.size() >= 2 && host.front() == '[')
    host = host.substr(1, host.size() - 2);
  const std::string port = endpoint.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0)
    return false;
  bool answers = false;
  for (addrinfo* a = found; a != nullptr && !answers; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         a->ai_protocol));
    if (!fd.valid()) continue;
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
      answers = true;
      break;
    }
    if (errno != EINPROGRESS) continue;
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, kProbeTimeoutMs) != 1) continue;
    int err = 0;
    socklen_t len = sizeof(err);
    answers = ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
              err == 0;
  }
  ::freeaddrinfo(found);
  return answers;
}

// Ok when `path` may be (over)written: it does not exist, or it is a
// cluster file none of whose servers answers (stale: noted on stderr).
// kBusy when one answers: a second launch must not overwrite a live
// cluster's file (and delete it when it stops); kInvalidArgument when the
// file is not a cluster file at all.
Status CheckClusterFileFree(const std::string& path) {
  Result<std::string> text = ReadFileToString(path);
  if (!text.ok())
    return text.status().code() == Code::kNotFound ? Status::Ok()
                                                   : text.status();
  auto cluster = ParseCluster(*text);
  if (!cluster.ok())
    return Status(Code::kInvalidArgument,
                  path + " exists and is not a cluster file (" +
                      cluster.status().message() +
                      "): remove it or pass another --cluster-file");
  for (const ShardAddress& s : cluster->shards)
    if (EndpointAnswers(s.endpoint))
      return Status(Code::kBusy,
                    path + " belongs to a running cluster (shard " +
                        std::to_string(s.index) + " of model '" +
                        cluster->model + "' answers at " + s.endpoint +
                        "): stop that `shardps launch` first, or pass another "
                        "--cluster-file");
  std::fprintf(stderr,
               "shardps launch: %s is stale (no server of it answers); "
               "replacing it\n",
               path.c_str());
  return Status::Ok();
}

// The `shardps serve` command line of shard `index`.
std::vector<std::string> ServeArgs(const LaunchFlags& flags, uint32_t shards,
                                   const std::string& listen, uint32_t index) {
  std::vector<std::string> args = {"shardps",   "serve",
                                   "--spec",    flags.spec,
                                   "--shard",   std::to_string(index),
                                   "--shards",  std::to_string(shards),
                                   "--listen",  listen,
                                   "--threads", std::to_string(flags.threads)};
  if (!flags.storage.empty()) {
    args.push_back("--storage");
    args.push_back(flags.storage);
  }
  if (flags.workers != 0) {
    args.push_back("--workers");
    args.push_back(std::to_string(flags.workers));
  }
  if (!flags.curve_secret_key.empty()) {
    args.insert(args.end(), {"--curve-secret-key", flags.curve_secret_key,
                             "--authorized-keys", flags.authorized_keys});
  }
  if (flags.insecure) args.push_back("--insecure");
  if (flags.allow_new) args.push_back("--new");
  if (flags.metrics_port != 0)
    args.insert(args.end(), {"--metrics-listen",
                             std::to_string(flags.metrics_port + index)});
  return args;
}

// A started server that did not say where it listens: reaps it (killing it
// if it does not exit) and says why it failed.
Status StartFailed(pid_t pid, Shard* shard) {
  // A server that refused its input (exit 2: a spec that does not match
  // its segment, a bad flag) makes the launch exit 2 too. Give one that
  // closed its stdout a moment to exit with its code before killing it.
  int status = 0;
  pid_t reaped = 0;
  const auto exit_deadline = Clock::now() + std::chrono::seconds(5);
  while ((reaped = ::waitpid(pid, &status, WNOHANG)) == 0 &&
         Clock::now() < exit_deadline)
    ::usleep(10000);  // bounded; only on a failed start
  if (reaped == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  shard->pid = -1;
  const bool bad_input =
      reaped == pid && WIFEXITED(status) && WEXITSTATUS(status) == 2;
  return Status(bad_input ? Code::kInvalidArgument : Code::kUnavailable,
                "shard " + std::to_string(shard->index) +
                    " did not start (see its error above)");
}

// Starts `shardps serve` for `shard` and waits for its "listening on" line.
Status StartShard(const LaunchFlags& flags, uint32_t shards,
                  const std::string& listen, Shard* shard) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  UniqueFd read_end(out[0]), write_end(out[1]);
  std::vector<std::string> args =
      ServeArgs(flags, shards, listen, shard->index);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus("fork", errno);
  if (pid == 0) {
    // Child: stdout to the pipe, signals back to default, then exec. SIGHUP
    // stays blocked: one forwarded before `serve` installs its own handling
    // then waits, pending, instead of killing the starting server.
    ::dup2(write_end.get(), STDOUT_FILENO);
    sigset_t hup_only;
    sigemptyset(&hup_only);
    sigaddset(&hup_only, SIGHUP);
    ::sigprocmask(SIG_SETMASK, &hup_only, nullptr);
    ::execv("/proc/self/exe", argv.data());
    std::perror("shardps launch: exec");
    ::_exit(127);
  }
  write_end.Reset();
  shard->pid = pid;

  std::string line;
  const auto deadline = Clock::now() + kStartTimeout;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{read_end.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    if (n <= 0) break;  // the child exited before saying where it listens
    line.append(buf, static_cast<size_t>(n));
  }
  const std::string prefix = "listening on ";
  if (line.compare(0, prefix.size(), prefix) != 0)
    return StartFailed(pid, shard);
  shard->endpoint = line.substr(prefix.size(), line.find('\n') - prefix.size());
  return Status::Ok();
}

void StopAll(std::vector<Shard>& shards) {
  for (Shard& s : shards)
    if (s.pid > 0) ::kill(s.pid, SIGTERM);
  const auto deadline = Clock::now() + kStopTimeout;
  for (Shard& s : shards) {
    while (s.pid > 0) {
      int status;
      const pid_t r = ::waitpid(s.pid, &status, WNOHANG);
      if (r == s.pid || (r < 0 && errno == ECHILD)) {
        s.pid = -1;
      } else if (Clock::now() > deadline) {
        std::fprintf(stderr,
                     "shardps launch: shard %u ignored SIGTERM, "
                     "killing it\n",
                     s.index);
        ::kill(s.pid, SIGKILL);
      } else {
        ::usleep(20000);  // bounded shutdown wait; not a hot path
      }
    }
  }
}

// Restarts the shard that exited, on its old endpoint so clients reconnect.
// Returns false when it has crashed too often.
bool Restart(const LaunchFlags& flags, uint32_t n, Shard& s) {
  const auto now = Clock::now();
  while (!s.restarts.empty() && now - s.restarts.front() > kRestartWindow)
    s.restarts.pop_front();
  if (static_cast<int>(s.restarts.size()) >= kMaxRestarts) return false;
  s.restarts.push_back(now);
  Status st = StartShard(flags, n, s.endpoint, &s);
  if (!st.ok()) {
    std::fprintf(stderr, "shardps launch: %s\n", st.ToString().c_str());
    return false;
  }
  std::fprintf(stderr, "shardps launch: shard %u restarted (pid %d) on %s\n",
               s.index, s.pid, s.endpoint.c_str());
  return true;
}

// Loads --spec with its storage (--storage or the spec's) made absolute,
// and stores that path in flags.storage for the servers.
Result<ModelSpec> LoadSpec(LaunchFlags& flags) {
  auto spec = LoadModelSpec(flags.spec);
  if (!spec.ok()) return spec.status();
  if (!flags.storage.empty()) spec->storage = flags.storage;
  // Children and the cluster file must agree on one absolute storage path,
  // whatever directory a client later runs in.
  if (spec->storage.front() != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) != nullptr)
      spec->storage = std::string(cwd) + "/" + spec->storage;
  }
  flags.storage = spec->storage;
  return spec;
}

// Creating any shard's segment beside the model at another shard count
// is refused here, before a server starts; with --new each server warns.
// `indices`: the shards this launch starts (all, or this host's part).
Status CheckNewSegments(const LaunchFlags& flags, const ModelSpec& spec,
                        const std::vector<uint32_t>& indices) {
  if (flags.allow_new) return Status::Ok();
  bool creates = false;
  for (uint32_t i : indices) {
    if (creates) break;
    const std::string path =
        Segment::PathFor(spec.storage, spec.name, i, flags.shards);
    struct stat st;
    creates = ::stat(path.c_str(), &st) != 0 && errno == ENOENT;
  }
  if (!creates) return Status::Ok();
  return CheckShardCount("launch", spec.storage, spec.name, flags.shards,
                         false);
}

// Starts every shard on a free port of --host and fills `cluster`: the
// model, the servers' public key under CURVE, each shard's endpoint and
// segment. A failure stops the shards already started.
Status StartShards(const LaunchFlags& flags, const ModelSpec& spec,
                   std::vector<Shard>& shards, ClusterInfo* cluster) {
  cluster->model = spec.name;
  cluster->spec_hash = SpecHash(spec);
  if (!flags.curve_secret_key.empty()) {
    // The servers' public key goes into the cluster file, so clients and
    // `shardps status` need only their own key pair. Loading it here also
    // reports a bad key file once, before any server starts.
    auto pair = LoadCurveSecretKey(flags.curve_secret_key);
    if (!pair.ok()) return pair.status();
    cluster->server_key = pair->public_key;
  }
  for (uint32_t i = 0; i < flags.shards; ++i) {
    shards[i].index = i;
    Status st = StartShard(flags, flags.shards, "tcp://" + flags.host + ":*",
                           &shards[i]);
    if (!st.ok()) {
      StopAll(shards);
      return st;
    }
    shards[i].segment =
        Segment::PathFor(spec.storage, spec.name, i, flags.shards);
    cluster->shards.push_back({i, shards[i].endpoint, shards[i].segment});
  }
  return Status::Ok();
}

// Until SIGINT or SIGTERM arrives on `sfd`: forwards SIGHUP to every shard
// and restarts the shards that exit. Returns the exit code, 1 when a shard
// kept failing.
int Supervise(const LaunchFlags& flags, int sfd, std::vector<Shard>& shards) {
  int exit_code = 0;
  for (bool running = true; running;) {
    signalfd_siginfo info;
    if (::read(sfd, &info, sizeof(info)) != sizeof(info)) continue;
    if (info.ssi_signo == SIGHUP) {
      // Each shard re-reads --authorized-keys (see `serve`).
      for (const Shard& s : shards)
        if (s.pid > 0) ::kill(s.pid, SIGHUP);
      continue;
    }
    if (info.ssi_signo != SIGCHLD) {
      std::fprintf(stderr, "shardps launch: stopping %zu shard(s)\n",
                   shards.size());
      break;
    }
    // SIGCHLDs coalesce: reap every child that has exited.
    for (Shard& s : shards) {
      int status;
      if (s.pid <= 0 || ::waitpid(s.pid, &status, WNOHANG) != s.pid) continue;
      s.pid = -1;
      std::fprintf(
          stderr, "shardps launch: shard %u exited (%s %d)\n", s.index,
          WIFSIGNALED(status) ? "signal" : "status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      if (!Restart(flags, flags.shards, s)) {
        std::fprintf(stderr,
                     "shardps launch: shard %u keeps failing; "
                     "stopping the cluster\n",
                     s.index);
        exit_code = 1;
        running = false;
        break;
      }
    }
  }
  return exit_code;
}

// Stops every shard, then deletes the cluster file if it still holds
// `written`, what this launch wrote.
void StopCluster(const LaunchFlags& flags, std::vector<Shard>& shards,
                 const std::string& written) {
  StopAll(shards);
  Result<std::string> now = ReadFileToString(flags.cluster_file);
  if (now.ok() && *now == written) {
    ::unlink(flags.cluster_file.c_str());
  } else if (now.ok()) {
    std::fprintf(stderr,
                 "shardps launch: keeping %s: it changed since launch wrote "
                 "it\n",
                 flags.cluster_file.c_str());
  }
  std::fprintf(stderr, "shardps launch: all shards stopped\n");
}

// Blocks SIGCHLD, SIGINT, SIGTERM and SIGHUP and returns a signalfd that
// delivers them, one at a time, to Supervise.
Result<UniqueFd> SupervisorSignals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC));
  if (!sfd.valid()) return ErrnoStatus("signalfd", errno);
  return sfd;
}

std::vector<uint32_t> AllShards(uint32_t n) {
  std::vector<uint32_t> all(n);
  for (uint32_t i = 0; i < n; ++i) all[i] = i;
  return all;
}

int RunLaunch(LaunchFlags flags) {
  auto spec = LoadSpec(flags);
  if (!spec.ok()) return ReportError("launch", spec.status());
  Status count = CheckNewSegments(flags, *spec, AllShards(flags.shards));
  if (!count.ok()) return ReportError("launch", count);
  Status free_file = CheckClusterFileFree(flags.cluster_file);
  if (!free_file.ok()) return ReportError("launch", free_file);
  auto sfd = SupervisorSignals();
  if (!sfd.ok()) return ReportError("launch", sfd.status());

  std::vector<Shard> shards(flags.shards);
  ClusterInfo cluster;
  Status started = StartShards(flags, *spec, shards, &cluster);
  if (!started.ok()) return ReportError("launch", started);
  // What we wrote, so that stopping deletes the file only if it is still ours.
  const std::string written = cluster.ToToml();
  Status saved = SaveCluster(cluster, flags.cluster_file);
  if (!saved.ok()) {
    StopAll(shards);
    return ReportError("launch", saved);
  }
  std::printf("cluster of %u shard(s) for model '%s' ready: %s\n", flags.shards,
              spec->name.c_str(), flags.cluster_file.c_str());
  for (const Shard& s : shards)
    std::printf("  shard %u  pid %d  %s\n", s.index, s.pid, s.endpoint.c_str());
  std::fflush(stdout);

  const int exit_code = Supervise(flags, sfd->get(), shards);
  StopCluster(flags, shards, written);
  return exit_code;
}

// The host of a tcp:// endpoint without IPv6 brackets ("" for ipc://), and
// `host` the same way, so "[fd00::5]" and "fd00::5" compare equal.
std::string BareHost(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}
std::string EndpointHost(const std::string& endpoint) {
  const std::string tcp = "tcp://";
  if (endpoint.compare(0, tcp.size(), tcp) != 0) return "";
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon < tcp.size()) return "";
  return BareHost(endpoint.substr(tcp.size(), colon - tcp.size()));
}

// Checks that the cluster file `cluster` is for `spec` and agrees with this
// launch's CURVE setting: a mismatch would start servers no client of the
// file can use.
Status CheckPartMatches(const LaunchFlags& flags, const ModelSpec& spec,
                        const ClusterInfo& cluster) {
  const std::string file = flags.cluster_file;
  if (cluster.model != spec.name)
    return Status::InvalidArgument(file + " is for model '" + cluster.model +
                                   "', --spec is model '" + spec.name + "'");
  if (cluster.spec_hash && *cluster.spec_hash != SpecHash(spec))
    return Status(Code::kSpecMismatch,
                  file + " was written for another version of spec " +
                      flags.spec +
                      " (spec_hash differs): rewrite it with "
                      "`shardps cluster --spec` or edit spec_hash");
  if (flags.curve_secret_key.empty()) {
    if (!cluster.server_key.empty())
      return Status::InvalidArgument(
          file +
          " names a server_key, so its clients use CURVE: pass "
          "--curve-secret-key (the matching .key) and "
          "--authorized-keys");
    return Status::Ok();
  }
  auto pair = LoadCurveSecretKey(flags.curve_secret_key);
  if (!pair.ok()) return pair.status();
  if (cluster.server_key != pair->public_key)
    return Status::InvalidArgument(
        file +
        (cluster.server_key.empty()
             ? " has no server_key, so its clients would connect in "
               "plain text and be refused: write it with `shardps "
               "cluster --server-key-file` (the .pub of "
             : "'s server_key is not the public key of ") +
        flags.curve_secret_key + (cluster.server_key.empty() ? ")" : ""));
  return Status::Ok();
}

// This host's part of --cluster-file: the shards whose endpoint host is
// --this-host, with their endpoints. kInvalidArgument (exit 2) when the file
// is missing or bad, does not match the spec, or puts no shard on this host.
Result<std::vector<Shard>> LoadPart(LaunchFlags& flags, const ModelSpec& spec) {
  Result<std::string> text = ReadFileToString(flags.cluster_file);
  if (!text.ok() && text.status().code() == Code::kNotFound)
    return Status::InvalidArgument(
        flags.cluster_file +
        ": no such file: with --this-host, launch reads "
        "the cluster file (write it with `shardps cluster`), it does not "
        "write one");
  if (!text.ok()) return text.status();
  auto cluster = ParseCluster(*text);
  if (!cluster.ok()) return cluster.status().WithContext(flags.cluster_file);
  SHARDPS_RETURN_IF_ERROR(CheckPartMatches(flags, spec, *cluster));
  flags.shards = static_cast<uint32_t>(cluster->shards.size());
  std::vector<Shard> part;
  std::string hosts;
  for (const ShardAddress& a : cluster->shards) {
    const std::string host = EndpointHost(a.endpoint);
    if (host == BareHost(flags.this_host)) {
      Shard s;
      s.index = a.index;
      s.endpoint = a.endpoint;
      part.push_back(std::move(s));
    } else if (hosts.find(" " + host + ",") == std::string::npos) {
      hosts += " " + host + ",";
    }
  }
  if (part.empty())
    return Status::InvalidArgument(
        "no shard of " + flags.cluster_file + " is on " + flags.this_host +
        " (its shards are on" + hosts.substr(0, hosts.size() - 1) +
        "): pass one of those to --this-host, exactly as the file writes it");
  return part;
}

// Starts every shard of `part` on its own endpoint. A failure stops the
// shards already started.
Status StartPart(const LaunchFlags& flags, const ModelSpec& spec,
                 std::vector<Shard>& part) {
  for (Shard& s : part) {
    Status st = StartShard(flags, flags.shards, s.endpoint, &s);
    if (!st.ok()) {
      StopAll(part);
      return st;
    }
    s.segment =
        Segment::PathFor(spec.storage, spec.name, s.index, flags.shards);
  }
  return Status::Ok();
}

// `launch --this-host`: like RunLaunch for this host's shards only; the
// cluster file is read, never written or deleted.
int RunLaunchPart(LaunchFlags flags) {
  auto spec = LoadSpec(flags);
  if (!spec.ok()) return ReportError("launch", spec.status());
  auto part = LoadPart(flags, *spec);
  if (!part.ok()) return ReportError("launch", part.status());
  std::vector<uint32_t> indices;
  for (const Shard& s : *part) indices.push_back(s.index);
  Status count = CheckNewSegments(flags, *spec, indices);
  if (!count.ok()) return ReportError("launch", count);
  auto sfd = SupervisorSignals();
  if (!sfd.ok()) return ReportError("launch", sfd.status());

  Status started = StartPart(flags, *spec, *part);
  if (!started.ok()) return ReportError("launch", started);
  std::printf("%zu of %u shard(s) for model '%s' ready on %s: %s\n",
              part->size(), flags.shards, spec->name.c_str(),
              flags.this_host.c_str(), flags.cluster_file.c_str());
  for (const Shard& s : *part)
    std::printf("  shard %u  pid %d  %s\n", s.index, s.pid, s.endpoint.c_str());
  std::fflush(stdout);

  const int exit_code = Supervise(flags, sfd->get(), *part);
  StopAll(*part);
  std::fprintf(stderr, "shardps launch: this host's shards stopped\n");
  return exit_code;
}

}  // namespace

void RegisterLaunch(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<LaunchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "launch",
      "Start N local shard servers and supervise them, or with --this-host "
      "this host's part of a multi-host cluster file");
  cmd->add_option("--spec", flags->spec, "Model spec (TOML)")->required();
  CLI::Option* shards_opt =
      cmd->add_option("--shards", flags->shards, "Number of shards")
          ->capture_default_str()
          ->check(CLI::Range(1u, 256u));
  cmd->add_option("--cluster-file", flags->cluster_file,
                  "Where to write the cluster file (with --this-host: the "
                  "file to read)")
      ->capture_default_str();
  cmd->add_option("--threads", flags->threads, "Update threads per server")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  cmd->add_option("--storage", flags->storage,
                  "Directory for segments (overrides the spec's storage)");
  CLI::Option* host_opt =
      cmd->add_option("--host", flags->host,
                      "Address the servers listen on (free ports)")
          ->capture_default_str();
  cmd->add_option("--workers", flags->workers,
                  "Number of workers for bsp/ssp clocks (overrides the "
                  "spec's consistency.workers)")
      ->check(CLI::Range(1u, 64u));
  CLI::Option* secret = cmd->add_option(
      "--curve-secret-key", flags->curve_secret_key,
      "Enable CURVE on every server with this secret key file; its public "
      "key is written to the cluster file");
  CLI::Option* authorized =
      cmd->add_option("--authorized-keys", flags->authorized_keys,
                      "With CURVE: client public keys allowed to connect");
  secret->needs(authorized);
  authorized->needs(secret);
  cmd->add_flag("--insecure", flags->insecure,
                "Allow a non-loopback --host without CURVE");
  cmd->add_option("--metrics-port", flags->metrics_port,
                  "Shard i serves Prometheus metrics on 127.0.0.1:PORT+i "
                  "(docs/metrics.md)")
      ->check(CLI::Range(1, 65535 - 256));
  cmd->add_flag("--new", flags->allow_new,
                "Create this shard count's segments even though the storage "
                "holds the model at another shard count (those stay "
                "untouched; the new model starts from scratch)");
  CLI::Option* this_host = cmd->add_option(
      "--this-host", flags->this_host,
      "Start only the shards the existing --cluster-file places on this "
      "address (its endpoints' host, as written there, e.g. from `shardps "
      "cluster`), on exactly those endpoints; the file is read, never "
      "written or deleted");
  this_host->excludes(shards_opt);
  this_host->excludes(host_opt);
  cmd->callback([flags, exit_code] {
    *exit_code =
        flags->this_host.empty() ? RunLaunch(*flags) : RunLaunchPart(*flags);
  });
}

}  // namespace shardps::cli
