// The model spec: what a model is made of, read from a TOML file.
//
//   [model]
//   name = "demo"                  # [A-Za-z0-9_.-]{1,63}
//   storage = "/dev/shm/shardps"   # optional; segments go to <storage>/<name>/
//   block_floats = 262144          # optional; multiple of 1024 (whole pages)
//
//   [optimizer]                    # the model's default optimizer
//   kind = "adam"                  # sgd momentum nesterov adagrad rmsprop
//                                  # adam adamw ftrl
//   lr = 0.001                     # > 0, finite; more hyper-parameters in
//   weight_decay = 0.0             # OptimizerSpec, each optional
//
//   [[table]]                      # a sparse embedding table
//   name = "user.embedding"
//   dim = 16                       # floats per row, 1..65536
//   capacity = 1000000             # rows, over all shards (see TableSpec)
//   init = "normal:0.01"           # a missing row starts as this
//   optimizer = { kind = "adagrad" }   # optional override, as for tensors
//
//   [consistency]                  # optional; see ConsistencySpec
//   mode = "bsp"                   # async (default), bsp, or ssp:S
//   workers = 4                    # bsp, ssp: here or serve --workers
//   reduce = "mean"                # bsp: sum (default) or mean
//   wait_timeout = 20.0            # seconds a clock wait may last
//
//   [[tensor]]
//   name = "fc1.weight"
//   shape = [256, 784]             # 1..8 dims, each > 0
//   init = "normal:0.01"           # zeros, constant:x, uniform:a,b, normal:std
//   seed = 7                       # optional, default 0
//   optimizer = { kind = "sgd", lr = 0.1 }  # optional per-tensor override;
//                                  # keys not given come from [optimizer]
//
// Every problem is reported as kInvalidArgument with the key path, e.g.
// "tensor[1].shape: dimension 0 must be > 0". Unknown keys are errors too, so
// a typo never silently falls back to a default.
//
// Thread-safety: values; the functions below are pure.
#ifndef SHARDPS_MODEL_SPEC_H_
#define SHARDPS_MODEL_SPEC_H_

#include <cstdint>
#include <optional>
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

// An optimizer and its hyper-parameters. Each kind reads only the fields it
// uses; the rest are ignored.
struct OptimizerSpec {
  std::string kind = "sgd";          // one of OptimizerKinds()
  double lr = 0.01;                  // all kinds (ftrl: its alpha); > 0
  double momentum = 0.9;             // momentum, nesterov; in [0, 1)
  double beta1 = 0.9;                // adam, adamw; in [0, 1)
  double beta2 = 0.999;              // adam, adamw; in [0, 1)
  double eps = 1e-8;                 // adagrad, rmsprop, adam, adamw; > 0
  double rho = 0.9;                  // rmsprop's decay; in [0, 1)
  double initial_accumulator = 0.1;  // adagrad's starting sum; >= 0
  double weight_decay = 0;  // L2 added to the gradient (decoupled in adamw)
  double clip_value = 0;    // clip each gradient element to +-value; 0 = off
  // Scale each push's gradient down to this L2 norm (over the whole tensor,
  // all shards) when it is longer; 0 = off. Before clip_value.
  double clip_norm = 0;
  double l1 = 0;         // ftrl; >= 0
  double l2 = 0;         // ftrl; >= 0
  double ftrl_beta = 1;  // ftrl; >= 0
};

// How pushes from several workers combine (see docs/consistency.md).
struct ConsistencySpec {
  enum class Mode {
    kAsync,  // apply every push as it arrives; nothing waits
    kBsp,    // sum the workers' gradients for clock c, apply once at Clock
    kSsp,    // apply as pushes arrive; a worker runs <= staleness clocks
             // ahead of the slowest
  };
  Mode mode = Mode::kAsync;
  uint32_t staleness = 0;  // ssp's S
  uint32_t workers = 0;    // bsp, ssp: 1..kMaxConsistencyWorkers; async: 0
  bool mean = false;       // bsp: divide the summed gradient by `workers`
  // bsp, `apply = "block"`: a block's clock-c update is applied as soon as
  // every worker's gradient for that block at clock c is in, not when every
  // worker has called Clock(c), so host replicas receive it while the rest
  // of the model is still being pushed (docs/multihost.md). The contract:
  // each worker pushes each block at most once per clock; a second push of
  // a block in the same clock is refused. The result is the same model.
  bool apply_per_block = false;
  // How long a parked Pull/Push/Clock may wait for slower workers before it
  // fails with kTimeout naming them. Keep it below the clients'
  // request_timeout (30 s by default) so they see this explanation.
  double wait_timeout_s = 20;

