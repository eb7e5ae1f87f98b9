#include "common/optimizers.h"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace shardps {
namespace {

constexpr OptimizerKind kAllKinds[] = {
    OptimizerKind::kSgd,     OptimizerKind::kMomentum, OptimizerKind::kNesterov,
    OptimizerKind::kAdagrad, OptimizerKind::kRmsprop,  OptimizerKind::kAdam,
    OptimizerKind::kAdamw,   OptimizerKind::kFtrl};

// ---------------------------------------------------------------------------
// Scalar reference: plain loops in double, written from the formulas in
// optimizers.h, sharing nothing with the library but the parameter struct.
// Hyper-parameters are read as the floats the library sees, widened.

struct RefBlock {
  std::vector<double> w, s0, s1;
};

// clip(g, -c, c) when c > 0, then + wd * w when the kind couples its decay.
double RefGradient(const OptimizerParams& p, bool coupled_decay, float raw,
                   double w) {
  double g = raw;
  const double c = p.clip_value;
  if (c > 0) g = std::min(std::max(g, -c), c);
  if (coupled_decay) g += static_cast<double>(p.weight_decay) * w;
  return g;
}

void RefSgd(const OptimizerParams& p, const float* g, RefBlock* b) {
  for (size_t i = 0; i < b->w.size(); ++i) {
    const double gi = RefGradient(p, true, g[i], b->w[i]);
    b->w[i] -= double{p.lr} * gi;
  }
}

void RefMomentum(const OptimizerParams& p, const float* g, RefBlock* b) {
  for (size_t i = 0; i < b->w.size(); ++i) {
    const double gi = RefGradient(p, true, g[i], b->w[i]);
    double& v = b->s0[i];
    v = double{p.momentum} * v + gi;
    b->w[i] -= double{p.lr} * v;
  }
}

void RefNesterov(const OptimizerParams& p, const float* g, RefBlock* b) {
  for (size_t i = 0; i < b->w.size(); ++i) {
    const double gi = RefGradient(p, true, g[i], b->w[i]);
    double& v = b->s0[i];
    v = double{p.momentum} * v + gi;
    b->w[i] -= double{p.lr} * (gi + double{p.momentum} * v);
  }
}

void RefAdagrad(const OptimizerParams& p, const float* g, RefBlock* b) {
  for (size_t i = 0; i < b->w.size(); ++i) {
    const double gi = RefGradient(p, true, g[i], b->w[i]);
    double& a = b->s0[i];
    a += gi * gi;
    b->w[i] -= double{p.lr} * gi / (std::sqrt(a) + double{p.eps});
  }
}

void RefRmsprop(const OptimizerParams& p, const float* g, RefBlock* b) {
  const double rho = p.rho;
  for (size_t i = 0; i < b->w.size(); ++i) {
    const double gi = RefGradient(p, true, g[i], b->w[i]);
    double& s = b->s0[i];
    s = rho * s + (1 - rho) * gi * gi;
    b->w[i] -= double{p.lr} * gi / (std::sqrt(s) + double{p.eps});
  }
}

// Adam, or AdamW when `decoupled` (decay on w instead of in the gradient).
void RefAdam(const OptimizerParams& p, uint64_t t, bool decoupled,
             const float* g, RefBlock* b) {
  const double b1 = p.beta1, b2 = p.beta2, lr = p.lr;
  const double td = static_cast<double>(t);
  for (size_t i = 0; i < b->w.size(); ++i) {
    const double gi = RefGradient(p, !decoupled, g[i], b->w[i]);
    double& m = b->s0[i];
    double& v = b->s1[i];
    m = b1 * m + (1 - b1) * gi;
    v = b2 * v + (1 - b2) * gi * gi;
    const double m_hat = m / (1 - std::pow(b1, td));
    const double v_hat = v / (1 - std::pow(b2, td));
    const double w_old = b->w[i];
    b->w[i] -= lr * m_hat / (std::sqrt(v_hat) + double{p.eps});
    if (decoupled) b->w[i] -= lr * double{p.weight_decay} * w_old;
  }
}

void RefFtrl(const OptimizerParams& p, const float* g, RefBlock* b) {
  const double alpha = p.ftrl_alpha > 0 ? p.ftrl_alpha : p.lr;
  const double l1 = p.ftrl_l1, l2 = p.ftrl_l2, beta = p.ftrl_beta;
  for (size_t i = 0; i < b->w.size(); ++i) {
    const double gi = RefGradient(p, true, g[i], b->w[i]);
    double& z = b->s0[i];
    double& n = b->s1[i];
    const double n_new = n + gi * gi;
    const double sigma = (std::sqrt(n_new) - std::sqrt(n)) / alpha;
    z += gi - sigma * b->w[i];
    n = n_new;
    if (std::abs(z) <= l1) {
      b->w[i] = 0;
    } else {
      const double sign = z < 0 ? -1.0 : 1.0;
      b->w[i] = -(z - sign * l1) / ((beta + std::sqrt(n)) / alpha + l2);
    }
  }
}

void RefStep(OptimizerKind kind, const OptimizerParams& p, uint64_t t,
             const float* g, RefBlock* b) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return RefSgd(p, g, b);
    case OptimizerKind::kMomentum:
      return RefMomentum(p, g, b);
    case OptimizerKind::kNesterov:
      return RefNesterov(p, g, b);
    case OptimizerKind::kAdagrad:
      return RefAdagrad(p, g, b);
    case OptimizerKind::kRmsprop:
      return RefRmsprop(p, g, b);
    case OptimizerKind::kAdam:
      return RefAdam(p, t, false, g, b);
    case OptimizerKind::kAdamw:
      return RefAdam(p, t, true, g, b);
    case OptimizerKind::kFtrl:
      return RefFtrl(p, g, b);
  }
}

