// The model spec: what a model is made of, read from a TOML file.
//
//   [model]
//   name = "demo"                  # [A-Za-z0-9_.-]{1,63}
//   storage = "/dev/shm/shardps"   # optional; segments go to <storage>/<name>/
//   block_floats = 262144          # optional; multiple of 1024 (whole pages)
//
//   [optimizer]
//   kind = "sgd"                   # the only kind for now
//   lr = 0.1                       # > 0, finite
//
//   [[tensor]]
//   name = "fc1.weight"
//   shape = [256, 784]             # 1..8 dims, each > 0
//   init = "normal:0.01"           # zeros | constant:x | uniform:a,b |
//   normal:std seed = 7                       # optional, default 0
//
// Every problem is reported as kInvalidArgument with the key path, e.g.
// "tensor[1].shape: dimension 0 must be > 0". Unknown keys are errors too, so
// a typo never silently falls back to a default.
//
// Thread-safety: values; the functions below are pure.
#ifndef SHARDPS_MODEL_SPEC_H_
#define SHARDPS_MODEL_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shardps/status.h"

namespace shardps {

inline constexpr uint64_t kDefaultBlockFloats = 256 * 1024;  // 1 MiB
inline constexpr uint64_t kPageFloats = 1024;                // 4 KiB
inline constexpr const char* kDefaultStorage = "/dev/shm/shardps";
inline constexpr size_t kMaxNameLength = 63;
inline constexpr size_t kMaxRank = 8;

struct InitSpec {
  enum class Kind { kZeros, kConstant, kUniform, kNormal };
  Kind kind = Kind::kZeros;
  double a = 0;  // constant value, uniform low, or normal std
  double b = 0;  // uniform high

  // Parses "zeros", "constant:x", "uniform:a,b" (a < b) or "normal:std"
  // (std >= 0). On failure the message says what is wrong, without the key.
  static Result<InitSpec> Parse(std::string_view text);
  std::string ToString() const;
};

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> shape;
  InitSpec init;
  uint64_t seed = 0;

  uint64_t num_floats() const;  // product of shape
};

struct OptimizerSpec {
  std::string kind = "sgd";
  double lr = 0.01;
};

struct ModelSpec {
  std::string name;
  std::string storage = kDefaultStorage;
  uint64_t block_floats = kDefaultBlockFloats;
  OptimizerSpec optimizer;
  std::vector<TensorSpec> tensors;

  // Returns the tensor called `name`, or nullptr.
  const TensorSpec* FindTensor(std::string_view name) const;
};

// Parses and validates a spec. Errors are kInvalidArgument with the key path;
// a missing or unreadable file is kNotFound / kIoError with the path.
Result<ModelSpec> ParseModelSpec(std::string_view toml_text);
Result<ModelSpec> LoadModelSpec(const std::string& path);

// Validates an already-built spec (the checks ParseModelSpec applies).
Status ValidateModelSpec(const ModelSpec& spec);

// Hash of everything that fixes the memory layout: model name, block size,
// tensor names and shapes (in order), optimizer kind. Learning rate, init and
// storage are deliberately excluded: a restarted server may change its
// learning rate and keep its weights. Stable across platforms and releases.
uint64_t SpecHash(const ModelSpec& spec);

// Initial value of element `index` of `tensor`. A pure function of (init,
// seed, tensor name, index), so every shard can initialise its own blocks
// without the others and the model is the same whatever the shard count.
float InitialValue(const TensorSpec& tensor, uint64_t index);

// Fills out[0, count) with InitialValue(tensor, first + i).
void FillInitialValues(const TensorSpec& tensor, uint64_t first, float* out,
                       uint64_t count);

}  // namespace shardps

#endif  // SHARDPS_MODEL_SPEC_H_
