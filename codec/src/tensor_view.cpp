#include "agp/codec/tensor_view.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "simd_kernels.hpp"

namespace agp::codec {
namespace {

inline float load(const std::byte* base, std::int64_t i, DType t) {
  switch (t) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, base + i * 4, 4);
      return f;
    }
    case DType::kF16: {
      std::uint16_t h;
      std::memcpy(&h, base + i * 2, 2);
      return f16_to_f32(h);
    }
    default: {
      std::uint16_t b;
      std::memcpy(&b, base + i * 2, 2);
      return bf16_to_f32(b);
    }
  }
}

inline void store(std::byte* base, std::int64_t i, DType t, float f) {
  switch (t) {
    case DType::kF32:
      std::memcpy(base + i * 4, &f, 4);
      return;
    case DType::kF16: {
      const std::uint16_t h = f32_to_f16(f);
      std::memcpy(base + i * 2, &h, 2);
      return;
    }
    default: {
      const std::uint16_t b = f32_to_bf16(f);
      std::memcpy(base + i * 2, &b, 2);
      return;
    }
  }
}

}  // namespace

TensorView TensorView::contiguous(const void* data, DType dtype, std::vector<std::uint64_t> shape,
                                  std::uint32_t vector_axis) {
  TensorView v;
  v.data = static_cast<std::byte*>(const_cast<void*>(data));
  v.dtype = dtype;
  v.strides.assign(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) {
    v.strides[i - 1] = v.strides[i] * static_cast<std::int64_t>(shape[i]);
  }
  v.shape = std::move(shape);
  v.vector_axis = vector_axis;
  return v;
}

Status TensorView::validate() const {
  if (!is_float_dtype(dtype)) {
    return make_error(ErrorCode::kInvalidArgument, "tensor dtype must be f32, f16 or bf16, got " +
                                                       std::string(dtype_name(dtype)));
  }
  if (shape.empty() || shape.size() > 8 || strides.size() != shape.size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tensor rank must be 1..8 with one stride per axis (rank " +
                          std::to_string(shape.size()) + ", " + std::to_string(strides.size()) +
                          " strides)");
  }
  if (vector_axis >= shape.size()) {
    return make_error(ErrorCode::kInvalidArgument, "vector axis " + std::to_string(vector_axis) +
                                                       " is not below rank " +
                                                       std::to_string(shape.size()));
  }
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 || shape[i] > (std::uint64_t{1} << 40) ||
        count > (std::uint64_t{1} << 62) / shape[i]) {
      return make_error(ErrorCode::kInvalidArgument,
                        "tensor shape has a zero or too large dimension");
    }
    count *= shape[i];
  }
  if (shape[vector_axis] > (std::uint64_t{1} << 24)) {
    return make_error(ErrorCode::kInvalidArgument, "vector length above 2^24 values");
  }
  if (data == nullptr) return make_error(ErrorCode::kInvalidArgument, "tensor data is null");
  return {};
}

std::uint64_t TensorView::vector_count() const {
  std::uint64_t n = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != vector_axis) n *= shape[i];
  }
  return n;
}

VectorAccess::VectorAccess(const TensorView& view)
    : view_(&view),
      dim_(view.dim()),
      count_(view.vector_count()),
      elem_stride_(view.strides[view.vector_axis]) {
  for (std::size_t i = 0; i < view.shape.size(); ++i) {
    if (i == view.vector_axis || view.shape[i] == 1) continue;  // unit axes do not move
    outer_shape_.push_back(view.shape[i]);
    outer_strides_.push_back(view.strides[i]);
  }
}

std::int64_t VectorAccess::offset_of(std::uint64_t v) const {
  std::int64_t off = 0;
  for (std::size_t i = outer_shape_.size(); i-- > 0;) {
    off += static_cast<std::int64_t>(v % outer_shape_[i]) * outer_strides_[i];
    v /= outer_shape_[i];
  }
  return off;
}

