#include "shardps/model_spec.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace shardps {
namespace {

using Catch::Matchers::Contains;

constexpr const char* kFullSpec = R"(
[model]
name = "demo"
storage = "/tmp/shardps-test"
block_floats = 2048

[optimizer]
kind = "sgd"
lr = 0.5

[[tensor]]
name = "fc1.weight"
shape = [256, 784]
init = "normal:0.01"
seed = 7

[[tensor]]
name = "fc1.bias"
shape = [256]
init = "uniform:-0.5,0.25"
)";

const std::string kModel = "[model]\nname = \"m\"\n";

std::string Tensor(const std::string& name, const std::string& shape,
                   const std::string& extra = "") {
  return "[[tensor]]\nname = \"" + name + "\"\nshape = " + shape +
         "\ninit = \"zeros\"\n" + extra;
}

const std::string kOneTensor = Tensor("t", "[4]");

// Parses `toml` and checks it is rejected as kInvalidArgument with a message
// containing `fragment` (usually "<key path>: <problem>").
void RequireInvalid(const std::string& toml, const std::string& fragment) {
  INFO("spec:\n" << toml);
  Result<ModelSpec> result = ParseModelSpec(toml);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kInvalidArgument);
  CHECK_THAT(result.status().message(), Contains(fragment));
}

ModelSpec ValidStruct() {
  ModelSpec spec;
  spec.name = "built";
  TensorSpec tensor;
  tensor.name = "w";
  tensor.shape = {3, 5};
  tensor.init = InitSpec{InitSpec::Kind::kNormal, 0.1, 0};
  spec.tensors.push_back(tensor);
  return spec;
}

void RequireStructInvalid(const ModelSpec& spec, const std::string& fragment) {
  Status status = ValidateModelSpec(spec);
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == Code::kInvalidArgument);
  CHECK_THAT(status.message(), Contains(fragment));
}