// The reference's own state layout, independent of InitState.
RefBlock RefInit(OptimizerKind kind, const OptimizerParams& p,
                 const std::vector<float>& w) {
  RefBlock b;
  b.w.assign(w.begin(), w.end());
  const double s0 = kind == OptimizerKind::kAdagrad ? p.initial_accumulator : 0;
  b.s0.assign(w.size(), s0);
  b.s1.assign(w.size(), 0.0);
  return b;
}

// ---------------------------------------------------------------------------
// The library side: weights, gradient and state in buffers offset by one
// float, so none is 8-, 16- or 32-byte aligned (Eigen must not assume it).

class Block {
 public:
  Block(OptimizerKind kind, size_t n)
      : kind_(kind), n_(n), w_(n + 1), g_(n + 1), s0_(n + 1), s1_(n + 1) {}

  float* w() { return w_.data() + 1; }
  float* g() { return g_.data() + 1; }
  float* const* state() {
    state_ptrs_ = {s0_.data() + 1, s1_.data() + 1};
    return state_ptrs_.data();
  }
  const float* s0() const { return s0_.data() + 1; }
  const float* s1() const { return s1_.data() + 1; }
  size_t n() const { return n_; }

  void Init(const OptimizerParams& p) { InitState(kind_, p, state(), n_); }
  void Step(const OptimizerParams& p, uint64_t t) {
    ApplyUpdate(kind_, p, t, w(), g(), state(), n_);
  }

 private:
  OptimizerKind kind_;
  size_t n_;
  std::vector<float> w_, g_, s0_, s1_;
  std::array<float*, 2> state_ptrs_{};
};

