// Tensor packets: a host tensor encoded by a codec into a frame's sections, and back. The glue a
// model host (and the transport) uses: choose a codec, write the packet, send the gather list; on
// the other side, verify the frame and decode it straight into the host's buffer.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agp/codec/calibrated.hpp"
#include "agp/codec/codec.hpp"
#include "agp/codec/turboquant_ec.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/message.hpp"
#include "agp/status.hpp"

namespace agp::ptp {

class PacketEncodeState;  // a codec's buffers between packets (ptp/src/packet_coder.hpp)
struct DecodeContext;     // what a codec's decoder may use besides the frame (likewise)

// How a packet is encoded: any per-vector codec (raw, TurboQuant-MSE/-prod, block-absmax), or
// TurboQuant-EC (id kTurboQuantEc) with `ec`.
struct PacketCodec {
  codec::CodecConfig config;
  codec::EcConfig ec;
  // The calibrated codec (kTurboQuantCal): its budget, and the calibration both ends hold.
  codec::CalConfig cal;
  std::shared_ptr<const codec::Calibration> calibration;
};

// A codec by the short name the tools use: "raw", "tq1".."tq8" (TurboQuant-MSE), "prod2".."prod8"
// (TurboQuant-prod), "int8", "int4" (block absmax), "ec2".."ec8" (TurboQuant-EC: up to 6 entropy
// coded to that many bits per value; 7 and 8 mean removal + fixed-width codes). `dtype` is the
// source tensor's (the raw codec carries it). kInvalidArgument for other names.
Result<PacketCodec> parse_packet_codec(const std::string& name, DType dtype);

// The short name (as parse_packet_codec takes it) of the codec a descriptor names, e.g. "tq4";
// "" for a descriptor no short name describes.
std::string packet_codec_name(const CodecDesc& desc);

// The codec descriptor a packet carries for `c` (rotation, seed, codebook, norm dtype).
CodecDesc describe_codec(const PacketCodec& c, std::uint64_t original_bytes);
// The codec a received descriptor names; kBadCodecDescriptor for ones this build cannot decode.
Result<PacketCodec> codec_from_desc(const CodecDesc& desc, DType tensor_dtype);

class TensorPacketWriter {
 public:
  explicit TensorPacketWriter(PacketCodec codec, DecoderLimits limits = {});
  ~TensorPacketWriter();
  TensorPacketWriter(TensorPacketWriter&&) noexcept;
  TensorPacketWriter& operator=(TensorPacketWriter&&) noexcept;

  // Encodes `view` and frames it: `header` supplies stream, sequence, timestamp, fingerprint, model
  // id and split layer; its kind, tensor, codec and sections are filled here (`layout` names the
  // view's axes). The gather list points into this writer's buffers (and, for raw packets, into
  // the view's memory: raw packets carry the tensor's own bytes, so the view must be C-contiguous
  // in raw_dtype) and stays valid until the next write().
  Result<GatherList> write(const codec::TensorView& view, MessageHeader header, Layout layout,
                           codec::ThreadPool* pool = nullptr);
  // Vectors [chunk.vector_offset, + chunk.vector_count) of `view` as chunk `chunk.index` of
  // `chunk.count` of one packet: the tensor descriptor is the whole view's, the codec
  // descriptor's original_bytes the chunk's. Only per-vector codecs can be chunked
  // (chunkable()); kInvalidArgument otherwise or for a range outside the view. The calibrated
  // codec codes each chunk on its own too.
  Result<GatherList> write_chunk(const codec::TensorView& view, MessageHeader header, Layout layout,
                                 const ChunkDesc& chunk);
  // Bytes of the encoded parts of the last packet (without framing).
  std::uint64_t encoded_bytes() const;
  // Gives the caller the encoded buffers the last gather list points into, so that list stays
  // valid after the next write (the writer continues with fresh buffers). Raw packets point into
  // the caller's tensor, which the caller keeps alive itself.
  std::shared_ptr<const void> release_buffers();

  // Codecs whose packets can travel as chunks: those that encode each vector on its own
  // (TurboQuant-MSE/-prod, block-absmax) or each chunk (calibrated). Raw and TurboQuant-EC
  // packets go whole.
  static bool chunkable(CodecId id);

 private:
  PacketCodec codec_;
  FrameBuilder builder_;
  std::unique_ptr<PacketEncodeState> state_;  // made by the codec's PacketCoder

  Result<GatherList> write_impl(const codec::TensorView& view, MessageHeader header, Layout layout,
                                const ChunkDesc* chunk, codec::ThreadPool* pool);
};

// Decodes verified tensor packets like read_tensor_packet, keeping the codecs it built (the last
// kCachedCodecs descriptors) for the next packets and chunks: a receiver of many chunks saves
// building one each time.
class TensorPacketReader {
 public:
  static constexpr std::size_t kCachedCodecs = 4;
  // Checks from the header alone that this build can decode the packet (or chunk) into its tensor:
  // the codec descriptor names a codec, rotation, codebook and lossless stage this build has; a
  // chunk is of a chunkable codec, lies inside the tensor and is not longer than it; original_bytes
  // is the source bytes of the vectors the frame covers; the sections are exactly those the codec
  // writes, in its order, each exactly as long as those vectors need (TurboQuant-EC: side data,
  // norms and codes, the norms' length checked). Errors: kMissingField, kBadCodecDescriptor,
  // kBadTensorDescriptor, kBadEncodedData. A receiver runs it as each frame arrives, before anyone
  // sizes a buffer from the descriptor.
  Status verify(const MessageHeader& header);
  // Decodes a verified frame (verify() runs first) into `out`. Errors of the caller's `out`
  // (shape, dtype, strides) are kInvalidArgument; everything else is the packet's fault.
  Status read(const MessageHeader& header, std::span<const std::byte> body, codec::TensorView out,
              codec::ThreadPool* pool = nullptr);
  // The calibration this receiver holds: calibrated packets naming another one (or arriving
  // when none is set) fail verify() with kBadCodecDescriptor.
  void set_calibration(std::shared_ptr<const codec::Calibration> calibration) {
    calibration_ = std::move(calibration);
  }

 private:
  struct Cached {
    CodecDesc desc;
    std::unique_ptr<codec::Codec> codec;
  };
  std::vector<Cached> cached_;  // most recently used first
  std::shared_ptr<const codec::Calibration> calibration_;
  // The per-vector codec a descriptor names, for vectors of `dim` values (built or cached).
  Result<const codec::Codec*> codec_for(const CodecDesc& desc, const PacketCodec& c,
                                        std::uint32_t dim);
  DecodeContext context();
};

// TensorPacketReader::verify without a cache.
Status verify_tensor_packet(const MessageHeader& header);

// Decodes a verified tensor packet (header + body, e.g. from FrameDecoder) into `out`, whose shape
// must be the descriptor's (any float dtype and strides; the vector axis is the descriptor's).
// A chunk (header.chunk set) fills only its range of vectors. Runs verify() first.
Status read_tensor_packet(const MessageHeader& header, std::span<const std::byte> body,
                          codec::TensorView out, codec::ThreadPool* pool = nullptr);

}  // namespace agp::ptp