// A file in the temp directory that is removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& contents)
      : path_(
            (std::filesystem::temp_directory_path() /
             ("shardps_model_spec_test_" + std::to_string(getpid()) + ".toml"))
                .string()) {
    std::ofstream(path_) << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TensorSpec MakeTensor(const std::string& init, uint64_t seed = 0,
                      const std::string& name = "w") {
  TensorSpec tensor;
  tensor.name = name;
  tensor.shape = {100000};
  Result<InitSpec> parsed = InitSpec::Parse(init);
  REQUIRE(parsed.ok());
  tensor.init = *parsed;
  tensor.seed = seed;
  return tensor;
}

// ---- Parsing valid specs ----

TEST_CASE("model spec parser reads a full spec into the struct",
          "[model_spec]") {
  Result<ModelSpec> result = ParseModelSpec(kFullSpec);
  REQUIRE(result.ok());
  const ModelSpec& spec = *result;
  CHECK(spec.name == "demo");
  CHECK(spec.storage == "/tmp/shardps-test");
  CHECK(spec.block_floats == 2048);
  CHECK(spec.optimizer.kind == "sgd");
  CHECK(spec.optimizer.lr == 0.5);
  REQUIRE(spec.tensors.size() == 2);

  const TensorSpec& weight = spec.tensors[0];
  CHECK(weight.name == "fc1.weight");
  CHECK(weight.shape == std::vector<uint64_t>{256, 784});
  CHECK(weight.num_floats() == 256 * 784);
  CHECK(weight.init.kind == InitSpec::Kind::kNormal);
  CHECK(weight.init.a == 0.01);
  CHECK(weight.seed == 7);

  const TensorSpec& bias = spec.tensors[1];
  CHECK(bias.name == "fc1.bias");
  CHECK(bias.shape == std::vector<uint64_t>{256});
  CHECK(bias.init.kind == InitSpec::Kind::kUniform);
  CHECK(bias.init.a == -0.5);
  CHECK(bias.init.b == 0.25);
  CHECK(bias.seed == 0);
}

TEST_CASE("model spec parser applies defaults for optional keys",
          "[model_spec]") {
  Result<ModelSpec> result = ParseModelSpec(kModel + kOneTensor);
  REQUIRE(result.ok());
  CHECK(result->storage == kDefaultStorage);
  CHECK(result->block_floats == kDefaultBlockFloats);
  CHECK(result->optimizer.kind == "sgd");
  CHECK(result->optimizer.lr == OptimizerSpec().lr);
  CHECK(result->tensors[0].seed == 0);
}

TEST_CASE("model spec parser accepts an integer learning rate",
          "[model_spec]") {
  Result<ModelSpec> result =
      ParseModelSpec(kModel + "[optimizer]\nlr = 1\n" + kOneTensor);
  REQUIRE(result.ok());
  CHECK(result->optimizer.lr == 1.0);
}

TEST_CASE("model spec parser accepts the limits themselves", "[model_spec]") {
  const std::string name63(63, 'a');
  Result<ModelSpec> result = ParseModelSpec(
      "[model]\nname = \"" + name63 + "\"\nblock_floats = 268435456\n" +
      Tensor("big", "[1048576, 1048576]") +
      Tensor("deep", "[1, 1, 1, 1, 1, 1, 1, 2]"));
  REQUIRE(result.ok());
  CHECK(result->tensors[0].num_floats() == (uint64_t{1} << 40));
}

TEST_CASE("model spec FindTensor finds tensors by name", "[model_spec]") {
  Result<ModelSpec> result = ParseModelSpec(kFullSpec);
  REQUIRE(result.ok());
  REQUIRE(result->FindTensor("fc1.bias") != nullptr);
  CHECK(result->FindTensor("fc1.bias")->shape[0] == 256);
  CHECK(result->FindTensor("fc2.bias") == nullptr);
}

// ---- Errors in [model] ----

TEST_CASE("model spec parser reports a missing model section or name",
          "[model_spec]") {
  RequireInvalid(kOneTensor, "model: missing");
  RequireInvalid("[model]\n" + kOneTensor, "model.name: missing");
  RequireInvalid("model = 3\n" + kOneTensor, "model: expected a table");
}

TEST_CASE("model spec parser rejects bad model names", "[model_spec]") {
  RequireInvalid("[model]\nname = \"\"\n" + kOneTensor, "model.name: must be");
  RequireInvalid("[model]\nname = \"has space\"\n" + kOneTensor,
                 "model.name: must be 1 to 63 characters");
  RequireInvalid("[model]\nname = \"a/b\"\n" + kOneTensor, "model.name:");
  RequireInvalid(
      "[model]\nname = \"" + std::string(64, 'a') + "\"\n" + kOneTensor,
      "model.name:");
  RequireInvalid("[model]\nname = 5\n" + kOneTensor,
                 "model.name: expected a string");
}

TEST_CASE("model spec parser rejects bad block sizes", "[model_spec]") {
  auto with_block = [](const std::string& value) {
    return kModel + "block_floats = " + value + "\n" + kOneTensor;
  };
  RequireInvalid(with_block("0"), "model.block_floats: must be > 0");
  RequireInvalid(with_block("-1024"), "model.block_floats: must be > 0");
  RequireInvalid(with_block("1000"),
                 "model.block_floats: must be a multiple of 1024");
  RequireInvalid(with_block("268436480"), "model.block_floats: must be <=");
  RequireInvalid(with_block("2048.0"),
                 "model.block_floats: expected an integer");
  RequireInvalid(with_block("\"big\""),
                 "model.block_floats: expected an integer");
}

TEST_CASE("model spec parser rejects an empty or non-string storage",
          "[model_spec]") {
  RequireInvalid(kModel + "storage = \"\"\n" + kOneTensor,
                 "model.storage: must not be empty");
  RequireInvalid(kModel + "storage = 1\n" + kOneTensor,
                 "model.storage: expected a string");
}

// ---- Errors in [optimizer] ----

TEST_CASE("model spec parser rejects unknown optimizers", "[model_spec]") {
  RequireInvalid(kModel + "[optimizer]\nkind = \"lamb\"\n" + kOneTensor,
                 "optimizer.kind: unknown optimizer 'lamb' (supported: sgd, "
                 "momentum, nesterov, adagrad, rmsprop, adam, adamw, ftrl)");
  RequireInvalid(kModel + "[optimizer]\nkind = 1\n" + kOneTensor,
                 "optimizer.kind: expected a string");
}

TEST_CASE("model spec parser rejects bad learning rates", "[model_spec]") {
  for (const char* lr : {"0", "0.0", "-0.1", "nan", "inf", "-inf"}) {
    RequireInvalid(kModel + "[optimizer]\nlr = " + lr + "\n" + kOneTensor,
                   "optimizer.lr: must be finite and > 0");
  }
  RequireInvalid(kModel + "[optimizer]\nlr = \"fast\"\n" + kOneTensor,
                 "optimizer.lr: expected a number");
}

TEST_CASE("model spec parser reads every optimizer hyper-parameter",
          "[model_spec]") {
  Result<ModelSpec> spec = ParseModelSpec(
      kModel +
      "[optimizer]\nkind = \"adamw\"\nlr = 0.002\nmomentum = 0.5\n"
      "beta1 = 0.8\nbeta2 = 0.99\neps = 1e-6\nrho = 0.95\n"
      "initial_accumulator = 0.2\nweight_decay = 0.01\nclip_value = 5\n"
      "l1 = 0.1\nl2 = 0.2\nftrl_beta = 2\n" +
      kOneTensor);
  REQUIRE(spec.ok());
  const OptimizerSpec& o = spec->optimizer;
  CHECK(o.kind == "adamw");
  CHECK(o.lr == 0.002);
  CHECK(o.momentum == 0.5);
  CHECK(o.beta1 == 0.8);
  CHECK(o.beta2 == 0.99);
  CHECK(o.eps == 1e-6);
  CHECK(o.rho == 0.95);
  CHECK(o.initial_accumulator == 0.2);
  CHECK(o.weight_decay == 0.01);
  CHECK(o.clip_value == 5);
  CHECK(o.l1 == 0.1);
  CHECK(o.l2 == 0.2);
  CHECK(o.ftrl_beta == 2);
  CHECK_FALSE(spec->tensors[0].optimizer.has_value());
  CHECK(&spec->OptimizerFor(spec->tensors[0]) == &spec->optimizer);
}

TEST_CASE("model spec per-tensor optimizer overrides inherit the model's",
          "[model_spec]") {
  Result<ModelSpec> spec = ParseModelSpec(
      kModel + "[optimizer]\nkind = \"adam\"\nlr = 0.001\nbeta2 = 0.98\n" +
      Tensor("w", "[4]", "optimizer = { kind = \"sgd\", lr = 0.5 }\n") +
      Tensor("b", "[2]"));
  REQUIRE(spec.ok());
  const OptimizerSpec& w = spec->OptimizerFor(spec->tensors[0]);
  CHECK(w.kind == "sgd");
  CHECK(w.lr == 0.5);
  CHECK(w.beta2 == 0.98);  // inherited from [optimizer]
  CHECK(spec->OptimizerFor(spec->tensors[1]).kind == "adam");
}

TEST_CASE("model spec parser rejects bad optimizer hyper-parameters",
          "[model_spec]") {
  RequireInvalid(kModel + "[optimizer]\nbeta1 = 1.0\n" + kOneTensor,
                 "optimizer.beta1: must be in [0, 1)");
  RequireInvalid(kModel + "[optimizer]\nmomentum = -0.1\n" + kOneTensor,
                 "optimizer.momentum: must be in [0, 1)");
  RequireInvalid(kModel + "[optimizer]\neps = 0\n" + kOneTensor,
                 "optimizer.eps: must be finite and > 0");
  RequireInvalid(kModel + "[optimizer]\nweight_decay = -1\n" + kOneTensor,
                 "optimizer.weight_decay: must be finite and >= 0");
  RequireInvalid(kModel + "[optimizer]\nbeta = 0.9\n" + kOneTensor,
                 "optimizer.beta: unknown key");
  RequireInvalid(
      kModel + Tensor("t", "[4]", "optimizer = { kind = \"sgdd\" }\n"),
      "tensor[0].optimizer.kind: unknown optimizer 'sgdd'");
  RequireInvalid(kModel + Tensor("t", "[4]", "optimizer = { lr = -1 }\n"),
                 "tensor[0].optimizer.lr: must be finite and > 0");
  RequireInvalid(kModel + Tensor("t", "[4]", "optimizer = \"adam\"\n"),
                 "tensor[0].optimizer: expected a table");
}

TEST_CASE("spec hash follows each tensor's optimizer kind, not its settings",
          "[model_spec]") {
  const std::string base = kModel + "[optimizer]\nkind = \"adam\"\n";
  auto hash = [&](const std::string& extra) {
    Result<ModelSpec> spec = ParseModelSpec(base + Tensor("t", "[4]", extra));
    REQUIRE(spec.ok());
    return SpecHash(*spec);
  };
  const uint64_t plain = hash("");
  CHECK(hash("optimizer = { lr = 0.5, beta1 = 0.5 }\n") == plain);
  CHECK(hash("optimizer = { kind = \"adam\" }\n") == plain);
  CHECK(hash("optimizer = { kind = \"momentum\" }\n") != plain);
}

// ---- Errors in [[tensor]] ----

TEST_CASE("model spec parser reports the key when a shape is negative",
          "[model_spec]") {
  RequireInvalid(kModel + kOneTensor + Tensor("u", "[-3, 4]"),
                 "tensor[1].shape: dimension 0 must be > 0");
}

TEST_CASE("model spec parser reports the key when a dimension is zero",
          "[model_spec]") {
  RequireInvalid(kModel + Tensor("u", "[3, 0]"),
                 "tensor[0].shape: dimension 1 must be > 0");
}

TEST_CASE("model spec parser rejects shapes of rank 0 or above 8",
          "[model_spec]") {
  RequireInvalid(kModel + Tensor("u", "[]"),
                 "tensor[0].shape: must have 1 to 8 dimensions, got 0");
  RequireInvalid(kModel + Tensor("u", "[1, 1, 1, 1, 1, 1, 1, 1, 1]"),
                 "tensor[0].shape: must have 1 to 8 dimensions, got 9");
}

TEST_CASE("model spec parser rejects shapes of the wrong type",
          "[model_spec]") {
  RequireInvalid(kModel + Tensor("u", "4"),
                 "tensor[0].shape: expected an array of integers");
  RequireInvalid(kModel + Tensor("u", "[4, \"x\"]"),
                 "tensor[0].shape: expected an array of integers");
  RequireInvalid(kModel + Tensor("u", "[4, 2.0]"),
                 "tensor[0].shape: expected an array of integers");
}

TEST_CASE("model spec parser rejects tensors above 2^40 floats",
          "[model_spec]") {
  RequireInvalid(kModel + Tensor("u", "[1048576, 1048577]"),
                 "tensor[0].shape: more than 1099511627776");
  // The product overflows 64 bits; it must not wrap into something small.
  RequireInvalid(kModel + Tensor("u", "[4611686018427387904, 8]"),
                 "tensor[0].shape: more than");
}

TEST_CASE("model spec parser reports missing tensor keys", "[model_spec]") {
  RequireInvalid(kModel + "[[tensor]]\nshape = [1]\ninit = \"zeros\"\n",
                 "tensor[0].name: missing");
  RequireInvalid(kModel + "[[tensor]]\nname = \"a\"\ninit = \"zeros\"\n",
                 "tensor[0].shape: missing");
  RequireInvalid(kModel + "[[tensor]]\nname = \"a\"\nshape = [1]\n",
                 "tensor[0].init: missing");
}

TEST_CASE("model spec parser rejects bad tensor names", "[model_spec]") {
  RequireInvalid(kModel + kOneTensor + Tensor("fc 1", "[2]"),
                 "tensor[1].name: must be 1 to 63 characters");
}

TEST_CASE("model spec parser rejects duplicate tensor names", "[model_spec]") {
  RequireInvalid(kModel + Tensor("x", "[1]") + Tensor("y", "[1]") +
                     Tensor("z", "[1]") + Tensor("x", "[2]"),
                 "tensor[3].name: duplicate tensor 'x' (also tensor[0])");
}

TEST_CASE("model spec parser requires at least one tensor", "[model_spec]") {
  RequireInvalid(kModel, "tensor: at least one");
  RequireInvalid(kModel + "[tensor]\nname = \"a\"\n",
                 "tensor: expected an array of tables");
  RequireInvalid("tensor = [1]\n" + kModel, "tensor[0]: expected a table");
}

TEST_CASE("model spec parser rejects negative or non-integer seeds",
          "[model_spec]") {
  RequireInvalid(kModel + Tensor("a", "[1]", "seed = -1\n"),
                 "tensor[0].seed: must be >= 0");
  RequireInvalid(kModel + Tensor("a", "[1]", "seed = 1.5\n"),
                 "tensor[0].seed: expected an integer");
}

TEST_CASE("model spec parser reports bad init strings with the key",
          "[model_spec]") {
  auto with_init = [](const std::string& init) {
    return kModel + "[[tensor]]\nname = \"a\"\nshape = [1]\ninit = \"" + init +
           "\"\n";
  };
  RequireInvalid(
      with_init("uniform:3,1"),
      "tensor[0].init: expected 'uniform:a,b' with a < b, got 'uniform:3,1'");
  RequireInvalid(with_init("normal:-1"), "tensor[0].init: expected 'normal:");
  RequireInvalid(with_init("xavier"), "tensor[0].init: expected zeros");
  RequireInvalid(kModel + "[[tensor]]\nname = \"a\"\nshape = [1]\ninit = 0\n",
                 "tensor[0].init: expected a string");
}

// ---- Unknown keys and syntax ----

TEST_CASE("model spec parser rejects unknown keys everywhere", "[model_spec]") {
  RequireInvalid("foo = 1\n" + kModel + kOneTensor, "foo: unknown key");
  RequireInvalid(kModel + kOneTensor + "[training]\nsteps = 1\n",
                 "training: unknown key");
  RequireInvalid(kModel + "blockfloats = 1024\n" + kOneTensor,
                 "model.blockfloats: unknown key");
  RequireInvalid(kModel + "[optimizer]\nmomentun = 0.9\n" + kOneTensor,
                 "optimizer.momentun: unknown key");
  RequireInvalid(kModel + Tensor("a", "[1]") + Tensor("b", "[1]") +
                     "[[tensor]]\nname = \"c\"\nshpe = [1]\ninit = \"zeros\"\n",
                 "tensor[2].shpe: unknown key");
}

TEST_CASE("model spec parser reports TOML syntax errors with a line",
          "[model_spec]") {
  RequireInvalid("[model]\nname = \"m\"\nblock_floats = = 3\n", "line 3");
  RequireInvalid("[model]\nname = \"unterminated\n", "line 2");
  // A duplicate key is a TOML error, not a silent override.
  RequireInvalid("[model]\nname = \"a\"\nname = \"b\"\n", "line 3");
}

// ---- Files ----

TEST_CASE("model spec loader reads a file", "[model_spec]") {
  TempFile file(kFullSpec);
  Result<ModelSpec> result = LoadModelSpec(file.path());
  REQUIRE(result.ok());
  CHECK(result->name == "demo");
  CHECK(result->tensors.size() == 2);
}

TEST_CASE("model spec loader reports a missing file as not found",
          "[model_spec]") {
  const std::string path = "/nonexistent/shardps/spec.toml";
  Result<ModelSpec> result = LoadModelSpec(path);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kNotFound);
  CHECK_THAT(result.status().message(), Contains(path + ": no such file"));
}

