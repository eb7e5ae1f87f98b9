// shardps.BatchQueue over shardps::BatchQueue.
//
// A consumer's batch is two read-only arrays straight over the queue's slot
// (base: the Python BatchQueue, so the mapping outlives them). The slot is
// given back to the producers when the next batch is taken, when an
// iteration ends (its iterator is exhausted or dropped), on release() and
// on close(): after that the arrays show whatever a producer writes next,
// so copy a batch you keep.
//
// Thread-safety: the C++ queue wants one object per thread; this wrapper
// serialises its calls with a mutex taken after the GIL is released.
#include "shardps/batch_queue.h"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "python/src/bindings.h"

namespace shardps::python {
namespace {

class PyBatchQueue {
 public:
  explicit PyBatchQueue(std::unique_ptr<BatchQueue> queue)
      : queue_(std::move(queue)) {}

  ~PyBatchQueue() {
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseLocked();
  }

  static std::unique_ptr<PyBatchQueue> Create(const std::string& path,
                                              uint32_t slots,
                                              uint64_t slot_bytes,
                                              uint32_t producers) {
    auto q = BatchQueue::Create(path, slots, slot_bytes, producers);
    ThrowIfError(q.status());
    return std::make_unique<PyBatchQueue>(std::move(q.value()));
  }

  static std::unique_ptr<PyBatchQueue> Open(const std::string& path) {
    auto q = BatchQueue::Open(path);
    ThrowIfError(q.status());
    return std::make_unique<PyBatchQueue>(std::move(q.value()));
  }

  // (features, labels), or None once the stream ended (kClosed).
  static py::object Next(const py::object& self, double timeout) {
    PyBatchQueue& q = self.cast<PyBatchQueue&>();
    const auto ms = ToMillis(timeout, "timeout");
    std::optional<Result<Batch>> batch;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(q.mu_);
      q.ReleaseLocked();
      batch.emplace(q.queue_->Next(ms));
      if (batch->ok()) q.held_ = batch->value();
    }
    if (!batch->ok()) {
      if (batch->status().code() == Code::kClosed) return py::none();
      Raise(batch->status());
    }
    const BatchShape& s = (*batch)->shape();
    py::array_t<float> features(
        {py::ssize_t{s.batch}, py::ssize_t{s.window}, py::ssize_t{s.features}},
        (*batch)->features(), self);
    py::array_t<float> labels({py::ssize_t{s.batch}, py::ssize_t{s.horizon}},
                              (*batch)->labels(), self);
    features.attr("setflags")(py::arg("write") = false);
    labels.attr("setflags")(py::arg("write") = false);
    return py::make_tuple(features, labels);
  }

  void Push(const py::object& features, const py::object& labels,
            double timeout) {
    py::array_t<float> f = AsFloat32(features, "features");
    py::array_t<float> l = AsFloat32(labels, "labels");
    if (f.ndim() != 3 || l.ndim() != 2 || f.shape(0) != l.shape(0)) {
      Raise(Status::SizeMismatch(
          "features must be [batch, window, features] and labels [batch, "
          "horizon] with the same batch; got " +
          ShapeText({f.shape(), f.shape() + f.ndim()}) + " and " +
          ShapeText({l.shape(), l.shape() + l.ndim()})));
    }
    BatchShape shape;
    shape.batch = static_cast<uint32_t>(f.shape(0));
    shape.window = static_cast<uint32_t>(f.shape(1));
    shape.features = static_cast<uint32_t>(f.shape(2));
    shape.horizon = static_cast<uint32_t>(l.shape(1));
    const auto ms = ToMillis(timeout, "timeout");
    const float* fp = f.data();
    const float* lp = l.data();
    Status status;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      status = queue_->Push(shape, fp, lp, ms);
    }
    ThrowIfError(status);
  }

  void Release() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseLocked();
  }

  void Close() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseLocked();
    queue_->Close();
  }

  void MarkEnd() {
    Status status;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      status = queue_->MarkEnd();
    }
    ThrowIfError(status);
  }

  py::dict Stats() const {
    QueueStats s;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      s = queue_->Stats();
    }
    py::dict d;
    d["slots"] = s.slots;
    d["slot_bytes"] = s.slot_bytes;
    d["produced"] = s.produced;
    d["consumed"] = s.consumed;
    d["skipped"] = s.skipped;
    d["refused"] = s.refused;
    d["queued"] = s.queued;
    d["producer_blocked_s"] = s.producer_blocked_s;
    d["consumer_starved_s"] = s.consumer_starved_s;
    d["closed"] = s.closed;
    d["producers"] = s.producers;
    d["ended_producers"] = s.ended_producers;
    return d;
  }

  bool closed() const { return queue_->closed(); }
  const std::string& path() const { return queue_->path(); }
  uint64_t slot_bytes() const { return queue_->slot_bytes(); }
  uint32_t slots() const { return queue_->slots(); }

 private:
  void ReleaseLocked() {
    if (held_) queue_->Release(*held_);
    held_.reset();
  }

  const std::unique_ptr<BatchQueue> queue_;
  mutable std::mutex mu_;      // serialises calls on queue_
  std::optional<Batch> held_;  // GUARDED_BY(mu_): the batch last returned
};

// for batch in queue: one pass; the held slot is released when it ends or
// the iterator is dropped (a `break` out of the loop).
class BatchIterator {
 public:
  BatchIterator(py::object queue, double timeout)
      : queue_(std::move(queue)), timeout_(timeout) {}
  ~BatchIterator() {
    if (!finished_) queue_.cast<PyBatchQueue&>().Release();
  }
  BatchIterator(const BatchIterator&) = delete;
  BatchIterator& operator=(const BatchIterator&) = delete;

  py::object Next() {
    if (finished_) throw py::stop_iteration();
    py::object batch = PyBatchQueue::Next(queue_, timeout_);
    if (batch.is_none()) {
      finished_ = true;
      throw py::stop_iteration();
    }
    return batch;
  }

 private:
  py::object queue_;
  const double timeout_;
  bool finished_ = false;
};

}  // namespace

void RegisterBatchQueue(py::module_& m) {
  py::class_<BatchIterator>(m, "_BatchIterator")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &BatchIterator::Next);

  py::class_<PyBatchQueue>(m, "BatchQueue",
                           "A bounded queue of mini-batches in shared memory.")
      .def_static("create", &PyBatchQueue::Create, py::arg("path"),
                  py::arg("slots"), py::arg("slot_bytes"),
                  py::arg("producers") = 0u)
      .def_static("open", &PyBatchQueue::Open, py::arg("path"))
      .def("next", &PyBatchQueue::Next, py::arg("timeout") = 30.0)
      .def("__iter__",
           [](py::object self) {
             return std::make_unique<BatchIterator>(std::move(self), 30.0);
           })
      .def(
          "batches",
          [](py::object self, double timeout) {
            return std::make_unique<BatchIterator>(std::move(self), timeout);
          },
          py::arg("timeout") = 30.0)
      .def("push", &PyBatchQueue::Push, py::arg("features"), py::arg("labels"),
           py::arg("timeout") = 30.0)
      .def("release", &PyBatchQueue::Release)
      .def("close", &PyBatchQueue::Close)
      .def("mark_end", &PyBatchQueue::MarkEnd)
      .def("stats", &PyBatchQueue::Stats)
      .def_property_readonly("closed", &PyBatchQueue::closed)
      .def_property_readonly("path", &PyBatchQueue::path)
      .def_property_readonly("slots", &PyBatchQueue::slots)
      .def_property_readonly("slot_bytes", &PyBatchQueue::slot_bytes);
}

}  // namespace shardps::python
