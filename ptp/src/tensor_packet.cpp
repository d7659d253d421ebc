#include "agp/ptp/tensor_packet.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <string>

#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/packet_codecs.hpp"
#include "agp/ptp/validate.hpp"
#include "packet_coder.hpp"

namespace agp::ptp {
namespace {

constexpr std::uint16_t kCodebookLloydMaxExact = 1;  // codec/src/codebook_tables.inc
constexpr std::uint16_t kCodebookVersion = 1;
constexpr std::uint32_t kMaxHadamardBlock = 4096;

// The registry's entry of a codec this build has (the id was checked where it came from).
const PacketCodecEntry& entry_of(CodecId id) {
  const PacketCodecEntry* e = find_packet_codec(id);
  return e ? *e : packet_codec_entries().front();
}

}  // namespace

Result<PacketCodec> parse_packet_codec(const std::string& name, DType dtype) {
  for (const PacketCodecEntry& e : packet_codec_entries()) {
    int bits = e.fixed_bits;
    if (e.max_bits == 0) {
      if (name != e.name) continue;
    } else {
      // The prefix and one decimal width in range ("tq4"; "tq10" and "tq04" are not names).
      if (name.size() != e.name.size() + 1 || name.compare(0, e.name.size(), e.name) != 0) continue;
      bits = name.back() - '0';
      if (bits < e.min_bits || bits > e.max_bits) continue;
    }
    PacketCodec c;
    c.config.id = e.id;
    c.config.bits = bits;
    c.config.raw_dtype = dtype;
    if (e.configure) e.configure(c, bits);
    return c;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown codec '" + name + "' (" + packet_codec_names() + ")");
}

std::string packet_codec_name(const CodecDesc& d) {
  const PacketCodecEntry* e = find_packet_codec(d.codec);
  if (!e) return "";
  return std::string(e->name) + (e->max_bits > 0 ? std::to_string(d.bits) : "");
}

CodecDesc describe_codec(const PacketCodec& c, std::uint64_t original_bytes) {
  CodecDesc d;
  d.codec = c.config.id;
  d.original_bytes = original_bytes;
  const PacketCodecEntry& e = entry_of(c.config.id);
  if (e.rotated) {
    d.rotation = RotationKind::kBlockWalshHadamard;
    d.rotation_seed = c.config.seed;
    d.block_size = kMaxHadamardBlock;
    d.codebook_id = kCodebookLloydMaxExact;
    d.codebook_version = kCodebookVersion;
  }
  if (e.describe) e.describe(c, d);
  return d;
}

Result<PacketCodec> codec_from_desc(const CodecDesc& d, DType tensor_dtype) {
  const PacketCodecEntry* e = find_packet_codec(d.codec);
  if (!e) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      "codec id " + std::to_string(static_cast<unsigned>(d.codec)) +
                          " is not known to this build (" + packet_codec_names() + ")");
  }
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      std::string(codec_name(d.codec)) + " packet: " + why);
  };
  PacketCodec c;
  c.config.id = d.codec;
  c.config.bits = d.bits;
  c.config.raw_dtype = tensor_dtype;
  if (!e->rotated) return c;
  if (d.rotation != RotationKind::kBlockWalshHadamard || d.block_size != kMaxHadamardBlock) {
    return bad("rotation must be block Walsh-Hadamard with blocks up to 4096");
  }
  if (d.codebook_id != kCodebookLloydMaxExact || d.codebook_version != kCodebookVersion) {
    return bad("codebook " + std::to_string(d.codebook_id) + " version " +
               std::to_string(d.codebook_version) + " is not known to this build (1, 1)");
  }
  c.config.seed = d.rotation_seed;
  c.ec.seed = d.rotation_seed;
  c.config.norm_dtype = d.norm_dtype;
  return c;
}

TensorPacketWriter::TensorPacketWriter(PacketCodec codec, DecoderLimits limits)
    : codec_(codec), builder_(limits), state_(entry_of(codec.config.id).coder().new_encode_state()) {}
TensorPacketWriter::~TensorPacketWriter() = default;
TensorPacketWriter::TensorPacketWriter(TensorPacketWriter&&) noexcept = default;
TensorPacketWriter& TensorPacketWriter::operator=(TensorPacketWriter&&) noexcept = default;

std::uint64_t TensorPacketWriter::encoded_bytes() const { return state_->encoded_bytes(); }

bool TensorPacketWriter::chunkable(CodecId id) {
  const PacketCodecEntry* e = find_packet_codec(id);
  return e && e->chunkable;
}