TEST_CASE("model spec loader reports an unreadable path as an i/o error",
          "[model_spec]") {
  const std::string dir = std::filesystem::temp_directory_path().string();
  Result<ModelSpec> result = LoadModelSpec(dir);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kIoError);
  CHECK_THAT(result.status().message(), Contains(dir));
}

TEST_CASE("model spec loader prefixes parse errors with the path",
          "[model_spec]") {
  TempFile file(kModel + kOneTensor + Tensor("u", "[-3]"));
  Result<ModelSpec> result = LoadModelSpec(file.path());
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kInvalidArgument);
  CHECK_THAT(result.status().message(),
             Contains(file.path() + ": tensor[1].shape: dimension 0"));
}

// ---- ValidateModelSpec on structs built in code ----

TEST_CASE("model spec validation accepts a valid struct", "[model_spec]") {
  CHECK(ValidateModelSpec(ValidStruct()).ok());
}

TEST_CASE("model spec validation rejects bad structs with key paths",
          "[model_spec]") {
  ModelSpec spec = ValidStruct();
  spec.name = "no spaces";
  RequireStructInvalid(spec, "model.name: must be");

  spec = ValidStruct();
  spec.storage.clear();
  RequireStructInvalid(spec, "model.storage: must not be empty");

  spec = ValidStruct();
  spec.block_floats = 1536;
  RequireStructInvalid(spec, "model.block_floats: must be a multiple of 1024");

  spec = ValidStruct();
  spec.optimizer.lr = std::numeric_limits<double>::quiet_NaN();
  RequireStructInvalid(spec, "optimizer.lr: must be finite and > 0");

  spec = ValidStruct();
  spec.optimizer.kind = "adagrad2";
  RequireStructInvalid(spec, "optimizer.kind: unknown optimizer 'adagrad2'");

  spec = ValidStruct();
  spec.tensors.clear();
  RequireStructInvalid(spec, "tensor: at least one");

  spec = ValidStruct();
  spec.tensors[0].shape = {2, 0};
  RequireStructInvalid(spec, "tensor[0].shape: dimension 1 must be > 0");

  spec = ValidStruct();
  spec.tensors[0].shape.assign(9, 1);
  RequireStructInvalid(spec, "tensor[0].shape: must have 1 to 8 dimensions");

  spec = ValidStruct();
  spec.tensors[0].init = InitSpec{InitSpec::Kind::kUniform, 3, 1};
  RequireStructInvalid(
      spec,
      "tensor[0].init: expected 'uniform:a,b' with a < b, got 'uniform:3,1'");

  spec = ValidStruct();
  spec.tensors.push_back(spec.tensors[0]);
  RequireStructInvalid(spec,
                       "tensor[1].name: duplicate tensor 'w' (also tensor[0])");
}