// Hyper-parameters that differ from the defaults and from each other, so a
// kernel reading the wrong field (rho for momentum, beta1 for beta2) fails.
OptimizerParams TestParams(OptimizerKind kind, bool regularized) {
  OptimizerParams p;
  switch (kind) {
    case OptimizerKind::kAdagrad:
    case OptimizerKind::kFtrl:
      p.lr = 0.1f;
      break;
    case OptimizerKind::kRmsprop:
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamw:
      p.lr = 0.002f;
      break;
    default:
      p.lr = 0.01f;
  }
  p.momentum = 0.8f;
  p.beta1 = 0.85f;
  p.beta2 = 0.995f;
  p.eps = 1e-7f;
  p.rho = 0.95f;
  p.initial_accumulator = 0.2f;
  p.ftrl_beta = 0.5f;
  p.ftrl_l1 = 0.3f;
  p.ftrl_l2 = 0.05f;
  if (regularized) {
    p.clip_value = 1.0f;
    p.weight_decay = kind == OptimizerKind::kAdamw ? 0.05f : 0.01f;
  }
  return p;
}

// Gradients of very different sizes per coordinate (log-uniform scales from
// 1e-2 to 1e1, what adaptive optimizers exist for), with a fifth of them
// exactly 0 in each step, as for a table row a batch did not touch.
class GradientSource {
 public:
  GradientSource(size_t n, uint32_t seed) : rng_(seed), scale_(n) {
    std::uniform_real_distribution<double> exponent(-2.0, 1.0);
    for (double& s : scale_) s = std::pow(10.0, exponent(rng_));
  }

  void Fill(float* g) {
    std::normal_distribution<double> normal;
    std::bernoulli_distribution zero(0.2);
    for (size_t i = 0; i < scale_.size(); ++i) {
      g[i] = zero(rng_) ? 0.0f : static_cast<float>(normal(rng_) * scale_[i]);
    }
  }

 private:
  std::mt19937 rng_;
  std::vector<double> scale_;
};

std::vector<float> RandomWeights(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> w(n);
  for (float& x : w) x = normal(rng);
  return w;
}

// Worst error of `actual` against `expected`, each element's error divided
// by |expected| + mean |expected|: relative where the value is of the
// array's usual size, absolute at that size where it passes through 0 (a
// relative bound there would ask for more digits than float has).
double WorstError(const float* actual, const std::vector<double>& expected) {
  double mean = 0;
  for (double e : expected) mean += std::abs(e);
  mean /= static_cast<double>(expected.size());
  double worst = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double diff = std::abs(double{actual[i]} - expected[i]);
    if (diff == 0) continue;
    const double bound = std::abs(expected[i]) + mean;
    worst = std::max(worst, bound > 0 ? diff / bound : HUGE_VAL);
  }
  return worst;
}

// Why 1e-5: the library computes in float (unit roundoff 6e-8), the
// reference in double. Each step adds a few roundings to every weight and
// state element, and they accumulate over 200 steps: a random walk of
// ~sqrt(200 * k) * 6e-8 ~ 2e-6 at most in practice, a worst case of 200 * k *
// 6e-8 ~ 5e-5 never reached. 1e-5 passes float rounding with room and fails
// any wrong formula, which is off by percent, not by parts per million.
constexpr double kTolerance = 1e-5;
constexpr int kSteps = 200;