// Visits vectors [first, first + n) as (element offset in the tensor, index into the vector-major
// buffer) pairs. When vectors lie side by side with unit stride (channels-first), a run of them is
// visited value row by value row, so memory is touched sequentially.
template <typename Visit>
void VectorAccess::for_each_value(std::uint64_t first, std::uint64_t n, Visit&& visit) const {
  const bool interleaved = !outer_shape_.empty() && outer_strides_.back() == 1 && elem_stride_ != 1;
  std::uint64_t k = 0;
  while (k < n) {
    const std::uint64_t vec = first + k;
    const std::int64_t base = offset_of(vec);
    if (interleaved) {
      const std::uint64_t inner = outer_shape_.back();
      const std::uint64_t run =
          std::min<std::uint64_t>({n - k, inner - vec % inner, std::uint64_t{64}});
      for (std::uint32_t j = 0; j < dim_; ++j) {
        const std::int64_t row = base + static_cast<std::int64_t>(j) * elem_stride_;
        for (std::uint64_t t = 0; t < run; ++t) {
          visit(row + static_cast<std::int64_t>(t), (k + t) * dim_ + j);
        }
      }
      k += run;
    } else {
      for (std::uint32_t j = 0; j < dim_; ++j) {
        visit(base + static_cast<std::int64_t>(j) * elem_stride_, k * dim_ + j);
      }
      ++k;
    }
  }
}

void VectorAccess::gather(std::uint64_t first, std::uint64_t n, float* out) const {
  const TensorView& v = *view_;
  for_each_value(first, n,
                 [&](std::int64_t at, std::uint64_t i) { out[i] = load(v.data, at, v.dtype); });
}

void VectorAccess::scatter(std::uint64_t first, std::uint64_t n, const float* in) const {
  const TensorView& v = *view_;
  for_each_value(first, n,
                 [&](std::int64_t at, std::uint64_t i) { store(v.data, at, v.dtype, in[i]); });
}

bool VectorAccess::full_interleaved_tile(std::uint64_t first, std::size_t n) const {
  if (n != simd::kTileLanes || outer_shape_.empty() || outer_strides_.back() != 1 ||
      elem_stride_ == 1) {
    return false;
  }
  const std::uint64_t inner = outer_shape_.back();
  return inner - first % inner >= simd::kTileLanes;
}

std::optional<std::ptrdiff_t> VectorAccess::even_rows(std::uint64_t first, std::size_t n) const {
  constexpr std::size_t K = simd::kTileLanes;
  if (n != K || elem_stride_ != 1 || dim_ < 4) return std::nullopt;
  const std::int64_t base = offset_of(first);
  const std::int64_t step = offset_of(first + 1) - base;
  for (std::size_t t = 2; t < K; ++t) {
    if (offset_of(first + t) != base + static_cast<std::int64_t>(t) * step) return std::nullopt;
  }
  return static_cast<std::ptrdiff_t>(step);
}

std::optional<VectorAccess::LaneRows> VectorAccess::lane_rows(std::uint64_t first,
                                                              std::size_t n) const {
  const TensorView& v = *view_;
  if (!full_interleaved_tile(first, n) || v.dtype == DType::kBF16) return std::nullopt;
  return LaneRows{v.data + offset_of(first) * static_cast<std::int64_t>(dtype_size(v.dtype)),
                  elem_stride_, v.dtype == DType::kF16};
}

