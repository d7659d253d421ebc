#include "agp/ptp/packet_codecs.hpp"

#include <algorithm>

#include "agp/ptp/tensor_packet.hpp"
#include "packet_coder.hpp"

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
    {.id = CodecId::kRaw, .name = "raw", .dim_limited = false, .coder = raw_coder},
    {.id = CodecId::kTurboQuantMse, .name = "tq", .min_bits = 1, .max_bits = 8, .chunkable = true,
     .rotated = true, .decodable_bits = widths(1, 8), .describe = describe_per_vector,
     .coder = per_vector_coder},
    {.id = CodecId::kTurboQuantProd, .name = "prod", .min_bits = 2, .max_bits = 8, .chunkable = true,
     .rotated = true, .decodable_bits = widths(2, 8), .describe = describe_per_vector,
     .coder = per_vector_coder},
    {.id = CodecId::kBlockAbsmaxInt8, .name = "int8", .fixed_bits = 8, .chunkable = true,
     .decodable_bits = widths(8, 8), .describe = describe_block, .coder = per_vector_coder},
    {.id = CodecId::kBlockAbsmax4, .name = "int4", .fixed_bits = 4, .chunkable = true,
     .decodable_bits = widths(4, 4), .describe = describe_block, .coder = per_vector_coder},
    {.id = CodecId::kTurboQuantEc, .name = "ec", .min_bits = 2, .max_bits = 8, .lossless_stage = true,
     .rotated = true, .decodable_bits = widths(1, 8), .configure = configure_ec,
     .describe = describe_ec, .coder = whole_packet_ec_coder},
    {.id = CodecId::kTurboQuantCal, .name = "cal", .min_bits = 2, .max_bits = 8, .chunkable = true,
     .decodable_bits = widths(2, 8), .configure = configure_cal, .describe = describe_cal,
     .coder = calibrated_coder},
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
