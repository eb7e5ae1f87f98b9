// From the spec's OptimizerSpec (doubles, TOML names) to the kernels'
// OptimizerParams (floats). Kept apart from optimizers.h so the kernels do not
// depend on the spec format.
#ifndef SHARDPS_COMMON_OPTIMIZER_CONFIG_H_
#define SHARDPS_COMMON_OPTIMIZER_CONFIG_H_

#include "common/optimizers.h"
#include "shardps/model_spec.h"

namespace shardps {

// REQUIRES: `spec` validated (ValidateModelSpec).
OptimizerParams ToOptimizerParams(const OptimizerSpec& spec);

}  // namespace shardps

#endif  // SHARDPS_COMMON_OPTIMIZER_CONFIG_H_
