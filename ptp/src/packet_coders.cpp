// The packet codecs' implementations of PacketCoder: raw bytes, the per-vector codecs
// (codec::Codec), TurboQuant-EC (one packet coded as a whole) and the calibrated codec (each
// packet or chunk coded on its own).
#include <bit>
#include <cstring>
#include <string>

#include "agp/codec/calibrated.hpp"
#include "agp/codec/turboquant_ec.hpp"
#include "packet_coder.hpp"

namespace agp::ptp {
namespace {

Status bad_descriptor(CodecId id, const std::string& why) {
  return make_error(ErrorCode::kBadCodecDescriptor, std::string(codec_name(id)) + " packet: " + why);
}

bool is_c_contiguous(const codec::TensorView& v) {
  std::int64_t stride = 1;
  for (std::size_t i = v.shape.size(); i-- > 0;) {
    if (v.shape[i] != 1 && v.strides[i] != stride) return false;
    stride *= static_cast<std::int64_t>(v.shape[i]);
  }
  return true;
}

// --- raw: the tensor's own bytes, one `raw` section, referenced rather than copied

struct RawState final : PacketEncodeState {
  std::uint64_t bytes = 0;
  std::uint64_t encoded_bytes() const override { return bytes; }
  std::shared_ptr<const void> release_buffers() override { return nullptr; }  // the caller's tensor
};

class RawCoder final : public PacketCoder {
 public:
  std::unique_ptr<PacketEncodeState> new_encode_state() const override {
    return std::make_unique<RawState>();
  }
  Result<std::vector<SectionInput>> encode(const PacketCodec& c, const codec::TensorView& view,
                                           VectorRange, codec::ThreadPool*,
                                           PacketEncodeState& state) const override {
    if (c.config.raw_dtype != view.dtype || !is_c_contiguous(view)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "raw packets carry the tensor's own bytes: the view must be C-contiguous "
                        "and raw_dtype its dtype");
    }
    std::uint64_t bytes = dtype_size(view.dtype);
    for (std::uint64_t s : view.shape) bytes *= s;
    static_cast<RawState&>(state).bytes = bytes;
    return std::vector<SectionInput>{{SectionKind::kRaw, std::span<const std::byte>(view.data, bytes), std::nullopt}};
  }
  Result<std::vector<SectionSpec>> expected_sections(const CodecDesc& d, const PacketCodec&,
                                                     std::uint64_t, VectorRange,
                                                     const DecodeContext&) const override {
    return std::vector<SectionSpec>{{SectionKind::kRaw, d.original_bytes}};
  }
  Status decode(const MessageHeader& h, const PacketCodec&,
                std::span<const std::span<const std::byte>> sections, const codec::TensorView& out,
                VectorRange, codec::ThreadPool*, const DecodeContext&) const override {
    const auto bytes = sections[0];
    if (out.dtype == h.tensor->dtype && is_c_contiguous(out)) {
      std::memcpy(out.data, bytes.data(), bytes.size());
      return {};
    }
    auto src = codec::TensorView::contiguous(bytes.data(), h.tensor->dtype, h.tensor->shape,
                                             h.tensor->vector_axis);
    const codec::VectorAccess from(src), to(out);
    std::vector<float> buf(from.dim());
    for (std::uint64_t v = 0; v < from.count(); ++v) {
      from.gather(v, 1, buf.data());
      to.scatter(v, 1, buf.data());
    }
    return {};
  }
};

// --- per-vector codecs (TurboQuant-MSE/-prod, block-absmax): fixed bytes per vector and part

struct PerVectorState final : PacketEncodeState {
  std::unique_ptr<codec::Codec> codec;  // rebuilt when the vector length changes
  std::vector<std::vector<std::byte>> parts;
  std::uint64_t encoded_bytes() const override {
    std::uint64_t n = 0;
    for (const auto& p : parts) n += p.size();
    return n;
  }
  std::shared_ptr<const void> release_buffers() override {
    auto owned = std::make_shared<std::vector<std::vector<std::byte>>>(std::move(parts));
    parts.clear();
    return owned;
  }
};

class PerVectorCoder final : public PacketCoder {
 public:
  std::unique_ptr<PacketEncodeState> new_encode_state() const override {
    return std::make_unique<PerVectorState>();
  }
  Result<std::vector<SectionInput>> encode(const PacketCodec& c, const codec::TensorView& view,
                                           VectorRange range, codec::ThreadPool* pool,
                                           PacketEncodeState& state) const override {
    auto& s = static_cast<PerVectorState&>(state);
    if (!s.codec || s.codec->dim() != view.dim()) {
      auto made = codec::make_codec(c.config, view.dim());
      if (!made) return made.status();
      s.codec = std::move(made).value();
    }
    s.parts.resize(s.codec->parts().size());
    std::vector<std::span<std::byte>> out;
    for (std::size_t i = 0; i < s.parts.size(); ++i) {
      s.parts[i].resize(range.count * s.codec->parts()[i].bytes_per_vector);
      out.emplace_back(s.parts[i]);
    }
    if (range.whole) {
      AGP_RETURN_IF_ERROR(s.codec->encode_all(view, out, pool));
    } else {
      AGP_RETURN_IF_ERROR(s.codec->encode(view, range.first, range.count, out));
    }
    std::vector<SectionInput> sections;
    for (std::size_t i = 0; i < s.parts.size(); ++i) {
      sections.push_back({s.codec->parts()[i].kind, s.parts[i], std::nullopt});
    }
    return sections;
  }
  Result<std::vector<SectionSpec>> expected_sections(const CodecDesc& d, const PacketCodec& c,
                                                     std::uint64_t dim, VectorRange range,
                                                     const DecodeContext& context) const override {
    auto made = context.per_vector_codec(d, c, static_cast<std::uint32_t>(dim));
    if (!made) return made.status();
    std::vector<SectionSpec> want;
    for (const codec::PartSpec& p : (*made)->parts()) want.emplace_back(p.kind, range.count * p.bytes_per_vector);
    return want;
  }
  Status decode(const MessageHeader& h, const PacketCodec& c,
                std::span<const std::span<const std::byte>> sections, const codec::TensorView& out,
                VectorRange range, codec::ThreadPool* pool,
                const DecodeContext& context) const override {
    auto made = context.per_vector_codec(*h.codec, c, out.dim());
    if (!made) return made.status();
    std::vector<std::span<const std::byte>> parts(sections.begin(), sections.end());
    if (!range.whole) return (*made)->decode(parts, out, range.first, range.count);
    return (*made)->decode_all(parts, out, pool);
  }
};

// --- TurboQuant-EC: the packet coded as one (side data sized from all its vectors)

struct EcState final : PacketEncodeState {
  codec::EcPacket packet;
  std::uint64_t encoded_bytes() const override { return packet.bytes(); }
  std::shared_ptr<const void> release_buffers() override {
    auto owned = std::make_shared<codec::EcPacket>(std::move(packet));
    packet = {};
    return owned;
  }
};

class EcCoder final : public PacketCoder {
 public:
  std::unique_ptr<PacketEncodeState> new_encode_state() const override {
    return std::make_unique<EcState>();
  }
  Result<std::vector<SectionInput>> encode(const PacketCodec& c, const codec::TensorView& view,
                                           VectorRange, codec::ThreadPool*,
                                           PacketEncodeState& state) const override {
    auto& s = static_cast<EcState&>(state);
    auto p = codec::ec_encode(view, c.ec);
    if (!p) return p.status();
    s.packet = std::move(p).value();
    return std::vector<SectionInput>{{SectionKind::kSideData, s.packet.side, std::nullopt},
                                     {SectionKind::kNorms, s.packet.norms, std::nullopt},
                                     {SectionKind::kCodes, s.packet.codes, std::nullopt}};
  }
  Result<std::vector<SectionSpec>> expected_sections(const CodecDesc& d, const PacketCodec&,
                                                     std::uint64_t dim, VectorRange range,
                                                     const DecodeContext&) const override {
    if (d.bits < 1 || d.bits > 8) return bad_descriptor(d.codec, "bits must be 1..8");
    // Both modes store one f16 norm per Hadamard block per vector.
    const std::uint64_t blocks = std::popcount(dim & ((std::uint64_t{1} << 12) - 1)) + (dim >> 12);
    return std::vector<SectionSpec>{{SectionKind::kSideData, 0},
                                    {SectionKind::kNorms, range.count * blocks * 2},
                                    {SectionKind::kCodes, 0}};
  }
  Status decode(const MessageHeader& h, const PacketCodec& c,
                std::span<const std::span<const std::byte>> sections, const codec::TensorView& out,
                VectorRange, codec::ThreadPool*, const DecodeContext&) const override {
    // The side data's mode must agree with the descriptor's lossless stage.
    const auto side = sections[0];
    constexpr std::size_t kModeOffset = 6;  // after "TQEC" and the u16 version
    if (side.size() >= kModeOffset + 2) {
      const auto mode = static_cast<unsigned>(std::to_integer<unsigned>(side[kModeOffset]) |
                                              std::to_integer<unsigned>(side[kModeOffset + 1]) << 8);
      const bool zstd = h.codec->lossless == LosslessKind::kZstd;
      if ((mode == 0) != zstd) {
        return bad_descriptor(h.codec->codec, "side data mode " + std::to_string(mode) + " needs lossless " +
                                                  (mode == 0 ? "1 (zstd)" : "0") + " in the codec descriptor");
      }
      // Mode 1 codes at the width its side data names (the i16 at byte 24), which the
      // descriptor's bits must repeat.
      constexpr std::size_t kWidthOffset = 24;
      if (mode == 1 && side.size() >= kWidthOffset + 2) {
        const auto width = std::to_integer<unsigned>(side[kWidthOffset]) |
                           std::to_integer<unsigned>(side[kWidthOffset + 1]) << 8;
        if (width != h.codec->bits) {
          return bad_descriptor(h.codec->codec, "fixed-rate side data codes " + std::to_string(width) +
                                                    " bits; the descriptor says " + std::to_string(h.codec->bits));
        }
      }
    }
    return codec::ec_decode(side, sections[1], sections[2], out, c.ec.seed);
  }
};

// --- the calibrated codec: each packet or chunk coded on its own with the calibration both ends hold

struct CalState final : PacketEncodeState {
  codec::CalChunk chunk;
  std::uint64_t encoded_bytes() const override { return chunk.bytes(); }
  std::shared_ptr<const void> release_buffers() override {
    auto owned = std::make_shared<codec::CalChunk>(std::move(chunk));
    chunk = {};
    return owned;
  }
};

class CalibratedCoder final : public PacketCoder {
 public:
  std::unique_ptr<PacketEncodeState> new_encode_state() const override {
    return std::make_unique<CalState>();
  }
  Result<std::vector<SectionInput>> encode(const PacketCodec& c, const codec::TensorView& view,
                                           VectorRange range, codec::ThreadPool*,
                                           PacketEncodeState& state) const override {
    if (!c.calibration) {
      return make_error(ErrorCode::kInvalidArgument,
                        "the calibrated codec needs a calibration (ptp-calibrate makes one)");
    }
    auto& s = static_cast<CalState&>(state);
    auto p = codec::cal_encode(view, range.first, range.count, *c.calibration, c.cal);
    if (!p) return p.status();
    s.chunk = std::move(p).value();
    return std::vector<SectionInput>{{SectionKind::kSideData, s.chunk.side, std::nullopt},
                                     {SectionKind::kCodes, s.chunk.codes, std::nullopt}};
  }
  Result<std::vector<SectionSpec>> expected_sections(const CodecDesc& d, const PacketCodec&,
                                                     std::uint64_t dim, VectorRange,
                                                     const DecodeContext& context) const override {
    if (d.bits < 2 || d.bits > 8) return bad_descriptor(d.codec, "bits must be 2..8");
    const codec::Calibration* cal = context.calibration;
    if (!cal) {
      return bad_descriptor(d.codec, "needs calibration " + to_hex(d.calibration_id) + "; this receiver holds none");
    }
    if (d.calibration_id != cal->id) {
      return bad_descriptor(d.codec, "needs calibration " + to_hex(d.calibration_id) + "; this receiver holds " +
                                         to_hex(cal->id));
    }
    if (dim != cal->dim) {
      return make_error(ErrorCode::kBadTensorDescriptor,
                        std::string(codec_name(d.codec)) + " packet: vectors of " + std::to_string(dim) +
                            " values; the calibration is for " + std::to_string(cal->dim));
    }
    return std::vector<SectionSpec>{{SectionKind::kSideData, codec::cal_side_bytes(cal->group_count())},
                                    {SectionKind::kCodes, 0}};
  }
  Status decode(const MessageHeader&, const PacketCodec&,
                std::span<const std::span<const std::byte>> sections, const codec::TensorView& out,
                VectorRange range, codec::ThreadPool*, const DecodeContext& context) const override {
    return codec::cal_decode(sections[0], sections[1], *context.calibration, out, range.first, range.count);
  }
};

}  // namespace

const PacketCoder& raw_coder() {
  static const RawCoder c;
  return c;
}
const PacketCoder& per_vector_coder() {
  static const PerVectorCoder c;
  return c;
}
const PacketCoder& whole_packet_ec_coder() {
  static const EcCoder c;
  return c;
}
const PacketCoder& calibrated_coder() {
  static const CalibratedCoder c;
  return c;
}

}  // namespace agp::ptp
