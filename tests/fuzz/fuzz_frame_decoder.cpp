// Fuzz target: arbitrary bytes into the one-shot parser and the push decoder. Properties checked:
// no crash, no sanitizer report, both decoders agree, and any frame that verifies can be rebuilt
// by FrameBuilder into a frame that verifies to the same header.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"

using namespace agp::ptp;

namespace {

DecoderOptions fuzz_options() {
  DecoderOptions o;
  o.limits.max_body_bytes = 1 << 20;  // keep allocations small; the cap logic is what we test
  return o;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  const DecoderOptions opts = fuzz_options();
  auto one_shot = parse_frame(bytes, opts);

  // The push decoder, fed in chunks whose size depends on the input.
  FrameDecoder d(opts);
  const std::size_t step = size ? 1 + (data[size - 1] % 97) : 1;
  std::size_t pos = 0;
  bool failed = false;
  while (pos < size && !d.frame_ready()) {
    auto used = d.consume(bytes.subspan(pos, std::min(step, size - pos)));
    if (!used) {
      failed = true;
      break;
    }
    pos += *used;
  }
  if (one_shot) {
    check(d.frame_ready());
    const Frame f = d.take_frame();
    check(f.header() == one_shot->header);
    // Rebuild from the decoded header and sections; it must verify to the same header.
    std::vector<SectionInput> inputs;
    for (std::size_t i = 0; i < f.header().sections.size(); ++i) {
      inputs.push_back({f.header().sections[i].kind, f.section(i), std::nullopt});
    }
    FrameBuilder b(opts.limits);
    auto g = b.build(f.header(), inputs);
    check(static_cast<bool>(g));
    const auto again = g->flatten();
    auto reparsed = parse_frame(again, opts);
    check(static_cast<bool>(reparsed));
    check(reparsed->header == f.header());
  } else if (one_shot.status().code() != agp::ErrorCode::kTruncated) {
    // Both decoders must reject a frame that is complete but wrong, with the same code.
    check(failed && d.error().code() == one_shot.status().code());
  }
  return 0;
}
