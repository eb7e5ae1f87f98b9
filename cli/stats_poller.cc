#include "cli/stats_poller.h"

#include <zmq.h>

#include <random>
#include <utility>

#include "common/curve_keys.h"
#include "common/stats_codec.h"
#include "common/zmq_util.h"

namespace shardps::cli {

namespace {

// The same checks Client::Connect makes, so a bad key is a clear error up
// front instead of shards that never answer.
Status CheckKeys(const PollerKeys& keys) {
  const bool server = !keys.server_key.empty();
  const bool pair = !keys.public_key.empty() && !keys.secret_key.empty();
  if (!server && keys.public_key.empty() && keys.secret_key.empty())
    return Status::Ok();
  if (server && !pair)
    return Status(Code::kInvalidArgument,
                  "the servers use CURVE (a server key is set) but no client "
                  "key pair was given: pass --curve-key PREFIX "
                  "(docs/security.md)");
  if (!server)
    return Status(Code::kInvalidArgument,
                  "a CURVE client key pair needs the servers' public key: "
                  "pass --server-key FILE or set server_key in the cluster "
                  "file");
  if (!IsCurveKey(keys.server_key))
    return Status(Code::kInvalidArgument,
                  "the CURVE server key is not a 40-character Z85 key");
  auto derived = CurvePublicKeyOf(keys.secret_key);
  if (!derived.ok() || *derived != keys.public_key)
    return Status(Code::kInvalidArgument,
                  "the CURVE client public key does not belong to its secret "
                  "key");
  return Status::Ok();
}

uint64_t RandomClientId() {
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device();
}

}  // namespace

Result<std::unique_ptr<StatsPoller>> StatsPoller::Create(
    const ClusterInfo& cluster, PollerKeys keys) {
  if (keys.server_key.empty()) keys.server_key = cluster.server_key;
  SHARDPS_RETURN_IF_ERROR(CheckKeys(keys));
  for (const ShardAddress& shard : cluster.shards)
    SHARDPS_RETURN_IF_ERROR(CheckShardEndpoint(shard.endpoint));
  try {
    return std::unique_ptr<StatsPoller>(new StatsPoller(cluster, keys));
  } catch (const zmq::error_t& e) {
    return Status(Code::kInvalidArgument,
                  std::string("cannot connect to the shards: ") + e.what());
  }
}

StatsPoller::StatsPoller(const ClusterInfo& cluster, const PollerKeys& keys)
    : model_(cluster.model), client_id_(RandomClientId()) {
  for (const ShardAddress& shard : cluster.shards) {
    Link link{
        shard.index, shard.endpoint,
        std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer)};
    zmq::socket_t& s = *link.socket;
    // Requests wait for the connection (the first Poll may come before the
    // handshake), but only one: a shard that is down holds one unsent
    // request, and every later Poll finds the queue full and says so at
    // once. A restarted shard answers the stale request too; Receive drops
    // that answer by its request id.
    s.set(zmq::sockopt::sndhwm, 1);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::reconnect_ivl, 100);
    s.set(zmq::sockopt::reconnect_ivl_max, 1000);
    if (!keys.server_key.empty()) {
      s.set(zmq::sockopt::curve_serverkey, keys.server_key);
      s.set(zmq::sockopt::curve_publickey, keys.public_key);
      s.set(zmq::sockopt::curve_secretkey, keys.secret_key);
    }
    s.connect(shard.endpoint);
    links_.push_back(std::move(link));
  }
}

StatsPoller::~StatsPoller() = default;

bool StatsPoller::Receive(Link& link, uint64_t request_id,
                          ShardSample* sample) {
  bool answered = false;
  std::vector<zmq::message_t> frames;
  while (RecvMultipartNow(*link.socket, &frames)) {
    if (frames.empty()) continue;
    auto reply = ParseReply(frames[0].data(), frames[0].size(), scratch_);
    // Late answers to earlier polls (and anything unparsable that is not
    // ours) are dropped.
    if (!reply.ok() || (*reply)->request_id() != request_id) continue;
    answered = true;
    const Code code = CodeFromWire((*reply)->code());
    if (code != Code::kOk) {
      const auto* message = (*reply)->message();
      sample->status = Status(code, message ? message->str() : "");
      continue;
    }
    auto stats = DecodeStats(**reply);
    if (!stats.ok()) {
      sample->status = stats.status();
      continue;
    }
    sample->stats = std::move(stats).value();
    sample->stats.endpoint = link.endpoint;
    sample->status = Status::Ok();
  }
  return answered;
}

std::vector<ShardSample> StatsPoller::Poll(std::chrono::milliseconds timeout,
                                           int wake_fd) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<ShardSample> samples(links_.size());
  std::vector<uint64_t> ids(links_.size(), 0);
  std::vector<bool> waiting(links_.size(), false);
  size_t pending = 0;
  for (size_t i = 0; i < links_.size(); ++i) {
    Link& link = links_[i];
    samples[i].shard = link.shard;
    samples[i].endpoint = link.endpoint;
    ids[i] = next_request_id_++;
    flatbuffers::FlatBufferBuilder builder;
    auto model = builder.CreateString(model_);
    wire::RequestBuilder req(builder);
    req.add_op(wire::Op::Stats);
    req.add_request_id(ids[i]);
    req.add_client_id(client_id_);
    req.add_model(model);
    builder.Finish(req.Finish());
    zmq::send_result_t sent;
    try {
      sent = link.socket->send(
          zmq::buffer(builder.GetBufferPointer(), builder.GetSize()),
          zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      samples[i].status = Status(Code::kUnavailable, e.what());
      continue;
    }
    if (!sent) {
      // No connection yet (down, or its CURVE handshake refused), or the
      // request of an earlier Poll is still unsent or unanswered (stuck).
      samples[i].status =
          Status(Code::kUnavailable,
                 "no connection, or the last request still unanswered");
      continue;
    }
    waiting[i] = true;
    ++pending;
  }
  std::vector<zmq_pollitem_t> items;
  std::vector<size_t> item_link;
  while (pending > 0) {
    items.clear();
    item_link.clear();
    for (size_t i = 0; i < links_.size(); ++i) {
      if (!waiting[i]) continue;
      items.push_back({links_[i].socket->handle(), 0, ZMQ_POLLIN, 0});
      item_link.push_back(i);
    }
    if (wake_fd >= 0) items.push_back({nullptr, wake_fd, ZMQ_POLLIN, 0});
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    PollItems(items.data(), static_cast<int>(items.size()), left.count());
    if (wake_fd >= 0 && (items.back().revents & ZMQ_POLLIN)) break;
    for (size_t k = 0; k < item_link.size(); ++k) {
      if (!(items[k].revents & ZMQ_POLLIN)) continue;
      const size_t i = item_link[k];
      if (Receive(links_[i], ids[i], &samples[i])) {
        waiting[i] = false;
        --pending;
      }
    }
  }
  for (size_t i = 0; i < links_.size(); ++i)
    if (waiting[i])
      samples[i].status =
          Status(Code::kTimeout,
                 "no answer within " + std::to_string(timeout.count()) + " ms");
  return samples;
}

}  // namespace shardps::cli
