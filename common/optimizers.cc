#include "common/optimizers.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace shardps {
namespace {

using Index = Eigen::Index;
using ArrayMap = Eigen::Map<Eigen::ArrayXf, Eigen::Unaligned>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf, Eigen::Unaligned>;

// ---- names ----

struct NamedKind {
  OptimizerKind kind;
  const char* name;
};

// Documentation order, the same as OptimizerKinds() in model_spec.h.
constexpr NamedKind kNamedKinds[] = {
    {OptimizerKind::kSgd, "sgd"},
    {OptimizerKind::kMomentum, "momentum"},
    {OptimizerKind::kNesterov, "nesterov"},
    {OptimizerKind::kAdagrad, "adagrad"},
    {OptimizerKind::kRmsprop, "rmsprop"},
    {OptimizerKind::kAdam, "adam"},
    {OptimizerKind::kAdamw, "adamw"},
    {OptimizerKind::kFtrl, "ftrl"},
};

std::string SupportedNames() {
  std::string names;
  for (const NamedKind& named : kNamedKinds) {
    if (!names.empty()) names += ", ";
    names += named.name;
  }
  return names;
}

// ---- kernels ----
//
// Each kernel is a template over `Grad`, the Eigen expression of the
// effective gradient g' (the raw map, or the raw map clipped and/or with
// wd * w added), so clipping and decay are fused into the kernel's own
// passes instead of costing a pass of their own. A g' that reads w stays
// correct: w is written by each kernel's last statement only, and a
// coefficient-wise assignment reads w[i] before it writes w[i].

// Blocks are processed in chunks of this many floats so that a kernel's
// several passes (state first, then weights) over a chunk hit L1: adam
// touches w, g, m, v, 4 x 4 KiB.
constexpr size_t kChunk = 1024;

// One chunk of a block: weights, raw gradient and up to two state arrays,
// all `n` floats.
struct Span {
  float* w;
  const float* g;
  float* s0;
  float* s1;
  Index n;
};

ArrayMap W(const Span& s) { return ArrayMap(s.w, s.n); }
ConstArrayMap G(const Span& s) { return ConstArrayMap(s.g, s.n); }
ArrayMap S0(const Span& s) { return ArrayMap(s.s0, s.n); }
ArrayMap S1(const Span& s) { return ArrayMap(s.s1, s.n); }

// The per-call scalars that depend on the step or on defaults, computed once
// per block rather than once per element.
struct StepScalars {
  float adam_lr;         // lr / (1 - beta1^t): folds m's bias correction in
  float adam_inv_bias1;  // 1 / (1 - beta1^t)
  float adam_inv_bias2;  // 1 / (1 - beta2^t)
  float ftrl_inv_alpha;  // 1 / alpha; alpha = ftrl_alpha, or lr when it is 0
};

StepScalars MakeStepScalars(OptimizerKind kind, const OptimizerParams& p,
                            uint64_t step) {
  // In double: 1 - 0.999^t loses most of its digits in float for small t.
  // Only Adam needs the powers; sparse rows call this per row, so the
  // others skip them.
  const bool adam =
      kind == OptimizerKind::kAdam || kind == OptimizerKind::kAdamw;
  const double t = static_cast<double>(std::max<uint64_t>(step, 1));
  const double bias1 =
      adam ? 1.0 - std::pow(static_cast<double>(p.beta1), t) : 1.0;
  const double bias2 =
      adam ? 1.0 - std::pow(static_cast<double>(p.beta2), t) : 1.0;
  const double alpha = p.ftrl_alpha > 0 ? p.ftrl_alpha : p.lr;
  StepScalars scalars;
  scalars.adam_lr = static_cast<float>(p.lr / bias1);
  scalars.adam_inv_bias2 = static_cast<float>(1.0 / bias2);
  scalars.adam_inv_bias1 = static_cast<float>(1.0 / bias1);
  scalars.ftrl_inv_alpha = static_cast<float>(1.0 / alpha);
  return scalars;
}

// w -= lr * g
template <typename Grad>
void Sgd(const OptimizerParams& p, const Span& s, const Grad& g) {
  W(s) -= p.lr * g;
}

// v = mu * v + g;  w -= lr * v
template <typename Grad>
void Momentum(const OptimizerParams& p, const Span& s, const Grad& g) {
  ArrayMap v = S0(s);
  v = p.momentum * v + g;
  W(s) -= p.lr * v;
}

// v = mu * v + g;  w -= lr * (g + mu * v)   (the look-ahead form, as PyTorch)
template <typename Grad>
void Nesterov(const OptimizerParams& p, const Span& s, const Grad& g) {
  ArrayMap v = S0(s);
  v = p.momentum * v + g;
  W(s) -= p.lr * (g + p.momentum * v);
}

// a += g^2;  w -= lr * g / (sqrt(a) + eps)
template <typename Grad>
void Adagrad(const OptimizerParams& p, const Span& s, const Grad& g) {
  ArrayMap a = S0(s);
  a += g.square();
  W(s) -= p.lr * g / (a.sqrt() + p.eps);
}

// s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)
template <typename Grad>
void Rmsprop(const OptimizerParams& p, const Span& s, const Grad& g) {
  ArrayMap mean_square = S0(s);
  mean_square = p.rho * mean_square + (1 - p.rho) * g.square();
  W(s) -= p.lr * g / (mean_square.sqrt() + p.eps);
}

// m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
template <typename Grad>
void UpdateMoments(const OptimizerParams& p, const Span& s, const Grad& g) {
  ArrayMap m = S0(s);
  ArrayMap v = S1(s);
  m = p.beta1 * m + (1 - p.beta1) * g;
  v = p.beta2 * v + (1 - p.beta2) * g.square();
}

// w -= lr * mhat / (sqrt(vhat) + eps), mhat = m / (1 - b1^t),
// vhat = v / (1 - b2^t); lr / (1 - b1^t) is folded into adam_lr.
template <typename Grad>
void Adam(const OptimizerParams& p, const StepScalars& c, const Span& s,
          const Grad& g) {
  UpdateMoments(p, s, g);
  W(s) -= c.adam_lr * S0(s) / ((S1(s) * c.adam_inv_bias2).sqrt() + p.eps);
}

// Adam plus decay decoupled from the gradient, both from the pre-step w:
//   w -= lr * (wd * w + mhat / (sqrt(vhat) + eps))
// Not w *= (1 - lr * wd), though that runs faster: 1 - lr * wd rounded to
// float is off by up to 3e-8, which for a typical lr * wd = 1e-6 biases the
// decay rate by about 1.3% on every step.
template <typename Grad>
void Adamw(const OptimizerParams& p, const StepScalars& c, const Span& s,
           const Grad& g) {
  UpdateMoments(p, s, g);
  ArrayMap w = W(s);
  w -= p.lr *
       (p.weight_decay * w +
        c.adam_inv_bias1 * S0(s) / ((S1(s) * c.adam_inv_bias2).sqrt() + p.eps));
}

// FTRL-proximal, per coordinate (McMahan et al. 2013, algorithm 1):
//   sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
//   z += g - sigma * w;  n += g^2
//   w = |z| <= l1 ? 0 : -(z - sign(z) * l1) / ((beta + sqrt(n)) / alpha + l2)
// (dividing by alpha as a multiply by 1 / alpha, computed once per block).
// z must see the old n and the old w, so the statements run in this order.
// The last line is computed as (clamp(z, -l1, l1) - z) / (...), the same
// value: for |z| <= l1 the numerator is z - z, exactly +0; otherwise it is
// sign(z) * l1 - z. That form vectorizes; select() and sign() in Eigen 3.4
// do not, and cost 5x. The denominator is 0 only when beta = l2 = 0 on a
// coordinate that has seen no gradient, whose z is then 0 as well: the
// floor of FLT_MIN makes that 0 / FLT_MIN = 0, as the formula means, rather
// than 0 / 0 = NaN.
template <typename Grad>
void Ftrl(const OptimizerParams& p, const StepScalars& c, const Span& s,
          const Grad& g) {
  ArrayMap w = W(s);
  ArrayMap z = S0(s);
  ArrayMap n = S1(s);
  const float inv_alpha = c.ftrl_inv_alpha;
  const float l1 = p.ftrl_l1;
  z += g - ((n + g.square()).sqrt() - n.sqrt()) * inv_alpha * w;
  n += g.square();
  const float tiny = std::numeric_limits<float>::min();
  w = (z.max(-l1).min(l1) - z) /
      ((p.ftrl_beta + n.sqrt()) * inv_alpha + p.ftrl_l2).max(tiny);
}

// Calls kernel(span, g') over `n` floats in chunks of kChunk, where g' is
// the effective gradient expression:
//   g' = clip(g, -c, c)   when c = clip_value > 0
//   g' = g' + wd * w      when decay is coupled (every kind but adamw)
// max/min keep a NaN gradient NaN: Eigen returns the first operand when a
// comparison involves NaN, and g is the first operand.
template <typename Kernel>
void ForEachChunk(OptimizerKind kind, const OptimizerParams& p, float* w,
                  const float* g, float* const* state, size_t n,
                  Kernel kernel) {
  const int slots = StateSlots(kind);
  const float c = p.clip_value;
  const float wd = p.weight_decay;
  const bool clip = c > 0;
  const bool decay = kind != OptimizerKind::kAdamw && wd != 0;
  for (size_t begin = 0; begin < n; begin += kChunk) {
    Span s;
    s.n = static_cast<Index>(std::min(kChunk, n - begin));
    s.w = w + begin;
    s.g = g + begin;
    s.s0 = slots > 0 ? state[0] + begin : nullptr;
    s.s1 = slots > 1 ? state[1] + begin : nullptr;
    const ConstArrayMap raw = G(s);
    if (clip && decay) {
      kernel(s, raw.max(-c).min(c) + wd * W(s));
    } else if (clip) {
      kernel(s, raw.max(-c).min(c));
    } else if (decay) {
      kernel(s, raw + wd * W(s));
    } else {
      kernel(s, raw);
    }
  }
}

}  // namespace

