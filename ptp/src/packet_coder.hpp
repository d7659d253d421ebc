// Internal: one packet codec as the packet layer sees it. tensor_packet.cpp runs the checks every
// codec shares and calls these for the rest, never asking which codec it holds; each codec's
// implementation is in ptp/src/packet_coders.cpp and its registry entry (packet_codecs.cpp)
// names it. docs/codec.md "Adding a codec" walks through a new one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "agp/codec/codec.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/message.hpp"
#include "agp/ptp/tensor_packet.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

// What a writer keeps for its codec between packets: the buffers the last frame's sections point
// into, and anything worth building once (a codec for the vector length).
class PacketEncodeState {
 public:
  virtual ~PacketEncodeState() = default;
  // Bytes of the last packet's encoded sections.
  virtual std::uint64_t encoded_bytes() const = 0;
  // Hands over the buffers the last sections point into; the state goes on with fresh ones.
  virtual std::shared_ptr<const void> release_buffers() = 0;
};

// A section a frame must carry: its kind and exact length (0: data-dependent, checked when
// decoding).
using SectionSpec = std::pair<SectionKind, std::uint64_t>;

// What a decoder may use besides the frame: the receiver's calibration (or none) and its cache of
// per-vector codecs (built once per descriptor and vector length).
struct DecodeContext {
  const codec::Calibration* calibration = nullptr;
  std::function<Result<const codec::Codec*>(const CodecDesc&, const PacketCodec&, std::uint32_t)>
      per_vector_codec;
};

// The vectors a frame covers: [first, first + count) of the tensor; `whole` when the frame is an
// unchunked packet (every vector).
struct VectorRange {
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  bool whole = true;
};

class PacketCoder {
 public:
  virtual ~PacketCoder() = default;
  virtual std::unique_ptr<PacketEncodeState> new_encode_state() const = 0;
  // The sections of `range` of `view`, pointing into `state` (a raw packet's into `view`).
  virtual Result<std::vector<SectionInput>> encode(const PacketCodec& codec,
                                                   const codec::TensorView& view, VectorRange range,
                                                   codec::ThreadPool* pool,
                                                   PacketEncodeState& state) const = 0;
  // Checks of docs/ptp_format.md section 5.2 step 7 that are the codec's own (its widths, norm
  // dtype, calibration), then the sections (step 8) a frame of `range.count` vectors of `dim`
  // values carries, in order.
  virtual Result<std::vector<SectionSpec>> expected_sections(const CodecDesc& desc,
                                                             const PacketCodec& codec,
                                                             std::uint64_t dim, VectorRange range,
                                                             const DecodeContext& context) const = 0;
  // Decodes a verified frame's sections into `range` of `out`.
  virtual Status decode(const MessageHeader& header, const PacketCodec& codec,
                        std::span<const std::span<const std::byte>> sections,
                        const codec::TensorView& out, VectorRange range, codec::ThreadPool* pool,
                        const DecodeContext& context) const = 0;
};

// The implementations the registry names.
const PacketCoder& raw_coder();
const PacketCoder& per_vector_coder();
const PacketCoder& whole_packet_ec_coder();
const PacketCoder& calibrated_coder();

}  // namespace agp::ptp
