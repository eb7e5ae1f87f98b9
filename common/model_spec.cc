#include "shardps/model_spec.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <unordered_map>

#include "common/posix_file.h"

namespace shardps {
namespace {

constexpr uint64_t kMaxTensorFloats = uint64_t{1} << 40;
constexpr uint64_t kMaxBlockFloats = uint64_t{1} << 28;

Status Invalid(const std::string& path, const std::string& what) {
  return Status(Code::kInvalidArgument, path + ": " + what);
}

std::string TensorPath(size_t index) {
  return "tensor[" + std::to_string(index) + "]";
}

// Shortest "%g" form that reads back as the same double, so specs printed
// from a struct look like the ones people write ("0.01", not "0.0100...02").
std::string FormatDouble(double x) {
  char buf[40];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

// Strict: the whole token must be a number. strtod alone would accept
// leading blanks and trailing junk ("1x").
bool ParseDouble(std::string_view text, double* out) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) {
    return false;
  }
  const std::string token(text);
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(token.c_str(), &end);
  if (end != token.c_str() + token.size() || errno == ERANGE) return false;
  *out = value;
  return true;
}

// Values end up as floats, so "finite" means finite after the conversion.
bool IsFiniteFloat(double x) {
  return std::isfinite(x) && std::fabs(x) <= FLT_MAX;
}

// Usage string per kind, used in every init error so the message shows the
// expected form next to what was given.
const char* InitUsage(InitSpec::Kind kind) {
  switch (kind) {
    case InitSpec::Kind::kZeros:
      return "'zeros'";
    case InitSpec::Kind::kConstant:
      return "'constant:x' with x finite";
    case InitSpec::Kind::kUniform:
      return "'uniform:a,b' with a < b";
    case InitSpec::Kind::kNormal:
      return "'normal:std' with std >= 0";
  }
  return "?";
}

bool InitIsValid(const InitSpec& init) {
  switch (init.kind) {
    case InitSpec::Kind::kZeros:
      return true;
    case InitSpec::Kind::kConstant:
      return IsFiniteFloat(init.a);
    case InitSpec::Kind::kUniform:
      return IsFiniteFloat(init.a) && IsFiniteFloat(init.b) && init.a < init.b;
    case InitSpec::Kind::kNormal:
      return IsFiniteFloat(init.a) && init.a >= 0;
  }
  return false;
}

std::string InitError(InitSpec::Kind kind, std::string_view text) {
  return std::string("expected ") + InitUsage(kind) + ", got '" +
         std::string(text) + "'";
}

bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

Status CheckName(const std::string& path, const std::string& name) {
  if (IsValidName(name)) return Status::Ok();
  const std::string got = name.size() <= 2 * kMaxNameLength
                              ? "'" + name + "'"
                              : std::to_string(name.size()) + " characters";
  return Invalid(path, "must be 1 to " + std::to_string(kMaxNameLength) +
                           " characters from [A-Za-z0-9_.-], got " + got);
}

// ---- TOML reading ----

const char* TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

Status WrongType(const std::string& path, const char* expected,
                 const toml::node& node) {
  return Invalid(path, std::string("expected ") + expected + ", got " +
                           TypeName(node.type()));
}

std::string KeyPath(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

// Rejects keys outside `allowed`, so a typo is an error instead of a
// silently ignored setting.
Status CheckKeys(const toml::table& table, const std::string& path,
                 std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, node] : table) {
    if (std::find(allowed.begin(), allowed.end(), key.str()) == allowed.end()) {
      return Invalid(KeyPath(path, key.str()), "unknown key");
    }
  }
  return Status::Ok();
}

enum class Presence { kOptional, kRequired };

// Each reader leaves *out untouched when an optional key is absent, so the
// struct's defaults apply.
Status ReadString(const toml::table& table, std::string_view key,
                  const std::string& path, Presence presence,
                  std::string* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) {
    return presence == Presence::kRequired ? Invalid(path, "missing")
                                           : Status::Ok();
  }
  const auto* value = node->as_string();
  if (value == nullptr) return WrongType(path, "a string", *node);
  *out = value->get();
  return Status::Ok();
}

