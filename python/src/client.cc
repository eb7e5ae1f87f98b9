// shardps.Client and shardps.Handle over shardps::Client.
//
// Buffer lifetimes (why nothing ZeroMQ reads is ever freed early): a Push,
// PushPull or Pull hands ZeroMQ / the I/O thread raw pointers into NumPy
// arrays. The Python Handle holds a reference to every such array (and to
// any converted copy) until its C++ call is Done. When the Python Handle is
// dropped before that, its destructor moves the references, with the C++
// handle, into the client's `orphans` list instead of freeing them; each
// later call on the client, and close(), frees the orphans whose call is
// Done. Dropping a handle therefore never blocks and never frees a live
// buffer. Destroying the C++ client fails every call still in flight, so
// once it is gone every orphan is done.
//
// GIL: every wait (Handle.wait, stats, checkpoint, connect, close) runs
// with the GIL released. The shared state below (orphans, the client
// pointer) is only touched with the GIL held, which serialises it.
#include "shardps/client.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/curve_keys.h"
#include "python/src/bindings.h"
#include "python/src/client_state.h"

namespace shardps::python {
namespace {

// What the Python Handle returns from wait() on success.
class PyHandle {
 public:
  PyHandle(std::shared_ptr<ClientState> owner, Handle handle,
           std::vector<py::object> keep, py::object result)
      : owner_(std::move(owner)),
        handle_(std::move(handle)),
        keep_(std::move(keep)),
        result_(std::move(result)) {}

  // Runs with the GIL held (pybind11 deallocates under it).
  ~PyHandle() {
    if (!keep_.empty() && !handle_.Done()) {
      owner_->orphans.push_back({handle_, std::move(keep_)});
    }
  }
  PyHandle(const PyHandle&) = delete;
  PyHandle& operator=(const PyHandle&) = delete;

  py::object Wait(std::optional<double> timeout) {
    Status status;
    if (timeout) {
      const auto ms = ToMillis(*timeout, "timeout");
      py::gil_scoped_release release;
      status = handle_.WaitFor(ms);
    } else {
      py::gil_scoped_release release;
      status = handle_.Wait();
    }
    if (!handle_.Done()) Raise(status);  // our wait timed out; call goes on
    keep_.clear();                       // ZeroMQ is done with the buffers
    ThrowIfError(status);
    return result_;
  }

  bool Done() const { return handle_.Done(); }

