#include "agp/fidelity/split_codec.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/fidelity/calibrate.hpp"
#include "agp/ptp/frame_decoder.hpp"

namespace agp::fidelity {
namespace {

// Symmetric block quantization with an fp16 absmax scale: q = round(x / s), s = absmax / levels.
double block_quantize(float* x, std::uint64_t n, std::uint32_t block, int levels) {
  for (std::uint64_t start = 0; start < n; start += block) {
    const std::uint64_t end = std::min<std::uint64_t>(n, start + block);
    float absmax = 0;
    for (std::uint64_t i = start; i < end; ++i) absmax = std::max(absmax, std::abs(x[i]));
    const float scale = f16_to_f32(f32_to_f16(absmax / static_cast<float>(levels)));
    for (std::uint64_t i = start; i < end; ++i) {
      if (scale == 0) {
        x[i] = 0;
        continue;
      }
      const float q = std::clamp(std::nearbyint(x[i] / scale), static_cast<float>(-levels),
                                 static_cast<float>(levels));
      x[i] = q * scale;
    }
  }
  int bits = 1;
  while ((1 << bits) < 2 * levels + 1) ++bits;
  return bits + 16.0 / block;
}

}  // namespace

Result<SplitCodec> SplitCodec::parse(const std::string& name) {
  SplitCodec c;
  c.name_ = name;
  if (name == "none") {
    c.kind_ = Kind::kNone;
  } else if (name == "ref-int8-b64") {
    c.kind_ = Kind::kInt8Block64;
  } else if (name == "ref-q4-b32") {
    c.kind_ = Kind::kQ4Block32;
  } else if (name == "ref-q3-b32") {
    c.kind_ = Kind::kQ3Block32;
  } else {
    auto p = ptp::parse_packet_codec(name, DType::kF16);
    if (!p) {
      return make_error(ErrorCode::kInvalidArgument,
                        p.status().message() + "; or none, ref-int8-b64, ref-q4-b32, ref-q3-b32");
    }
    c.kind_ = Kind::kPacket;
    c.packet_ = *p;
  }
  return c;
}

double SplitCodec::nominal_bits() const {
  switch (kind_) {
    case Kind::kNone:
      return 32;
    case Kind::kInt8Block64:
      return 8.25;
    case Kind::kQ4Block32:
      return 4.5;
    case Kind::kQ3Block32:
      return 3.5;
    case Kind::kPacket:
      break;
  }
  if (packet_.config.id == CodecId::kRaw) return 16;
  if (packet_.config.id == CodecId::kTurboQuantEc) return packet_.ec.bits_per_value;
  if (packet_.config.id == CodecId::kTurboQuantCal) return packet_.cal.bits_per_value;
  return packet_.config.bits;
}

Result<double> SplitCodec::apply(float* x, std::uint64_t vectors, std::uint32_t dim) const {
  const std::uint64_t n = vectors * dim;
  switch (kind_) {
    case Kind::kNone:
      return 32.0;
    case Kind::kInt8Block64:
      return block_quantize(x, n, 64, 127);
    case Kind::kQ4Block32:
      return block_quantize(x, n, 32, 7);
    case Kind::kQ3Block32:
      return block_quantize(x, n, 32, 3);
    case Kind::kPacket:
      break;
  }
  if (basis_) to_basis(*basis_, dim, x, vectors);
  // As a host sends it: the state in fp16, one packet of [vectors, dim], through a real frame.
  std::vector<std::uint16_t> half(n);
  for (std::uint64_t i = 0; i < n; ++i) half[i] = f32_to_f16(x[i]);
  const auto in = codec::TensorView::contiguous(half.data(), DType::kF16, {vectors, dim}, 1);
  ptp::TensorPacketWriter writer(packet_);
  auto gather = writer.write(in, ptp::MessageHeader{}, ptp::Layout::kSD);
  if (!gather) return gather.status();
  const auto wire = gather->flatten();
  auto frame = ptp::parse_frame(wire);
  if (!frame) return frame.status();
  const auto out = codec::TensorView::contiguous(x, DType::kF32, {vectors, dim}, 1);
  ptp::TensorPacketReader reader;
  reader.set_calibration(packet_.calibration);
  AGP_RETURN_IF_ERROR(reader.read(frame->header, frame->body, out));
  if (basis_) from_basis(*basis_, dim, x, vectors);
  return 8.0 * static_cast<double>(wire.size()) / static_cast<double>(n);
}

void SplitCodec::set_calibration(std::shared_ptr<const codec::Calibration> calibration,
                                 std::shared_ptr<const std::vector<float>> basis) {
  packet_.calibration = std::move(calibration);
  basis_ = std::move(basis);
}

}  // namespace agp::fidelity
