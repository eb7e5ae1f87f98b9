#include "common/optimizer_config.h"

namespace shardps {

OptimizerParams ToOptimizerParams(const OptimizerSpec& spec) {
  OptimizerParams p;
  p.lr = static_cast<float>(spec.lr);
  p.momentum = static_cast<float>(spec.momentum);
  p.beta1 = static_cast<float>(spec.beta1);
  p.beta2 = static_cast<float>(spec.beta2);
  p.eps = static_cast<float>(spec.eps);
  p.rho = static_cast<float>(spec.rho);
  p.weight_decay = static_cast<float>(spec.weight_decay);
  p.clip_value = static_cast<float>(spec.clip_value);
  p.initial_accumulator = static_cast<float>(spec.initial_accumulator);
  // FTRL's alpha is the spec's learning rate (ftrl_alpha 0 means "use lr").
  p.ftrl_alpha = static_cast<float>(spec.lr);
  p.ftrl_beta = static_cast<float>(spec.ftrl_beta);
  p.ftrl_l1 = static_cast<float>(spec.l1);
  p.ftrl_l2 = static_cast<float>(spec.l2);
  return p;
}

}  // namespace shardps
