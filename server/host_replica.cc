#include "server/host_replica.h"

#include <cstdio>
#include <thread>
#include <utility>
#include <zmq.hpp>

#include "common/curve_keys.h"
#include "common/event_fd.h"
#include "common/mutex.h"
#include "common/zmq_util.h"
#include "server/replica_link.h"

namespace shardps {

class HostReplica::Impl {
 public:
  explicit Impl(HostReplicaOptions options) : options_(std::move(options)) {}
  ~Impl() { Stop(); }

  Status Start() EXCLUDES(mu_) {
    auto stop = EventFd::Create();
    if (!stop.ok()) return stop.status();
    stop_ = std::move(stop).value();
    for (uint32_t i = 0; i < options_.cluster.shards.size(); ++i)
      links_.push_back(std::make_unique<ReplicaLink>(context_, options_, i));
    {
      MutexLock lock(mu_);
      stats_.resize(links_.size());
    }
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_.Signal();
    thread_.join();
    for (auto& link : links_) link->Close();
    links_.clear();
  }

  std::vector<ReplicaShardStats> Stats() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return stats_;
  }
  Status error() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return error_;
  }

 private:
  void Loop() {
    std::vector<zmq_pollitem_t> items;
    for (auto& link : links_)
      items.push_back({link->socket().handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({nullptr, stop_.fd(), ZMQ_POLLIN, 0});
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      for (auto& link : links_) link->Tick(now);
      PollItems(items.data(), static_cast<int>(items.size()), 100);
      if (items.back().revents & ZMQ_POLLIN) return;
      for (size_t i = 0; i < links_.size(); ++i)
        if (items[i].revents & ZMQ_POLLIN) links_[i]->Receive();
      Publish();
    }
  }

  // Copies each link's counters where Stats() reads them.
  void Publish() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    for (size_t i = 0; i < links_.size(); ++i) {
      stats_[i] = links_[i]->stats();
      if (error_.ok() && !links_[i]->error().ok()) error_ = links_[i]->error();
    }
  }

  const HostReplicaOptions options_;
  zmq::context_t context_{1};
  std::vector<std::unique_ptr<ReplicaLink>> links_;  // the thread's
  EventFd stop_;
  std::thread thread_;
  mutable Mutex mu_;
  std::vector<ReplicaShardStats> stats_ GUARDED_BY(mu_);
  Status error_ GUARDED_BY(mu_);
};

namespace {

// The replica is a client of the shards: the same key rules as Connect.
Status CheckCurve(HostReplicaOptions& o) {
  if (o.curve_server_key.empty()) o.curve_server_key = o.cluster.server_key;
  const bool server = !o.curve_server_key.empty();
  const bool pair = !o.curve_public_key.empty() && !o.curve_secret_key.empty();
  if (server != pair)
    return Status(Code::kInvalidArgument,
                  server ? "the shards use CURVE (the cluster file names a "
                           "server_key) but the replica has no client key "
                           "pair (--curve-key FILE)"
                         : "a CURVE client key pair needs the shards' public "
                           "key (--server-key FILE or the cluster file's "
                           "server_key)");
  if (!server) return Status::Ok();
  if (!IsCurveKey(o.curve_server_key))
    return Status(Code::kInvalidArgument,
                  "the CURVE server key is not a 40-character Z85 key");
  auto derived = CurvePublicKeyOf(o.curve_secret_key);
  if (!derived.ok() || *derived != o.curve_public_key)
    return Status(Code::kInvalidArgument,
                  "the CURVE client public key does not belong to its "
                  "secret key");
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<HostReplica>> HostReplica::Start(
    HostReplicaOptions options) {
  if (options.cluster.shards.empty())
    return Status(Code::kInvalidArgument, "the cluster file lists no shards");
  if (options.cluster.model != options.spec.name)
    return Status(Code::kSpecMismatch,
                  "the cluster file is for model '" + options.cluster.model +
                      "', the spec for '" + options.spec.name + "'");
  if (options.storage.empty())
    return Status(Code::kInvalidArgument, "replica storage is empty");
  if (options.credits == 0 || options.credits > 16)
    return Status(Code::kInvalidArgument, "credits must be 1..16, got " +
                                              std::to_string(options.credits));
  SHARDPS_RETURN_IF_ERROR(CheckCurve(options));
  auto impl = std::make_unique<Impl>(std::move(options));
  SHARDPS_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<HostReplica>(new HostReplica(std::move(impl)));
}

HostReplica::HostReplica(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HostReplica::~HostReplica() = default;
void HostReplica::Stop() { impl_->Stop(); }
std::vector<ReplicaShardStats> HostReplica::Stats() const {
  return impl_->Stats();
}
Status HostReplica::error() const { return impl_->error(); }

}  // namespace shardps
