// ParamStore: how a Fashion-MNIST worker reads its parameters, either live
// from the shard segments through a ModelView (co-processor mode: no copy,
// no round trip) or pulled into local copies each step (classic mode).
#ifndef SHARDPS_EXAMPLES_FASHION_MNIST_PARAM_STORE_H_
#define SHARDPS_EXAMPLES_FASHION_MNIST_PARAM_STORE_H_

#include <Eigen/Core>
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

class ParamStore {
 public:
  // mode: "auto" (ModelView when the shards are on this host, else Pull),
  // "coprocessor" (ModelView or fail) or "classic" (Pull).
  static shardps::Result<std::unique_ptr<ParamStore>> Make(
      shardps::Client& client, std::vector<Param> params,
      const std::string& mode) {
    std::unique_ptr<ParamStore> s(new ParamStore(client, std::move(params)));
    if (mode != "classic") {
      auto view = shardps::ModelView::Open(client.local_segments());
      if (view.ok()) {
        s->view_ = std::move(view).value();
        for (const Param& p : s->params_) {
          auto t = s->view_->Tensor(p.name);
          if (!t.ok()) return t.status();
          s->live_.push_back(t->data());
        }
      } else if (mode == "coprocessor") {
        return view.status().WithContext("--mode coprocessor");
      }
    }
    for (const Param& p : s->params_) s->local_.emplace_back(p.rows, p.cols);
    return s;
  }

  bool coprocessor() const { return view_ != nullptr; }

  // Makes Get() current: nothing for live maps, a Pull of every tensor
  // otherwise (all in flight at once).
  shardps::Status Refresh() {
    if (view_) return shardps::Status::Ok();
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

 private:
  ParamStore(shardps::Client& client, std::vector<Param> params)
      : client_(client), params_(std::move(params)) {}

  shardps::Client& client_;
  const std::vector<Param> params_;
  std::unique_ptr<shardps::ModelView> view_;
  std::vector<const float*> live_;  // into the segments, when co-located
  std::vector<Matrix> local_;       // pulled copies otherwise
};

}  // namespace fashion_mnist

#endif  // SHARDPS_EXAMPLES_FASHION_MNIST_PARAM_STORE_H_