TEST_CASE("every optimizer matches its scalar reference over 200 steps",
          "[optimizers]") {
  const OptimizerKind kind =
      GENERATE(from_range(std::begin(kAllKinds), std::end(kAllKinds)));
  const bool regularized = GENERATE(false, true);
  // 1003: not a multiple of the SIMD width; 2085: also crosses the kernels'
  // internal chunk boundaries (1024 floats) twice.
  const size_t n = GENERATE(size_t{1003}, size_t{2085});
  INFO(OptimizerName(kind) << (regularized ? " with clip and decay" : "")
                           << ", n = " << n);

  const OptimizerParams p = TestParams(kind, regularized);
  const std::vector<float> w0 = RandomWeights(n, 7);
  Block block(kind, n);
  std::copy(w0.begin(), w0.end(), block.w());
  block.Init(p);
  RefBlock ref = RefInit(kind, p, w0);
  GradientSource gradients(n, 11);

  double worst_w = 0, worst_s0 = 0, worst_s1 = 0;
  for (uint64_t t = 1; t <= kSteps; ++t) {
    gradients.Fill(block.g());
    block.Step(p, t);
    RefStep(kind, p, t, block.g(), &ref);
    worst_w = std::max(worst_w, WorstError(block.w(), ref.w));
    if (StateSlots(kind) > 0) {
      worst_s0 = std::max(worst_s0, WorstError(block.s0(), ref.s0));
    }
    if (StateSlots(kind) > 1) {
      worst_s1 = std::max(worst_s1, WorstError(block.s1(), ref.s1));
    }
  }
  INFO("worst error: w " << worst_w << ", state0 " << worst_s0 << ", state1 "
                         << worst_s1);
  CHECK(worst_w <= kTolerance);
  CHECK(worst_s0 <= kTolerance);
  CHECK(worst_s1 <= kTolerance);
  // The run must have moved the weights, or the comparison proves nothing.
  CHECK(WorstError(block.w(), std::vector<double>(w0.begin(), w0.end())) >
        1e-3);
}

// ---------------------------------------------------------------------------
// Clipping and weight decay.

TEST_CASE("clip_value clips the gradient first, then decay is added",
          "[optimizers]") {
  // Dyadic values: every result is exact in float, so == is fair.
  OptimizerParams p;
  p.lr = 0.5f;
  p.clip_value = 1.0f;
  std::vector<float> w = {2, 2, 2, 2, 2};
  const std::vector<float> g = {5, -5, 0.5f, -0.5f, 1};
  ApplyUpdate(OptimizerKind::kSgd, p, 1, w.data(), g.data(), nullptr, 5);
  CHECK(w == std::vector<float>{1.5f, 2.5f, 1.75f, 2.25f, 1.5f});

  // g' = clip(5) + 0.25 * 2 = 1.5 (not clip(5 + 0.5) = 1), w = 2 - 0.75.
  p.weight_decay = 0.25f;
  w = {2};
  const float big = 5;
  ApplyUpdate(OptimizerKind::kSgd, p, 1, w.data(), &big, nullptr, 1);
  CHECK(w[0] == 1.25f);
}

TEST_CASE("a NaN gradient stays NaN through clipping", "[optimizers]") {
  // A corrupt gradient must show up in the weights, not be clipped into a
  // plausible one. n = 20 so both Eigen's SIMD body and scalar tail see one.
  OptimizerParams p;
  p.clip_value = 1.0f;
  std::vector<float> w(20, 1.0f);
  std::vector<float> g(20, 3.0f);
  g[0] = g[19] = std::numeric_limits<float>::quiet_NaN();
  ApplyUpdate(OptimizerKind::kSgd, p, 1, w.data(), g.data(), nullptr, 20);
  CHECK(std::isnan(w[0]));
  CHECK(std::isnan(w[19]));
  CHECK(w[1] == Approx(1.0f - p.lr));
}

// Runs `steps` updates of `kind` on two blocks: `a` with params `pa` and raw
// gradients, `b` with `pb` and the gradients `transform` makes from the raw
// ones and b's current weights.
template <typename Transform>
void RunPair(const OptimizerParams& pa, const OptimizerParams& pb, Block* a,
             Block* b, int steps, Transform transform) {
  const std::vector<float> w0 = RandomWeights(a->n(), 3);
  std::copy(w0.begin(), w0.end(), a->w());
  std::copy(w0.begin(), w0.end(), b->w());
  a->Init(pa);
  b->Init(pb);
  GradientSource gradients(a->n(), 5);
  for (int t = 1; t <= steps; ++t) {
    gradients.Fill(a->g());
    for (size_t i = 0; i < a->n(); ++i) {
      b->g()[i] = transform(a->g()[i], b->w()[i]);
    }
    a->Step(pa, t);
    b->Step(pb, t);
  }
}

