// Tensors in place: DLPack (the legacy "dltensor" capsule, which PyTorch, NumPy, MLX and JAX all
// export) or the buffer protocol; agp_ptp.Tensor for results NumPy cannot hold (bfloat16).
#include "tensors.hpp"

#include <dlpack/dlpack.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <utility>
#include <vector>

#include "agp/ptp/aligned_buffer.hpp"
#include "errors.hpp"

namespace agp_py {

using agp::DType;

namespace {

const char* py_dtype_name(DType d) {  // NumPy's names
  switch (d) {
    case DType::kF16:
      return "float16";
    case DType::kF32:
      return "float32";
    default:
      return "bfloat16";
  }
}

// The element type a caller's dtype="..." asks for, checked against what the memory holds
// (`own`, or kBF16 for 16-bit unsigned integers that may hold bfloat16 patterns).
DType resolve_dtype(std::optional<DType> own, bool uint16, const std::string& override_name,
                    const std::string& what) {
  if (!override_name.empty()) {
    if (override_name != "float16" && override_name != "float32" && override_name != "bfloat16") {
      invalid("dtype must be 'float16', 'float32' or 'bfloat16', got '" + override_name + "'");
    }
    if (override_name == "bfloat16" && uint16) return DType::kBF16;
    if (!own || py_dtype_name(*own) != override_name) {
      invalid("dtype='" + override_name + "' does not match the tensor's " + what);
    }
    return *own;
  }
  if (!own) {
    invalid("the tensor holds " + what +
            "; pass float16, float32 or bfloat16 (or uint16 with dtype='bfloat16')");
  }
  return *own;
}

void check_rank_and_axis(std::size_t rank, int& vector_axis) {
  if (rank < 1 || rank > 8)
    invalid("tensors must have 1..8 dimensions, got " + std::to_string(rank));
  const auto r = static_cast<int>(rank);
  if (vector_axis < -r || vector_axis >= r) {
    invalid("vector_axis " + std::to_string(vector_axis) + " is outside " + std::to_string(r) +
            " dimensions");
  }
  if (vector_axis < 0) vector_axis += r;
}

void check_aligned(const void* p, DType d) {
  if (reinterpret_cast<std::uintptr_t>(p) % agp::dtype_size(d) != 0) {
    invalid("the tensor's memory is not aligned to its element size");
  }
}

// An output whose elements share memory (a zero stride, as torch's expand makes) would take
// several decoded values in one place: refused.
void check_no_overlap(const agp::codec::TensorView& v) {
  for (std::size_t a = 0; a < v.shape.size(); ++a) {
    if (v.shape[a] > 1 && v.strides[a] == 0) {
      invalid("out has elements that share memory (stride 0 along axis " + std::to_string(a) +
              ", as from expand or broadcast_to): decode into a tensor of its own");
    }
  }
}

// --- DLPack

// Devices whose memory this process can read and write directly.
bool host_addressable(int device_type) {
  return device_type == kDLCPU || device_type == kDLCUDAHost || device_type == kDLROCMHost;
}

std::string dl_type_text(const DLDataType& t) {
  std::string s = t.code == kDLFloat    ? "float"
                  : t.code == kDLBfloat ? "bfloat"
                  : t.code == kDLInt    ? "int"
                  : t.code == kDLUInt   ? "uint"
                                        : "type-" + std::to_string(t.code) + "/";
  s += std::to_string(t.bits);
  if (t.lanes != 1) s += "x" + std::to_string(t.lanes);
  return s + " elements";
}

std::optional<DType> dtype_of_dl(const DLDataType& t) {
  if (t.lanes != 1) return std::nullopt;
  if (t.code == kDLFloat && t.bits == 16) return DType::kF16;
  if (t.code == kDLFloat && t.bits == 32) return DType::kF32;
  if (t.code == kDLBfloat && t.bits == 16) return DType::kBF16;
  return std::nullopt;
}

// --- agp_ptp.Tensor

// An array the module made (bfloat16 results): owns its memory, exports it through DLPack
// (torch.from_dlpack gives a bfloat16 tensor without a copy) and the buffer protocol (bfloat16 as
// its uint16 patterns, float16/float32 as themselves).
struct Tensor {
  agp::ptp::AlignedBuffer memory;
  DType dtype = DType::kBF16;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;  // elements, C order
  int exports = 0;                    // DLPack capsules handed out and not yet released