// Integers that must not be negative; `minimum` is 0 or 1.
Status ReadCount(const toml::table& table, std::string_view key,
                 const std::string& path, int64_t minimum, uint64_t* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  const auto* value = node->as_integer();
  if (value == nullptr) return WrongType(path, "an integer", *node);
  if (value->get() < minimum) {
    return Invalid(path, "must be " +
                             std::string(minimum > 0 ? "> 0" : ">= 0") +
                             ", got " + std::to_string(value->get()));
  }
  *out = static_cast<uint64_t>(value->get());
  return Status::Ok();
}

// TOML distinguishes 1 from 1.0; people do not, so both are accepted.
Status ReadNumber(const toml::table& table, std::string_view key,
                  const std::string& path, double* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  if (const auto* f = node->as_floating_point()) {
    *out = f->get();
  } else if (const auto* i = node->as_integer()) {
    *out = static_cast<double>(i->get());
  } else {
    return WrongType(path, "a number", *node);
  }
  return Status::Ok();
}

// Returns the sub-table `key`, nullptr if absent, or an error if it is not a
// table.
Status GetTable(const toml::table& root, std::string_view key,
                const toml::table** out) {
  *out = nullptr;
  const toml::node* node = root.get(key);
  if (node == nullptr) return Status::Ok();
  *out = node->as_table();
  if (*out == nullptr) return WrongType(std::string(key), "a table", *node);
  return Status::Ok();
}

Status ReadModel(const toml::table& root, ModelSpec* spec) {
  const toml::table* model = nullptr;
  SHARDPS_RETURN_IF_ERROR(GetTable(root, "model", &model));
  if (model == nullptr) return Invalid("model", "missing");
  SHARDPS_RETURN_IF_ERROR(
      CheckKeys(*model, "model", {"name", "storage", "block_floats"}));
  SHARDPS_RETURN_IF_ERROR(ReadString(*model, "name", "model.name",
                                     Presence::kRequired, &spec->name));
  SHARDPS_RETURN_IF_ERROR(ReadString(*model, "storage", "model.storage",
                                     Presence::kOptional, &spec->storage));
  return ReadCount(*model, "block_floats", "model.block_floats", 1,
                   &spec->block_floats);
}

// Reads the keys present in an optimizer table over `optimizer`, so absent
// keys keep what it held (the defaults, or the model's values for a
// per-tensor override).
Status ReadOptimizerTable(const toml::table& table, const std::string& path,
                          OptimizerSpec* optimizer) {
  SHARDPS_RETURN_IF_ERROR(
      CheckKeys(table, path,
                {"kind", "lr", "momentum", "beta1", "beta2", "eps", "rho",
                 "initial_accumulator", "weight_decay", "clip_value",
                 "clip_norm", "l1", "l2", "ftrl_beta"}));
  SHARDPS_RETURN_IF_ERROR(ReadString(table, "kind", path + ".kind",
                                     Presence::kOptional, &optimizer->kind));
  const std::pair<const char*, double*> numbers[] = {
      {"lr", &optimizer->lr},
      {"momentum", &optimizer->momentum},
      {"beta1", &optimizer->beta1},
      {"beta2", &optimizer->beta2},
      {"eps", &optimizer->eps},
      {"rho", &optimizer->rho},
      {"initial_accumulator", &optimizer->initial_accumulator},
      {"weight_decay", &optimizer->weight_decay},
      {"clip_value", &optimizer->clip_value},
      {"clip_norm", &optimizer->clip_norm},
      {"l1", &optimizer->l1},
      {"l2", &optimizer->l2},
      {"ftrl_beta", &optimizer->ftrl_beta}};
  for (const auto& [key, out] : numbers)
    SHARDPS_RETURN_IF_ERROR(ReadNumber(table, key, KeyPath(path, key), out));
  return Status::Ok();
}