TEST_CASE("every kind clips: same as an unclipped run on clipped gradients",
          "[optimizers]") {
  const OptimizerKind kind =
      GENERATE(from_range(std::begin(kAllKinds), std::end(kAllKinds)));
  INFO(OptimizerName(kind));
  const size_t n = 301;
  OptimizerParams clipped = TestParams(kind, false);
  clipped.clip_value = 0.5f;
  const OptimizerParams plain = TestParams(kind, false);
  Block a(kind, n), b(kind, n);
  RunPair(clipped, plain, &a, &b, 20,
          [](float g, float) { return std::min(std::max(g, -0.5f), 0.5f); });
  // Clipping rounds nothing, so both blocks ran the same float operations.
  CHECK(std::equal(a.w(), a.w() + n, b.w()));
  CHECK(std::equal(a.s0(), a.s0() + n, b.s0()));
  CHECK(std::equal(a.s1(), a.s1() + n, b.s1()));
}

TEST_CASE("weight decay adds wd * w to the gradient for all but adamw",
          "[optimizers]") {
  const OptimizerKind kind = GENERATE(
      OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kNesterov,
      OptimizerKind::kAdagrad, OptimizerKind::kRmsprop, OptimizerKind::kAdam,
      OptimizerKind::kFtrl);
  INFO(OptimizerName(kind));
  const size_t n = 301;
  OptimizerParams decayed = TestParams(kind, false);
  decayed.weight_decay = 0.1f;
  const OptimizerParams plain = TestParams(kind, false);
  Block a(kind, n), b(kind, n);
  RunPair(decayed, plain, &a, &b, 20,
          [&](float g, float w) { return g + decayed.weight_decay * w; });
  // Same formula on both sides; only a fused multiply-add the compiler may
  // form on one side and not the other could differ, by an ulp.
  for (size_t i = 0; i < n; ++i) {
    INFO("i = " << i);
    REQUIRE(a.w()[i] == Approx(b.w()[i]).epsilon(1e-5).margin(1e-6));
    REQUIRE(a.s0()[i] == Approx(b.s0()[i]).epsilon(1e-5).margin(1e-6));
  }
}

TEST_CASE("adamw decays the weights directly, not through the gradient",
          "[optimizers]") {
  const size_t n = 301;
  OptimizerParams decayed = TestParams(OptimizerKind::kAdamw, false);
  decayed.weight_decay = 0.1f;
  const OptimizerParams plain = TestParams(OptimizerKind::kAdamw, false);

  SECTION("with a zero gradient only the decay moves w: w *= 1 - lr * wd") {
    Block block(OptimizerKind::kAdamw, n);
    const std::vector<float> w0 = RandomWeights(n, 9);
    std::copy(w0.begin(), w0.end(), block.w());
    std::fill(block.g(), block.g() + n, 0.0f);
    block.Init(decayed);
    block.Step(decayed, 1);
    for (size_t i = 0; i < n; ++i) {
      const double expected =
          w0[i] - double{decayed.lr} * decayed.weight_decay * w0[i];
      REQUIRE(block.w()[i] == Approx(expected).epsilon(1e-6));
      REQUIRE(block.s0()[i] == 0.0f);  // the moments never see the decay
      REQUIRE(block.s1()[i] == 0.0f);
    }
  }

  SECTION("the moments match an undecayed run; w differs by lr * wd * w") {
    // A large lr * wd, so decaying the post-step w instead (off by
    // lr * wd * step = 0.05 * 0.1 here) cannot hide in the tolerance.
    decayed.lr = 0.1f;
    decayed.weight_decay = 0.5f;
    OptimizerParams plain_big = plain;
    plain_big.lr = 0.1f;
    Block a(OptimizerKind::kAdamw, n), b(OptimizerKind::kAdamw, n);
    const std::vector<float> w0 = RandomWeights(n, 9);
    std::copy(w0.begin(), w0.end(), a.w());
    std::copy(w0.begin(), w0.end(), b.w());
    GradientSource gradients(n, 13);
    gradients.Fill(a.g());
    std::copy(a.g(), a.g() + n, b.g());
    a.Init(decayed);
    b.Init(plain_big);
    a.Step(decayed, 1);
    b.Step(plain_big, 1);
    CHECK(std::equal(a.s0(), a.s0() + n, b.s0()));
    CHECK(std::equal(a.s1(), a.s1() + n, b.s1()));
    for (size_t i = 0; i < n; ++i) {
      const double decay = double{decayed.lr} * decayed.weight_decay * w0[i];
      REQUIRE(a.w()[i] == Approx(b.w()[i] - decay).epsilon(1e-6).margin(1e-7));
    }
  }

  SECTION("adam, by contrast, feeds the decay into its moments") {
    OptimizerParams adam = decayed;
    Block block(OptimizerKind::kAdam, n);
    const std::vector<float> w0 = RandomWeights(n, 9);
    std::copy(w0.begin(), w0.end(), block.w());
    std::fill(block.g(), block.g() + n, 0.0f);
    block.Init(adam);
    block.Step(adam, 1);
    // m = (1 - b1) * wd * w: nonzero wherever w is.
    for (size_t i = 0; i < n; ++i) {
      const double m = (1 - double{adam.beta1}) * adam.weight_decay * w0[i];
      REQUIRE(block.s0()[i] == Approx(m).epsilon(1e-6));
    }
  }
}