 private:
  const std::shared_ptr<ClientState> owner_;
  const Handle handle_;
  std::vector<py::object> keep_;  // arrays the call reads or writes
  const py::object result_;       // None, or the array wait() returns
};

Status ClosedStatus() { return Status::Unavailable("client is closed"); }

WireDType ParseDType(const std::string& name) {
  if (name == "float32") return WireDType::kFloat32;
  if (name == "float16") return WireDType::kFloat16;
  if (name == "bfloat16") return WireDType::kBFloat16;
  Raise(Status::InvalidArgument("push_dtype '" + name +
                                "': use float32, float16 or bfloat16"));
}

std::vector<py::ssize_t> ToShape(const std::vector<uint64_t>& shape) {
  return std::vector<py::ssize_t>(shape.begin(), shape.end());
}

std::vector<py::ssize_t> ArrayShape(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

class PyClient {
 public:
  PyClient(const std::string& cluster_file, int worker, double request_timeout,
           double connect_timeout, bool exactly_once,
           const std::string& push_dtype, const std::string& replica_storage,
           bool map_local_segments, uint32_t blocks_per_message,
           std::optional<std::string> curve_key,
           std::optional<std::string> server_key,
           const std::string& metrics_listen)
      : state_(std::make_shared<ClientState>()) {
    ClientOptions options;
    options.worker = worker;
    options.request_timeout = ToMillis(request_timeout, "request_timeout");
    options.connect_timeout = ToMillis(connect_timeout, "connect_timeout");
    options.exactly_once = exactly_once;
    options.push_dtype = ParseDType(push_dtype);
    options.replica_storage = replica_storage;
    options.map_local_segments = map_local_segments;
    options.blocks_per_message = blocks_per_message;
    options.metrics_listen = metrics_listen;
    if (curve_key && !curve_key->empty()) {
      auto pair = LoadCurveKeyPair(*curve_key);
      ThrowIfError(pair.status());
      options.curve_public_key = pair->public_key;
      options.curve_secret_key = pair->secret_key;
    }
    if (server_key && !server_key->empty()) {
      auto key = LoadCurvePublicKey(*server_key);
      ThrowIfError(key.status());
      options.curve_server_key = *key;
    }
    std::optional<Result<std::unique_ptr<Client>>> connected;
    {
      py::gil_scoped_release release;
      connected.emplace(Client::Connect(cluster_file, options));
    }
    ThrowIfError(connected->status());
    state_->client = std::shared_ptr<Client>(std::move(connected->value()));
    const Client& c = *state_->client;
    model_ = c.model();
    spec_hash_ = c.spec_hash();
    consistency_ = c.consistency();
    layout_ = std::make_shared<const ModelLayout>(c.layout());
    for (const TableInfo& t : c.tables()) tables_.push_back(t);
  }

  const std::string& model() const { return model_; }
  uint64_t spec_hash() const { return spec_hash_; }
  const std::string& consistency() const { return consistency_; }
  std::string metrics_url() const { return LiveClient()->metrics_url(); }
  std::string metrics_text() const { return LiveClient()->MetricsText(); }
  int64_t clock_count() const { return LiveClient()->clock(); }
  std::vector<std::string> local_segments() const {
    return LiveClient()->local_segments();
  }

  py::dict tensors() const {
    py::dict d;
    for (const TensorLayout& t : layout_->tensors()) {
      d[py::str(t.name)] = py::tuple(py::cast(ToShape(t.shape)));
    }
    return d;
  }
  py::dict tables() const {
    py::dict d;
    for (const TableInfo& t : tables_) d[py::str(t.name)] = t.dim;
    return d;
  }

  std::unique_ptr<PyHandle> Push(const std::string& name,
                                 const py::object& grad) {
    auto client = LiveClient();
    const TensorLayout& t = FindTensor(name);
    py::array_t<float> g = GradArray(t, grad);
    const float* data = g.data();
    Handle h;
    {
      py::gil_scoped_release release;
      h = client->Push(name, data, t.num_floats);
    }
    return MakeHandle(std::move(h), {grad, g}, py::none());
  }

  std::unique_ptr<PyHandle> Pull(const std::string& name,
                                 const py::object& out) {
    auto client = LiveClient();
    const TensorLayout& t = FindTensor(name);
    py::array_t<float> o = OutArray(out, t.num_floats, ToShape(t.shape),
                                    "pull of '" + name + "': out");
    float* data = o.mutable_data();
    Handle h;
    {
      py::gil_scoped_release release;
      h = client->Pull(name, data, t.num_floats);
    }
    py::object result =
        o.attr("reshape")(py::tuple(py::cast(ToShape(t.shape))));
    return MakeHandle(std::move(h), {o}, result);
  }

  std::unique_ptr<PyHandle> PushPull(const std::string& name,
                                     const py::object& grad,
                                     const py::object& out) {
    auto client = LiveClient();
    const TensorLayout& t = FindTensor(name);
    py::array_t<float> g = GradArray(t, grad);
    py::array_t<float> o = OutArray(out, t.num_floats, ToShape(t.shape),
                                    "push_pull of '" + name + "': out");
    const float* gdata = g.data();
    float* odata = o.mutable_data();
    Handle h;
    {
      py::gil_scoped_release release;
      h = client->PushPull(name, gdata, odata, t.num_floats);
    }
    py::object result =
        o.attr("reshape")(py::tuple(py::cast(ToShape(t.shape))));
    return MakeHandle(std::move(h), {grad, g, o}, result);
  }

  std::unique_ptr<PyHandle> PushRows(const std::string& table,
                                     const py::object& ids,
                                     const py::object& grads) {
    auto client = LiveClient();
    const TableInfo& info = FindTable(table);
    IdArray id = Ids(ids, "push_rows ids");
    py::array_t<float> g = AsFloat32(grads, "push_rows grads");
    const auto n = static_cast<py::ssize_t>(id.n);
    const auto dim = static_cast<py::ssize_t>(info.dim);
    const bool matrix = g.ndim() == 2 && g.shape(0) == n && g.shape(1) == dim;
    const bool flat = g.ndim() == 1 && g.shape(0) == n * dim;
    if (!matrix && !flat) {
      Raise(Status::SizeMismatch(
          "push_rows of '" + table + "': grads has shape " +
          ShapeText(ArrayShape(g)) + "; " + std::to_string(n) + " ids need (" +
          std::to_string(n) + ", " + std::to_string(dim) + ")"));
    }
    const uint64_t* idp = id.data;
    const float* gp = g.data();
    Handle h;
    {
      py::gil_scoped_release release;
      h = client->PushRows(table, idp, id.n, gp);
    }
    return MakeHandle(std::move(h), {ids, id.array, grads, g}, py::none());
  }

  std::unique_ptr<PyHandle> PullRows(const std::string& table,
                                     const py::object& ids,
                                     const py::object& out) {
    auto client = LiveClient();
    const TableInfo& info = FindTable(table);
    IdArray id = Ids(ids, "pull_rows ids");
    const std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(id.n),
                                            static_cast<py::ssize_t>(info.dim)};
    py::array_t<float> o = OutArray(out, id.n * info.dim, shape,
                                    "pull_rows of '" + table + "': out");
    const uint64_t* idp = id.data;
    float* op = o.mutable_data();
    Handle h;
    {
      py::gil_scoped_release release;
      h = client->PullRows(table, idp, id.n, op);
    }
    py::object result = o.attr("reshape")(py::tuple(py::cast(shape)));
    return MakeHandle(std::move(h), {ids, id.array, o}, result);
  }

  std::unique_ptr<PyHandle> ClockCall() {
    auto client = LiveClient();
    Handle h;
    {
      py::gil_scoped_release release;
      h = client->Clock();
    }
    return MakeHandle(std::move(h), {}, py::none());
  }

  py::list Stats() {
    auto client = LiveClient();
    std::optional<Result<std::vector<ShardStats>>> stats;
    {
      py::gil_scoped_release release;
      stats.emplace(client->Stats());
      client.reset();  // a close() meanwhile may leave us the last owner
    }
    ThrowIfError(stats->status());
    py::list out;
    for (const ShardStats& s : stats->value()) out.append(StatsDict(s));
    return out;
  }

  std::vector<std::string> Checkpoint() {
    auto client = LiveClient();
    std::optional<Result<std::vector<std::string>>> dirs;
    {
      py::gil_scoped_release release;
      dirs.emplace(client->Checkpoint());
      client.reset();
    }
    ThrowIfError(dirs->status());
    return dirs->value();
  }

  void Close() {
    std::shared_ptr<Client> client = std::move(state_->client);
    if (client) {
      py::gil_scoped_release release;
      client.reset();  // fails the calls in flight; waits <= 1 s for slots
    }
    state_->Reap();
  }

  std::shared_ptr<Client> LiveClient() const {
    state_->Reap();
    if (!state_->client) Raise(ClosedStatus());
    return state_->client;
  }

 private:
  // Ids as uint64, zero-copy for uint64 arrays and for int64 arrays without
  // negative ids (same bits); other integer arrays are converted.
  struct IdArray {
    py::object array;  // what `data` points into
    const uint64_t* data = nullptr;
    size_t n = 0;
  };

  const TensorLayout& FindTensor(const std::string& name) const {
    const TensorLayout* t = layout_->Find(name);
    if (t == nullptr) {
      std::string names;
      for (const TensorLayout& x : layout_->tensors()) {
        names += (names.empty() ? "" : ", ") + x.name;
      }
      Raise(Status::NotFound("model '" + model_ + "' has no tensor '" + name +
                             "' (it has: " + names + ")"));
    }
    return *t;
  }

  const TableInfo& FindTable(const std::string& name) const {
    for (const TableInfo& t : tables_) {
      if (t.name == name) return t;
    }
    Raise(
        Status::NotFound("model '" + model_ + "' has no table '" + name + "'"));
  }

  // The gradient as float32, shape-checked: the spec's shape, or flat.
  static py::array_t<float> GradArray(const TensorLayout& t,
                                      const py::object& grad) {
    py::array_t<float> g = AsFloat32(grad, "gradient of '" + t.name + "'");
    const std::vector<py::ssize_t> shape = ArrayShape(g);
    const std::vector<py::ssize_t> spec = ToShape(t.shape);
    const bool flat =
        shape.size() == 1 && static_cast<uint64_t>(shape[0]) == t.num_floats;
    if (shape != spec && !flat) {
      Raise(Status::SizeMismatch("gradient of '" + t.name + "' has shape " +
                                 ShapeText(shape) + "; the spec's shape is " +
                                 ShapeText(spec) + " (or flat (" +
                                 std::to_string(t.num_floats) + ",))"));
    }
    return g;
  }

  // `out` checked (float32, C-contiguous, writeable, `count` floats), or a
  // new array of `shape` when it is None.
  static py::array_t<float> OutArray(const py::object& out, uint64_t count,
                                     const std::vector<py::ssize_t>& shape,
                                     const std::string& what) {
    if (out.is_none()) return py::array_t<float>(shape);
    if (!py::isinstance<py::array>(out)) {
      Raise(Status::InvalidArgument(what + " must be a NumPy array"));
    }
    auto a = py::reinterpret_borrow<py::array>(out);
    if (!py::isinstance<py::array_t<float>>(a) ||
        !a.dtype().is(py::dtype::of<float>())) {
      if (a.dtype().kind() != 'f' || a.itemsize() != 4) {
        Raise(Status::InvalidArgument(what + " has dtype " +
                                      py::str(a.dtype()).cast<std::string>() +
                                      "; it must be float32"));
      }
    }
    if (!(a.flags() & py::array::c_style)) {
      Raise(Status::InvalidArgument(what + " must be C-contiguous"));
    }
    if (!a.writeable()) {
      Raise(Status::InvalidArgument(what + " is read-only"));
    }
    if (static_cast<uint64_t>(a.size()) != count) {
      Raise(Status::SizeMismatch(what + " has " + std::to_string(a.size()) +
                                 " floats; " + std::to_string(count) +
                                 " needed, shape " + ShapeText(shape)));
    }
    return py::reinterpret_borrow<py::array_t<float>>(a);
  }

  static IdArray Ids(const py::object& ids, const std::string& what) {
    py::array a = py::array::ensure(ids);
    if (!a) {
      PyErr_Clear();
      Raise(Status::InvalidArgument(what + " must be a NumPy array"));
    }
    const char kind = a.dtype().kind();
    if (kind != 'u' && kind != 'i') {
      Raise(Status::InvalidArgument(
          what + " has dtype " + py::str(a.dtype()).cast<std::string>() +
          "; ids must be uint64 (or non-negative int64)"));
    }
    if (a.ndim() != 1) {
      Raise(Status::InvalidArgument(what + " must be 1-D, has shape " +
                                    ShapeText(ArrayShape(a))));
    }
    IdArray out;
    out.n = static_cast<size_t>(a.size());
    if (kind == 'u') {
      auto u = py::array_t<uint64_t, py::array::c_style |
                                         py::array::forcecast>::ensure(a);
      out.data = u.data();
      out.array = u;
    } else {
      auto s = py::array_t<int64_t, py::array::c_style |
                                        py::array::forcecast>::ensure(a);
      const int64_t* p = s.data();
      for (size_t i = 0; i < out.n; ++i) {
        if (p[i] < 0) {
          Raise(Status::InvalidArgument(what + "[" + std::to_string(i) +
                                        "] is " + std::to_string(p[i]) +
                                        "; ids must be >= 0"));
        }
      }
      // Non-negative int64 and uint64 share their bits (and may alias).
      out.data = reinterpret_cast<const uint64_t*>(p);
      out.array = s;
    }
    return out;
  }

  std::unique_ptr<PyHandle> MakeHandle(Handle h, std::vector<py::object> keep,
                                       py::object result) {
    return std::make_unique<PyHandle>(state_, std::move(h), std::move(keep),
                                      std::move(result));
  }

  static py::dict StatsDict(const ShardStats& s) {
    py::dict d;
    d["shard"] = s.shard;
    d["endpoint"] = s.endpoint;
    d["model"] = s.model;
    d["blocks"] = s.blocks;
    d["threads"] = s.threads;
    d["pushes"] = s.pushes;
    d["pulls"] = s.pulls;
    d["updates_applied"] = s.updates_applied;
    d["errors"] = s.errors;
    d["bytes_in"] = s.bytes_in;
    d["bytes_out"] = s.bytes_out;
    d["uptime_ms"] = s.uptime_ms;
    d["pid"] = s.pid;
    d["consistency"] = s.consistency;
    d["workers"] = s.workers;
    d["applied_clock"] = s.applied_clock;
    py::list workers;
    for (const WorkerStats& w : s.workers_detail) {
      py::dict wd;
      wd["clock"] = w.clock;
      wd["state"] = w.state == WorkerStats::State::kConnected ? "connected"
                    : w.state == WorkerStats::State::kGone    ? "gone"
                                                              : "never_seen";
      wd["idle_ms"] = w.idle_ms;
      workers.append(wd);
    }
    d["workers_detail"] = workers;
    d["waiting"] = s.waiting;
    d["duplicates"] = s.duplicates;
    d["exactly_once_clients"] = s.exactly_once_clients;
    d["auth_refusals"] = s.auth_refusals;
    d["replicas"] = s.replicas;
    d["replica_blocks"] = s.replica_blocks;
    d["replica_bytes"] = s.replica_bytes;
    d["early_applies"] = s.early_applies;
    return d;
  }

  const std::shared_ptr<ClientState> state_;
  std::string model_;
  uint64_t spec_hash_ = 0;
  std::string consistency_;
  std::shared_ptr<const ModelLayout> layout_;
  std::vector<TableInfo> tables_;
};

}  // namespace

void ClientState::Reap() {
  orphans.erase(std::remove_if(orphans.begin(), orphans.end(),
                               [](const Orphan& o) { return o.handle.Done(); }),
                orphans.end());
}

ClientState::~ClientState() {
  // The client first: destroying it completes every orphan's call, so the
  // buffers are freed only after ZeroMQ let go of them.
  client.reset();
  orphans.clear();
}

std::shared_ptr<Client> LiveClientOf(const py::handle& client) {
  return client.cast<PyClient&>().LiveClient();
}

void RegisterClient(py::module_& m) {
  py::class_<PyHandle>(m, "Handle",
                       "The result of an asynchronous call. wait() it.")
      .def("wait", &PyHandle::Wait, py::arg("timeout") = py::none(),
           "Waits (GIL released) until the call is done. Returns the pulled "
           "array for pull-type calls, else None; raises the call's typed "
           "error. With `timeout` (seconds) raises shardps.TimeoutError "
           "when it passes while the call goes on: wait again later.")
      .def("done", &PyHandle::Done, "Whether the call has finished.");

  py::class_<PyClient>(m, "Client", "A connection to every shard of a model.")
      .def(
          py::init<const std::string&, int, double, double, bool,
                   const std::string&, const std::string&, bool, uint32_t,
                   std::optional<std::string>, std::optional<std::string>,
                   const std::string&>(),
          py::arg("cluster_file"), py::kw_only(), py::arg("worker") = -1,
          py::arg("request_timeout") = 30.0, py::arg("connect_timeout") = 10.0,
          py::arg("exactly_once") = true, py::arg("push_dtype") = "float32",
          py::arg("replica_storage") = "", py::arg("map_local_segments") = true,
          py::arg("blocks_per_message") = 0u, py::arg("curve_key") = py::none(),
          py::arg("server_key") = py::none(), py::arg("metrics_listen") = "")
      .def_property_readonly("model", &PyClient::model)
      .def_property_readonly("spec_hash", &PyClient::spec_hash)
      .def_property_readonly("consistency", &PyClient::consistency)
      .def_property_readonly("clock_count", &PyClient::clock_count)
      .def_property_readonly("tensors", &PyClient::tensors)
      .def_property_readonly("tables", &PyClient::tables)
      .def_property_readonly("local_segments", &PyClient::local_segments)
      .def_property_readonly("metrics_url", &PyClient::metrics_url)
      .def("metrics_text", &PyClient::metrics_text)
      .def("push", &PyClient::Push, py::arg("name"), py::arg("grad"))
      .def("pull", &PyClient::Pull, py::arg("name"),
           py::arg("out") = py::none())
      .def("push_pull", &PyClient::PushPull, py::arg("name"), py::arg("grad"),
           py::arg("out") = py::none())
      .def("push_rows", &PyClient::PushRows, py::arg("table"), py::arg("ids"),
           py::arg("grads"))
      .def("pull_rows", &PyClient::PullRows, py::arg("table"), py::arg("ids"),
           py::arg("out") = py::none())
      .def("clock", &PyClient::ClockCall)
      .def("stats", &PyClient::Stats)
      .def("checkpoint", &PyClient::Checkpoint)
      .def("close", &PyClient::Close)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyClient& self, const py::args&) { self.Close(); });
}

}  // namespace shardps::python
