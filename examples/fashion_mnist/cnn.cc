// The CNN: conv 5x5 (1 -> 16) + ReLU + 2x2 max-pool, conv 5x5 (16 -> 32) +
// ReLU + 2x2 max-pool, dense 512 -> 10, softmax cross-entropy.
//
// Convolutions are im2col + one GEMM per image. Activations are stored
// position-major ("HWC"): a [positions, channels] matrix per image, so a
// convolution's output is exactly the GEMM's result. A kernel's column index
// is (ky * 5 + kx) * in_channels + c, matching im2col's columns; the spec
// stores conv weights as [out_channels, 25 * in_channels].
#include <algorithm>
#include <cstring>

#include "examples/fashion_mnist/model.h"

namespace fashion_mnist {

namespace {

constexpr int kK = 5;  // kernel side

// Geometry of one conv + pool stage.
struct Stage {
  int in_side, in_channels, out_channels;
  int conv_side() const { return in_side - kK + 1; }
  int pool_side() const { return conv_side() / 2; }
  int patch() const { return kK * kK * in_channels; }
};
constexpr Stage kStage1{28, 1, 16};
constexpr Stage kStage2{12, 16, 32};
constexpr int kFlat = 4 * 4 * 32;  // stage 2's pooled output

// cols[pos, (ky*5+kx)*C + c] = in[(y+ky)*side + (x+kx), c].
void Im2Col(const float* in, const Stage& s, Matrix* cols) {
  const int out = s.conv_side(), c = s.in_channels;
  cols->resize(out * out, s.patch());
  for (int y = 0; y < out; ++y)
    for (int x = 0; x < out; ++x) {
      float* row = cols->row(y * out + x).data();
      for (int ky = 0; ky < kK; ++ky)
        for (int kx = 0; kx < kK; ++kx)
          std::memcpy(row + (ky * kK + kx) * c,
                      in + ((y + ky) * s.in_side + (x + kx)) * c,
                      sizeof(float) * static_cast<size_t>(c));
    }
}

// Adds the columns' gradient back onto the input positions they came from.
void Col2Im(const Matrix& dcols, const Stage& s, float* din) {
  const int out = s.conv_side(), c = s.in_channels;
  std::fill(din, din + s.in_side * s.in_side * c, 0.0f);
  for (int y = 0; y < out; ++y)
    for (int x = 0; x < out; ++x) {
      const float* row = dcols.row(y * out + x).data();
      for (int ky = 0; ky < kK; ++ky)
        for (int kx = 0; kx < kK; ++kx) {
          float* dst = din + ((y + ky) * s.in_side + (x + kx)) * c;
          const float* src = row + (ky * kK + kx) * c;
          for (int k = 0; k < c; ++k) dst[k] += src[k];
        }
    }
}

// 2x2 max-pool of a [side*side, C] map; remembers each winner's position.
void MaxPool(const Matrix& a, int side, int channels, float* out, int* argmax) {
  const int half = side / 2;
  for (int y = 0; y < half; ++y)
    for (int x = 0; x < half; ++x)
      for (int c = 0; c < channels; ++c) {
        int best = (2 * y) * side + 2 * x;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            const int pos = (2 * y + dy) * side + 2 * x + dx;
            if (a(pos, c) > a(best, c)) best = pos;
          }
        out[(y * half + x) * channels + c] = a(best, c);
        argmax[(y * half + x) * channels + c] = best;
      }
}

// Per-image state of the forward pass, kept for the backward pass.
struct ImageState {
  Matrix cols1, z1, cols2, z2;
  std::vector<float> pool1;     // [12*12, 16]
  std::vector<int> arg1, arg2;  // pool winners
};

class Cnn : public Model {
 public:
  std::vector<Param> Params() const override {
    return {{"conv1.weight", kStage1.out_channels, kStage1.patch()},
            {"conv1.bias", 1, kStage1.out_channels},
            {"conv2.weight", kStage2.out_channels, kStage2.patch()},
            {"conv2.bias", 1, kStage2.out_channels},
            {"fc.weight", 10, kFlat},
            {"fc.bias", 1, 10}};
  }

