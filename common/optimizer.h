// Optimizer kernels: one in-place update of one block.
//
// A kernel reads the gradient where it lies (the received ZeroMQ frame, which
// has no alignment guarantee, hence unaligned maps) and updates the weights
// in the segment in place. Kernels hold no state of their own: what an
// optimizer remembers lives in the segment beside the weights.
//
// Thread-safety: the caller must be the block's only writer (see seqlock.h).
#ifndef SHARDPS_COMMON_OPTIMIZER_H_
#define SHARDPS_COMMON_OPTIMIZER_H_

#include <Eigen/Core>
#include <cstddef>

namespace shardps {

// w -= lr * g over n floats.
inline void ApplySgd(float* w, const float* g, size_t n, float lr) {
  const auto len = static_cast<Eigen::Index>(n);
  Eigen::Map<Eigen::ArrayXf> weights(w, len);
  Eigen::Map<const Eigen::ArrayXf, Eigen::Unaligned> grad(g, len);
  weights -= lr * grad;
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_OPTIMIZER_H_