// ---- SpecHash ----

TEST_CASE("spec hash ignores lr, init, seed and storage", "[model_spec]") {
  ModelSpec a = ValidStruct();
  ModelSpec b = a;
  b.optimizer.lr = 0.5;
  b.storage = "/somewhere/else";
  b.tensors[0].init = InitSpec{InitSpec::Kind::kConstant, 1, 0};
  b.tensors[0].seed = 99;
  CHECK(SpecHash(a) == SpecHash(b));
}

TEST_CASE("spec hash changes with anything that fixes the layout",
          "[model_spec]") {
  ModelSpec base = ValidStruct();
  TensorSpec second = base.tensors[0];
  second.name = "v";
  base.tensors.push_back(second);
  const uint64_t hash = SpecHash(base);

  ModelSpec changed = base;
  changed.tensors[0].shape = {5, 3};
  CHECK(SpecHash(changed) != hash);

  changed = base;
  changed.tensors[0].shape = {15};
  CHECK(SpecHash(changed) != hash);

  changed = base;
  changed.tensors[1].name = "v2";
  CHECK(SpecHash(changed) != hash);

  changed = base;
  std::swap(changed.tensors[0], changed.tensors[1]);
  CHECK(SpecHash(changed) != hash);

  changed = base;
  changed.block_floats *= 2;
  CHECK(SpecHash(changed) != hash);

  changed = base;
  changed.name = "other";
  CHECK(SpecHash(changed) != hash);

  changed = base;
  changed.optimizer.kind = "momentum";
  CHECK(SpecHash(changed) != hash);
}