  void Predict(const ParamStore& p, const Matrix& x, Matrix* probs) override {
    Forward(p, x);
    *probs = logits_;
    SoftmaxCrossEntropy(probs, nullptr);
  }

  float Step(const ParamStore& p, const Matrix& x,
             const std::vector<int>& labels,
             std::vector<Matrix>* grads) override {
    Forward(p, x);
    Matrix& d = logits_;
    const float loss = SoftmaxCrossEntropy(&d, &labels);
    grads->resize(6);
    auto& g = *grads;
    g[4].noalias() = d.transpose() * flat_;
    g[5] = d.colwise().sum();
    dflat_.noalias() = d * p.Get(4);
    const auto w1 = p.Get(0), w2 = p.Get(2);
    g[0].setZero(w1.rows(), w1.cols());
    g[1].setZero(1, w1.rows());
    g[2].setZero(w2.rows(), w2.cols());
    g[3].setZero(1, w2.rows());
    const int c2 = kStage2.out_channels, c1 = kStage1.out_channels;
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      ImageState& s = images_[static_cast<size_t>(i)];
      // Un-pool stage 2, through its ReLU, into conv2's gradients.
      dz_.setZero(s.z2.rows(), c2);
      for (int k = 0; k < kFlat; ++k) {
        const int pos = s.arg2[static_cast<size_t>(k)], c = k % c2;
        if (s.z2(pos, c) > 0) dz_(pos, c) += dflat_(i, k);
      }
      g[2].noalias() += dz_.transpose() * s.cols2;
      g[3] += dz_.colwise().sum();
      dcols_.noalias() = dz_ * w2;
      dpool_.resize(kStage2.in_side * kStage2.in_side * c1);
      Col2Im(dcols_, kStage2, dpool_.data());
      // Un-pool stage 1, through its ReLU, into conv1's gradients.
      dz_.setZero(s.z1.rows(), c1);
      for (size_t k = 0; k < dpool_.size(); ++k) {
        const int pos = s.arg1[k], c = static_cast<int>(k) % c1;
        if (s.z1(pos, c) > 0) dz_(pos, c) += dpool_[k];
      }
      g[0].noalias() += dz_.transpose() * s.cols1;
      g[1] += dz_.colwise().sum();
    }
    return loss;
  }

 private:
  void Forward(const ParamStore& p, const Matrix& x) {
    const auto n = static_cast<size_t>(x.rows());
    if (images_.size() < n) images_.resize(n);
    flat_.resize(x.rows(), kFlat);
    const auto w1 = p.Get(0), b1 = p.Get(1), w2 = p.Get(2), b2 = p.Get(3);
    for (size_t i = 0; i < n; ++i) {
      ImageState& s = images_[i];
      Im2Col(x.row(static_cast<Eigen::Index>(i)).data(), kStage1, &s.cols1);
      s.z1.noalias() = s.cols1 * w1.transpose();
      s.z1.rowwise() += b1.row(0);
      relu_ = s.z1.cwiseMax(0.0f);
      s.pool1.resize(kStage2.in_side * kStage2.in_side * kStage1.out_channels);
      s.arg1.resize(s.pool1.size());
      MaxPool(relu_, kStage1.conv_side(), kStage1.out_channels, s.pool1.data(),
              s.arg1.data());
      Im2Col(s.pool1.data(), kStage2, &s.cols2);
      s.z2.noalias() = s.cols2 * w2.transpose();
      s.z2.rowwise() += b2.row(0);
      relu_ = s.z2.cwiseMax(0.0f);
      s.arg2.resize(kFlat);
      MaxPool(relu_, kStage2.conv_side(), kStage2.out_channels,
              flat_.row(static_cast<Eigen::Index>(i)).data(), s.arg2.data());
    }
    logits_.noalias() = flat_ * p.Get(4).transpose();
    logits_.rowwise() += p.Get(5).row(0);
  }

  std::vector<ImageState> images_;
  Matrix flat_, logits_, dflat_, dz_, dcols_, relu_;
  std::vector<float> dpool_;
};

}  // namespace

std::unique_ptr<Model> MakeCnn() { return std::make_unique<Cnn>(); }

}  // namespace fashion_mnist