Status ReadOptimizer(const toml::table& root, OptimizerSpec* optimizer) {
  const toml::table* table = nullptr;
  SHARDPS_RETURN_IF_ERROR(GetTable(root, "optimizer", &table));
  if (table == nullptr) return Status::Ok();
  return ReadOptimizerTable(*table, "optimizer", optimizer);
}

Status ReadShape(const toml::table& table, const std::string& path,
                 std::vector<uint64_t>* shape) {
  const toml::node* node = table.get("shape");
  if (node == nullptr) return Invalid(path, "missing");
  const toml::array* dims = node->as_array();
  if (dims == nullptr) return WrongType(path, "an array of integers", *node);
  for (size_t d = 0; d < dims->size(); ++d) {
    const toml::node& dim = (*dims)[d];
    const auto* value = dim.as_integer();
    if (value == nullptr) {
      return Invalid(path, "expected an array of integers, dimension " +
                               std::to_string(d) + " is " +
                               TypeName(dim.type()));
    }
    if (value->get() <= 0) {
      return Invalid(path, "dimension " + std::to_string(d) +
                               " must be > 0, got " +
                               std::to_string(value->get()));
    }
    shape->push_back(static_cast<uint64_t>(value->get()));
  }
  return Status::Ok();
}

// A tensor's or table's `optimizer = { ... }`: the model's optimizer with the
// keys given replaced; left unset when absent.
Status ReadOptimizerOverride(const toml::table& table, const std::string& path,
                             const OptimizerSpec& model_optimizer,
                             std::optional<OptimizerSpec>* out) {
  const toml::node* node = table.get("optimizer");
  if (node == nullptr) return Status::Ok();
  const toml::table* override_table = node->as_table();
  if (override_table == nullptr)
    return WrongType(path + ".optimizer", "a table", *node);
  OptimizerSpec merged = model_optimizer;
  SHARDPS_RETURN_IF_ERROR(
      ReadOptimizerTable(*override_table, path + ".optimizer", &merged));
  *out = merged;
  return Status::Ok();
}

Status ReadTensor(const toml::table& table, const std::string& path,
                  const OptimizerSpec& model_optimizer, TensorSpec* tensor) {
  SHARDPS_RETURN_IF_ERROR(
      CheckKeys(table, path, {"name", "shape", "init", "seed", "optimizer"}));
  SHARDPS_RETURN_IF_ERROR(
      ReadOptimizerOverride(table, path, model_optimizer, &tensor->optimizer));
  SHARDPS_RETURN_IF_ERROR(ReadString(table, "name", path + ".name",
                                     Presence::kRequired, &tensor->name));
  SHARDPS_RETURN_IF_ERROR(ReadShape(table, path + ".shape", &tensor->shape));
  // init is required: a forgotten init would silently zero a weight matrix,
  // which trains very differently from what was meant.
  std::string init;
  SHARDPS_RETURN_IF_ERROR(
      ReadString(table, "init", path + ".init", Presence::kRequired, &init));
  Result<InitSpec> parsed = InitSpec::Parse(init);
  if (!parsed.ok()) return Invalid(path + ".init", parsed.status().message());
  tensor->init = *parsed;
  return ReadCount(table, "seed", path + ".seed", 0, &tensor->seed);
}

Status ReadTensors(const toml::table& root,
                   const OptimizerSpec& model_optimizer,
                   std::vector<TensorSpec>* tensors) {
  const toml::node* node = root.get("tensor");
  if (node == nullptr) return Status::Ok();  // validation reports it
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return WrongType("tensor", "an array of tables ([[tensor]])", *node);
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = (*array)[i].as_table();
    if (table == nullptr) {
      return WrongType(TensorPath(i), "a table", (*array)[i]);
    }
    TensorSpec tensor;
    SHARDPS_RETURN_IF_ERROR(
        ReadTensor(*table, TensorPath(i), model_optimizer, &tensor));
    tensors->push_back(std::move(tensor));
  }
  return Status::Ok();
}