// ---------------------------------------------------------------------------
// Adam's bias correction.

TEST_CASE("adam's first step moves each weight by lr * g / (|g| + eps)",
          "[optimizers]") {
  // t = 1: m = (1 - b1) g, v = (1 - b2) g^2, so mhat = g and vhat = g^2.
  const OptimizerKind kind =
      GENERATE(OptimizerKind::kAdam, OptimizerKind::kAdamw);
  const uint64_t step = GENERATE(uint64_t{0}, uint64_t{1});  // 0 is taken as 1
  INFO(OptimizerName(kind) << ", step " << step);
  const size_t n = 301;
  const OptimizerParams p = TestParams(kind, false);
  Block block(kind, n);
  const std::vector<float> w0 = RandomWeights(n, 17);
  std::copy(w0.begin(), w0.end(), block.w());
  GradientSource gradients(n, 19);
  gradients.Fill(block.g());
  block.Init(p);
  block.Step(p, step);
  for (size_t i = 0; i < n; ++i) {
    const double g = block.g()[i];
    const double expected = w0[i] - p.lr * g / (std::abs(g) + p.eps);
    REQUIRE(block.w()[i] == Approx(expected).epsilon(1e-6));
    REQUIRE(block.s0()[i] == Approx((1 - double{p.beta1}) * g).epsilon(1e-6));
    REQUIRE(block.s1()[i] ==
            Approx((1 - double{p.beta2}) * g * g).epsilon(1e-5));
  }
}

TEST_CASE("adam's bias correction makes a constant gradient move w evenly",
          "[optimizers]") {
  // With g constant from zero state, m_t = (1 - b1^t) g and
  // v_t = (1 - b2^t) g^2, so mhat = g and vhat = g^2 at every t: each step is
  // lr * g / (|g| + eps), i.e. lr * sign(g) for |g| >> eps. Without the
  // correction the first steps would be 1 - b1 = 15% of that.
  OptimizerParams p = TestParams(OptimizerKind::kAdam, false);
  const std::vector<float> g = {3.0f, -0.25f, 1e-3f};
  std::vector<float> w = {1, 1, 1};
  std::vector<float> m(3), v(3);
  float* state[] = {m.data(), v.data()};
  InitState(OptimizerKind::kAdam, p, state, 3);
  for (uint64_t t = 1; t <= 50; ++t) {
    ApplyUpdate(OptimizerKind::kAdam, p, t, w.data(), g.data(), state, 3);
    for (size_t i = 0; i < 3; ++i) {
      const double step = p.lr * g[i] / (std::abs(g[i]) + p.eps);
      INFO("t = " << t << ", i = " << i);
      REQUIRE(w[i] ==
              Approx(1.0 - static_cast<double>(t) * step).epsilon(1e-5));
    }
  }
}

