// The one table of packet codecs. ptp (names, descriptors, packet layouts), the transport (what a
// handshake offers), the C API, Python and the tools all read it, so adding a codec means its own
// files under codec/, a CodecId (schemas/ptp.fbs and agp/codec/format_ids.hpp), its PacketCoder
// (ptp/src/packet_coders.cpp) and one entry in ptp/src/packet_codecs.cpp (docs/codec.md,
// "Adding a codec").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "agp/codec/format_ids.hpp"
#include "agp/ptp/message.hpp"

namespace agp::ptp {

struct PacketCodec;
class PacketCoder;  // ptp/src/packet_coder.hpp: encode, verify and decode a frame's sections

struct PacketCodecEntry {
  CodecId id;
  // The short name, or its prefix when a width follows ("tq" names tq1..tq8).
  std::string_view name;
  int min_bits = 0;  // widths a name may carry after the prefix; 0 and 0: the name alone
  int max_bits = 0;
  int fixed_bits = 0;  // the bits of a name that carries none (int8: 8)
  // Packets may travel as chunks (ptp_format.md section 6).
  bool chunkable = false;
  // Vectors are limited to 2^24 values (every codec but raw, which carries any tensor's bytes).
  bool dim_limited = true;
  // The descriptor may name a lossless stage (TurboQuant-EC's zstd frame).
  bool lossless_stage = false;
  // Descriptors carry the block Walsh-Hadamard rotation (its seed) and codebook family 1.
  bool rotated = false;
  // Descriptor widths this build decodes (bit b set: b bits; 0: the codec has no width). What a
  // hello offers.
  std::uint32_t decodable_bits = 0;
  // Fills the codec-specific configuration for a width (may be null).
  void (*configure)(PacketCodec& codec, int bits) = nullptr;
  // The descriptor's codec-specific fields (bits, norm dtype, lossless stage), for encoders.
  void (*describe)(const PacketCodec& codec, CodecDesc& desc) = nullptr;
  // Its sections: encode, the codec's own checks and expected sections, decode.
  const PacketCoder& (*coder)() = nullptr;
};

// Every packet codec this build has, by increasing id.
std::span<const PacketCodecEntry> packet_codec_entries();
// The entry of `id`, or nullptr.
const PacketCodecEntry* find_packet_codec(CodecId id);
// "raw, tq1..tq8, prod2..prod8, int8, int4, ec2..ec8": the names, for help texts and errors.
std::string packet_codec_names();

}  // namespace agp::ptp