std::string TablePath(size_t index) {
  return "table[" + std::to_string(index) + "]";
}

Status ReadTable(const toml::table& table, const std::string& path,
                 const OptimizerSpec& model_optimizer, TableSpec* out) {
  SHARDPS_RETURN_IF_ERROR(CheckKeys(
      table, path, {"name", "dim", "capacity", "init", "seed", "optimizer"}));
  SHARDPS_RETURN_IF_ERROR(
      ReadOptimizerOverride(table, path, model_optimizer, &out->optimizer));
  SHARDPS_RETURN_IF_ERROR(ReadString(table, "name", path + ".name",
                                     Presence::kRequired, &out->name));
  for (const char* key : {"dim", "capacity"})
    if (table.get(key) == nullptr) return Invalid(path + "." + key, "missing");
  SHARDPS_RETURN_IF_ERROR(ReadCount(table, "dim", path + ".dim", 1, &out->dim));
  SHARDPS_RETURN_IF_ERROR(
      ReadCount(table, "capacity", path + ".capacity", 1, &out->capacity));
  std::string init;
  SHARDPS_RETURN_IF_ERROR(
      ReadString(table, "init", path + ".init", Presence::kRequired, &init));
  Result<InitSpec> parsed = InitSpec::Parse(init);
  if (!parsed.ok()) return Invalid(path + ".init", parsed.status().message());
  out->init = *parsed;
  return ReadCount(table, "seed", path + ".seed", 0, &out->seed);
}

Status ReadTables(const toml::table& root, const OptimizerSpec& model_optimizer,
                  std::vector<TableSpec>* tables) {
  const toml::node* node = root.get("table");
  if (node == nullptr) return Status::Ok();
  const toml::array* array = node->as_array();
  if (array == nullptr)
    return WrongType("table", "an array of tables ([[table]])", *node);
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = (*array)[i].as_table();
    if (table == nullptr)
      return WrongType(TablePath(i), "a table", (*array)[i]);
    TableSpec spec;
    SHARDPS_RETURN_IF_ERROR(
        ReadTable(*table, TablePath(i), model_optimizer, &spec));
    tables->push_back(std::move(spec));
  }
  return Status::Ok();
}

Status ReadConsistency(const toml::table& root, ConsistencySpec* out) {
  const toml::table* table = nullptr;
  SHARDPS_RETURN_IF_ERROR(GetTable(root, "consistency", &table));
  if (table == nullptr) return Status::Ok();
  SHARDPS_RETURN_IF_ERROR(
      CheckKeys(*table, "consistency",
                {"mode", "workers", "reduce", "wait_timeout", "apply"}));
  std::string mode = "async";
  SHARDPS_RETURN_IF_ERROR(ReadString(*table, "mode", "consistency.mode",
                                     Presence::kOptional, &mode));
  Status parsed = ConsistencySpec::ParseMode(mode, out);
  if (!parsed.ok()) return Invalid("consistency.mode", parsed.message());
  uint64_t workers = out->workers;
  SHARDPS_RETURN_IF_ERROR(
      ReadCount(*table, "workers", "consistency.workers", 1, &workers));
  if (workers > kMaxConsistencyWorkers)
    return Invalid("consistency.workers",
                   "must be <= " + std::to_string(kMaxConsistencyWorkers) +
                       ", got " + std::to_string(workers));
  out->workers = static_cast<uint32_t>(workers);
  std::string reduce = "sum";
  SHARDPS_RETURN_IF_ERROR(ReadString(*table, "reduce", "consistency.reduce",
                                     Presence::kOptional, &reduce));
  if (reduce != "sum" && reduce != "mean")
    return Invalid("consistency.reduce",
                   "expected \"sum\" or \"mean\", got '" + reduce + "'");
  out->mean = reduce == "mean";
  std::string apply = "clock";
  SHARDPS_RETURN_IF_ERROR(ReadString(*table, "apply", "consistency.apply",
                                     Presence::kOptional, &apply));
  if (apply != "clock" && apply != "block")
    return Invalid("consistency.apply",
                   "expected \"clock\" or \"block\", got '" + apply + "'");
  out->apply_per_block = apply == "block";
  if (out->apply_per_block && out->mode != ConsistencySpec::Mode::kBsp)
    return Invalid("consistency.apply",
                   "\"block\" is a bsp setting; mode is " + out->ModeName());
  return ReadNumber(*table, "wait_timeout", "consistency.wait_timeout",
                    &out->wait_timeout_s);
}