std::shared_ptr<const void> TensorPacketWriter::release_buffers() { return state_->release_buffers(); }

Result<GatherList> TensorPacketWriter::write(const codec::TensorView& view, MessageHeader header,
                                             Layout layout, codec::ThreadPool* pool) {
  return write_impl(view, std::move(header), layout, nullptr, pool);
}

Result<GatherList> TensorPacketWriter::write_chunk(const codec::TensorView& view,
                                                   MessageHeader header, Layout layout,
                                                   const ChunkDesc& chunk) {
  if (!chunkable(codec_.config.id)) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(codec_name(codec_.config.id)) + " packets cannot be chunked");
  }
  return write_impl(view, std::move(header), layout, &chunk, nullptr);
}

Result<GatherList> TensorPacketWriter::write_impl(const codec::TensorView& view,
                                                  MessageHeader header, Layout layout,
                                                  const ChunkDesc* chunk, codec::ThreadPool* pool) {
  AGP_RETURN_IF_ERROR(view.validate());
  const std::uint64_t vectors = view.vector_count();
  if (chunk && (chunk->vector_count == 0 || chunk->vector_offset > vectors ||
                chunk->vector_count > vectors - chunk->vector_offset)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "chunk vectors [" + std::to_string(chunk->vector_offset) + ", +" +
                          std::to_string(chunk->vector_count) + ") are outside the " +
                          std::to_string(vectors) + " vectors of the tensor");
  }
  std::uint64_t original = dtype_size(view.dtype);
  for (std::uint64_t s : view.shape) original *= s;
  if (chunk) original = original / vectors * chunk->vector_count;
  header.kind = MessageKind::kTensorPacket;
  header.tensor = TensorDesc{header.tensor ? header.tensor->name : "", view.dtype, view.shape,
                             layout, static_cast<std::uint8_t>(view.vector_axis)};
  header.codec = describe_codec(codec_, original);
  if (chunk) header.chunk = *chunk;
  const VectorRange range{chunk ? chunk->vector_offset : 0, chunk ? chunk->vector_count : vectors, !chunk};
  auto sections = entry_of(codec_.config.id).coder().encode(codec_, view, range, pool, *state_);
  if (!sections) return sections.status();
  return builder_.build(header, *sections);
}

Status read_tensor_packet(const MessageHeader& h, std::span<const std::byte> body,
                          codec::TensorView out, codec::ThreadPool* pool) {
  TensorPacketReader reader;
  return reader.read(h, body, std::move(out), pool);
}

Status verify_tensor_packet(const MessageHeader& h) {
  TensorPacketReader reader;
  return reader.verify(h);
}

Result<const codec::Codec*> TensorPacketReader::codec_for(const CodecDesc& desc,
                                                          const PacketCodec& c,
                                                          std::uint32_t dim) {
  // Chunks of one packet, and packets of one stream, share a codec: build it once (the last few
  // codecs are kept, so a stream that alternates codecs does not rebuild them either).
  CodecDesc key = desc;
  key.original_bytes = 0;  // differs from chunk to chunk; the codec does not
  auto hit = std::find_if(cached_.begin(), cached_.end(), [&](const Cached& e) {
    return e.desc == key && e.codec->dim() == dim;
  });
  if (hit == cached_.end()) {
    auto made = codec::make_codec(c.config, dim);
    if (!made) return Status(ErrorCode::kBadCodecDescriptor, made.status().message());
    if (cached_.size() == kCachedCodecs) cached_.pop_back();
    cached_.insert(cached_.begin(), Cached{key, std::move(made).value()});
  } else if (hit != cached_.begin()) {
    std::rotate(cached_.begin(), hit, hit + 1);  // most recently used first
  }
  return cached_.front().codec.get();
}

