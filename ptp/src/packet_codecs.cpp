#include "agp/ptp/packet_codecs.hpp"

#include <algorithm>

#include "agp/ptp/tensor_packet.hpp"

namespace agp::ptp {
namespace {

constexpr std::uint32_t widths(int lo, int hi) {
  std::uint32_t mask = 0;
  for (int b = lo; b <= hi; ++b) mask |= 1u << b;
  return mask;
}

// Per-vector codecs carry their width and norm dtype as configured.
void describe_per_vector(const PacketCodec& c, CodecDesc& d) {
  d.bits = static_cast<std::uint8_t>(c.config.bits);
  d.norm_dtype = c.config.norm_dtype;
}

// Block codecs store f16 scales whatever the configuration says.
void describe_block(const PacketCodec& c, CodecDesc& d) {
  d.bits = static_cast<std::uint8_t>(c.config.bits);
  d.norm_dtype = DType::kF16;
}

// "ec2".."ec6" entropy code to that many bits per value; "ec7", "ec8" remove the mean and code
// fixed-width (byte-sized levels cannot use larger budgets).
void configure_ec(PacketCodec& c, int bits) {
  c.ec.bits_per_value = bits;
  if (bits > 6) c.ec.fixed_bits = bits;
}

// Mode 0 names its budget and frames its levels with zstd; mode 1 names its width, unframed.
void describe_ec(const PacketCodec& c, CodecDesc& d) {
  d.bits = static_cast<std::uint8_t>(c.ec.fixed_bits ? c.ec.fixed_bits
                                                     : static_cast<int>(c.ec.bits_per_value));
  d.norm_dtype = DType::kF16;
  d.rotation_seed = c.ec.seed;
  if (c.ec.fixed_bits == 0) d.lossless = LosslessKind::kZstd;
}

// "cal2".."cal8" code to that many bits per value; the descriptor names the calibration.
void configure_cal(PacketCodec& c, int bits) { c.cal.bits_per_value = bits; }

void describe_cal(const PacketCodec& c, CodecDesc& d) {
  d.bits = static_cast<std::uint8_t>(c.cal.bits_per_value);
  d.calibration_id = c.calibration ? c.calibration->id : 0;
}

constexpr PacketCodecEntry kEntries[] = {
    {CodecId::kRaw, "raw", 0, 0, 0, PacketForm::kTensorBytes, false, 0, nullptr, nullptr},
    {CodecId::kTurboQuantMse, "tq", 1, 8, 0, PacketForm::kPerVector, true, widths(1, 8), nullptr,
     describe_per_vector},
    {CodecId::kTurboQuantProd, "prod", 2, 8, 0, PacketForm::kPerVector, true, widths(2, 8),
     nullptr, describe_per_vector},
    {CodecId::kBlockAbsmaxInt8, "int8", 0, 0, 8, PacketForm::kPerVector, false, widths(8, 8),
     nullptr, describe_block},
    {CodecId::kBlockAbsmax4, "int4", 0, 0, 4, PacketForm::kPerVector, false, widths(4, 4),
     nullptr, describe_block},
    {CodecId::kTurboQuantEc, "ec", 2, 8, 0, PacketForm::kWholePacket, true, widths(1, 8),
     configure_ec, describe_ec},
    {CodecId::kTurboQuantCal, "cal", 2, 8, 0, PacketForm::kPerChunk, false, widths(2, 8),
     configure_cal, describe_cal},
};

}  // namespace

std::span<const PacketCodecEntry> packet_codec_entries() {
  return kEntries;
}

const PacketCodecEntry* find_packet_codec(CodecId id) {
  const auto it = std::find_if(std::begin(kEntries), std::end(kEntries),
                               [&](const PacketCodecEntry& e) { return e.id == id; });
  return it == std::end(kEntries) ? nullptr : &*it;
}

std::string packet_codec_names() {
  std::string out;
  for (const PacketCodecEntry& e : kEntries) {
    if (!out.empty()) out += ", ";
    out += std::string(e.name);
    if (e.max_bits > 0) {
      out += std::to_string(e.min_bits) + ".." + std::string(e.name) + std::to_string(e.max_bits);
    }
  }
  return out;
}

}  // namespace agp::ptp