// Pinned: segments on disk carry this hash, so the encoding must never drift.
// Format 2 appends each tensor's optimizer kind to the documented encoding
// (length-prefixed strings, 8-byte little-endian integers, FNV-1a 64);
// format 3 adds a bsp flag after the model's optimizer kind. The value was
// computed independently (a few lines of Python over that encoding).
TEST_CASE("spec hash of a known spec is stable", "[model_spec]") {
  Result<ModelSpec> result = ParseModelSpec(kFullSpec);
  REQUIRE(result.ok());
  CHECK(SpecHash(*result) == 0xe44a2f7eb17f938aULL);
}

TEST_CASE("spec hash separates bsp models, whose segments hold accumulators",
          "[model_spec]") {
  ModelSpec spec = ValidStruct();
  const uint64_t async_hash = SpecHash(spec);
  spec.consistency.workers = 2;
  spec.consistency.mode = ConsistencySpec::Mode::kSsp;
  spec.consistency.staleness = 3;
  CHECK(SpecHash(spec) == async_hash);  // same memory layout
  spec.consistency.mode = ConsistencySpec::Mode::kBsp;
  CHECK(SpecHash(spec) != async_hash);
}

TEST_CASE("consistency section parses modes, workers and reduce",
          "[model_spec]") {
  auto bsp = ParseModelSpec(kModel +
                            "[consistency]\nmode = \"bsp\"\nworkers = 3\n"
                            "reduce = \"mean\"\nwait_timeout = 2.5\n" +
                            kOneTensor);
  REQUIRE(bsp.ok());
  CHECK(bsp->consistency.mode == ConsistencySpec::Mode::kBsp);
  CHECK(bsp->consistency.workers == 3);
  CHECK(bsp->consistency.mean);
  CHECK(bsp->consistency.wait_timeout_s == 2.5);
  CHECK(bsp->consistency.ModeName() == "bsp");

  auto ssp = ParseModelSpec(
      kModel + "[consistency]\nmode = \"ssp:12\"\nworkers = 2\n" + kOneTensor);
  REQUIRE(ssp.ok());
  CHECK(ssp->consistency.mode == ConsistencySpec::Mode::kSsp);
  CHECK(ssp->consistency.staleness == 12);
  CHECK(ssp->consistency.ModeName() == "ssp:12");

  auto async = ParseModelSpec(kModel + kOneTensor);
  REQUIRE(async.ok());
  CHECK(async->consistency.mode == ConsistencySpec::Mode::kAsync);
  CHECK(async->consistency.workers == 0);
}

