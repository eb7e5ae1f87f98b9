// ParamStore: how a Fashion-MNIST worker reads its parameters, either live
// through a ModelView (co-processor mode: no copy, no round trip) or pulled
// into local copies each step (classic mode). The view maps the shards'
// segments on this host and, for the shards on other hosts, the copies this
// host's replica keeps (ClientOptions::replica_storage): the co-processor
// carried to every host.
#ifndef SHARDPS_EXAMPLES_FASHION_MNIST_PARAM_STORE_H_
#define SHARDPS_EXAMPLES_FASHION_MNIST_PARAM_STORE_H_

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "shardps/client.h"
#include "shardps/model_view.h"

namespace fashion_mnist {

using Matrix =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const Matrix>;

struct Param {
  std::string name;  // tensor in the spec
  int rows, cols;    // viewed as a row-major matrix
};

// What the view read through the host replica (all zero without one).
struct ReplicaReads {
  uint32_t local_blocks = 0;    // blocks mapped from this host's shards
  uint32_t replica_blocks = 0;  // blocks read through the replica's copies
  uint64_t block_reads = 0;     // replica blocks summed over Refresh calls
  uint64_t behind = 0;  // of those, read while the copy lagged the shard
  uint64_t min_held = 0, max_held = 0;  // copies' versions (ReadsSoFar)
};

class ParamStore {
 public:
  // mode: "auto" (a ModelView when every shard is on this host or copied by
  // its replica, else Pull), "coprocessor" (the ModelView or fail) or
  // "classic" (Pull). `client` must outlive the store.
  static shardps::Result<std::unique_ptr<ParamStore>> Make(
      shardps::Client& client, std::vector<Param> params,
      const std::string& mode) {
    std::unique_ptr<ParamStore> s(new ParamStore(client, std::move(params)));
    if (mode != "classic") {
      auto view = shardps::ModelView::Open(client);
      if (view.ok()) {
        s->view_ = std::move(view).value();
        for (const Param& p : s->params_) {
          auto t = s->view_->Tensor(p.name);
          if (!t.ok()) return t.status();
          s->live_.push_back(t->data());
        }
        if (auto st = s->Survey(&s->reads_); !st.ok()) return st;
      } else if (mode == "coprocessor") {
        return view.status().WithContext("--mode coprocessor");
      }
    }
    for (const Param& p : s->params_) s->local_.emplace_back(p.rows, p.cols);
    return s;
  }

  bool coprocessor() const { return view_ != nullptr; }

  // Makes Get() current: for live maps nothing but counting the reads
  // through the replica; a Pull of every tensor otherwise (all in flight at
  // once).
  shardps::Status Refresh() {
    if (view_) return CountReplicaReads();
    std::vector<shardps::Handle> pulls;
    for (size_t i = 0; i < params_.size(); ++i)
      pulls.push_back(client_.Pull(params_[i].name, local_[i].data(),
                                   static_cast<size_t>(local_[i].size())));
    shardps::Status first;
    for (auto& h : pulls)
      if (shardps::Status s = h.Wait(); !s.ok() && first.ok()) first = s;
    return first;
  }

  ConstMap Get(size_t i) const {
    const float* data = view_ ? live_[i] : local_[i].data();
    return ConstMap(data, params_[i].rows, params_[i].cols);
  }

  // Pushes one gradient per parameter (same order) and waits for all.
  shardps::Status Push(const std::vector<Matrix>& grads) {
    std::vector<shardps::Handle> pushes;
    for (size_t i = 0; i < params_.size(); ++i)
      pushes.push_back(client_.Push(params_[i].name, grads[i].data(),
                                    static_cast<size_t>(grads[i].size())));
    shardps::Status first;
    for (auto& h : pushes)
      if (shardps::Status s = h.Wait(); !s.ok() && first.ok()) first = s;
    return first;
  }

  // The reads so far, with the copies' versions as they are now.
  shardps::Result<ReplicaReads> ReadsSoFar() const {
    ReplicaReads r = reads_;
    if (view_)
      if (auto st = Survey(&r); !st.ok()) return st;
    return r;
  }

 private:
  ParamStore(shardps::Client& client, std::vector<Param> params)
      : client_(client), params_(std::move(params)) {}

  // Fills the block counts and the copies' version range of `r`.
  shardps::Status Survey(ReplicaReads* r) const {
    r->local_blocks = r->replica_blocks = 0;
    r->min_held = std::numeric_limits<uint64_t>::max();
    r->max_held = 0;
    for (const Param& p : params_) {
      auto f = view_->Freshness(p.name);
      if (!f.ok()) return f.status();
      for (const auto& b : f->blocks) {
        if (b.local) {
          ++r->local_blocks;
          continue;
        }
        ++r->replica_blocks;
        r->min_held = std::min(r->min_held, b.held);
        r->max_held = std::max(r->max_held, b.held);
      }
    }
    if (r->replica_blocks == 0) r->min_held = 0;
    return shardps::Status::Ok();
  }

  // One read of every replica block; a block whose copy is behind the
  // shard's latest version at this moment counts as read behind (in bsp,
  // after Clock().Wait(), none should be).
  shardps::Status CountReplicaReads() {
    if (reads_.replica_blocks == 0) return shardps::Status::Ok();
    for (const Param& p : params_) {
      auto f = view_->Freshness(p.name);
      if (!f.ok()) return f.status();
      for (const auto& b : f->blocks) {
        if (b.local) continue;
        ++reads_.block_reads;
        if (b.held < b.latest) ++reads_.behind;
      }
    }
    return shardps::Status::Ok();
  }

  shardps::Client& client_;
  const std::vector<Param> params_;
  std::unique_ptr<shardps::ModelView> view_;
  std::vector<const float*> live_;  // into the segments or replica copies
  std::vector<Matrix> local_;       // pulled copies otherwise
  ReplicaReads reads_;
};

}  // namespace fashion_mnist

#endif  // SHARDPS_EXAMPLES_FASHION_MNIST_PARAM_STORE_H_