void VectorAccess::gather_lanes(std::uint64_t first, std::size_t n, float* x) const {
  constexpr std::size_t K = simd::kTileLanes;
  const TensorView& v = *view_;
  if (v.dtype == DType::kBF16 && full_interleaved_tile(first, n)) {
    // 16 vectors side by side (channels-first bf16): each value row is 16 contiguous elements.
    const auto* p = reinterpret_cast<const std::uint16_t*>(v.data) + offset_of(first);
    for (std::uint32_t j = 0; j < dim_; ++j) {
      const std::uint16_t* r = p + static_cast<std::int64_t>(j) * elem_stride_;
      for (std::size_t t = 0; t < K; ++t) x[j * K + t] = bf16_to_f32(r[t]);
    }
    return;
  }
  if (const auto rows = even_rows(first, n); rows && v.dtype != DType::kBF16) {
    // 16 row-major vectors a constant distance apart: transposed into the tile in registers.
    simd::transpose_to_f32(v.data + offset_of(first) * static_cast<std::int64_t>(dtype_size(v.dtype)),
                           v.dtype == DType::kF16, K, dim_, *rows, x, K);
    return;
  }
  thread_local std::vector<float> row;
  row.resize(dim_);
  for (std::size_t t = 0; t < K; ++t) {
    if (t >= n) {
      for (std::uint32_t j = 0; j < dim_; ++j) x[j * K + t] = 0.0f;
      continue;
    }
    const std::int64_t base = offset_of(first + t);
    if (elem_stride_ == 1 && v.dtype == DType::kF16) {
      simd::f16_to_f32_n(reinterpret_cast<const std::uint16_t*>(v.data) + base, dim_, row.data());
    } else if (elem_stride_ == 1 && v.dtype == DType::kF32) {
      std::memcpy(row.data(), reinterpret_cast<const float*>(v.data) + base, dim_ * sizeof(float));
    } else if (elem_stride_ == 1 && v.dtype == DType::kBF16) {
      const auto* p = reinterpret_cast<const std::uint16_t*>(v.data) + base;
      for (std::uint32_t j = 0; j < dim_; ++j) row[j] = bf16_to_f32(p[j]);
    } else {
      for (std::uint32_t j = 0; j < dim_; ++j) {
        row[j] = load(v.data, base + static_cast<std::int64_t>(j) * elem_stride_, v.dtype);
      }
    }
    for (std::uint32_t j = 0; j < dim_; ++j) x[j * K + t] = row[j];
  }
}

void VectorAccess::scatter_lanes(std::uint64_t first, std::size_t n, const float* x) const {
  constexpr std::size_t K = simd::kTileLanes;
  const TensorView& v = *view_;
  if (v.dtype == DType::kBF16 && full_interleaved_tile(first, n)) {
    auto* p = reinterpret_cast<std::uint16_t*>(v.data) + offset_of(first);
    for (std::uint32_t j = 0; j < dim_; ++j) {
      std::uint16_t* r = p + static_cast<std::int64_t>(j) * elem_stride_;
      for (std::size_t t = 0; t < K; ++t) r[t] = f32_to_bf16(x[j * K + t]);
    }
    return;
  }
  if (const auto rows = even_rows(first, n); rows && v.dtype != DType::kBF16) {
    simd::transpose_from_f32(x, dim_, K, K, v.data + offset_of(first) * static_cast<std::int64_t>(dtype_size(v.dtype)),
                             v.dtype == DType::kF16, *rows);
    return;
  }
  thread_local std::vector<float> row;
  row.resize(dim_);
  for (std::size_t t = 0; t < n; ++t) {
    for (std::uint32_t j = 0; j < dim_; ++j) row[j] = x[j * K + t];
    const std::int64_t base = offset_of(first + t);
    if (elem_stride_ == 1 && v.dtype == DType::kF16) {
      simd::f32_to_f16_n(row.data(), dim_, reinterpret_cast<std::uint16_t*>(v.data) + base);
    } else if (elem_stride_ == 1 && v.dtype == DType::kF32) {
      std::memcpy(reinterpret_cast<float*>(v.data) + base, row.data(), dim_ * sizeof(float));
    } else if (elem_stride_ == 1 && v.dtype == DType::kBF16) {
      auto* p = reinterpret_cast<std::uint16_t*>(v.data) + base;
      for (std::uint32_t j = 0; j < dim_; ++j) p[j] = f32_to_bf16(row[j]);
    } else {
      for (std::uint32_t j = 0; j < dim_; ++j) {
        store(v.data, base + static_cast<std::int64_t>(j) * elem_stride_, v.dtype, row[j]);
      }
    }
  }
}

}  // namespace agp::codec