Status ReadSpec(const toml::table& root, ModelSpec* spec) {
  SHARDPS_RETURN_IF_ERROR(CheckKeys(
      root, "", {"model", "optimizer", "consistency", "tensor", "table"}));
  SHARDPS_RETURN_IF_ERROR(ReadModel(root, spec));
  SHARDPS_RETURN_IF_ERROR(ReadOptimizer(root, &spec->optimizer));
  SHARDPS_RETURN_IF_ERROR(ReadConsistency(root, &spec->consistency));
  SHARDPS_RETURN_IF_ERROR(ReadTables(root, spec->optimizer, &spec->tables));
  return ReadTensors(root, spec->optimizer, &spec->tensors);
}

// ---- Validation ----

Status ValidateShape(const std::string& path,
                     const std::vector<uint64_t>& shape) {
  if (shape.empty() || shape.size() > kMaxRank) {
    return Invalid(path, "must have 1 to " + std::to_string(kMaxRank) +
                             " dimensions, got " +
                             std::to_string(shape.size()));
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) {
      return Invalid(path, "dimension " + std::to_string(d) + " must be > 0");
    }
  }
  uint64_t total = 1;
  for (uint64_t dim : shape) {
    // Compare by division: the product itself may overflow 64 bits.
    if (total > kMaxTensorFloats / dim) {
      return Invalid(path, "more than " + std::to_string(kMaxTensorFloats) +
                               " (2^40) floats in one tensor");
    }
    total *= dim;
  }
  return Status::Ok();
}

Status ValidateTensor(const std::string& path, const TensorSpec& tensor) {
  SHARDPS_RETURN_IF_ERROR(CheckName(path + ".name", tensor.name));
  SHARDPS_RETURN_IF_ERROR(ValidateShape(path + ".shape", tensor.shape));
  if (!InitIsValid(tensor.init)) {
    return Invalid(path + ".init",
                   InitError(tensor.init.kind, tensor.init.ToString()));
  }
  return Status::Ok();
}

Status ValidateBlockFloats(uint64_t block_floats) {
  const std::string path = "model.block_floats";
  if (block_floats == 0) return Invalid(path, "must be > 0");
  if (block_floats % kPageFloats != 0) {
    return Invalid(
        path, "must be a multiple of " + std::to_string(kPageFloats) +
                  " (whole 4 KiB pages), got " + std::to_string(block_floats));
  }
  if (block_floats > kMaxBlockFloats) {
    return Invalid(path, "must be <= " + std::to_string(kMaxBlockFloats) +
                             " (2^28), got " + std::to_string(block_floats));
  }
  return Status::Ok();
}

// ---- Hashing ----

// FNV-1a over an explicit byte encoding, so the hash does not depend on
// struct layout, endianness or the standard library.
class SpecHasher {
 public:
  void AddU64(uint64_t value) {
    for (int i = 0; i < 8; ++i) AddByte(static_cast<uint8_t>(value >> (8 * i)));
  }
  // Length-prefixed so ("ab","c") and ("a","bc") differ.
  void AddString(std::string_view s) {
    AddU64(s.size());
    for (char c : s) AddByte(static_cast<uint8_t>(c));
  }
  uint64_t hash() const { return hash_; }