TEST_CASE("consistency section rejects bad values with the key path",
          "[model_spec]") {
  const std::pair<std::string, std::string> cases[] = {
      {"mode = \"ssp\"\nworkers = 2\n", "consistency.mode"},
      {"mode = \"ssp:x\"\nworkers = 2\n", "consistency.mode"},
      {"mode = \"ssp:-1\"\nworkers = 2\n", "consistency.mode"},
      {"mode = \"sync\"\nworkers = 2\n", "consistency.mode"},
      {"mode = \"bsp\"\nworkers = 0\n", "consistency.workers"},
      {"mode = \"bsp\"\nworkers = 65\n", "consistency.workers"},
      {"mode = \"bsp\"\nworkers = 2\nreduce = \"max\"\n", "consistency.reduce"},
      {"mode = \"bsp\"\nworkers = 2\nwait_timeout = 0\n",
       "consistency.wait_timeout"},
      {"mode = \"bsp\"\nworkers = 2\nstaleness = 1\n",
       "consistency.staleness: unknown key"},
  };
  for (const auto& [body, expected] : cases) {
    auto spec = ParseModelSpec(kModel + "[consistency]\n" + body + kOneTensor);
    INFO(body);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.status().code() == Code::kInvalidArgument);
    CHECK_THAT(std::string(spec.status().message()),
               Catch::Matchers::Contains(expected));
  }
}

TEST_CASE("spec hash does not confuse where name boundaries fall",
          "[model_spec]") {
  ModelSpec a = ValidStruct();
  a.name = "ab";
  a.tensors[0].name = "c";
  ModelSpec b = a;
  b.name = "a";
  b.tensors[0].name = "bc";
  CHECK(SpecHash(a) != SpecHash(b));
}

// ---- InitSpec ----

TEST_CASE("init spec parses every kind", "[model_spec]") {
  Result<InitSpec> zeros = InitSpec::Parse("zeros");
  REQUIRE(zeros.ok());
  CHECK(zeros->kind == InitSpec::Kind::kZeros);

  Result<InitSpec> constant = InitSpec::Parse("constant:-2.5");
  REQUIRE(constant.ok());
  CHECK(constant->kind == InitSpec::Kind::kConstant);
  CHECK(constant->a == -2.5);

  Result<InitSpec> uniform = InitSpec::Parse("uniform:-1,1e-3");
  REQUIRE(uniform.ok());
  CHECK(uniform->kind == InitSpec::Kind::kUniform);
  CHECK(uniform->a == -1);
  CHECK(uniform->b == 1e-3);

  Result<InitSpec> normal = InitSpec::Parse("normal:0");
  REQUIRE(normal.ok());
  CHECK(normal->kind == InitSpec::Kind::kNormal);
  CHECK(normal->a == 0);
}

TEST_CASE("init spec rejects malformed strings", "[model_spec]") {
  for (const char* bad : {"",
                          "zero",
                          "zeros:1",
                          "constant",
                          "constant:",
                          "constant:1x",
                          "constant: 1",
                          "constant:nan",
                          "constant:inf",
                          "constant:1e39",
                          "uniform:1",
                          "uniform:1,",
                          "uniform:,1",
                          "uniform:1,1",
                          "uniform:3,1",
                          "uniform:0,1,2",
                          "uniform:0,inf",
                          "normal:-0.1",
                          "normal:abc",
                          "normal:",
                          "Normal:1"}) {
    INFO("init: '" << bad << "'");
    Result<InitSpec> result = InitSpec::Parse(bad);
    REQUIRE_FALSE(result.ok());
    CHECK(result.status().code() == Code::kInvalidArgument);
    CHECK_THAT(result.status().message(),
               Contains("got '" + std::string(bad) + "'"));
  }
}