// ---------------------------------------------------------------------------
// FTRL.

TEST_CASE("ftrl sets a weight to exactly 0 whenever |z| <= l1",
          "[optimizers]") {
  const size_t n = 1003;
  OptimizerParams p = TestParams(OptimizerKind::kFtrl, false);
  p.ftrl_l1 = 2.0f;  // large enough that a good share of weights are 0
  Block block(OptimizerKind::kFtrl, n);
  const std::vector<float> w0 = RandomWeights(n, 23);
  std::copy(w0.begin(), w0.end(), block.w());
  block.Init(p);
  GradientSource gradients(n, 29);
  size_t zeros = 0, nonzeros = 0;
  for (uint64_t t = 1; t <= 50; ++t) {
    gradients.Fill(block.g());
    block.Step(p, t);
    const float* z = block.s0();
    for (size_t i = 0; i < n; ++i) {
      INFO("t = " << t << ", i = " << i << ", z = " << z[i]);
      if (std::abs(z[i]) <= p.ftrl_l1) {
        REQUIRE(block.w()[i] == 0.0f);
        REQUIRE_FALSE(std::signbit(block.w()[i]));  // +0, not -0
        ++zeros;
      } else {
        // The weight opposes z: w = -(z - sign(z) l1) / (...).
        REQUIRE(block.w()[i] * z[i] < 0.0f);
        ++nonzeros;
      }
    }
  }
  CHECK(zeros > n);  // both branches were exercised, many times
  CHECK(nonzeros > n);

  SECTION("and a huge l1 zeroes every weight") {
    p.ftrl_l1 = 1e6f;
    gradients.Fill(block.g());
    block.Step(p, 51);
    CHECK(std::all_of(block.w(), block.w() + n,
                      [](float w) { return w == 0.0f; }));
  }
}

TEST_CASE("ftrl with beta = l2 = 0 leaves an untouched coordinate at 0",
          "[optimizers]") {
  // n = 0 makes the denominator (beta + sqrt(n)) / alpha + l2 zero; the
  // formula still means w = 0 there (|z| = 0 <= l1), not 0 / 0.
  OptimizerParams p = TestParams(OptimizerKind::kFtrl, false);
  p.ftrl_beta = 0;
  p.ftrl_l1 = 0;
  p.ftrl_l2 = 0;
  std::vector<float> w = {0.5f, -0.5f, 0.5f};
  const std::vector<float> g = {0.0f, 0.0f, 1.0f};
  std::vector<float> z(3), n(3);
  float* state[] = {z.data(), n.data()};
  InitState(OptimizerKind::kFtrl, p, state, 3);
  RefBlock ref = RefInit(OptimizerKind::kFtrl, p, w);
  ApplyUpdate(OptimizerKind::kFtrl, p, 1, w.data(), g.data(), state, 3);
  RefFtrl(p, g.data(), &ref);
  CHECK(w[0] == 0.0f);
  CHECK(w[1] == 0.0f);
  CHECK(w[2] == Approx(ref.w[2]).epsilon(1e-6));
  CHECK(w[2] != 0.0f);
}

TEST_CASE("ftrl uses lr as alpha when ftrl_alpha is 0", "[optimizers]") {
  const size_t n = 301;
  OptimizerParams by_lr = TestParams(OptimizerKind::kFtrl, false);
  by_lr.lr = 0.2f;
  by_lr.ftrl_alpha = 0;
  OptimizerParams by_alpha = by_lr;
  by_alpha.lr = 123.0f;  // ignored once ftrl_alpha is set
  by_alpha.ftrl_alpha = 0.2f;
  Block a(OptimizerKind::kFtrl, n), b(OptimizerKind::kFtrl, n);
  RunPair(by_lr, by_alpha, &a, &b, 10, [](float g, float) { return g; });
  CHECK(std::equal(a.w(), a.w() + n, b.w()));
  CHECK(std::equal(a.s0(), a.s0() + n, b.s0()));
  CHECK(std::equal(a.s1(), a.s1() + n, b.s1()));
}