 private:
  void AddByte(uint8_t byte) {
    hash_ ^= byte;
    hash_ *= 0x100000001b3ULL;
  }
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace

Result<InitSpec> InitSpec::Parse(std::string_view text) {
  const size_t colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  const std::string_view args = colon == std::string_view::npos
                                    ? std::string_view()
                                    : text.substr(colon + 1);
  InitSpec init;
  bool numbers_ok = true;
  if (kind == "zeros") {
    init.kind = Kind::kZeros;
    numbers_ok = colon == std::string_view::npos;
  } else if (kind == "constant") {
    init.kind = Kind::kConstant;
    numbers_ok = ParseDouble(args, &init.a);
  } else if (kind == "uniform") {
    init.kind = Kind::kUniform;
    const size_t comma = args.find(',');
    numbers_ok = comma != std::string_view::npos &&
                 ParseDouble(args.substr(0, comma), &init.a) &&
                 ParseDouble(args.substr(comma + 1), &init.b);
  } else if (kind == "normal") {
    init.kind = Kind::kNormal;
    numbers_ok = ParseDouble(args, &init.a);
  } else {
    const std::string got = "got '" + std::string(text) + "'";
    return Status(
        Code::kInvalidArgument,
        "expected zeros, constant:x, uniform:a,b or normal:std, " + got);
  }
  if (!numbers_ok || !InitIsValid(init)) {
    return Status(Code::kInvalidArgument, InitError(init.kind, text));
  }
  return init;
}

std::string InitSpec::ToString() const {
  switch (kind) {
    case Kind::kZeros:
      return "zeros";
    case Kind::kConstant:
      return "constant:" + FormatDouble(a);
    case Kind::kUniform:
      return "uniform:" + FormatDouble(a) + "," + FormatDouble(b);
    case Kind::kNormal:
      return "normal:" + FormatDouble(a);
  }
  return "?";
}

uint64_t TensorSpec::num_floats() const {
  uint64_t total = 1;
  for (uint64_t dim : shape) total *= dim;
  return total;
}

const TensorSpec* ModelSpec::FindTensor(std::string_view name) const {
  for (const TensorSpec& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

const TableSpec* ModelSpec::FindTable(std::string_view name) const {
  for (const TableSpec& table : tables)
    if (table.name == name) return &table;
  return nullptr;
}

const std::vector<std::string>& OptimizerKinds() {
  static const std::vector<std::string> kinds = {
      "sgd",     "momentum", "nesterov", "adagrad",
      "rmsprop", "adam",     "adamw",    "ftrl"};
  return kinds;
}

namespace {

Status ValidateOptimizer(const std::string& path, const OptimizerSpec& o) {
  const auto& kinds = OptimizerKinds();
  if (std::find(kinds.begin(), kinds.end(), o.kind) == kinds.end()) {
    std::string names;
    for (const std::string& k : kinds) names += (names.empty() ? "" : ", ") + k;
    return Invalid(path + ".kind", "unknown optimizer '" + o.kind +
                                       "' (supported: " + names + ")");
  }
  if (!std::isfinite(o.lr) || o.lr <= 0)
    return Invalid(path + ".lr",
                   "must be finite and > 0, got " + FormatDouble(o.lr));
  const std::pair<const char*, double> unit_interval[] = {
      {"momentum", o.momentum},
      {"beta1", o.beta1},
      {"beta2", o.beta2},
      {"rho", o.rho}};
  for (const auto& [key, v] : unit_interval)
    if (!(v >= 0 && v < 1))
      return Invalid(path + "." + key,
                     "must be in [0, 1), got " + FormatDouble(v));
  if (!(o.eps > 0) || !std::isfinite(o.eps))
    return Invalid(path + ".eps",
                   "must be finite and > 0, got " + FormatDouble(o.eps));
  const std::pair<const char*, double> non_negative[] = {
      {"initial_accumulator", o.initial_accumulator},
      {"weight_decay", o.weight_decay},
      {"clip_value", o.clip_value},
      {"clip_norm", o.clip_norm},
      {"l1", o.l1},
      {"l2", o.l2},
      {"ftrl_beta", o.ftrl_beta}};
  for (const auto& [key, v] : non_negative)
    if (!(v >= 0) || !std::isfinite(v))
      return Invalid(path + "." + key,
                     "must be finite and >= 0, got " + FormatDouble(v));
  return Status::Ok();
}

// A bsp/ssp spec may leave out the worker count: `serve --workers` gives
// it, and the server refuses to start without one.
Status ValidateConsistency(const ConsistencySpec& c) {
  if (c.workers > kMaxConsistencyWorkers)
    return Invalid("consistency.workers",
                   "must be <= " + std::to_string(kMaxConsistencyWorkers));
  if (!(c.wait_timeout_s > 0) || !std::isfinite(c.wait_timeout_s))
    return Invalid("consistency.wait_timeout",
                   "must be finite and > 0 seconds, got " +
                       FormatDouble(c.wait_timeout_s));
  return Status::Ok();
}

}  // namespace

std::string ConsistencySpec::ModeName() const {
  switch (mode) {
    case Mode::kAsync:
      return "async";
    case Mode::kBsp:
      return "bsp";
    case Mode::kSsp:
      return "ssp:" + std::to_string(staleness);
  }
  return "?";
}

Status ConsistencySpec::ParseMode(std::string_view text, ConsistencySpec* out) {
  if (text == "async") {
    out->mode = Mode::kAsync;
    return Status::Ok();
  }
  if (text == "bsp") {
    out->mode = Mode::kBsp;
    return Status::Ok();
  }
  constexpr std::string_view kSsp = "ssp:";
  const std::string_view digits =
      text.substr(std::min(text.size(), kSsp.size()));
  const bool all_digits = !digits.empty() && digits.size() <= 6 &&
                          std::all_of(digits.begin(), digits.end(), [](char c) {
                            return c >= '0' && c <= '9';
                          });
  if (text.substr(0, kSsp.size()) == kSsp && all_digits) {
    out->mode = Mode::kSsp;
    out->staleness = static_cast<uint32_t>(std::stoul(std::string(digits)));
    return Status::Ok();
  }
  return Status(Code::kInvalidArgument,
                "expected async, bsp or ssp:S (S = allowed staleness in "
                "clocks, e.g. ssp:2), got '" +
                    std::string(text) + "'");
}

Status ValidateModelSpec(const ModelSpec& spec) {
  SHARDPS_RETURN_IF_ERROR(CheckName("model.name", spec.name));
  if (spec.storage.empty()) {
    return Invalid("model.storage", "must not be empty");
  }
  SHARDPS_RETURN_IF_ERROR(ValidateBlockFloats(spec.block_floats));
  SHARDPS_RETURN_IF_ERROR(ValidateOptimizer("optimizer", spec.optimizer));
  SHARDPS_RETURN_IF_ERROR(ValidateConsistency(spec.consistency));
  if (spec.tensors.empty() && spec.tables.empty()) {
    return Invalid("tensor",
                   "at least one [[tensor]] or [[table]] is required");
  }
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const TensorSpec& tensor = spec.tensors[i];
    SHARDPS_RETURN_IF_ERROR(ValidateTensor(TensorPath(i), tensor));
    if (tensor.optimizer)
      SHARDPS_RETURN_IF_ERROR(
          ValidateOptimizer(TensorPath(i) + ".optimizer", *tensor.optimizer));
    const auto [it, inserted] = seen.emplace(tensor.name, i);
    if (!inserted) {
      return Invalid(TensorPath(i) + ".name", "duplicate tensor '" +
                                                  tensor.name + "' (also " +
                                                  TensorPath(it->second) + ")");
    }
  }
  for (size_t i = 0; i < spec.tables.size(); ++i) {
    const TableSpec& table = spec.tables[i];
    const std::string path = TablePath(i);
    SHARDPS_RETURN_IF_ERROR(CheckName(path + ".name", table.name));
    if (table.dim == 0 || table.dim > kMaxTableDim)
      return Invalid(path + ".dim", "must be 1.." +
                                        std::to_string(kMaxTableDim) +
                                        ", got " + std::to_string(table.dim));
    if (table.capacity == 0 || table.capacity > kMaxTableRowsPerShard)
      return Invalid(path + ".capacity",
                     "must be 1.." + std::to_string(kMaxTableRowsPerShard) +
                         ", got " + std::to_string(table.capacity));
    // Bytes of one shard's rows, checked by division against 2^40 floats.
    if (table.capacity > kMaxTensorFloats / table.dim)
      return Invalid(path, "capacity * dim is more than 2^40 floats");
    if (!InitIsValid(table.init))
      return Invalid(path + ".init",
                     InitError(table.init.kind, table.init.ToString()));
    if (table.optimizer)
      SHARDPS_RETURN_IF_ERROR(
          ValidateOptimizer(path + ".optimizer", *table.optimizer));
    const auto [it, inserted] =
        seen.emplace(table.name, spec.tensors.size() + i);
    if (!inserted)
      return Invalid(path + ".name",
                     "duplicate name '" + table.name + "' (also " +
                         (it->second < spec.tensors.size()
                              ? TensorPath(it->second)
                              : TablePath(it->second - spec.tensors.size())) +
                         ")");
  }
  return Status::Ok();
}

Result<ModelSpec> ParseModelSpec(std::string_view toml_text) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& err) {
    const toml::source_position& at = err.source().begin;
    return Status(Code::kInvalidArgument, "line " + std::to_string(at.line) +
                                              ", column " +
                                              std::to_string(at.column) + ": " +
                                              std::string(err.description()));
  }
  ModelSpec spec;
  SHARDPS_RETURN_IF_ERROR(ReadSpec(root, &spec));
  SHARDPS_RETURN_IF_ERROR(ValidateModelSpec(spec));
  return spec;
}

