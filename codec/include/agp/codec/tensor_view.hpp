// Strided views of host tensors, and the "vectors" a codec works on.
//
// A codec quantizes vectors that run along one axis of the tensor (the vector axis); every position
// of the other axes, in row-major order, is one vector. So [S, D] row-major states with axis 1 are
// S contiguous vectors, and the channels-first [1, C, 1, S] packet with axis 1 is S vectors whose
// elements are S apart: both are read in place, without a separate transpose pass.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/status.hpp"

namespace agp::codec {

struct TensorView {
  std::byte* data = nullptr;          // mutable for decode targets; encode only reads
  DType dtype = DType::kF16;          // f32, f16 or bf16
  std::vector<std::uint64_t> shape;   // outermost first
  std::vector<std::int64_t> strides;  // in elements (not bytes); may be negative or zero-free
  std::uint32_t vector_axis = 0;

  // A C-order (row-major, contiguous) view.
  static TensorView contiguous(const void* data, DType dtype, std::vector<std::uint64_t> shape,
                               std::uint32_t vector_axis);
  // Checks dtype, rank, axis and strides; kInvalidArgument with the reason otherwise.
  Status validate() const;
  std::uint32_t dim() const { return static_cast<std::uint32_t>(shape[vector_axis]); }
  std::uint64_t vector_count() const;
};

// Reads and writes vectors of a validated view as fp32, in tiles, picking the access pattern that
// suits the strides (contiguous vectors, or vectors interleaved along a unit-stride axis).
class VectorAccess {
 public:
  explicit VectorAccess(const TensorView& view);
  std::uint32_t dim() const { return dim_; }
  std::uint64_t count() const { return count_; }
  // Vectors [first, first + n) into out[n * dim] as fp32.
  void gather(std::uint64_t first, std::uint64_t n, float* out) const;
  // in[n * dim] as vectors [first, first + n), converted to the view's dtype (round to nearest
  // even).
  void scatter(std::uint64_t first, std::uint64_t n, const float* in) const;

  // Lane tiles (the SIMD kernels' layout): vectors [first, first + n), n <= 16, as
  // x[j * 16 + t] = value j of vector first + t; lanes t >= n read as zero and are not written.
  void gather_lanes(std::uint64_t first, std::size_t n, float* x) const;
  void scatter_lanes(std::uint64_t first, std::size_t n, const float* x) const;

  // When vectors [first, first + 16) sit side by side with unit stride in an f16 or f32 tensor,
  // the address of their first values and the element stride between consecutive values of a
  // vector (so value j of the 16 vectors is 16 contiguous elements at base + j * stride).
  struct LaneRows {
    std::byte* base;
    std::ptrdiff_t stride;
    bool f16;
  };
  std::optional<LaneRows> lane_rows(std::uint64_t first, std::size_t n) const;

 private:
  std::int64_t offset_of(std::uint64_t vector) const;  // element offset of the vector's first value
  template <typename Visit>
  void for_each_value(std::uint64_t first, std::uint64_t n, Visit&& visit) const;
  // True when vectors [first, first + 16) sit side by side with unit stride (one row per value).
  bool full_interleaved_tile(std::uint64_t first, std::size_t n) const;
  // The element distance between vectors [first, first + 16) when each is contiguous and they are
  // evenly spaced (row-major), else nullopt.
  std::optional<std::ptrdiff_t> even_rows(std::uint64_t first, std::size_t n) const;
  const TensorView* view_;
  std::uint32_t dim_;
  std::uint64_t count_;
  std::int64_t elem_stride_;                // stride along the vector axis
  std::vector<std::uint64_t> outer_shape_;  // the other axes, outermost first
  std::vector<std::int64_t> outer_strides_;
};

}  // namespace agp::codec
