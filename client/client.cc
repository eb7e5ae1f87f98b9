// The calls of a connected Client: dense tensors, sparse rows, queue
// batches, clocks, stats and checkpoints. Connect is in connect.cc.
#include "shardps/client.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>

#include "client/call_state.h"
#include "client/client_impl.h"
#include "client/io_thread.h"
#include "common/half_float.h"
#include "common/stats_codec.h"

namespace shardps {

using client_internal::CallState;
using client_internal::HandleAccess;
using client_internal::IoThread;
using client_internal::Part;

namespace {

Handle FailedHandle(const Status& status) {
  auto state = std::make_shared<CallState>(1, CallState::Clock::now());
  state->PartDone(status);
  return HandleAccess::Make(std::move(state));
}

}  // namespace

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const ModelLayout& Client::layout() const { return *impl_->io_->layout(); }
const std::string& Client::model() const { return impl_->io_->model(); }
uint64_t Client::spec_hash() const { return impl_->spec_hash_; }
std::vector<std::string> Client::local_segments() const {
  return impl_->local_segments_;
}
const std::vector<TableInfo>& Client::tables() const { return impl_->tables_; }
// Relaxed: see Client::Impl::clock_.
int64_t Client::clock() const {
  return impl_->clock_.load(std::memory_order_relaxed);
}
const std::string& Client::consistency() const { return impl_->consistency_; }

const std::string& Client::metrics_url() const {
  static const std::string kNone;
  return impl_->metrics_ ? impl_->metrics_->url() : kNone;
}

std::string Client::MetricsText() const {
  const client_internal::ClientMetrics& counters = impl_->io_->metrics();
  return MetricsAsText(impl_->metric_labels_, [&counters](MetricFamilies& out) {
    counters.Collect(out);
  });
}

Handle Client::Push(std::string_view tensor, const float* grad, size_t count) {
  return impl_->Dense(wire::Op::Push, tensor, grad, nullptr, count);
}

Handle Client::Pull(std::string_view tensor, float* out, size_t count) {
  return impl_->Dense(wire::Op::Pull, tensor, nullptr, out, count);
}

Handle Client::PushPull(std::string_view tensor, const float* grad, float* out,
                        size_t count) {
  return impl_->Dense(wire::Op::PushPull, tensor, grad, out, count);
}

namespace {

// The blocks of each message of a dense call: per shard, its blocks of `t`
// in chunks of at most `per_message` (0: all), ordered by first block so
// that the I/O thread sends the tensor front to back on every shard.
std::vector<std::vector<uint32_t>> MessageBlocks(const ModelLayout& layout,
                                                 const TensorLayout& t,
                                                 uint32_t per_message) {
  std::vector<std::vector<uint32_t>> messages;
  for (uint32_t shard = 0; shard < layout.shards(); ++shard) {
    const std::vector<uint32_t> blocks = layout.BlocksOnShard(t, shard);
    const size_t step = per_message == 0 ? blocks.size() : per_message;
    for (size_t i = 0; i < blocks.size(); i += step)
      messages.emplace_back(
          blocks.begin() + static_cast<std::ptrdiff_t>(i),
          blocks.begin() +
              static_cast<std::ptrdiff_t>(std::min(i + step, blocks.size())));
  }
  std::stable_sort(
      messages.begin(), messages.end(),
      [](const auto& a, const auto& b) { return a.front() < b.front(); });
  return messages;
}

}  // namespace

Handle Client::Impl::Dense(wire::Op op, std::string_view tensor,
                           const float* grad, float* out, size_t count) {
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
  for (std::vector<uint32_t>& blocks :
       MessageBlocks(layout, *t, io_->options().blocks_per_message)) {
    Part p;
    p.shard = layout.OwnerOf(*t, blocks.front());
    p.op = op;
    p.tensor = t;
    p.blocks = std::move(blocks);
    p.grad = op == wire::Op::Pull ? nullptr : payload;
    p.dtype = dtype;
    p.out = out;
    p.clock = clock_.load(std::memory_order_relaxed);  // see Impl::clock_
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
  return HandleAccess::Make(std::move(call));
}

Handle Client::PushRows(std::string_view table, const uint64_t* ids, size_t n,
                        const float* grads) {
  return impl_->Rows(true, table, ids, n, grads, nullptr);
}

Handle Client::PullRows(std::string_view table, const uint64_t* ids, size_t n,
                        float* out) {
  return impl_->Rows(false, table, ids, n, nullptr, out);
}

namespace {

// Ids, gradients and output positions of one call, split by shard.
struct RowsSplit {
  std::vector<std::vector<uint64_t>> ids;
  std::vector<std::vector<float>> grads;
  std::vector<std::vector<uint32_t>> positions;
};

// Gathers the `n` ids (and, for a push, their rows of `dim` gradient floats)
// by the shard that owns each id, remembering each id's position in the
// call so pulled rows go back to their place.
std::shared_ptr<RowsSplit> SplitByShard(bool push, const uint64_t* ids,
                                        size_t n, const float* grads,
                                        uint64_t dim, uint32_t shards) {
  auto split = std::make_shared<RowsSplit>();
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
  return split;
}

// Checks a pulled frame for `count` rows of `dim` floats and hands it to
// `place`.
template <typename Place>
std::function<Status(std::vector<zmq::message_t>&)> ExpectRows(uint64_t dim,
                                                               size_t count,
                                                               Place place) {
  return [dim, count, place](std::vector<zmq::message_t>& frames) {
    if (frames.size() != 1 || frames[0].size() != count * dim * sizeof(float))
      return Status(Code::kBadMessage, "PullRows reply has the wrong size");
    place(static_cast<const float*>(frames[0].data()));
    return Status::Ok();
  };
}

}  // namespace

Handle Client::Impl::Rows(bool push, std::string_view table,
                          const uint64_t* ids, size_t n, const float* grads,
                          float* out) {
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
    p.clock = clock_.load(std::memory_order_relaxed);  // see Impl::clock_
    return p;
  };

  std::vector<Part> parts;
  std::shared_ptr<RowsSplit> split;
  if (shards == 1) {
    Part p = base(0);
    p.frames.emplace_back(ids, n * sizeof(uint64_t));
    if (push) {
      p.frames.emplace_back(grads, n * dim * sizeof(float));
    } else {
      p.on_frames = ExpectRows(dim, n, [out, n, dim](const float* rows) {
        std::memcpy(out, rows, n * dim * sizeof(float));
      });
    }
    parts.push_back(std::move(p));
  } else {
    split = SplitByShard(push, ids, n, grads, dim, shards);
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
            ExpectRows(dim, count, [out, dim, positions](const float* rows) {
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
  return HandleAccess::Make(std::move(call));
}

Handle Client::QueuePush(uint32_t shard, std::string_view queue,
                         const BatchShape& shape, const float* features,
                         const float* labels) {
  if (shard >= impl_->io_->shards().size() || queue.empty() ||
      features == nullptr || labels == nullptr)
    return FailedHandle(Status(Code::kInvalidArgument,
                               "QueuePush needs a shard index below " +
                                   std::to_string(impl_->io_->shards().size()) +
                                   ", a queue name and both buffers"));
  const auto deadline =
      CallState::Clock::now() + impl_->io_->options().request_timeout;
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
  impl_->io_->Submit(std::move(parts));
  return HandleAccess::Make(std::move(call));
}

namespace {

// Sends `op` to every shard as one call (one part each, shaped by `fill`),
// with the client's request deadline, done once `gate` passes too (if any).
Handle SendToAllShards(IoThread& io, wire::Op op,
                       const std::function<void(uint32_t, Part*)>& fill,
                       CallState::Gate gate = nullptr) {
  const size_t shards = io.shards().size();
  const auto deadline = CallState::Clock::now() + io.options().request_timeout;
  auto call = std::make_shared<CallState>(static_cast<int>(shards), deadline);
  if (gate) call->SetGate(std::move(gate));
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
  return HandleAccess::Make(std::move(call));
}

}  // namespace

Handle Client::Clock() {
  if (impl_->io_->options().worker < 0)
    return FailedHandle(Status(Code::kInvalidArgument,
                               "Clock needs ClientOptions::worker set"));
  // Relaxed: see Impl::clock_.
  const int64_t clock = impl_->clock_.fetch_add(1, std::memory_order_relaxed);
  return SendToAllShards(
      *impl_->io_, wire::Op::Clock,
      [clock](uint32_t, Part* p) { p->clock = clock; },
      impl_->replica_gate_ ? impl_->replica_gate_->ForClock(clock) : nullptr);
}

Result<std::vector<std::string>> Client::Checkpoint() {
  auto dirs =
      std::make_shared<std::vector<std::string>>(impl_->io_->shards().size());
  Handle call = SendToAllShards(
      *impl_->io_, wire::Op::Checkpoint, [&](uint32_t i, Part* p) {
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
  const auto& shards = impl_->io_->shards();
  auto results = std::make_shared<std::vector<ShardStats>>(shards.size());
  Handle call =
      SendToAllShards(*impl_->io_, wire::Op::Stats, [&](uint32_t i, Part* p) {
        const std::string endpoint = shards[i].endpoint;
        p->on_reply = [results, i, endpoint](const wire::Reply& r) {
          auto stats = DecodeStats(r);
          if (!stats.ok()) return stats.status();
          ShardStats& out = (*results)[i];
          out = std::move(stats).value();
          out.endpoint = endpoint;
          return Status::Ok();
        };
      });
  SHARDPS_RETURN_IF_ERROR(call.Wait());
  return std::move(*results);
}

}  // namespace shardps
