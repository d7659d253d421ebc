// Internal: checkpoint tensors as fp32.
#pragma once

#include <cstring>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/safetensors.hpp"

namespace agp::fidelity {

// Converts a tensor of a float dtype (bf16, f16, f32) to fp32, appending to `out`.
inline void append_f32(const ptp::SafetensorsTensor& t, std::vector<float>& out) {
  const std::size_t n = t.data.size() / dtype_size(t.dtype);
  const std::size_t at = out.size();
  out.resize(at + n);
  float* dst = out.data() + at;
  if (t.dtype == DType::kF32) {
    std::memcpy(dst, t.data.data(), n * 4);
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, t.data.data() + 2 * i, 2);
    dst[i] = t.dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
}

}  // namespace agp::fidelity
