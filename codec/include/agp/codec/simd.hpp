// Which vector instruction set the codec uses. The choice is made once, at first use, from what the
// CPU supports (x86: AVX3 (AVX-512), AVX2, SSE4; arm64: NEON, SVE); tests and benchmarks can force
// any level, including "reference", the scalar code every level is checked against.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agp/status.hpp"

namespace agp::codec {

// Levels this build can run on this CPU, best first, ending with "reference".
std::vector<std::string> simd_levels();
// The level in use now.
std::string active_simd_level();
// Forces `level` (one of simd_levels()) for the whole process; "" returns to the automatic choice.
// Not thread-safe: call it while no codec is running.
Status force_simd_level(std::string_view level);

}  // namespace agp::codec
