// Fuzz target: arbitrary bytes into the .npy and safetensors parsers. Any accepted file must have
// data spans inside the input whose sizes match their shapes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "agp/ptp/npy.hpp"
#include "agp/ptp/safetensors.hpp"

using namespace agp::ptp;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
bool inside(std::span<const std::byte> outer, std::span<const std::byte> inner) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  if (auto v = parse_npy(bytes)) {
    check(inside(bytes, v->data));
    check(v->data.size() == v->element_count() * agp::dtype_size(v->dtype));
  }
  if (auto ts = parse_safetensors(bytes)) {
    for (const auto& t : *ts) check(inside(bytes, t.data));
  }
  return 0;
}
