// Internal to the Python module: a host's tensor seen in place, through DLPack (PyTorch, MLX,
// NumPy, JAX: any object with __dlpack__) or the buffer protocol, and agp_ptp.Tensor, the array
// the module returns when NumPy has no type for it (bfloat16).
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agp/codec/tensor_view.hpp"
#include "agp/ptp/message.hpp"

struct DLManagedTensor;

namespace agp_py {

namespace py = pybind11;

// A tensor's memory as a TensorView, kept alive (and the producer told when it is no longer used)
// for as long as this lives. Destroy it with the GIL held.
class HeldTensor {
 public:
  HeldTensor() = default;
  HeldTensor(HeldTensor&& other) noexcept;
  HeldTensor& operator=(HeldTensor&& other) noexcept;
  HeldTensor(const HeldTensor&) = delete;
  HeldTensor& operator=(const HeldTensor&) = delete;
  ~HeldTensor();

  agp::codec::TensorView view;
  bool via_dlpack = false;

  // Whether the view is C-contiguous (raw packets carry the bytes as they lie).
  bool contiguous() const;
  // Points the view at a C-contiguous copy this object owns (for raw packets of strided views).
  void make_contiguous();

 private:
  friend HeldTensor hold_tensor(const py::object&, int, const std::string&, bool);
  std::optional<py::buffer_info> buffer_;
  DLManagedTensor* managed_ = nullptr;
  std::vector<std::byte> copy_;  // make_contiguous()
};

// Copies the values of `from` into `to` (same shape; any dtypes and strides; exact between equal
// dtypes, rounded to nearest even when narrowing). Runs without the GIL.
void copy_values(const agp::codec::TensorView& from, const agp::codec::TensorView& to);

// Reads `obj` in place: through __dlpack__ when it has one and lives in CPU memory, else through
// the buffer protocol. float16, float32 and bfloat16 (DLPack's own type, or uint16 holding
// bfloat16 patterns with dtype="bfloat16"), any strides, 1..8 dimensions; vectors along
// vector_axis (negative counts from the end). agp_ptp.Error (invalid_argument) otherwise.
HeldTensor hold_tensor(const py::object& obj, int vector_axis, const std::string& dtype,
                       bool writable);

// A new array of the packet's shape for receivers that pass no buffer: NumPy for float16 and
// float32, agp_ptp.Tensor for bfloat16. dtype "" means the packet's own.
py::object new_array_for(const agp::ptp::MessageHeader& header, const std::string& dtype);

// Adds agp_ptp.Tensor and _tensor_address (tests: proves a tensor is read in place).
void bind_tensors(py::module_& m);

}  // namespace agp_py
