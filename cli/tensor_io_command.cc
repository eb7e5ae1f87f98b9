// `shardps pull` and `shardps push`: move one tensor (or, for pull, rows of
// a sparse table) between a cluster and a NumPy .npy file, through the same
// client library trainers use.
#include <Eigen/Core>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "cli/npy.h"
#include "shardps/client.h"

namespace shardps::cli {

namespace {

struct TensorIoFlags {
  std::string cluster;
  std::string tensor;
  std::string table;           // pull --table
  std::vector<uint64_t> ids;   // pull --ids
  std::string ids_file;        // pull --ids-file
  std::string file;            // pull --out / push --in
  std::optional<double> fill;  // push --fill
  int timeout_ms = 30000;
  int connect_timeout_ms = kConnectTimeoutMs;
  ClientCurveFlags curve;
};

std::string ShapeString(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Result<std::unique_ptr<Client>> ConnectFor(const TensorIoFlags& flags) {
  ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(flags.timeout_ms);
  options.connect_timeout = std::chrono::milliseconds(flags.connect_timeout_ms);
  SHARDPS_RETURN_IF_ERROR(ApplyClientCurveFlags(flags.curve, &options));
  return Client::Connect(flags.cluster, options);
}

Result<const TensorLayout*> FindTensor(const Client& client,
                                       const std::string& name) {
  const TensorLayout* t = client.layout().Find(name);
  if (t == nullptr) {
    std::string names;
    for (const TensorLayout& l : client.layout().tensors())
      names += (names.empty() ? "" : ", ") + l.name;
    return Status(Code::kNotFound, "unknown tensor '" + name + "' (model '" +
                                       client.model() + "' has: " + names +
                                       ")");
  }
  return t;
}

// Ids from --ids and --ids-file (numbers separated by commas or whitespace),
// in the order given.
Result<std::vector<uint64_t>> GatherIds(const TensorIoFlags& flags) {
  std::vector<uint64_t> ids = flags.ids;
  if (!flags.ids_file.empty()) {
    std::ifstream in(flags.ids_file);
    if (!in) return Status(Code::kNotFound, flags.ids_file + ": cannot open");
    std::string word;
    uint64_t line = 1;
    char c;
    const auto flush = [&]() -> Status {
      if (word.empty()) return Status::Ok();
      const bool digits = word.size() <= 20 &&
                          std::all_of(word.begin(), word.end(), [](char d) {
                            return d >= '0' && d <= '9';
                          });
      errno = 0;
      const unsigned long long v =
          digits ? std::strtoull(word.c_str(), nullptr, 10) : 0;
      if (!digits || errno == ERANGE)
        return Status(Code::kInvalidArgument,
                      flags.ids_file + ":" + std::to_string(line) + ": '" +
                          word + "' is not a row id (0..2^64-1)");
      ids.push_back(v);
      word.clear();
      return Status::Ok();
    };
    while (in.get(c)) {
      if (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        SHARDPS_RETURN_IF_ERROR(flush());
        if (c == '\n') ++line;
      } else {
        word.push_back(c);
      }
    }
    SHARDPS_RETURN_IF_ERROR(flush());
  }
  if (ids.empty())
    return Status(Code::kInvalidArgument,
                  "--table needs row ids: --ids 1,2,3 or --ids-file FILE");
  return ids;
}

int RunPullRows(const TensorIoFlags& flags) {
  auto ids = GatherIds(flags);
  if (!ids.ok()) return ReportError("pull", ids.status());
  auto client = ConnectFor(flags);
  if (!client.ok()) return ReportError("pull", client.status());
  const auto& tables = (*client)->tables();
  const auto table =
      std::find_if(tables.begin(), tables.end(),
                   [&](const TableInfo& t) { return t.name == flags.table; });
  if (table == tables.end()) {
    std::string names;
    for (const TableInfo& t : tables)
      names += (names.empty() ? "" : ", ") + t.name;
    return ReportError("pull",
                       Status(Code::kNotFound,
                              "unknown table '" + flags.table + "' (model '" +
                                  (*client)->model() + "' has: " +
                                  (names.empty() ? "no tables" : names) + ")"));
  }
  const uint64_t n = ids->size(), dim = table->dim;
  std::vector<float> rows(n * dim);
  Status s =
      (*client)->PullRows(flags.table, ids->data(), n, rows.data()).Wait();
  if (!s.ok()) return ReportError("pull", s);
  if (!flags.file.empty()) {
    Status w = WriteNpy(flags.file, {n, dim}, rows.data(), rows.size());
    if (!w.ok()) return ReportError("pull", w);
    std::printf("pulled %llu row(s) of table '%s' [%llu, %llu] into %s\n",
                static_cast<unsigned long long>(n), flags.table.c_str(),
                static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(dim), flags.file.c_str());
    return 0;
  }
  std::printf("table %s rows %llu dim %llu\n", flags.table.c_str(),
              static_cast<unsigned long long>(n),
              static_cast<unsigned long long>(dim));
  for (uint64_t r = 0; r < n && r < 20; ++r) {
    std::printf("row %llu", static_cast<unsigned long long>((*ids)[r]));
    for (uint64_t j = 0; j < dim && j < 8; ++j)
      std::printf(" %.6g", static_cast<double>(rows[r * dim + j]));
    std::printf("%s\n", dim > 8 ? " ..." : "");
  }
  if (n > 20)
    std::printf("... (%llu more; --out writes all)\n",
                static_cast<unsigned long long>(n - 20));
  return 0;
}

int RunPull(const TensorIoFlags& flags) {
  if (flags.tensor.empty() == flags.table.empty())
    return ReportError("pull", Status(Code::kInvalidArgument,
                                      "give exactly one of --tensor, --table"));
  if (!flags.table.empty()) return RunPullRows(flags);
  if (!flags.ids.empty() || !flags.ids_file.empty())
    return ReportError("pull", Status(Code::kInvalidArgument,
                                      "--ids and --ids-file go with --table"));
  auto client = ConnectFor(flags);
  if (!client.ok()) return ReportError("pull", client.status());
  auto t = FindTensor(**client, flags.tensor);
  if (!t.ok()) return ReportError("pull", t.status());
  std::vector<float> values((*t)->num_floats);
  Status s = (*client)->Pull(flags.tensor, values.data(), values.size()).Wait();
  if (!s.ok()) return ReportError("pull", s);
  if (!flags.file.empty()) {
    Status w = WriteNpy(flags.file, (*t)->shape, values.data(), values.size());
    if (!w.ok()) return ReportError("pull", w);
    std::printf("pulled '%s' %s into %s\n", flags.tensor.c_str(),
                ShapeString((*t)->shape).c_str(), flags.file.c_str());
    return 0;
  }
  const Eigen::Map<const Eigen::VectorXf> v(
      values.data(), static_cast<Eigen::Index>(values.size()));
  std::printf("tensor %s shape %s l2 %.6g min %.6g max %.6g\nvalues",
              flags.tensor.c_str(), ShapeString((*t)->shape).c_str(),
              static_cast<double>(v.norm()), static_cast<double>(v.minCoeff()),
              static_cast<double>(v.maxCoeff()));
  for (size_t i = 0; i < values.size() && i < 8; ++i)
    std::printf(" %.6g", static_cast<double>(values[i]));
  std::printf("%s\n", values.size() > 8 ? " ..." : "");
  return 0;
}

int RunPush(const TensorIoFlags& flags) {
  if (flags.fill.has_value() == !flags.file.empty())
    return ReportError("push", Status(Code::kInvalidArgument,
                                      "give exactly one of --fill, --in"));
  auto client = ConnectFor(flags);
  if (!client.ok()) return ReportError("push", client.status());
  auto t = FindTensor(**client, flags.tensor);
  if (!t.ok()) return ReportError("push", t.status());
  std::vector<float> grad;
  if (flags.fill) {
    grad.assign((*t)->num_floats, static_cast<float>(*flags.fill));
  } else {
    auto array = ReadNpy(flags.file);
    if (!array.ok()) return ReportError("push", array.status());
    // Same shape, or a flat array of the same size.
    const bool flat =
        array->shape.size() == 1 && array->shape[0] == (*t)->num_floats;
    if (array->shape != (*t)->shape && !flat)
      return ReportError(
          "push",
          Status(Code::kSizeMismatch, flags.file + " holds shape " +
                                          ShapeString(array->shape) +
                                          ", tensor '" + flags.tensor +
                                          "' is " + ShapeString((*t)->shape)));
    grad = std::move(array->data);
  }
  Status s = (*client)->Push(flags.tensor, grad.data(), grad.size()).Wait();
  if (!s.ok()) return ReportError("push", s);
  std::printf("pushed a gradient to '%s' %s; every shard acknowledged\n",
              flags.tensor.c_str(), ShapeString((*t)->shape).c_str());
  return 0;
}

void AddCommon(CLI::App* cmd, TensorIoFlags* flags) {
  cmd->add_option("--cluster", flags->cluster, "Cluster file")->required();
  cmd->add_option("--timeout-ms", flags->timeout_ms, "Request deadline")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  AddConnectTimeout(cmd, &flags->connect_timeout_ms);
  AddClientCurveFlags(cmd, &flags->curve);
}

}  // namespace

void RegisterTensorIo(CLI::App& app, int* exit_code) {
  auto pull = std::make_shared<TensorIoFlags>();
  CLI::App* pull_cmd = app.add_subcommand(
      "pull", "Fetch a tensor, or rows of a table (to a .npy file)");
  AddCommon(pull_cmd, pull.get());
  pull_cmd->add_option("--tensor", pull->tensor, "Tensor name");
  pull_cmd->add_option("--table", pull->table,
                       "Sparse table name (with --ids or --ids-file); rows "
                       "nobody touched yet are created with the table's "
                       "init, as a trainer's PullRows does");
  pull_cmd->add_option("--ids", pull->ids, "Row ids, e.g. 1,2,3")
      ->delimiter(',');
  pull_cmd->add_option("--ids-file", pull->ids_file,
                       "File of row ids (commas, spaces or newlines)");
  pull_cmd->add_option("--out", pull->file,
                       "Write a float32 .npy here: the tensor's shape, or "
                       "[ids, dim] for rows (else print a summary)");
  pull_cmd->callback([pull, exit_code] { *exit_code = RunPull(*pull); });

  auto push = std::make_shared<TensorIoFlags>();
  CLI::App* push_cmd = app.add_subcommand(
      "push", "Push a gradient (the optimizer applies it) to a tensor");
  AddCommon(push_cmd, push.get());
  push_cmd->add_option("--tensor", push->tensor, "Tensor name")->required();
  push_cmd->add_option("--fill", push->fill, "Every element of the gradient");
  push_cmd->add_option("--in", push->file, "Gradient from a float32 .npy");
  push_cmd->callback([push, exit_code] { *exit_code = RunPush(*push); });
}

}  // namespace shardps::cli