Result<ModelSpec> LoadModelSpec(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return Status(Code::kNotFound, path + ": no such file");
    }
    return ErrnoStatus(Code::kIoError, path, errno);
  }
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) text.append(buf, n);
  // Reading a directory "opens" fine on Linux and fails here with EISDIR.
  const int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) {
    return ErrnoStatus(Code::kIoError, path, read_errno);
  }
  Result<ModelSpec> spec = ParseModelSpec(text);
  if (!spec.ok()) return spec.status().WithContext(path);
  return spec;
}

uint64_t SpecHash(const ModelSpec& spec) {
  SpecHasher h;
  h.AddString(spec.name);
  h.AddU64(spec.block_floats);
  h.AddString(spec.optimizer.kind);
  h.AddU64(spec.consistency.mode == ConsistencySpec::Mode::kBsp ? 1 : 0);
  h.AddU64(spec.tensors.size());
  for (const TensorSpec& tensor : spec.tensors) {
    h.AddString(tensor.name);
    h.AddU64(tensor.shape.size());
    for (uint64_t dim : tensor.shape) h.AddU64(dim);
    h.AddString(spec.OptimizerFor(tensor).kind);
  }
  // Tables only when present, so a tables-free spec hashes as before them.
  if (!spec.tables.empty()) {
    h.AddU64(spec.tables.size());
    for (const TableSpec& table : spec.tables) {
      h.AddString(table.name);
      h.AddU64(table.dim);
      h.AddU64(table.capacity);
      h.AddString(spec.OptimizerFor(table).kind);
    }
  }
  return h.hash();
}

}  // namespace shardps
