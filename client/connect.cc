// Client::Connect: resolves the CURVE keys, says Hello to every shard and
// checks that their answers describe one model before any call is made.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "client/call_state.h"
#include "client/client_impl.h"
#include "client/io_thread.h"
#include "client/replica_clock_gate.h"
#include "common/curve_keys.h"
#include "common/hello_codec.h"
#include "common/hex.h"
#include "common/malloc_tuning.h"
#include "common/segment.h"
#include "shardps/client.h"

namespace shardps {

using client_internal::CallState;
using client_internal::ClientMetrics;
using client_internal::IoThread;
using client_internal::Part;

namespace {

// Whether the file at `path` opens on this host and is the segment the
// shard serves (same identity), not merely a file at the same path: another
// host's /dev/shm, or a segment recreated there, is someone else's.
bool IsServedSegment(const std::string& path, const SegmentId& served) {
  if (path.empty() || served.empty()) return false;
  auto found = ReadSegmentIdentity(path);
  return found.ok() && *found == served;
}

// Checks that every shard is the one the cluster lists at its place and
// serves the same model and spec hash, the one the cluster file or the
// options expect (if any).
Status CheckOneModel(const std::vector<ShardHello>& hellos,
                     const ClusterInfo& cluster, const ClientOptions& options) {
  const ShardHello& first = hellos[0];
  for (size_t i = 0; i < hellos.size(); ++i) {
    const ShardHello& h = hellos[i];
    const std::string who = "shard " + std::to_string(cluster.shards[i].index) +
                            " at " + cluster.shards[i].endpoint;
    if (h.shard != cluster.shards[i].index || h.shards != hellos.size())
      return Status(Code::kSpecMismatch,
                    who + " says it is shard " + std::to_string(h.shard) +
                        " of " + std::to_string(h.shards) +
                        ", the cluster lists it as shard " +
                        std::to_string(cluster.shards[i].index) + " of " +
                        std::to_string(hellos.size()));
    if (h.model != first.model || h.spec_hash != first.spec_hash)
      return Status(Code::kSpecMismatch,
                    who + " serves model '" + h.model + "' spec " +
                        Hex(h.spec_hash) + ", shard 0 serves '" + first.model +
                        "' spec " + Hex(first.spec_hash));
  }
  if (!cluster.model.empty() && cluster.model != first.model)
    return Status(Code::kSpecMismatch, "cluster file is for model '" +
                                           cluster.model + "', shards serve '" +
                                           first.model + "'");
  const std::optional<uint64_t> expected =
      options.expect_spec_hash ? options.expect_spec_hash : cluster.spec_hash;
  if (expected && *expected != first.spec_hash)
    return Status(Code::kSpecMismatch, "expected spec " + Hex(*expected) +
                                           ", shards serve " +
                                           Hex(first.spec_hash));
  return Status::Ok();
}

// Checks that the shards run one consistency mode with one worker count, and
// that options.worker is one of those workers (or -1); parses the mode into
// `consistency`.
Status CheckConsistency(const std::vector<ShardHello>& hellos,
                        const ClientOptions& options,
                        ConsistencySpec* consistency) {
  const ShardHello& first = hellos[0];
  if (Status mode = ConsistencySpec::ParseMode(first.consistency, consistency);
      !mode.ok())
    return Status(Code::kBadMessage, "shard 0 reports consistency: " +
                                         std::string(mode.message()));
  for (const ShardHello& h : hellos)
    if (h.consistency != first.consistency || h.workers != first.workers)
      return Status(Code::kSpecMismatch,
                    "shards disagree on consistency: shard 0 runs " +
                        first.consistency + " with " +
                        std::to_string(first.workers) + " workers, shard " +
                        std::to_string(h.shard) + " " + h.consistency +
                        " with " + std::to_string(h.workers));
  if (options.worker < -1 || options.worker >= static_cast<int>(first.workers))
    return Status(Code::kInvalidArgument,
                  "ClientOptions::worker " + std::to_string(options.worker) +
                      " is out of range: model '" + first.model + "' (" +
                      first.consistency + ") has " +
                      std::to_string(first.workers) +
                      " workers; use -1 for a client that is not a worker");
  return Status::Ok();
}

// Adds to `spec` the layout `hello` describes: name, block size, optimizers,
// tensors and tables (what the spec hash covers, with the consistency).
void AddLayout(const ShardHello& first, ModelSpec* out) {
  ModelSpec& spec = *out;
  spec.name = first.model;
  spec.block_floats = first.block_floats;
  spec.optimizer.kind = first.optimizer;
  for (size_t i = 0; i < first.tensors.size(); ++i) {
    TensorSpec ts;
    ts.name = first.tensors[i].name;
    ts.shape = first.tensors[i].shape;
    if (first.tensors[i].optimizer != first.optimizer) {
      ts.optimizer = spec.optimizer;
      ts.optimizer->kind = first.tensors[i].optimizer;
    }
    spec.tensors.push_back(std::move(ts));
  }
  for (size_t i = 0; i < first.tables.size(); ++i) {
    TableSpec ts;
    ts.name = first.tables[i].name;
    ts.dim = first.tables[i].dim;
    ts.capacity = first.tables[i].capacity;
    if (first.tables[i].optimizer != first.optimizer) {
      ts.optimizer = spec.optimizer;
      ts.optimizer->kind = first.tables[i].optimizer;
    }
    spec.tables.push_back(std::move(ts));
  }
}

// Checks that every shard serves the same model and rebuilds its spec, whose
// hash must match what the shards claim (a cheap guard against a server that
// describes one layout and hashes another).
Status CheckHellos(const std::vector<ShardHello>& hellos,
                   const ClusterInfo& cluster, const ClientOptions& options) {
  SHARDPS_RETURN_IF_ERROR(CheckOneModel(hellos, cluster, options));
  ModelSpec spec;
  SHARDPS_RETURN_IF_ERROR(CheckConsistency(hellos, options, &spec.consistency));
  const ShardHello& first = hellos[0];
  AddLayout(first, &spec);
  if (SpecHash(spec) != first.spec_hash)
    return Status(Code::kSpecMismatch,
                  "shards describe a layout that does not match their spec "
                  "hash " +
                      Hex(first.spec_hash));
  return Status::Ok();
}

// Completes and checks the CURVE keys before any socket exists: libzmq would
// reject a malformed key with an exception on the I/O thread, and a missing
// client key pair would only show up as a silent timeout.
Status ResolveCurveOptions(const ClusterInfo& cluster, ClientOptions* options) {
  if (options->curve_server_key.empty())
    options->curve_server_key = cluster.server_key;
  const bool server = !options->curve_server_key.empty();
  const bool pub = !options->curve_public_key.empty();
  const bool sec = !options->curve_secret_key.empty();
  if (!server && !pub && !sec) return Status::Ok();
  if (!pub || !sec)
    return Status(Code::kInvalidArgument,
                  "the servers use CURVE (a server key is set) but this "
                  "client has no key pair: set ClientOptions::"
                  "curve_public_key and curve_secret_key (CLI: --curve-key "
                  "PREFIX); see docs/security.md");
  if (!server)
    return Status(Code::kInvalidArgument,
                  "a CURVE client key pair needs the servers' public key: set "
                  "ClientOptions::curve_server_key (CLI: --server-key FILE) "
                  "or server_key in the cluster file");
  if (!IsCurveKey(options->curve_server_key))
    return Status(Code::kInvalidArgument,
                  "the CURVE server key is not a 40-character Z85 key");
  auto derived = CurvePublicKeyOf(options->curve_secret_key);
  if (!derived.ok())
    return Status(Code::kInvalidArgument,
                  "the CURVE client secret key is not a 40-character Z85 key");
  if (*derived != options->curve_public_key)
    return Status(Code::kInvalidArgument,
                  "the CURVE client public key does not belong to its secret "
                  "key");
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Client>> Client::Connect(const std::string& cluster_file,
                                                ClientOptions options) {
  auto cluster = LoadCluster(cluster_file);
  if (!cluster.ok()) return cluster.status();
  auto client = Connect(*cluster, options);
  if (client.ok() || client.status().code() != Code::kUnavailable)
    return client;
  // No shard answered at all: most often the file outlived its cluster.
  std::string hint = client.status().message() + " (waited " +
                     std::to_string(options.connect_timeout.count()) +
                     " ms): " + cluster_file +
                     " may be stale: was the cluster stopped? start it with "
                     "`shardps launch --spec SPEC --cluster-file " +
                     cluster_file + "`";
  if (!cluster->server_key.empty())
    hint += "; or the servers do not accept this client's CURVE key";
  return Status(Code::kUnavailable, hint);
}

Result<std::unique_ptr<Client>> Client::Connect(const ClusterInfo& cluster,
                                                ClientOptions options) {
  if (cluster.shards.empty())
    return Status(Code::kInvalidArgument, "cluster lists no shards");
  // A hand-built ClusterInfo skips the cluster file parser's checks.
  for (const ShardAddress& shard : cluster.shards)
    SHARDPS_RETURN_IF_ERROR(CheckShardEndpoint(shard.endpoint));
  SHARDPS_RETURN_IF_ERROR(ResolveCurveOptions(cluster, &options));
  if (options.tune_malloc) TuneMallocForBlocks();
  auto impl = std::make_unique<Impl>();
  auto wake = EventFd::Create();
  if (!wake.ok()) return wake.status();
  impl->io_ = std::make_unique<IoThread>(cluster.shards, options,
                                         std::move(wake).value());
  IoThread& io = *impl->io_;
  io.set_model(cluster.model);
  io.Start();

  // Hello may reach servers before the cluster's model name is known (an
  // endpoint list has none); servers check it, so ask with the file's name
  // when there is one and learn it from shard 0 otherwise.
  auto hellos =
      std::make_shared<std::vector<ShardHello>>(cluster.shards.size());
  const auto deadline = CallState::Clock::now() + options.connect_timeout;
  auto call = std::make_shared<CallState>(
      static_cast<int>(cluster.shards.size()), deadline);
  std::vector<Part> parts;
  for (uint32_t i = 0; i < cluster.shards.size(); ++i) {
    Part p;
    p.call = call;
    p.shard = i;
    p.op = wire::Op::Hello;
    p.deadline = deadline;
    p.on_reply = [hellos, i](const wire::Reply& r) {
      auto hello = DecodeHello(r);
      if (!hello.ok()) return hello.status();
      (*hellos)[i] = std::move(hello).value();
      return Status::Ok();
    };
    parts.push_back(std::move(p));
  }
  io.Submit(std::move(parts));
  Status s = call->Wait();
  if (!s.ok()) return s.WithContext("connecting to the cluster");
  SHARDPS_RETURN_IF_ERROR(CheckHellos(*hellos, cluster, options));

  const ShardHello& first = (*hellos)[0];
  io.set_model(first.model);
  std::vector<TensorLayout> tensors;
  for (const ShardHello::Tensor& t : first.tensors) {
    TensorLayout layout;
    layout.name = t.name;
    layout.shape = t.shape;
    tensors.push_back(std::move(layout));
    impl->clip_norms_.push_back(t.clip_norm);
  }
  io.SetLayout(
      std::make_unique<ModelLayout>(std::move(tensors), first.block_floats,
                                    static_cast<uint32_t>(hellos->size())));
  impl->spec_hash_ = first.spec_hash;
  impl->consistency_ = first.consistency;
  for (const ShardHello::Table& t : first.tables)
    impl->tables_.push_back({t.name, t.dim, t.capacity});
  if (options.worker >= 0) {
    // A restarted worker resumes at the clock its shards recorded; where
    // a Clock reached only some shards, at the lowest, so resending it
    // completes it (shards that have it accept it again).
    int64_t clock = INT64_MAX;
    for (const ShardHello& h : *hellos)
      clock = std::min(clock, h.clocks[static_cast<size_t>(options.worker)]);
    impl->clock_.store(clock, std::memory_order_relaxed);  // see Impl::clock_
  }
  for (const ShardHello& h : *hellos) {
    const bool local =
        options.map_local_segments && IsServedSegment(h.segment, h.segment_id);
    impl->local_segments_.push_back(local ? h.segment : "");
    impl->local_segment_ids_.push_back(local ? h.segment_id : SegmentId{});
  }
  if (first.consistency == "bsp" && !options.replica_storage.empty())
    impl->replica_gate_ = client_internal::ReplicaClockGate::ForRemoteShards(
        options.replica_storage, first.model, first.spec_hash,
        impl->local_segments_);
  impl->metric_labels_ = {{"model", first.model}};
  if (options.worker >= 0)
    impl->metric_labels_.push_back({"worker", std::to_string(options.worker)});
  if (!options.metrics_listen.empty()) {
    const ClientMetrics* counters = &io.metrics();
    auto endpoint =
        MetricsEndpoint::Start(options.metrics_listen, impl->metric_labels_,
                               [counters](MetricFamilies& out) {
                                 counters->Collect(out);
                                 out.ProcessMetrics();
                               });
    if (!endpoint.ok())
      return endpoint.status().WithContext("ClientOptions::metrics_listen");
    impl->metrics_ = std::move(endpoint).value();
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<ShardProbe> Client::Probe(const std::string& endpoint,
                                 ClientOptions options) {
  SHARDPS_RETURN_IF_ERROR(CheckShardEndpoint(endpoint));
  ClusterInfo one;
  one.shards.push_back({0, endpoint, ""});
  SHARDPS_RETURN_IF_ERROR(ResolveCurveOptions(one, &options));
  // A probe holds no worker slot and sends no push; the I/O thread is its
  // own, so nothing outlives this call.
  options.worker = -1;
  auto wake = EventFd::Create();
  if (!wake.ok()) return wake.status();
  IoThread io(one.shards, options, std::move(wake).value());
  io.Start();
  auto hello = std::make_shared<ShardHello>();
  const auto deadline = CallState::Clock::now() + options.connect_timeout;
  auto call = std::make_shared<CallState>(1, deadline);
  Part p;
  p.call = call;
  p.shard = 0;
  p.op = wire::Op::Hello;  // no model name: discovery, any model answers
  p.deadline = deadline;
  p.on_reply = [hello](const wire::Reply& r) {
    auto decoded = DecodeHello(r);
    if (!decoded.ok()) return decoded.status();
    *hello = std::move(decoded).value();
    return Status::Ok();
  };
  std::vector<Part> parts;
  parts.push_back(std::move(p));
  io.Submit(std::move(parts));
  Status s = call->Wait();
  if (!s.ok()) return s;
  ShardProbe probe;
  probe.model = hello->model;
  probe.spec_hash = hello->spec_hash;
  probe.shard = hello->shard;
  probe.shards = hello->shards;
  probe.hostname = hello->hostname;
  return probe;
}

}  // namespace shardps