// ---------------------------------------------------------------------------
// State, names, edge cases.

TEST_CASE("StateSlots counts each kind's state arrays", "[optimizers]") {
  CHECK(StateSlots(OptimizerKind::kSgd) == 0);
  CHECK(StateSlots(OptimizerKind::kMomentum) == 1);
  CHECK(StateSlots(OptimizerKind::kNesterov) == 1);
  CHECK(StateSlots(OptimizerKind::kAdagrad) == 1);
  CHECK(StateSlots(OptimizerKind::kRmsprop) == 1);
  CHECK(StateSlots(OptimizerKind::kAdam) == 2);
  CHECK(StateSlots(OptimizerKind::kAdamw) == 2);
  CHECK(StateSlots(OptimizerKind::kFtrl) == 2);
}

TEST_CASE("InitState fills adagrad's sum, zeroes the rest, touches no more",
          "[optimizers]") {
  const OptimizerKind kind =
      GENERATE(from_range(std::begin(kAllKinds), std::end(kAllKinds)));
  INFO(OptimizerName(kind));
  OptimizerParams p;
  p.initial_accumulator = 0.25f;
  const size_t n = 37;
  // Slots past StateSlots(kind), and the float past n, keep their garbage.
  std::vector<std::vector<float>> slots(2, std::vector<float>(n + 1, 42.0f));
  float* state[] = {slots[0].data(), slots[1].data()};
  InitState(kind, p, state, n);
  const float expected = kind == OptimizerKind::kAdagrad ? 0.25f : 0.0f;
  for (int s = 0; s < 2; ++s) {
    INFO("slot " << s);
    const bool used = s < StateSlots(kind);
    for (size_t i = 0; i < n; ++i) {
      REQUIRE(slots[s][i] == (used ? expected : 42.0f));
    }
    CHECK(slots[s][n] == 42.0f);
  }
}

TEST_CASE("sgd needs no state and n = 0 is a no-op", "[optimizers]") {
  OptimizerParams p;
  InitState(OptimizerKind::kSgd, p, nullptr, 5);
  for (OptimizerKind kind : kAllKinds) {
    float w = 1.0f;
    const float g = 1.0f;
    float s0 = 2.0f, s1 = 3.0f;
    float* state[] = {&s0, &s1};
    ApplyUpdate(kind, p, 1, &w, &g, state, 0);
    CHECK(w == 1.0f);
    CHECK(s0 == 2.0f);
    CHECK(s1 == 3.0f);
  }
}

TEST_CASE("optimizer names round-trip; unknown names list the choices",
          "[optimizers]") {
  for (OptimizerKind kind : kAllKinds) {
    const Result<OptimizerKind> parsed =
        ParseOptimizerKind(OptimizerName(kind));
    REQUIRE(parsed.ok());
    CHECK(*parsed == kind);
  }
  CHECK(std::string(OptimizerName(OptimizerKind::kAdamw)) == "adamw");
  CHECK(std::string(OptimizerName(OptimizerKind::kFtrl)) == "ftrl");

  const std::string bad =
      GENERATE(as<std::string>{}, "", "Adam", "adam ", "sgd2", "lbfgs");
  INFO("'" << bad << "'");
  const Result<OptimizerKind> parsed = ParseOptimizerKind(bad);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == Code::kInvalidArgument);
  const std::string& message = parsed.status().message();
  CHECK(message.find("'" + bad + "'") != std::string::npos);
  for (OptimizerKind kind : kAllKinds) {
    CHECK(message.find(OptimizerName(kind)) != std::string::npos);
  }
}

}  // namespace
}  // namespace shardps
