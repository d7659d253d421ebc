// Builds a heartbeat frame and verifies it, and searches a small embedding index, with the
// installed libraries.
#include <agp/index/index.hpp>
#include <agp/ptp/frame_builder.hpp>
#include <agp/ptp/frame_decoder.hpp>
#include <cstdio>
#include <span>
#include <vector>

int main() {
  agp::ptp::MessageHeader h;
  h.kind = agp::ptp::MessageKind::kHeartbeat;
  h.sequence = 9;
  agp::ptp::FrameBuilder b;
  auto g = b.build(h, {});
  if (!g) return 1;
  auto v = agp::ptp::parse_frame(g->flatten());
  if (!v || v->header.sequence != 9) return 1;
  auto index = agp::index::Index::create(64);
  if (!index) return 1;
  std::vector<float> rows(2048 * 64);
  for (std::size_t i = 0; i < rows.size(); ++i)
    rows[i] = static_cast<float>((i * 2654435761u) % 1000) - 500.0f;
  if (!index->add(rows)) return 1;
  auto hits = index->search(std::span(rows).subspan(77 * 64, 64), {3, 10});
  if (!hits || hits->empty() || (*hits)[0].id != 77) return 1;
  std::printf("consumer ok: %llu-byte heartbeat frame, index hit %llu\n",
              static_cast<unsigned long long>(v->frame_bytes),
              static_cast<unsigned long long>((*hits)[0].id));
  return 0;
}
