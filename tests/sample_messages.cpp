#include "sample_messages.hpp"

#include <stdexcept>

namespace agp::test {

using namespace agp::ptp;

std::vector<SectionInput> SampleMessage::inputs() const {
  std::vector<SectionInput> out;
  for (std::size_t i = 0; i < section_kinds.size(); ++i) {
    out.push_back({section_kinds[i], section_bytes[i], std::nullopt});
  }
  return out;
}

std::vector<std::byte> pattern_bytes(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> out(n);
  std::uint64_t x = seed;
  for (std::size_t i = 0; i < n; ++i) {
    x += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    out[i] = static_cast<std::byte>(z ^ (z >> 31));
  }
  return out;
}

std::vector<SampleMessage> sample_messages() {
  const Hash128 fp{0x0123456789abcdefull, 0xfedcba9876543210ull};
  MessageHeader base;
  base.stream_id = 3;
  base.sequence = 41;
  base.timestamp_ns = 1'790'000'000'123'456'789ull;
  base.fingerprint = fp;
  base.model_id = "devmodel";
  base.split_layer = 2;

  std::vector<SampleMessage> out;

  {  // The seed packet [1,1280,1,256] fp16 at TurboQuant 4 bits: 256 vectors of 1280 values.
    SampleMessage m{"tensor_tq4", base, {}, {}};
    m.header.kind = MessageKind::kTensorPacket;
    m.header.tensor = TensorDesc{"hidden.split2", DType::kF16, {1, 1280, 1, 256}, Layout::kBC1S, 1};
    m.header.codec = CodecDesc{CodecId::kTurboQuantMse,
                               4,
                               RotationKind::kBlockWalshHadamard,
                               0x5eed,
                               256,
                               1,
                               1,
                               DType::kF16,
                               LosslessKind::kNone,
                               0,
                               655360};
    m.header.chunk = ChunkDesc{0, 1, 0, 256};
    m.section_kinds = {SectionKind::kCodes, SectionKind::kNorms};
    m.section_bytes = {pattern_bytes(163840, 1), pattern_bytes(512, 2)};
    out.push_back(std::move(m));
  }
  {  // Raw fp16 [1,16,384] with an odd-sized section to exercise padding.
    SampleMessage m{"tensor_raw", base, {}, {}};
    m.header.kind = MessageKind::kTensorPacket;
    m.header.sequence = 42;
    m.header.tensor = TensorDesc{"x", DType::kF16, {1, 3, 7}, Layout::kBSD, 2};
    m.header.codec = CodecDesc{};
    m.header.codec->original_bytes = 42;
    m.section_kinds = {SectionKind::kRaw};
    m.section_bytes = {pattern_bytes(42, 3)};
    out.push_back(std::move(m));
  }
  {
    SampleMessage m{"hello", base, {}, {}};
    m.header.kind = MessageKind::kHello;
    m.header.hello = HelloDesc{1,  1,      64ull << 20, 4, {1, 2, 4}, 0x3, {1, 2, 3, 4, 5, 6, 7, 8},
                               {}, "mac4", 0,           0, 0,         {},  0};
    out.push_back(std::move(m));
  }
  {
    SampleMessage m{"hello_reply", base, {}, {}};
    m.header.kind = MessageKind::kHelloReply;
    m.header.hello =
        HelloDesc{1, 1, 64ull << 20, 2, {1, 2}, 0x1, {9, 9}, {0xaa, 0xbb}, "mac5", 0, 0, 0, {}, 0};
    out.push_back(std::move(m));
  }
  {
    SampleMessage m{"ack", base, {}, {}};
    m.header.kind = MessageKind::kAck;
    m.header.ack = AckDesc{41};
    out.push_back(std::move(m));
  }
  {
    SampleMessage m{"heartbeat", MessageHeader{}, {}, {}};
    m.header.kind = MessageKind::kHeartbeat;
    m.header.sequence = 7;
    out.push_back(std::move(m));
  }
  {
    SampleMessage m{"error", base, {}, {}};
    m.header.kind = MessageKind::kError;
    m.header.error = ErrorDesc{117, "model fingerprint mismatch"};
    out.push_back(std::move(m));
  }
  {
    SampleMessage m{"bye", MessageHeader{}, {}, {}};
    m.header.kind = MessageKind::kBye;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::byte> build_frame(const SampleMessage& m) {
  FrameBuilder b;
  const auto inputs = m.inputs();
  auto g = b.build(m.header, inputs);
  if (!g) throw std::runtime_error("sample message does not build: " + g.status().to_string());
  return g->flatten();
}

}  // namespace agp::test
