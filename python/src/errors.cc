// shardps.Error and one subclass per shardps::Code. Each subclass also
// derives from the builtin exception a Python caller would naturally catch
// (TimeoutError from builtins.TimeoutError, NotFoundError from LookupError,
// ...), so `except TimeoutError` and `except shardps.Error` both work.
#include <cmath>
#include <string>

#include "python/src/bindings.h"

namespace shardps::python {
namespace {

struct ErrorClass {
  Code code;
  const char* name;       // Python class name
  const char* code_name;  // value of the class attribute `code`
  PyObject* builtin;      // second base, or nullptr
  const char* doc;
};

// Index = Code value (kOk unused). Filled by RegisterErrors; the classes
// live as long as the module (the module holds a reference to each).
PyObject* g_base = nullptr;
PyObject* g_classes[static_cast<int>(kLastCode) + 1] = {};

}  // namespace

void RegisterErrors(py::module_& m) {
  const ErrorClass classes[] = {
      {Code::kInvalidArgument, "InvalidArgumentError", "kInvalidArgument",
       PyExc_ValueError, "A bad argument, option, dtype or request field."},
      {Code::kNotFound, "NotFoundError", "kNotFound", PyExc_LookupError,
       "Unknown tensor, table, queue, file or shard."},
      {Code::kSizeMismatch, "SizeMismatchError", "kSizeMismatch",
       PyExc_ValueError,
       "An array's size or shape does not match the model spec."},
      {Code::kSpecMismatch, "SpecMismatchError", "kSpecMismatch", nullptr,
       "Servers or segments of a different model spec."},
      {Code::kTimeout, "TimeoutError", "kTimeout", PyExc_TimeoutError,
       "A deadline passed; the operation may still happen."},
      {Code::kUnavailable, "UnavailableError", "kUnavailable",
       PyExc_ConnectionError,
       "A server is gone or not connected, or the client is closed."},
      {Code::kCorrupt, "CorruptError", "kCorrupt", nullptr,
       "A segment or file failed its integrity checks."},
      {Code::kBusy, "BusyError", "kBusy", nullptr,
       "A resource is held by someone else (worker index, segment, file)."},
      {Code::kIoError, "IoError", "kIoError", PyExc_OSError,
       "An operating-system call failed."},
      {Code::kUnimplemented, "UnimplementedError", "kUnimplemented",
       PyExc_NotImplementedError, "Known to the protocol but not served."},
      {Code::kBadMessage, "BadMessageError", "kBadMessage", nullptr,
       "A malformed wire message."},
      {Code::kInternal, "InternalError", "kInternal", nullptr,
       "A shardps bug; please report it."},
      {Code::kClosed, "ClosedError", "kClosed", nullptr,
       "The queue was closed; nothing more will come."},
      {Code::kResourceExhausted, "ResourceExhaustedError", "kResourceExhausted",
       nullptr, "A bounded resource is full (table rows)."},
      {Code::kPermissionDenied, "PermissionDeniedError", "kPermissionDenied",
       PyExc_PermissionError,
       "Unsafe file owner or mode, or a revoked CURVE key."},
  };

  g_base = PyErr_NewExceptionWithDoc(
      "shardps.Error",
      "Base of every shardps error. `code` names the shardps::Code "
      "(e.g. \"kTimeout\"); str(e) is the message (the server's, for "
      "errors a server reported).",
      PyExc_Exception, nullptr);
  if (g_base == nullptr) throw py::error_already_set();
  py::handle base(g_base);
  base.attr("code") = py::str("");
  m.add_object("Error", base);

  for (const ErrorClass& c : classes) {
    py::tuple bases = c.builtin ? py::make_tuple(base, py::handle(c.builtin))
                                : py::make_tuple(base);
    std::string qualified = std::string("shardps.") + c.name;
    PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), c.doc,
                                              bases.ptr(), nullptr);
    if (cls == nullptr) throw py::error_already_set();
    py::handle(cls).attr("code") = py::str(c.code_name);
    g_classes[static_cast<int>(c.code)] = cls;
    m.add_object(c.name, py::handle(cls));
  }
}

void Raise(const Status& status) {
  const int code = static_cast<int>(status.code());
  PyObject* cls = (code > 0 && code <= static_cast<int>(kLastCode))
                      ? g_classes[code]
                      : nullptr;
  if (cls == nullptr) cls = g_classes[static_cast<int>(Code::kInternal)];
  PyErr_SetString(cls, status.message().c_str());
  throw py::error_already_set();
}

std::chrono::milliseconds ToMillis(double seconds, const char* what) {
  if (std::isnan(seconds) || seconds < 0) {
    Raise(Status::InvalidArgument(std::string(what) +
                                  " must be a number of seconds >= 0"));
  }
  // Cap at a year: a larger value means "very long", not an overflow.
  const double ms = std::min(seconds * 1000.0, 365.0 * 86400.0 * 1000.0);
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(ms)));
}

std::string ShapeText(const std::vector<py::ssize_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1) text += ",";
  return text + ")";
}

py::array_t<float> AsFloat32(const py::handle& obj, const std::string& what) {
  py::array arr;
  if (py::isinstance<py::array>(obj)) {
    arr = py::reinterpret_borrow<py::array>(obj);
  } else {
    // Lists, buffers, scalars: NumPy decides the dtype, checked below.
    arr = py::array::ensure(obj);
    if (!arr) {
      PyErr_Clear();
      Raise(Status::InvalidArgument(what + " must be a NumPy array"));
    }
  }
  const char kind = arr.dtype().kind();
  if (kind != 'f') {
    Raise(Status::InvalidArgument(
        what + " has dtype " + py::str(arr.dtype()).cast<std::string>() +
        "; shardps takes float arrays (float32 zero-copy; float16/float64 "
        "are converted)"));
  }
  // A no-op (same object) for a C-contiguous, aligned float32 array.
  return py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(
      arr);
}

}  // namespace shardps::python