TEST_CASE("init spec ToString round-trips", "[model_spec]") {
  const std::vector<InitSpec> specs = {
      {InitSpec::Kind::kZeros, 0, 0},
      {InitSpec::Kind::kConstant, 0.1, 0},
      {InitSpec::Kind::kConstant, -1.0 / 3.0, 0},
      {InitSpec::Kind::kUniform, -0.05, 1e-7},
      {InitSpec::Kind::kUniform, 1.0 / 7.0, 2.0 / 7.0},
      {InitSpec::Kind::kNormal, 0.01, 0},
  };
  for (const InitSpec& spec : specs) {
    const std::string text = spec.ToString();
    INFO(text);
    Result<InitSpec> parsed = InitSpec::Parse(text);
    REQUIRE(parsed.ok());
    CHECK(parsed->kind == spec.kind);
    CHECK(parsed->a == spec.a);
    CHECK(parsed->b == spec.b);
  }
  CHECK(InitSpec{InitSpec::Kind::kNormal, 0.01, 0}.ToString() == "normal:0.01");
  CHECK(InitSpec{InitSpec::Kind::kUniform, -1, 2}.ToString() == "uniform:-1,2");
}

// ---- Initial values ----

TEST_CASE("initial values are deterministic", "[model_spec]") {
  for (const char* init : {"uniform:-1,1", "normal:0.5"}) {
    const TensorSpec tensor = MakeTensor(init, 3);
    for (uint64_t i :
         {uint64_t{0}, uint64_t{1}, uint64_t{12345}, uint64_t{1} << 39}) {
      CHECK(InitialValue(tensor, i) == InitialValue(tensor, i));
      CHECK(InitialValue(tensor, i) == InitialValue(MakeTensor(init, 3), i));
    }
  }
}

TEST_CASE("FillInitialValues matches InitialValue element by element",
          "[model_spec]") {
  for (const char* init :
       {"zeros", "constant:0.3", "uniform:-2,3", "normal:1"}) {
    INFO(init);
    const TensorSpec tensor = MakeTensor(init, 11);
    const uint64_t first = 1000;
    std::vector<float> values(4096);
    FillInitialValues(tensor, first, values.data(), values.size());
    for (uint64_t i = 0; i < values.size(); ++i) {
      REQUIRE(values[i] == InitialValue(tensor, first + i));
    }
  }
}

TEST_CASE("constant and zeros initial values are exact", "[model_spec]") {
  const TensorSpec constant = MakeTensor("constant:0.125");
  const TensorSpec zeros = MakeTensor("zeros");
  for (uint64_t i = 0; i < 1000; ++i) {
    REQUIRE(InitialValue(constant, i) == 0.125f);
    REQUIRE(InitialValue(zeros, i) == 0.0f);
  }
}

TEST_CASE(
    "uniform initial values stay in the half-open range a..b with the right "
    "mean",
    "[model_spec]") {
  const double a = -0.5;
  const double b = 1.5;
  const TensorSpec tensor = MakeTensor("uniform:-0.5,1.5", 5);
  const uint64_t n = 100000;
  std::vector<float> values(n);
  FillInitialValues(tensor, 0, values.data(), n);
  double sum = 0;
  for (float v : values) {
    REQUIRE(v >= a);
    REQUIRE(v < b);
    sum += v;
  }
  // The standard error of the mean is (b - a) / sqrt(12 n) ~ 0.0018.
  CHECK(sum / n == Approx((a + b) / 2).margin(0.01));
}

TEST_CASE("uniform initial values stay below a b that is not a float",
          "[model_spec]") {
  // 0.1 rounds up as a float, so an unclamped value could reach it.
  const TensorSpec tensor = MakeTensor("uniform:0.09999999,0.1", 2);
  std::vector<float> values(100000);
  FillInitialValues(tensor, 0, values.data(), values.size());
  for (float v : values) {
    REQUIRE(static_cast<double>(v) >= 0.09999999);
    REQUIRE(static_cast<double>(v) < 0.1);
  }
}

TEST_CASE("normal initial values have mean 0 and the requested std",
          "[model_spec]") {
  const double stddev = 0.02;
  const TensorSpec tensor = MakeTensor("normal:0.02", 9);
  const uint64_t n = 100000;
  std::vector<float> values(n);
  FillInitialValues(tensor, 0, values.data(), n);
  double sum = 0;
  double sum_sq = 0;
  for (float v : values) {
    REQUIRE(std::isfinite(v));
    sum += v;
    sum_sq += static_cast<double>(v) * v;
  }
  const double mean = sum / n;
  const double sd = std::sqrt(sum_sq / n - mean * mean);
  // Standard errors: mean ~0.003 std, std ~0.2%.
  CHECK(std::fabs(mean) < 0.02 * stddev);
  CHECK(sd == Approx(stddev).epsilon(0.02));
}

