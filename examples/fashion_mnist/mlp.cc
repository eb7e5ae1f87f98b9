// The MLP: 784-256-128-10 with ReLU, softmax cross-entropy.
#include <cmath>

#include "examples/fashion_mnist/model.h"

namespace fashion_mnist {

float SoftmaxCrossEntropy(Matrix* logits, const std::vector<int>* labels) {
  Matrix& z = *logits;
  // Shifted by the row max for stability.
  z = (z.colwise() - z.rowwise().maxCoeff()).array().exp();
  z.array().colwise() /= z.rowwise().sum().array();
  if (labels == nullptr) return 0;
  const auto rows = static_cast<int>(z.rows());
  float loss = 0;
  for (int r = 0; r < rows; ++r) {
    const int y = (*labels)[static_cast<size_t>(r)];
    loss -= std::log(std::max(z(r, y), 1e-12f));
    z(r, y) -= 1.0f;
  }
  z /= static_cast<float>(rows);
  return loss / static_cast<float>(rows);
}

namespace {

constexpr int kDepth = 3;
constexpr int kOut[kDepth] = {256, 128, 10};
constexpr int kIn[kDepth] = {784, 256, 128};

class Mlp : public Model {
 public:
  std::vector<Param> Params() const override {
    std::vector<Param> p;
    for (int i = 0; i < kDepth; ++i) {
      const std::string layer = "fc" + std::to_string(i + 1);
      p.push_back({layer + ".weight", kOut[i], kIn[i]});
      p.push_back({layer + ".bias", 1, kOut[i]});
    }
    return p;
  }

  void Predict(const ParamStore& p, const Matrix& x, Matrix* probs) override {
    Forward(p, x);
    *probs = z_[kDepth - 1];
    SoftmaxCrossEntropy(probs, nullptr);
  }

  float Step(const ParamStore& p, const Matrix& x,
             const std::vector<int>& labels,
             std::vector<Matrix>* grads) override {
    Forward(p, x);
    d_ = z_[kDepth - 1];
    const float loss = SoftmaxCrossEntropy(&d_, &labels);
    grads->resize(2 * kDepth);
    for (int i = kDepth - 1; i >= 0; --i) {
      const Matrix& in = i == 0 ? x : a_[i - 1];
      // noalias: straight into the reused buffers, no temporary per step.
      (*grads)[2 * i].noalias() = d_.transpose() * in;
      (*grads)[2 * i + 1] = d_.colwise().sum();
      if (i > 0) {
        back_.noalias() = d_ * p.Get(2 * static_cast<size_t>(i));
        d_ = (z_[i - 1].array() > 0.0f).select(back_, 0.0f);
      }
    }
    return loss;
  }

 private:
  void Forward(const ParamStore& p, const Matrix& x) {
    const Matrix* in = &x;
    for (int i = 0; i < kDepth; ++i) {
      const auto w = p.Get(2 * static_cast<size_t>(i));
      const auto b = p.Get(2 * static_cast<size_t>(i) + 1);
      z_[i].noalias() = *in * w.transpose();
      z_[i].rowwise() += b.row(0);
      if (i + 1 < kDepth) {
        a_[i] = z_[i].cwiseMax(0.0f);
        in = &a_[i];
      }
    }
  }

  Matrix z_[kDepth], a_[kDepth], d_, back_;
};

}  // namespace

std::unique_ptr<Model> MakeMlp() { return std::make_unique<Mlp>(); }

}  // namespace fashion_mnist
