// Server-side optimizers: the kernels that update one block in place. (The
// 16-bit gradient conversions are in half_float.h.)
//
// Where the state lives: an optimizer that remembers something between steps
// (momentum's velocity, Adam's moments, ...) keeps it in StateSlots(kind)
// float arrays per weight array, each as long as the weights, stored in the
// segment beside the block they belong to. The kernels themselves hold no
// state, allocate nothing and take no lock: the caller owns the block (one
// writer per block, see seqlock.h) and passes the weights, the gradient and
// the state arrays of that block.
//
// The gradient is read where it lies (a received ZeroMQ frame, no alignment
// guarantee); weights and state may be unaligned too.
//
// Every kind first forms the effective gradient
//   g' = clip(g, -clip_value, clip_value)       (when clip_value > 0)
//   g' = g' + weight_decay * w                  (every kind except adamw)
// and then applies its rule to g' (formulas at OptimizerKind below).
#ifndef SHARDPS_COMMON_OPTIMIZERS_H_
#define SHARDPS_COMMON_OPTIMIZERS_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shardps/status.h"

namespace shardps {

// t is the 1-based number of updates applied to the block, including this one.
enum class OptimizerKind {
  kSgd,       // w -= lr * g
  kMomentum,  // v = momentum * v + g;  w -= lr * v
  kNesterov,  // v = momentum * v + g;  w -= lr * (g + momentum * v)
  kAdagrad,   // a += g^2;  w -= lr * g / (sqrt(a) + eps)
  kRmsprop,   // s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)
  kAdam,      // m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2;
              // w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  kAdamw,     // Adam, with weight decay decoupled from the gradient:
              // w -= lr * weight_decay * w (applied to the pre-step w)
  kFtrl,      // FTRL-proximal, per coordinate (McMahan et al., KDD 2013):
              // sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
              // z += g - sigma * w;  n += g^2
              // w = |z| <= l1 ? 0
              //     : -(z - sign(z) * l1) / ((beta + sqrt(n)) / alpha + l2)
};

// The lower-case name a model spec uses for `kind`, e.g. "adamw".
const char* OptimizerName(OptimizerKind kind);

// The kind named `name` (exact, lower-case). An unknown name is
// kInvalidArgument, and the message lists every supported name.
Result<OptimizerKind> ParseOptimizerKind(std::string_view name);

// Hyper-parameters of one optimizer. Each kind reads only the fields it uses.
// The defaults match OptimizerSpec (shardps/model_spec.h), which validates the
// ranges; the kernels trust them.
struct OptimizerParams {
  // Learning rate, every kind (ftrl: its alpha unless ftrl_alpha is set). > 0.
  float lr = 0.01f;
  // Velocity decay of momentum and nesterov. In [0, 1).
  float momentum = 0.9f;
  // Decay of adam's and adamw's first moment (m). In [0, 1).
  float beta1 = 0.9f;
  // Decay of adam's and adamw's second moment (v). In [0, 1).
  float beta2 = 0.999f;
  // Added to the denominator of adagrad, rmsprop, adam and adamw so a
  // coordinate that has seen no gradient yet does not divide by zero. > 0.
  float eps = 1e-8f;
  // Decay of rmsprop's mean square (s). In [0, 1).
  float rho = 0.9f;
  // L2 penalty. Added to the gradient (g + weight_decay * w) by every kind
  // except adamw, which decays the weights directly (w -= lr * wd * w).
  // 0 = off. >= 0.
  float weight_decay = 0;
  // Every kind clips each gradient element to [-clip_value, clip_value]
  // before anything else (NaN stays NaN). 0 = off. >= 0.
  float clip_value = 0;
  // Adagrad's starting sum of squares (a); > 0 keeps the first steps from
  // being lr * sign(g)-sized. >= 0.
  float initial_accumulator = 0.1f;
  // FTRL's alpha (per-coordinate learning-rate scale); 0 = use lr. >= 0.
  float ftrl_alpha = 0;
  // FTRL's beta, smoothing the learning rate of rarely seen coordinates. >= 0.
  float ftrl_beta = 1;
  // FTRL's L1 strength: a coordinate with |z| <= ftrl_l1 is exactly 0, which
  // is what makes FTRL models sparse. >= 0.
  float ftrl_l1 = 0;
  // FTRL's L2 strength (in the proximal term, not added to g). >= 0.
  float ftrl_l2 = 0;
};

// How many float arrays of state, each as long as the weights, `kind` keeps
// per weight array: sgd 0; momentum, nesterov 1 (v); adagrad 1 (a);
// rmsprop 1 (s); adam, adamw 2 (m, v); ftrl 2 (z, n), in that order.
int StateSlots(OptimizerKind kind);

// Sets the state of a fresh block: adagrad's sum to initial_accumulator,
// everything else to 0. `state` holds StateSlots(kind) pointers to n floats.
void InitState(OptimizerKind kind, const OptimizerParams& params,
               float* const* state, size_t n);

// One update of one block, in place: w and state[0 .. StateSlots(kind)) are
// updated from the gradient g; all are n floats, g is only read.
// `step` is t in the formulas above, the 1-based count of updates applied to
// this block including this one; only adam and adamw read it, for their bias
// correction (0 is taken as 1 rather than dividing by zero).
// Thread-safety: the caller must be the block's only writer.
void ApplyUpdate(OptimizerKind kind, const OptimizerParams& params,
                 uint64_t step, float* w, const float* g, float* const* state,
                 size_t n);

}  // namespace shardps

#endif  // SHARDPS_COMMON_OPTIMIZERS_H_
