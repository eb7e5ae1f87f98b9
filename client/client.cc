#include "shardps/client.h"

#include <Eigen/Core>
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <utility>

#include "client/call_state.h"
#include "client/io_thread.h"
#include "common/curve_keys.h"
#include "common/half_float.h"
#include "common/malloc_tuning.h"
#include "common/segment.h"

namespace shardps {

using client_internal::CallState;
using client_internal::IoThread;
using client_internal::Part;

namespace {

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

// Whether the file at `path` opens on this host and is the segment the
// shard serves (same identity), not merely a file at the same path: another
// host's /dev/shm, or a segment recreated there, is someone else's.
bool IsServedSegment(const std::string& path, const SegmentId& served) {
  if (path.empty() || served.empty()) return false;
  auto found = ReadSegmentIdentity(path);
  return found.ok() && *found == served;
}

Handle FailedHandle(const Status& status) {
  auto state = std::make_shared<CallState>(1, CallState::Clock::now());
  state->PartDone(status);
  return Handle(std::move(state));
}

// What one shard said in reply to Hello.
struct HelloResult {
  bool answered = false;
  std::string model;
  uint64_t spec_hash = 0;
  uint32_t shard = 0;
  uint32_t shards = 0;
  uint64_t block_floats = 0;
  std::string optimizer;
  std::vector<TensorLayout> tensors;
  std::vector<std::string> optimizers;  // per tensor
  std::vector<float> clip_norms;        // per tensor
  std::string segment;
  SegmentId segment_id;  // empty if the server sent none
  std::string consistency;
  uint32_t workers = 0;
  std::vector<int64_t> clocks;  // per worker
  std::vector<TableInfo> tables;
  std::vector<std::string> table_optimizers;
};

Status ReadHello(const wire::Reply& reply, HelloResult* out) {
  const wire::HelloInfo* h = reply.hello();
  if (h == nullptr || h->model() == nullptr || h->tensors() == nullptr ||
      h->block_floats() == 0 || h->shards() == 0)
    return Status(Code::kBadMessage, "Hello reply without a layout");
  out->model = h->model()->str();
  out->spec_hash = h->spec_hash();
  out->shard = h->shard();
  out->shards = h->shards();
  out->block_floats = h->block_floats();
  out->optimizer = h->optimizer() ? h->optimizer()->str() : "";
  out->segment = h->segment() ? h->segment()->str() : "";
  out->segment_id = SegmentId{h->segment_id_hi(), h->segment_id_lo()};
  out->consistency = h->consistency() ? h->consistency()->str() : "async";
  out->workers = h->workers();
  if (h->clocks() != nullptr)
    out->clocks.assign(h->clocks()->begin(), h->clocks()->end());
  if (h->tables() != nullptr) {
    for (const wire::SparseTableInfo* t : *h->tables()) {
      if (t == nullptr || t->name() == nullptr || t->dim() == 0)
        return Status(Code::kBadMessage, "Hello reply with a malformed table");
      out->tables.push_back({t->name()->str(), t->dim(), t->capacity()});
      out->table_optimizers.push_back(t->optimizer() ? t->optimizer()->str()
                                                     : out->optimizer);
    }
  }
  if (out->clocks.size() != out->workers)
    return Status(Code::kBadMessage,
                  "Hello reply with " + std::to_string(out->clocks.size()) +
                      " clocks for " + std::to_string(out->workers) +
                      " workers");
  for (const wire::TensorInfo* t : *h->tensors()) {
    if (t == nullptr || t->name() == nullptr || t->shape() == nullptr)
      return Status(Code::kBadMessage, "Hello reply with a malformed tensor");
    TensorLayout layout;
    layout.name = t->name()->str();
    layout.shape.assign(t->shape()->begin(), t->shape()->end());
    out->tensors.push_back(std::move(layout));
    out->optimizers.push_back(t->optimizer() ? t->optimizer()->str()
                                             : out->optimizer);
    out->clip_norms.push_back(t->clip_norm());
  }
  out->answered = true;
  return Status::Ok();
}

// Checks that every shard serves the same model and rebuilds its spec, whose
// hash must match what the shards claim (a cheap guard against a server that
// describes one layout and hashes another).
Status CheckHellos(const std::vector<HelloResult>& hellos,
                   const ClusterInfo& cluster, const ClientOptions& options) {
  const HelloResult& first = hellos[0];
  for (size_t i = 0; i < hellos.size(); ++i) {
    const HelloResult& h = hellos[i];
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
  ModelSpec spec;
  spec.name = first.model;
  spec.block_floats = first.block_floats;
  spec.optimizer.kind = first.optimizer;
  if (Status mode =
          ConsistencySpec::ParseMode(first.consistency, &spec.consistency);
      !mode.ok())
    return Status(Code::kBadMessage, "shard 0 reports consistency: " +
                                         std::string(mode.message()));
  for (const HelloResult& h : hellos)
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
  for (size_t i = 0; i < first.tensors.size(); ++i) {
    TensorSpec ts;
    ts.name = first.tensors[i].name;
    ts.shape = first.tensors[i].shape;
    if (first.optimizers[i] != first.optimizer) {
      ts.optimizer = spec.optimizer;
      ts.optimizer->kind = first.optimizers[i];
    }
    spec.tensors.push_back(std::move(ts));
  }
  for (size_t i = 0; i < first.tables.size(); ++i) {
    TableSpec ts;
    ts.name = first.tables[i].name;
    ts.dim = first.tables[i].dim;
    ts.capacity = first.tables[i].capacity;
    if (first.table_optimizers[i] != first.optimizer) {
      ts.optimizer = spec.optimizer;
      ts.optimizer->kind = first.table_optimizers[i];
    }
    spec.tables.push_back(std::move(ts));
  }
  if (SpecHash(spec) != first.spec_hash)
    return Status(Code::kSpecMismatch,
                  "shards describe a layout that does not match their spec "
                  "hash " +
                      Hex(first.spec_hash));
  return Status::Ok();
}

}  // namespace

Status Handle::Wait() const {
  if (!state_) return Status(Code::kInvalidArgument, "empty handle");
  return state_->Wait();
}

Status Handle::WaitFor(std::chrono::milliseconds timeout) const {
  if (!state_) return Status(Code::kInvalidArgument, "empty handle");
  return state_->WaitUntil(CallState::Clock::now() + timeout);
}

bool Handle::Done() const { return !state_ || state_->Done(); }

std::vector<ShardOutcome> Handle::shard_outcomes() const {
  if (!state_) return {};
  return state_->outcomes();
}

namespace {

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
  SHARDPS_RETURN_IF_ERROR(ResolveCurveOptions(cluster, &options));
  if (options.tune_malloc) TuneMallocForBlocks();
  std::unique_ptr<Client> client(new Client());
  client->io_ = std::make_unique<IoThread>(cluster.shards, options);
  IoThread& io = *client->io_;
  io.set_model(cluster.model);
  io.Start();

