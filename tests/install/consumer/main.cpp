// Builds a heartbeat frame and verifies it with the installed library.
#include <agp/ptp/frame_builder.hpp>
#include <agp/ptp/frame_decoder.hpp>
#include <cstdio>

int main() {
  agp::ptp::MessageHeader h;
  h.kind = agp::ptp::MessageKind::kHeartbeat;
  h.sequence = 9;
  agp::ptp::FrameBuilder b;
  auto g = b.build(h, {});
  if (!g) return 1;
  auto v = agp::ptp::parse_frame(g->flatten());
  if (!v || v->header.sequence != 9) return 1;
  std::printf("consumer ok: %llu-byte heartbeat frame\n",
              static_cast<unsigned long long>(v->frame_bytes));
  return 0;
}
