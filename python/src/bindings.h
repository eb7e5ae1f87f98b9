// Shared by the files of the extension shardps._shardps: the registration
// function of each part and the Status -> exception conversion.
//
// Every function here needs the GIL, except where it says otherwise.
#ifndef SHARDPS_PYTHON_BINDINGS_H_
#define SHARDPS_PYTHON_BINDINGS_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace shardps::python {

namespace py = pybind11;

// Each adds its classes and functions to `m`; RegisterErrors first (the
// others raise its exceptions).
void RegisterErrors(py::module_& m);
void RegisterClient(py::module_& m);
void RegisterModelView(py::module_& m);
void RegisterBatchQueue(py::module_& m);

// Raises the exception class of `status.code()` (shardps.TimeoutError, ...)
// with status.message() as its text. REQUIRES: !status.ok(). Never returns:
// throws py::error_already_set, which pybind11 hands back to Python.
[[noreturn]] void Raise(const Status& status);
// Raise(status) when it is not OK.
inline void ThrowIfError(const Status& status) {
  if (!status.ok()) Raise(status);
}

// A Python timeout in seconds as a C++ duration; negative or NaN is
// refused (InvalidArgumentError).
std::chrono::milliseconds ToMillis(double seconds, const char* what);

// `obj` as a C-contiguous float32 array: the same object when it already
// is one (zero-copy), else a converted copy of a float array (float16,
// float64, non-contiguous float32). Integer, bool, complex and object
// arrays are refused with InvalidArgumentError naming `what`: a silent
// conversion of ids or labels into gradients is almost always a bug.
py::array_t<float> AsFloat32(const py::handle& obj, const std::string& what);

// "(2, 3)"-style text of a shape, for messages.
std::string ShapeText(const std::vector<py::ssize_t>& shape);

}  // namespace shardps::python

#endif  // SHARDPS_PYTHON_BINDINGS_H_
