// Internal: whether the scalar reference kernels are forced (agp/codec/simd.hpp).
#pragma once

namespace agp::codec {
bool use_reference_kernels();
}  // namespace agp::codec