  // Hello may reach servers before the cluster's model name is known (an
  // endpoint list has none); servers check it, so ask with the file's name
  // when there is one and learn it from shard 0 otherwise.
  auto hellos =
      std::make_shared<std::vector<HelloResult>>(cluster.shards.size());
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
      return ReadHello(r, &(*hellos)[i]);
    };
    parts.push_back(std::move(p));
  }
  io.Submit(std::move(parts));
  Status s = Handle(call).Wait();
  if (!s.ok()) return s.WithContext("connecting to the cluster");
  SHARDPS_RETURN_IF_ERROR(CheckHellos(*hellos, cluster, options));

  const HelloResult& first = (*hellos)[0];
  io.set_model(first.model);
  io.SetLayout(
      std::make_unique<ModelLayout>(first.tensors, first.block_floats,
                                    static_cast<uint32_t>(hellos->size())));
  client->spec_hash_ = first.spec_hash;
  client->consistency_ = first.consistency;
  client->clip_norms_ = first.clip_norms;
  client->tables_ = first.tables;
  if (options.worker >= 0) {
    // A restarted worker resumes at the clock its shards recorded; where
    // a Clock reached only some shards, at the lowest, so resending it
    // completes it (shards that have it accept it again).
    int64_t clock = INT64_MAX;
    for (const HelloResult& h : *hellos)
      clock = std::min(clock, h.clocks[static_cast<size_t>(options.worker)]);
    client->clock_.store(clock, std::memory_order_relaxed);
  }
  for (const HelloResult& h : *hellos)
    client->local_segments_.push_back(
        IsServedSegment(h.segment, h.segment_id) ? h.segment : "");
  return client;
}

Client::~Client() = default;

const ModelLayout& Client::layout() const { return *io_->layout(); }
const std::string& Client::model() const { return io_->model(); }
uint64_t Client::spec_hash() const { return spec_hash_; }
std::vector<std::string> Client::local_segments() const {
  return local_segments_;
}

Handle Client::Push(std::string_view tensor, const float* grad, size_t count) {
  return Dense(static_cast<int>(wire::Op::Push), tensor, grad, nullptr, count);
}