  bool waits() const { return mode != Mode::kAsync; }
  // "async", "bsp" or "ssp:S".
  std::string ModeName() const;
  // Parses "async", "bsp" or "ssp:S" (S >= 0) into mode and staleness.
  static Status ParseMode(std::string_view text, ConsistencySpec* out);
};

inline constexpr uint32_t kMaxConsistencyWorkers = 64;

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> shape;
  InitSpec init;
  uint64_t seed = 0;
  // Per-tensor override of the model's [optimizer]; when parsed from TOML it
  // already holds the model's values for every key the override left out.
  std::optional<OptimizerSpec> optimizer;

  uint64_t num_floats() const;  // product of shape
};

// A sparse table: rows of `dim` floats keyed by any uint64 id, created on
// first touch with `init`. Row id lives on shard JumpHash(id, shards).
struct TableSpec {
  std::string name;
  uint64_t dim = 0;
  // Rows over all shards. Each shard reserves RowsPerShard(shards) rows,
  // a little more than its share, because ids do not spread exactly evenly;
  // a push or pull that needs a row on a full shard fails with
  // kResourceExhausted and changes nothing.
  uint64_t capacity = 0;
  InitSpec init;
  uint64_t seed = 0;
  std::optional<OptimizerSpec> optimizer;

  uint64_t RowsPerShard(uint32_t shards) const;
};

inline constexpr uint64_t kMaxTableDim = 65536;
inline constexpr uint64_t kMaxTableRowsPerShard = 1ull << 31;

// Jump consistent hash (Lamping and Veach, 2014): the shard of `key` among
// `shards` (>= 1). Moving from n to n+1 shards moves only 1/(n+1) of keys.
uint32_t JumpHash(uint64_t key, uint32_t shards);

// The optimizer kinds a spec may name, in documentation order.
const std::vector<std::string>& OptimizerKinds();

struct ModelSpec {
  std::string name;
  std::string storage = kDefaultStorage;
  uint64_t block_floats = kDefaultBlockFloats;
  OptimizerSpec optimizer;
  ConsistencySpec consistency;
  std::vector<TensorSpec> tensors;
  std::vector<TableSpec> tables;

  // Returns the tensor called `name`, or nullptr.
  const TensorSpec* FindTensor(std::string_view name) const;
  const TableSpec* FindTable(std::string_view name) const;
  // The optimizer that updates `tensor`: its override, else the model's.
  const OptimizerSpec& OptimizerFor(const TensorSpec& tensor) const {
    return tensor.optimizer ? *tensor.optimizer : optimizer;
  }
  const OptimizerSpec& OptimizerFor(const TableSpec& table) const {
    return table.optimizer ? *table.optimizer : optimizer;
  }
};

// Parses and validates a spec. Errors are kInvalidArgument with the key path;
// a missing or unreadable file is kNotFound / kIoError with the path.
Result<ModelSpec> ParseModelSpec(std::string_view toml_text);
Result<ModelSpec> LoadModelSpec(const std::string& path);

// Validates an already-built spec (the checks ParseModelSpec applies).
Status ValidateModelSpec(const ModelSpec& spec);

// Hash of everything that fixes the memory layout: model name, block size,
// the model's optimizer kind, tensor names, shapes and optimizer kinds (in
// order; a kind fixes how much optimizer state sits beside the weights), and
// whether the model is bsp (which keeps a gradient accumulator per block).
// Hyper-parameters, init and storage are deliberately excluded: a restarted
// server may change its learning rate and keep its weights and state.
uint64_t SpecHash(const ModelSpec& spec);

// Initial value of element `index` of `tensor`. A pure function of (init,
// seed, tensor name, index), so every shard can initialise its own blocks
// without the others and the model is the same whatever the shard count.
float InitialValue(const TensorSpec& tensor, uint64_t index);

// Fills out[0, count) with InitialValue(tensor, first + i).
void FillInitialValues(const TensorSpec& tensor, uint64_t first, float* out,
                       uint64_t count);

// The initial value of row `id` of `table` (dim floats into `out`): a pure
// function of (init, seed, table name, id), whatever the shard count.
void FillInitialRow(const TableSpec& table, uint64_t id, float* out);

}  // namespace shardps

#endif  // SHARDPS_MODEL_SPEC_H_