Status TensorPacketReader::verify(const MessageHeader& h) {
  if (h.kind != MessageKind::kTensorPacket || !h.tensor || !h.codec) {
    return make_error(ErrorCode::kMissingField, "not a tensor packet with tensor and codec fields");
  }
  const TensorDesc& t = *h.tensor;
  const CodecDesc& d = *h.codec;
  AGP_RETURN_IF_ERROR(validate_tensor_desc(t));
  auto c = codec_from_desc(d, t.dtype);
  if (!c) return c.status();
  const std::string who = std::string(codec_name(d.codec)) + " packet: ";
  const std::uint64_t dim = t.shape[t.vector_axis];
  const std::uint64_t elements = *shape_element_count(t.shape);
  const std::uint64_t vectors = elements / dim;
  const PacketCodecEntry& entry = entry_of(d.codec);
  if (entry.dim_limited && dim > (std::uint64_t{1} << 24)) {
    return make_error(ErrorCode::kBadTensorDescriptor,
                      who + "vectors of " + std::to_string(dim) + " values; the limit is 2^24");
  }
  // Only EC's entropy-coded levels are a zstd frame (side data mode 0, checked when decoding).
  if (d.lossless != LosslessKind::kNone && !entry.lossless_stage) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      who + "this codec never has a lossless stage (lossless must be 0)");
  }
  std::uint64_t first = 0;
  std::uint64_t count = vectors;
  if (h.chunk) {
    const ChunkDesc& k = *h.chunk;
    if (!entry.chunkable) {
      return make_error(ErrorCode::kBadCodecDescriptor, who + "this codec is never chunked");
    }
    if (k.vector_count == 0 || k.vector_offset > vectors ||
        k.vector_count > vectors - k.vector_offset || k.count > vectors) {
      return make_error(ErrorCode::kBadTensorDescriptor,
                        "chunk " + std::to_string(k.index) + " of " + std::to_string(k.count) +
                            " covers vectors [" + std::to_string(k.vector_offset) + ", +" +
                            std::to_string(k.vector_count) + ") of a tensor of " +
                            std::to_string(vectors) + " vectors");
    }
    first = k.vector_offset;
    count = k.vector_count;
  }
  const std::uint64_t source_bytes = count * dim * dtype_size(t.dtype);
  if (d.original_bytes != source_bytes) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      who + "original_bytes is " + std::to_string(d.original_bytes) + "; the " +
                          std::to_string(count) + " vectors it carries are " +
                          std::to_string(source_bytes) + " bytes");
  }
  // The codec's own rules, then its sections in order with their exact lengths (0 = any).
  auto expected = entry.coder().expected_sections(d, *c, dim, VectorRange{first, count, !h.chunk},
                                                  context());
  if (!expected) return expected.status();
  const std::vector<SectionSpec>& want = *expected;
  if (h.sections.size() != want.size()) {
    return make_error(ErrorCode::kBadEncodedData,
                      who + std::to_string(h.sections.size()) + " sections; this codec writes " +
                          std::to_string(want.size()));
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    const SectionEntry& s = h.sections[i];
    if (s.kind != want[i].first) {
      return make_error(ErrorCode::kBadEncodedData,
                        who + "section " + std::to_string(i) + " is " +
                            std::string(section_kind_name(s.kind)) + "; this codec writes " +
                            std::string(section_kind_name(want[i].first)) + " there");
    }
    if (want[i].second != 0 && s.length != want[i].second) {
      return make_error(ErrorCode::kBadEncodedData,
                        who + std::string(section_kind_name(s.kind)) + " section is " +
                            std::to_string(s.length) + " bytes; " + std::to_string(count) +
                            " vectors of " + std::to_string(dim) + " need " +
                            std::to_string(want[i].second));
    }
  }
  return {};
}

Status TensorPacketReader::read(const MessageHeader& h, std::span<const std::byte> body,
                                codec::TensorView out, codec::ThreadPool* pool) {
  AGP_RETURN_IF_ERROR(verify(h));
  if (out.shape != h.tensor->shape) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the output's shape differs from the packet's tensor descriptor");
  }
  out.vector_axis = h.tensor->vector_axis;
  AGP_RETURN_IF_ERROR(out.validate());
  auto c = codec_from_desc(*h.codec, h.tensor->dtype);
  if (!c) return c.status();
  if (body.size() < h.body_length) {
    return make_error(ErrorCode::kInvalidArgument, "the body is shorter than the header says");
  }
  std::vector<std::span<const std::byte>> sections;
  for (std::size_t i = 0; i < h.sections.size(); ++i) sections.push_back(section_bytes(h, body, i));
  const std::uint64_t vectors = out.vector_count();
  const VectorRange range{h.chunk ? h.chunk->vector_offset : 0, h.chunk ? h.chunk->vector_count : vectors,
                          !h.chunk};
  return entry_of(c->config.id).coder().decode(h, *c, sections, out, range, pool, context());
}

DecodeContext TensorPacketReader::context() {
  DecodeContext ctx;
  ctx.calibration = calibration_.get();
  ctx.per_vector_codec = [this](const CodecDesc& d, const PacketCodec& c, std::uint32_t dim) {
    return codec_for(d, c, dim);
  };
  return ctx;
}

}  // namespace agp::ptp