Handle Client::Pull(std::string_view tensor, float* out, size_t count) {
  return Dense(static_cast<int>(wire::Op::Pull), tensor, nullptr, out, count);
}

Handle Client::PushPull(std::string_view tensor, const float* grad, float* out,
                        size_t count) {
  return Dense(static_cast<int>(wire::Op::PushPull), tensor, grad, out, count);
}

Handle Client::Dense(int op_code, std::string_view tensor, const float* grad,
                     float* out, size_t count) {
  const auto op = static_cast<wire::Op>(op_code);
  const ModelLayout& layout = *io_->layout();
  const TensorLayout* t = layout.Find(tensor);
  if (t == nullptr)
    return FailedHandle(
        Status(Code::kNotFound, "unknown tensor '" + std::string(tensor) +
                                    "' in model '" + io_->model() + "'"));
  if (count != t->num_floats)
    return FailedHandle(
        Status(Code::kSizeMismatch,
               "tensor '" + t->name + "' has " + std::to_string(t->num_floats) +
                   " floats, buffer has " + std::to_string(count)));
  if ((op != wire::Op::Pull && grad == nullptr) ||
      (op != wire::Op::Push && out == nullptr))
    return FailedHandle(Status(Code::kInvalidArgument, "null buffer"));

  // A tensor clipped by norm needs the whole gradient's norm, which only
  // the client sees: each shard holds a part.
  float grad_norm = -1;
  if (op != wire::Op::Pull && clip_norms_[t->index] > 0)
    grad_norm = Eigen::Map<const Eigen::VectorXf>(
                    grad, static_cast<Eigen::Index>(count))
                    .norm();

  // 16-bit gradients travel from a narrowed copy the call owns; float32
  // ones straight from the caller's buffer.
  const void* payload = grad;
  wire::DType dtype = wire::DType::F32;
  std::shared_ptr<std::vector<uint16_t>> narrowed;
  if (op != wire::Op::Pull &&
      io_->options().push_dtype != WireDType::kFloat32) {
    narrowed = std::make_shared<std::vector<uint16_t>>(count);
    if (io_->options().push_dtype == WireDType::kFloat16) {
      NarrowF16(grad, narrowed->data(), count);
      dtype = wire::DType::F16;
    } else {
      NarrowBf16(grad, narrowed->data(), count);
      dtype = wire::DType::BF16;
    }
    payload = narrowed->data();
  }

  std::vector<Part> parts;
  const auto deadline =
      CallState::Clock::now() + io_->options().request_timeout;
  for (uint32_t shard = 0; shard < layout.shards(); ++shard) {
    std::vector<uint32_t> blocks = layout.BlocksOnShard(*t, shard);
    if (blocks.empty()) continue;
    Part p;
    p.shard = shard;
    p.op = op;
    p.tensor = t;
    p.blocks = std::move(blocks);
    p.grad = op == wire::Op::Pull ? nullptr : payload;
    p.dtype = dtype;
    p.out = out;
    p.clock = clock_.load(std::memory_order_relaxed);
    p.grad_norm = grad_norm;
    p.deadline = deadline;
    parts.push_back(std::move(p));
  }
  auto call =
      std::make_shared<CallState>(static_cast<int>(parts.size()), deadline);
  if (narrowed) call->KeepAlive(std::move(narrowed));
  if (op != wire::Op::Pull)
    call->ReportShards(std::string(OpName(op)) + " of '" + t->name + "'");
  for (Part& p : parts) p.call = call;
  io_->Submit(std::move(parts));
  return Handle(std::move(call));
}

Handle Client::PushRows(std::string_view table, const uint64_t* ids, size_t n,
                        const float* grads) {
  return Rows(true, table, ids, n, grads, nullptr);
}

Handle Client::PullRows(std::string_view table, const uint64_t* ids, size_t n,
                        float* out) {
  return Rows(false, table, ids, n, nullptr, out);
}

namespace {

// Ids, gradients and output positions of one call, split by shard.
struct RowsSplit {
  std::vector<std::vector<uint64_t>> ids;
  std::vector<std::vector<float>> grads;
  std::vector<std::vector<uint32_t>> positions;
};

}  // namespace