  Tensor(DType d, const std::vector<std::uint64_t>& dims) : dtype(d) {
    std::uint64_t n = 1;
    for (auto x : dims) {
      shape.push_back(static_cast<std::int64_t>(x));
      n *= x;
    }
    strides.assign(shape.size(), 1);
    for (std::size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
    memory = agp::ptp::AlignedBuffer(static_cast<std::size_t>(n) * agp::dtype_size(d));
    if (memory.size()) std::memset(memory.data(), 0, memory.size());
  }
};

// What a capsule's DLManagedTensor carries: the Tensor kept alive, and shape/strides storage.
struct ExportContext {
  py::object owner;
  std::vector<std::int64_t> shape, strides;
};

void release_export(DLManagedTensor* m) {
  if (!m) return;
  py::gil_scoped_acquire gil;
  auto* ctx = static_cast<ExportContext*>(m->manager_ctx);
  if (ctx) {
    ctx->owner.cast<Tensor&>().exports -= 1;
    delete ctx;
  }
  delete m;
}

void capsule_destructor(PyObject* capsule) {
  // A consumer renames the capsule ("used_dltensor") and calls the deleter itself.
  if (PyCapsule_IsValid(capsule, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  }
}

py::capsule export_dlpack(py::object self, const py::object& stream) {
  int overflow = 0;
  if (!stream.is_none() && !(PyLong_Check(stream.ptr()) &&
                             PyLong_AsLongLongAndOverflow(stream.ptr(), &overflow) == -1 &&
                             overflow == 0)) {
    PyErr_Clear();
    invalid("agp_ptp.Tensor lives in host memory: __dlpack__ takes no stream");
  }
  Tensor& t = self.cast<Tensor&>();
  auto* ctx = new ExportContext{self, t.shape, t.strides};
  auto* m = new DLManagedTensor{};
  m->dl_tensor.data = t.memory.data();
  m->dl_tensor.device = DLDevice{kDLCPU, 0};
  m->dl_tensor.ndim = static_cast<std::int32_t>(t.shape.size());
  m->dl_tensor.dtype = t.dtype == DType::kBF16  ? DLDataType{kDLBfloat, 16, 1}
                       : t.dtype == DType::kF16 ? DLDataType{kDLFloat, 16, 1}
                                                : DLDataType{kDLFloat, 32, 1};
  m->dl_tensor.shape = ctx->shape.data();
  m->dl_tensor.strides = ctx->strides.data();
  m->dl_tensor.byte_offset = 0;
  m->manager_ctx = ctx;
  m->deleter = release_export;
  t.exports += 1;
  PyObject* cap = PyCapsule_New(m, "dltensor", capsule_destructor);
  if (!cap) {
    release_export(m);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(cap);
}

}  // namespace

// --- HeldTensor

bool HeldTensor::contiguous() const {
  std::int64_t expect = 1;
  for (std::size_t a = view.shape.size(); a-- > 0;) {
    if (view.shape[a] != 1 && view.strides[a] != expect) return false;
    expect *= static_cast<std::int64_t>(view.shape[a]);
  }
  return true;
}

void HeldTensor::make_contiguous() {
  if (contiguous()) return;
  std::uint64_t n = agp::dtype_size(view.dtype);
  for (auto d : view.shape) n *= d;
  copy_.assign(static_cast<std::size_t>(n), std::byte{0});
  const auto to =
      agp::codec::TensorView::contiguous(copy_.data(), view.dtype, view.shape, view.vector_axis);
  {
    py::gil_scoped_release unlocked;
    copy_values(view, to);
  }
  view = to;
}

void copy_values(const agp::codec::TensorView& from, const agp::codec::TensorView& to) {
  agp::codec::TensorView a = from, b = to;
  a.vector_axis = b.vector_axis = static_cast<std::uint32_t>(from.shape.size() - 1);
  const agp::codec::VectorAccess src(a), dst(b);
  constexpr std::uint64_t kBatch = 256;
  std::vector<float> values(static_cast<std::size_t>(kBatch * src.dim()));
  for (std::uint64_t first = 0; first < src.count(); first += kBatch) {
    const std::uint64_t n = std::min(kBatch, src.count() - first);
    src.gather(first, n, values.data());
    dst.scatter(first, n, values.data());
  }
}

HeldTensor::HeldTensor(HeldTensor&& o) noexcept
    : view(std::move(o.view)),
      via_dlpack(o.via_dlpack),
      buffer_(std::move(o.buffer_)),
      managed_(std::exchange(o.managed_, nullptr)) {
  o.buffer_.reset();
}

HeldTensor& HeldTensor::operator=(HeldTensor&& o) noexcept {
  if (this != &o) {
    if (managed_ && managed_->deleter) managed_->deleter(managed_);
    view = std::move(o.view);
    via_dlpack = o.via_dlpack;
    buffer_ = std::move(o.buffer_);
    o.buffer_.reset();
    managed_ = std::exchange(o.managed_, nullptr);
  }
  return *this;
}

HeldTensor::~HeldTensor() {
  if (managed_ && managed_->deleter) managed_->deleter(managed_);
}

HeldTensor hold_tensor(const py::object& obj, int vector_axis, const std::string& dtype,
                       bool writable) {
  HeldTensor h;
  const bool has_buffer = PyObject_CheckBuffer(obj.ptr()) != 0;
  if (py::hasattr(obj, "__dlpack__")) {
    py::object cap;
    try {
      cap = obj.attr("__dlpack__")();
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_Exception)) throw;  // KeyboardInterrupt, SystemExit: not ours to eat
      // NumPy refuses read-only arrays, PyTorch tensors that need a gradient: the buffer
      // protocol may still serve; otherwise the producer's own reason is the error.
      if (!has_buffer) {
        invalid("the tensor cannot be exported through DLPack: " +
                py::str(e.value()).cast<std::string>());
      }
    }
    if (cap) {
      if (!PyCapsule_IsValid(cap.ptr(), "dltensor")) {
        invalid("__dlpack__ returned something other than a DLPack tensor capsule");
      }
      auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
      PyCapsule_SetName(cap.ptr(), "used_dltensor");  // ours now: we call its deleter
      h.managed_ = m;
      h.via_dlpack = true;
      const DLTensor& t = m->dl_tensor;
      if (!host_addressable(t.device.device_type)) {
        // On a device (a GPU's memory): the buffer protocol may still reach it in host memory
        // (MLX on unified memory), else the caller must copy it over.
        if (has_buffer) {
          h = HeldTensor();  // hands the capsule back
        } else {
          invalid("the tensor lives on a device (DLPack device type " +
                  std::to_string(t.device.device_type) + "); copy it to host memory first");
        }
      }
    }
    if (h.via_dlpack) {
      const DLTensor& t = h.managed_->dl_tensor;
      check_rank_and_axis(static_cast<std::size_t>(t.ndim), vector_axis);
      const bool u16 = t.dtype.code == kDLUInt && t.dtype.bits == 16 && t.dtype.lanes == 1;
      h.view.dtype = resolve_dtype(dtype_of_dl(t.dtype), u16, dtype, dl_type_text(t.dtype));
      h.view.data = static_cast<std::byte*>(t.data) + t.byte_offset;
      h.view.vector_axis = static_cast<std::uint32_t>(vector_axis);
      std::int64_t compact = 1;
      std::vector<std::int64_t> strides(static_cast<std::size_t>(t.ndim));
      for (int a = t.ndim; a-- > 0;) {  // no strides: compact, C order
        strides[static_cast<std::size_t>(a)] = t.strides ? t.strides[a] : compact;
        compact *= t.shape[a];
      }
      for (int a = 0; a < t.ndim; ++a) {
        if (t.shape[a] < 0) invalid("the tensor's DLPack shape has a negative extent");
        h.view.shape.push_back(static_cast<std::uint64_t>(t.shape[a]));
      }
      h.view.strides = std::move(strides);
      check_aligned(h.view.data, h.view.dtype);
      if (writable) check_no_overlap(h.view);
      check(h.view.validate());
      return h;
    }
  }
  if (!has_buffer) {
    invalid(
        "expected a tensor with __dlpack__ or the buffer protocol (PyTorch, MLX, NumPy, "
        "bytes-like), got " +
        py::str(py::type::of(obj)).cast<std::string>());
  }
  try {
    h.buffer_ = py::reinterpret_borrow<py::buffer>(obj).request(writable);
  } catch (py::error_already_set&) {
    invalid(writable ? "out must be a writable buffer (this one is read-only)"
                     : "the object does not export its memory as a buffer");
  }
  const py::buffer_info& i = *h.buffer_;
  check_rank_and_axis(static_cast<std::size_t>(i.ndim), vector_axis);
  std::string f = i.format;
  if (!f.empty() && (f[0] == '<' || f[0] == '=' || f[0] == '@')) f = f.substr(1);
  const std::optional<DType> own = f == "e"   ? std::optional<DType>(DType::kF16)
                                   : f == "f" ? std::optional<DType>(DType::kF32)
                                              : std::nullopt;
  h.view.dtype = resolve_dtype(own, f == "H", dtype, "'" + i.format + "' elements");
  h.view.data = static_cast<std::byte*>(i.ptr);
  h.view.vector_axis = static_cast<std::uint32_t>(vector_axis);
  for (py::ssize_t a = 0; a < i.ndim; ++a) {
    const auto stride = static_cast<std::int64_t>(i.strides[static_cast<std::size_t>(a)]);
    if (stride % i.itemsize != 0) invalid("strides must be whole elements");
    h.view.shape.push_back(static_cast<std::uint64_t>(i.shape[static_cast<std::size_t>(a)]));
    h.view.strides.push_back(stride / i.itemsize);
  }
  check_aligned(h.view.data, h.view.dtype);
  if (writable) check_no_overlap(h.view);
  check(h.view.validate());
  return h;
}

py::object new_array_for(const agp::ptp::MessageHeader& header, const std::string& dtype) {
  if (!header.tensor) invalid("not a tensor packet");
  const DType own = header.tensor->dtype;
  const std::string name = dtype.empty() ? py_dtype_name(own) : dtype;
  if (name == "bfloat16") {
    return py::cast(Tensor(DType::kBF16, header.tensor->shape));
  }
  if (name != "float16" && name != "float32") {
    invalid("dtype must be 'float16', 'float32' or 'bfloat16', got '" + name + "'");
  }
  std::vector<py::ssize_t> shape(header.tensor->shape.begin(), header.tensor->shape.end());
  return py::array(py::dtype(name), shape);
}

void bind_tensors(py::module_& m) {
  py::class_<Tensor>(m, "Tensor", py::buffer_protocol(),
                     "An array decoded by agp_ptp that NumPy has no type for (bfloat16). Hand it "
                     "to PyTorch or MLX without a copy: torch.from_dlpack(t); np.asarray(t) shows "
                     "bfloat16 as its uint16 bit patterns.")
      .def_property_readonly("dtype",
                             [](const Tensor& t) -> std::string { return py_dtype_name(t.dtype); })
      .def_property_readonly("shape", [](const Tensor& t) { return py::tuple(py::cast(t.shape)); })
      .def_property_readonly("nbytes", [](const Tensor& t) { return t.memory.size(); })
      .def("__dlpack__", &export_dlpack, py::arg("stream") = py::none(),
           "A DLPack capsule of this memory (host, C order); the Tensor lives as long as it is "
           "used.")
      .def("__dlpack_device__", [](const Tensor&) { return py::make_tuple(int{kDLCPU}, 0); })
      .def_buffer([](Tensor& t) {
        const auto item = static_cast<py::ssize_t>(agp::dtype_size(t.dtype));
        std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
        std::vector<py::ssize_t> strides;
        for (auto s : t.strides) strides.push_back(static_cast<py::ssize_t>(s) * item);
        const char* format = t.dtype == DType::kF32 ? "f" : t.dtype == DType::kF16 ? "e" : "H";
        return py::buffer_info(t.memory.data(), item, format,
                               static_cast<py::ssize_t>(shape.size()), shape, strides);
      })
      .def("__repr__", [](const Tensor& t) {
        std::string s;
        for (auto d : t.shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
        return "agp_ptp.Tensor(shape=(" + s + "), dtype=" + py_dtype_name(t.dtype) + ")";
      });

  m.def(
      "_tensor_address",
      [](const py::object& obj, bool writable, const std::string& dtype) {
        HeldTensor h = hold_tensor(obj, -1, dtype, writable);
        return py::make_tuple(reinterpret_cast<std::uintptr_t>(h.view.data), h.via_dlpack);
      },
      py::arg("tensor"), py::arg("writable") = false, py::arg("dtype") = "",
      "Tests: the address the module reads `tensor` at, and whether through DLPack.");
}

}  // namespace agp_py