TEST_CASE("initial values differ across seeds and tensor names",
          "[model_spec]") {
  for (const char* init : {"uniform:0,1", "normal:1"}) {
    INFO(init);
    const TensorSpec base = MakeTensor(init, 1, "w");
    const TensorSpec other_seed = MakeTensor(init, 2, "w");
    const TensorSpec other_name = MakeTensor(init, 1, "v");
    int equal_across_seeds = 0;
    int equal_across_names = 0;
    int equal_neighbours = 0;
    for (uint64_t i = 0; i < 1000; ++i) {
      equal_across_seeds +=
          InitialValue(base, i) == InitialValue(other_seed, i);
      equal_across_names +=
          InitialValue(base, i) == InitialValue(other_name, i);
      equal_neighbours += InitialValue(base, i) == InitialValue(base, i + 1);
    }
    CHECK(equal_across_seeds < 5);
    CHECK(equal_across_names < 5);
    CHECK(equal_neighbours < 5);
  }
}

}  // namespace
}  // namespace shardps

namespace shardps {
namespace {

TEST_CASE("table section parses with per-table optimizer overrides",
          "[model_spec]") {
  auto spec = ParseModelSpec(
      "[model]\nname = \"m\"\n[optimizer]\nkind = \"sgd\"\nlr = 0.5\n"
      "[[table]]\nname = \"user\"\ndim = 16\ncapacity = 1000\n"
      "init = \"normal:0.01\"\nseed = 3\n"
      "optimizer = { kind = \"adagrad\" }\n");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  REQUIRE(spec->tables.size() == 1);
  const TableSpec& t = spec->tables[0];
  CHECK(t.name == "user");
  CHECK(t.dim == 16);
  CHECK(t.capacity == 1000);
  CHECK(t.seed == 3);
  CHECK(spec->OptimizerFor(t).kind == "adagrad");
  CHECK(spec->OptimizerFor(t).lr == 0.5);  // inherited from [optimizer]
  CHECK(spec->FindTable("user") == &t);
  CHECK(spec->FindTable("nope") == nullptr);
}

TEST_CASE("table section rejects bad values with the key path",
          "[model_spec]") {
  const std::string model = "[model]\nname = \"m\"\n";
  const std::string ok_tensor =
      "[[tensor]]\nname = \"t\"\nshape = [4]\ninit = \"zeros\"\n";
  const std::pair<std::string, std::string> cases[] = {
      {"name = \"e\"\ncapacity = 10\ninit = \"zeros\"\n",
       "table[0].dim: missing"},
      {"name = \"e\"\ndim = 4\ninit = \"zeros\"\n",
       "table[0].capacity: missing"},
      {"name = \"e\"\ndim = 0\ncapacity = 10\ninit = \"zeros\"\n",
       "table[0].dim"},
      {"name = \"e\"\ndim = 70000\ncapacity = 10\ninit = \"zeros\"\n",
       "table[0].dim"},
      {"name = \"e\"\ndim = 4\ncapacity = 10\n", "table[0].init: missing"},
      {"name = \"t\"\ndim = 4\ncapacity = 10\ninit = \"zeros\"\n",
       "duplicate name 't' (also tensor[0])"},
      {"name = \"e\"\ndim = 4\ncapacity = 10\ninit = \"zeros\"\nrows = 3\n",
       "table[0].rows: unknown key"},
  };
  for (const auto& [body, expected] : cases) {
    auto spec = ParseModelSpec(model + ok_tensor + "[[table]]\n" + body);
    INFO(body);
    REQUIRE_FALSE(spec.ok());
    CHECK_THAT(std::string(spec.status().message()), Contains(expected));
  }
  // A model of tables alone is fine.
  CHECK(ParseModelSpec(model +
                       "[[table]]\nname = \"e\"\ndim = 4\ncapacity = 10\n"
                       "init = \"zeros\"\n")
            .ok());
}

TEST_CASE("tables change the spec hash; specs without tables keep theirs",
          "[model_spec]") {
  ModelSpec spec = ValidStruct();
  const uint64_t before = SpecHash(spec);
  TableSpec t;
  t.name = "e";
  t.dim = 8;
  t.capacity = 100;
  spec.tables.push_back(t);
  const uint64_t with_table = SpecHash(spec);
  CHECK(with_table != before);
  spec.tables[0].capacity = 200;  // capacity sizes the segment
  CHECK(SpecHash(spec) != with_table);
}

TEST_CASE("jump hash is balanced and moves few keys when a shard is added",
          "[model_spec]") {
  constexpr uint32_t kShards = 7;
  std::vector<int> counts(kShards, 0);
  int moved = 0;
  for (uint64_t id = 0; id < 70000; ++id) {
    const uint32_t s = JumpHash(id, kShards);
    REQUIRE(s < kShards);
    ++counts[s];
    const uint32_t grown = JumpHash(id, kShards + 1);
    if (grown != s) {
      ++moved;
      CHECK(grown == kShards);  // keys only ever move to the new shard
    }
  }
  for (int c : counts) CHECK(std::abs(c - 10000) < 600);
  CHECK(std::abs(moved - 70000 / 8) < 600);
  CHECK(JumpHash(12345, 1) == 0);
}

TEST_CASE("rows per shard leave room for an uneven spread", "[model_spec]") {
  TableSpec t;
  t.capacity = 1000000;
  CHECK(t.RowsPerShard(1) == 1000000);
  const uint64_t per = t.RowsPerShard(4);
  CHECK(per > 250000);
  CHECK(per < 255000);
}

}  // namespace
}  // namespace shardps