Handle Client::Rows(bool push, std::string_view table, const uint64_t* ids,
                    size_t n, const float* grads, float* out) {
  const TableInfo* info = nullptr;
  for (const TableInfo& t : tables_)
    if (t.name == table) info = &t;
  if (info == nullptr)
    return FailedHandle(
        Status(Code::kNotFound, "unknown table '" + std::string(table) +
                                    "' in model '" + io_->model() + "'"));
  if (n == 0 || ids == nullptr || (push ? grads == nullptr : out == nullptr))
    return FailedHandle(Status(Code::kInvalidArgument,
                               "PushRows/PullRows need n > 0 ids and buffers"));
  const uint64_t dim = info->dim;
  const uint32_t shards = io_->layout()->shards();
  const auto deadline =
      CallState::Clock::now() + io_->options().request_timeout;
  auto base = [&](uint32_t shard) {
    Part p;
    p.shard = shard;
    p.op = push ? wire::Op::PushRows : wire::Op::PullRows;
    p.table = &info->name;
    p.deadline = deadline;
    p.clock = clock_.load(std::memory_order_relaxed);
    return p;
  };
  // Checks a pulled frame for `count` rows and hands it to `place`.
  auto expect_rows = [dim](size_t count, auto place) {
    return [dim, count, place](std::vector<zmq::message_t>& frames) {
      if (frames.size() != 1 || frames[0].size() != count * dim * sizeof(float))
        return Status(Code::kBadMessage, "PullRows reply has the wrong size");
      place(static_cast<const float*>(frames[0].data()));
      return Status::Ok();
    };
  };

  std::vector<Part> parts;
  std::shared_ptr<RowsSplit> split;
  if (shards == 1) {
    Part p = base(0);
    p.frames.emplace_back(ids, n * sizeof(uint64_t));
    if (push) {
      p.frames.emplace_back(grads, n * dim * sizeof(float));
    } else {
      p.on_frames = expect_rows(n, [out, n, dim](const float* rows) {
        std::memcpy(out, rows, n * dim * sizeof(float));
      });
    }
    parts.push_back(std::move(p));
  } else {
    split = std::make_shared<RowsSplit>();
    split->ids.resize(shards);
    split->positions.resize(shards);
    if (push) split->grads.resize(shards);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t s = JumpHash(ids[i], shards);
      split->ids[s].push_back(ids[i]);
      split->positions[s].push_back(static_cast<uint32_t>(i));
      if (push)
        split->grads[s].insert(split->grads[s].end(), grads + i * dim,
                               grads + (i + 1) * dim);
    }
    for (uint32_t s = 0; s < shards; ++s) {
      const size_t count = split->ids[s].size();
      if (count == 0) continue;
      Part p = base(s);
      p.frames.emplace_back(split->ids[s].data(), count * sizeof(uint64_t));
      if (push) {
        p.frames.emplace_back(split->grads[s].data(),
                              count * dim * sizeof(float));
      } else {
        const std::vector<uint32_t>* positions = &split->positions[s];
        p.on_frames =
            expect_rows(count, [out, dim, positions](const float* rows) {
              for (size_t k = 0; k < positions->size(); ++k)
                std::memcpy(out + uint64_t{(*positions)[k]} * dim,
                            rows + k * dim, dim * sizeof(float));
            });
      }
      parts.push_back(std::move(p));
    }
  }
  auto call =
      std::make_shared<CallState>(static_cast<int>(parts.size()), deadline);
  if (split) call->KeepAlive(split);
  if (push) call->ReportShards("PushRows of table '" + info->name + "'");
  for (Part& p : parts) p.call = call;
  io_->Submit(std::move(parts));
  return Handle(std::move(call));
}

Handle Client::QueuePush(uint32_t shard, std::string_view queue,
                         const BatchShape& shape, const float* features,
                         const float* labels) {
  if (shard >= io_->shards().size() || queue.empty() || features == nullptr ||
      labels == nullptr)
    return FailedHandle(Status(Code::kInvalidArgument,
                               "QueuePush needs a shard index below " +
                                   std::to_string(io_->shards().size()) +
                                   ", a queue name and both buffers"));
  const auto deadline =
      CallState::Clock::now() + io_->options().request_timeout;
  Part p;
  p.shard = shard;
  p.op = wire::Op::QueuePush;
  p.queue = std::string(queue);
  p.blocks = {shape.batch, shape.window, shape.features, shape.horizon};
  p.frames.emplace_back(features, shape.feature_floats() * sizeof(float));
  p.frames.emplace_back(labels, shape.label_floats() * sizeof(float));
  p.deadline = deadline;
  auto call = std::make_shared<CallState>(1, deadline);
  p.call = call;
  std::vector<Part> parts;
  parts.push_back(std::move(p));
  io_->Submit(std::move(parts));
  return Handle(std::move(call));
}

