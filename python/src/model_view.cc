// shardps.ModelView over shardps::ModelView: NumPy arrays straight over the
// read-only mapping of the shards' segments (and host replica copies).
//
// Lifetime: every array view[name] returns has the Python ModelView object
// as its base, so the mapping lives as long as any array over it. The
// arrays are flagged read-only, and the pages are mapped PROT_READ: a write
// forced past the flag (ctypes, setflags on a copy of the pointer) faults
// instead of corrupting the model.
#include "shardps/model_view.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "python/src/bindings.h"
#include "python/src/client_state.h"

namespace shardps::python {
namespace {

class PyModelView {
 public:
  explicit PyModelView(std::unique_ptr<ModelView> view)
      : view_(std::move(view)) {}

  static std::unique_ptr<PyModelView> FromClient(const py::handle& client) {
    std::shared_ptr<Client> c = LiveClientOf(client);
    std::optional<Result<std::unique_ptr<ModelView>>> view;
    {
      py::gil_scoped_release release;
      view.emplace(ModelView::Open(*c));
      c.reset();
    }
    ThrowIfError(view->status());
    return std::make_unique<PyModelView>(std::move(view->value()));
  }

  static std::unique_ptr<PyModelView> FromSegments(
      const std::vector<std::string>& paths) {
    std::optional<Result<std::unique_ptr<ModelView>>> view;
    {
      py::gil_scoped_release release;
      view.emplace(ModelView::Open(paths));
    }
    ThrowIfError(view->status());
    return std::make_unique<PyModelView>(std::move(view->value()));
  }

  // Zero-copy, read-only, spec shape; `self` becomes the array's base.
  static py::array Get(const py::object& self, const std::string& name) {
    const PyModelView& v = self.cast<const PyModelView&>();
    const TensorLayout& t = v.Find(name);
    auto map = v.view_->Tensor(name);
    ThrowIfError(map.status());
    py::array_t<float> a(Shape(t), Strides(t), map->data(), self);
    // pybind11 makes arrays over foreign memory writeable; this one is not.
    a.attr("setflags")(py::arg("write") = false);
    return std::move(a);
  }

  py::array_t<float> Copy(const std::string& name, double timeout) const {
    const TensorLayout& t = Find(name);
    const auto ms = ToMillis(timeout, "timeout");
    py::array_t<float> out(Shape(t));
    float* data = out.mutable_data();
    Status status;
    {
      py::gil_scoped_release release;
      status = view_->Copy(name, data, t.num_floats, ms);
    }
    ThrowIfError(status);
    return out;
  }

  py::dict Freshness(const std::string& name) const {
    Find(name);
    auto f = view_->Freshness(name);
    ThrowIfError(f.status());
    auto seconds = [](std::chrono::nanoseconds ns) {
      return std::chrono::duration<double>(ns).count();
    };
    py::list blocks;
    for (const ModelView::BlockFreshness& b : f->blocks) {
      py::dict d;
      d["block"] = b.block;
      d["shard"] = b.shard;
      d["local"] = b.local;
      d["held"] = b.held;
      d["latest"] = b.latest;
      d["age"] = seconds(b.age);
      d["replica_running"] = b.replica_running;
      blocks.append(d);
    }
    py::dict d;
    d["blocks_behind"] = f->blocks_behind;
    d["most_versions_behind"] = f->most_versions_behind;
    d["oldest_age"] = seconds(f->oldest_age);
    d["replicas_running"] = f->replicas_running;
    d["blocks"] = blocks;
    return d;
  }

  uint64_t Updates(const std::string& name) const {
    Find(name);
    auto n = view_->Updates(name);
    ThrowIfError(n.status());
    return *n;
  }

  std::vector<std::string> Keys() const {
    std::vector<std::string> names;
    for (const TensorLayout& t : view_->layout().tensors()) {
      names.push_back(t.name);
    }
    return names;
  }

  bool Contains(const std::string& name) const {
    return view_->layout().Find(name) != nullptr;
  }

  uint64_t spec_hash() const { return view_->spec_hash(); }

 private:
  const TensorLayout& Find(const std::string& name) const {
    const TensorLayout* t = view_->layout().Find(name);
    if (t == nullptr) {
      Raise(Status::NotFound("the model view has no tensor '" + name + "'"));
    }
    return *t;
  }
  static std::vector<py::ssize_t> Shape(const TensorLayout& t) {
    return std::vector<py::ssize_t>(t.shape.begin(), t.shape.end());
  }
  static std::vector<py::ssize_t> Strides(const TensorLayout& t) {
    std::vector<py::ssize_t> strides(t.shape.size());
    py::ssize_t step = sizeof(float);
    for (size_t i = t.shape.size(); i-- > 0;) {
      strides[i] = step;
      step *= static_cast<py::ssize_t>(t.shape[i]);
    }
    return strides;
  }

  const std::unique_ptr<ModelView> view_;
};

}  // namespace

void RegisterModelView(py::module_& m) {
  py::class_<PyModelView>(m, "ModelView",
                          "Zero-copy, read-only NumPy views of a co-located "
                          "model (segments and host replica copies).")
      .def(py::init(&PyModelView::FromClient), py::arg("client"))
      .def_static("from_segments", &PyModelView::FromSegments, py::arg("paths"))
      .def("__getitem__", &PyModelView::Get, py::arg("name"))
      .def("copy", &PyModelView::Copy, py::arg("name"),
           py::arg("timeout") = 5.0)
      .def("freshness", &PyModelView::Freshness, py::arg("name"))
      .def("updates", &PyModelView::Updates, py::arg("name"))
      .def("keys", &PyModelView::Keys)
      .def("__contains__", &PyModelView::Contains)
      .def("__len__", [](const PyModelView& v) { return v.Keys().size(); })
      .def("__iter__",
           [](const PyModelView& v) { return py::iter(py::cast(v.Keys())); })
      .def_property_readonly("spec_hash", &PyModelView::spec_hash);
}

}  // namespace shardps::python
