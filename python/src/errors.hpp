// Internal to the Python module: agp_ptp.Error (agp_ptp/_errors.py) raised from C++ with the
// library's code and name, shared by the module's source files.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "agp/status.hpp"

namespace agp_py {

namespace py = pybind11;

// agp_ptp.Error, looked up at import; raised with (message, code, name).
inline PyObject* g_error = nullptr;

[[noreturn]] inline void raise(const agp::Status& s) {
  py::object err = py::reinterpret_borrow<py::object>(g_error);
  py::object e =
      err(s.message(), static_cast<int>(s.code()), std::string(agp::error_code_name(s.code())));
  PyErr_SetObject(g_error, e.ptr());
  throw py::error_already_set();
}

template <typename T>
T check(agp::Result<T> r) {
  if (!r) raise(r.status());
  return std::move(r).value();
}

inline void check(const agp::Status& s) {
  if (!s) raise(s);
}

[[noreturn]] inline void invalid(const std::string& why) {
  raise(agp::Status(agp::ErrorCode::kInvalidArgument, why));
}

// Adds agp_ptp.Index and read_vectors (index_module.cpp).
void bind_index(py::module_& m);

}  // namespace agp_py