namespace {

// Sends `op` to every shard as one call (one part each, shaped by `fill`),
// with the client's request deadline.
Handle SendToAllShards(IoThread& io, wire::Op op,
                       const std::function<void(uint32_t, Part*)>& fill) {
  const size_t shards = io.shards().size();
  const auto deadline = CallState::Clock::now() + io.options().request_timeout;
  auto call = std::make_shared<CallState>(static_cast<int>(shards), deadline);
  std::vector<Part> parts;
  for (uint32_t i = 0; i < shards; ++i) {
    Part p;
    p.call = call;
    p.shard = i;
    p.op = op;
    p.deadline = deadline;
    fill(i, &p);
    parts.push_back(std::move(p));
  }
  io.Submit(std::move(parts));
  return Handle(std::move(call));
}

}  // namespace

Handle Client::Clock() {
  if (io_->options().worker < 0)
    return FailedHandle(Status(Code::kInvalidArgument,
                               "Clock needs ClientOptions::worker set"));
  const int64_t clock = clock_.fetch_add(1, std::memory_order_relaxed);
  return SendToAllShards(*io_, wire::Op::Clock,
                         [clock](uint32_t, Part* p) { p->clock = clock; });
}

Result<std::vector<std::string>> Client::Checkpoint() {
  auto dirs = std::make_shared<std::vector<std::string>>(io_->shards().size());
  Handle call =
      SendToAllShards(*io_, wire::Op::Checkpoint, [&](uint32_t i, Part* p) {
        p->on_reply = [dirs, i](const wire::Reply& r) {
          if (r.message() == nullptr || r.message()->size() == 0)
            return Status(Code::kBadMessage,
                          "Checkpoint reply names no directory");
          (*dirs)[i] = r.message()->str();
          return Status::Ok();
        };
      });
  SHARDPS_RETURN_IF_ERROR(call.Wait());
  return std::move(*dirs);
}

Result<std::vector<ShardStats>> Client::Stats() {
  const auto& shards = io_->shards();
  auto results = std::make_shared<std::vector<ShardStats>>(shards.size());
  Handle call =
      SendToAllShards(*io_, wire::Op::Stats, [&](uint32_t i, Part* p) {
        const std::string endpoint = shards[i].endpoint;
        p->on_reply = [results, i, endpoint](const wire::Reply& r) {
          const wire::ShardStats* s = r.stats();
          if (s == nullptr)
            return Status(Code::kBadMessage, "Stats reply empty");
          ShardStats& out = (*results)[i];
          out.shard = s->shard();
          out.endpoint = endpoint;
          out.model = s->model() ? s->model()->str() : "";
          out.blocks = s->blocks();
          out.threads = s->threads();
          out.pushes = s->pushes();
          out.pulls = s->pulls();
          out.updates_applied = s->updates_applied();
          out.errors = s->errors();
          out.bytes_in = s->bytes_in();
          out.bytes_out = s->bytes_out();
          out.uptime_ms = s->uptime_ms();
          out.pid = s->pid();
          out.consistency = s->consistency() ? s->consistency()->str() : "";
          out.workers = s->workers();
          out.applied_clock = s->applied_clock();
          const size_t n = s->workers();
          if ((s->clocks() && s->clocks()->size() != n) ||
              (s->worker_state() && s->worker_state()->size() != n) ||
              (s->worker_idle_ms() && s->worker_idle_ms()->size() != n))
            return Status(Code::kBadMessage,
                          "Stats reply: per-worker lists "
                          "do not match the worker count");
          out.workers_detail.resize(n);
          for (size_t w = 0; w < n; ++w) {
            WorkerStats& ws = out.workers_detail[w];
            if (s->clocks())
              ws.clock = s->clocks()->Get(static_cast<uint32_t>(w));
            if (s->worker_state())
              ws.state = static_cast<WorkerStats::State>(std::min<uint8_t>(
                  s->worker_state()->Get(static_cast<uint32_t>(w)), 2));
            ws.idle_ms =
                s->worker_idle_ms()
                    ? s->worker_idle_ms()->Get(static_cast<uint32_t>(w))
                    : -1;
          }
          out.waiting = s->waiting();
          out.duplicates = s->duplicates();
          out.exactly_once_clients = s->exactly_once_clients();
          out.auth_refusals = s->auth_refusals();
          return Status::Ok();
        };
      });
  SHARDPS_RETURN_IF_ERROR(call.Wait());
  return std::move(*results);
}

}  // namespace shardps
