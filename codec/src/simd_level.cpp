#include "simd_level.hpp"

#include <hwy/targets.h>

#include <atomic>

#include "agp/codec/simd.hpp"
#include "simd_kernels.hpp"

namespace agp::codec {
namespace {
std::atomic<bool> g_reference{false};
}  // namespace

bool use_reference_kernels() {
  return g_reference.load(std::memory_order_relaxed);
}

std::vector<std::string> simd_levels() {
  hwy::SetSupportedTargetsForTest(0);  // list what the CPU really has
  std::vector<std::string> out;
  for (const std::int64_t t : hwy::SupportedAndGeneratedTargets())
    out.emplace_back(hwy::TargetName(t));
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  out.emplace_back("reference");
  return out;
}

std::string active_simd_level() {
  return use_reference_kernels() ? "reference" : simd::dispatched_target_name();
}

Status force_simd_level(std::string_view level) {
  if (level.empty()) {
    g_reference = false;
    hwy::SetSupportedTargetsForTest(0);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    return {};
  }
  if (level == "reference") {
    g_reference = true;
    return {};
  }
  hwy::SetSupportedTargetsForTest(0);
  for (const std::int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (level == hwy::TargetName(t)) {
      g_reference = false;
      hwy::SetSupportedTargetsForTest(t);
      hwy::GetChosenTarget().Update(hwy::SupportedTargets());
      return {};
    }
  }
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  return make_error(ErrorCode::kInvalidArgument,
                    "SIMD level '" + std::string(level) + "' is not available on this CPU");
}

}  // namespace agp::codec