const char* OptimizerName(OptimizerKind kind) {
  for (const NamedKind& named : kNamedKinds) {
    if (named.kind == kind) return named.name;
  }
  return "unknown";
}

Result<OptimizerKind> ParseOptimizerKind(std::string_view name) {
  for (const NamedKind& named : kNamedKinds) {
    if (name == named.name) return named.kind;
  }
  return Status(Code::kInvalidArgument,
                "unknown optimizer '" + std::string(name) +
                    "'; supported: " + SupportedNames());
}

int StateSlots(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return 0;
    case OptimizerKind::kMomentum:
    case OptimizerKind::kNesterov:
    case OptimizerKind::kAdagrad:
    case OptimizerKind::kRmsprop:
      return 1;
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamw:
    case OptimizerKind::kFtrl:
      return 2;
  }
  return 0;
}

void InitState(OptimizerKind kind, const OptimizerParams& params,
               float* const* state, size_t n) {
  const auto len = static_cast<Index>(n);
  const int slots = StateSlots(kind);
  for (int slot = 0; slot < slots; ++slot) {
    const float value =
        kind == OptimizerKind::kAdagrad ? params.initial_accumulator : 0.0f;
    ArrayMap(state[slot], len).setConstant(value);
  }
}

void ApplyUpdate(OptimizerKind kind, const OptimizerParams& params,
                 uint64_t step, float* w, const float* g, float* const* state,
                 size_t n) {
  const OptimizerParams& p = params;
  const StepScalars c = MakeStepScalars(kind, p, step);
  auto run = [&](auto kernel) {
    ForEachChunk(kind, p, w, g, state, n, kernel);
  };
  switch (kind) {
    case OptimizerKind::kSgd:
      return run([&](const Span& s, const auto& grad) { Sgd(p, s, grad); });
    case OptimizerKind::kMomentum:
      return run(
          [&](const Span& s, const auto& grad) { Momentum(p, s, grad); });
    case OptimizerKind::kNesterov:
      return run(
          [&](const Span& s, const auto& grad) { Nesterov(p, s, grad); });
    case OptimizerKind::kAdagrad:
      return run([&](const Span& s, const auto& grad) { Adagrad(p, s, grad); });
    case OptimizerKind::kRmsprop:
      return run([&](const Span& s, const auto& grad) { Rmsprop(p, s, grad); });
    case OptimizerKind::kAdam:
      return run([&](const Span& s, const auto& grad) { Adam(p, c, s, grad); });
    case OptimizerKind::kAdamw:
      return run(
          [&](const Span& s, const auto& grad) { Adamw(p, c, s, grad); });
    case OptimizerKind::kFtrl:
      return run([&](const Span& s, const auto& grad) { Ftrl(p, c, s, grad); });
  }
}

}  // namespace shardps
