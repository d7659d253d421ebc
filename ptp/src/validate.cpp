#include "agp/ptp/validate.hpp"

#include <algorithm>
#include <string>

#include "agp/ptp/packet_codecs.hpp"

namespace agp::ptp {
namespace {

std::string str(std::uint64_t v) {
  return std::to_string(v);
}

bool known_kind(MessageKind k) {
  const auto v = static_cast<unsigned>(k);
  return v >= 1 && v <= 7;
}

// Axis count implied by a layout; 0 when the layout does not constrain the rank.
std::size_t layout_rank(Layout l) {
  switch (l) {
    case Layout::kUnspecified:
      return 0;
    case Layout::kBSD:
      return 3;
    case Layout::kBC1S:
      return 4;
    case Layout::kSD:
      return 2;
    case Layout::kD:
      return 1;
    case Layout::kBCS:
      return 3;
  }
  return 0;
}

Status check_string(const std::string& s, const char* what, const DecoderLimits& lim) {
  if (s.size() > lim.max_string_bytes) {
    return make_error(ErrorCode::kHeaderInvalid, std::string(what) + " is " + str(s.size()) +
                                                     " bytes; the limit is " +
                                                     str(lim.max_string_bytes));
  }
  if (const std::size_t at = invalid_utf8_offset(s); at != std::string::npos) {
    return make_error(ErrorCode::kHeaderInvalid,
                      std::string(what) + " is not valid UTF-8 (byte " + str(at) + ")");
  }
  return {};
}

Status check_codec(const CodecDesc& c) {
  const auto id = static_cast<unsigned>(c.codec);
  if (!find_packet_codec(c.codec)) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      "codec id " + str(id) + " is not one this build knows (" +
                          packet_codec_names() + ")");
  }
  if (c.codec == CodecId::kRaw && c.bits != 0) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      "raw codec must have bits 0, got " + str(c.bits));
  }
  if (c.codec != CodecId::kRaw && (c.bits < 1 || c.bits > 16)) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      "bits per value must be 1..16, got " + str(c.bits));
  }
  if (static_cast<unsigned>(c.rotation) >
      static_cast<unsigned>(RotationKind::kBlockWalshHadamard)) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      "rotation kind " + str(static_cast<unsigned>(c.rotation)) + " is unknown");
  }
  if (static_cast<unsigned>(c.lossless) > static_cast<unsigned>(LosslessKind::kZstd)) {
    return make_error(ErrorCode::kBadCodecDescriptor,
                      "lossless stage " + str(static_cast<unsigned>(c.lossless)) + " is unknown");
  }
  if (c.norm_dtype != DType::kUnknown && !is_float_dtype(c.norm_dtype)) {
    return make_error(ErrorCode::kBadCodecDescriptor, "norm dtype must be f32, f16 or bf16, got " +
                                                          std::string(dtype_name(c.norm_dtype)));
  }
  return {};
}

Status check_sections(const MessageHeader& h, const DecoderLimits& lim) {
  if (h.body_length > lim.max_body_bytes) {
    return make_error(ErrorCode::kBodyTooLarge, "body_length " + str(h.body_length) +
                                                    " is above the receiver's cap of " +
                                                    str(lim.max_body_bytes) + " bytes");
  }
  if (h.body_length % kBodyAlignment != 0) {
    return make_error(ErrorCode::kBadSectionTable,
                      "body_length " + str(h.body_length) + " is not a multiple of 64");
  }
  if (h.sections.size() > lim.max_sections) {
    return make_error(ErrorCode::kBadSectionTable,
                      str(h.sections.size()) + " sections; the limit is " + str(lim.max_sections));
  }
  std::uint64_t expected_offset = 0;
  for (std::size_t i = 0; i < h.sections.size(); ++i) {
    const SectionEntry& s = h.sections[i];
    const std::string who =
        "section " + str(i) + " (" + std::string(section_kind_name(s.kind)) + ")";
    if (static_cast<unsigned>(s.kind) == 0) {
      return make_error(ErrorCode::kBadSectionTable, who + " has kind 0 (unknown)");
    }
    if (s.offset % kBodyAlignment != 0) {
      return make_error(
          ErrorCode::kSectionMisaligned,
          who + " starts at body offset " + str(s.offset) + ", which is not a multiple of 64");
    }
    if (s.offset > h.body_length || s.length > h.body_length - s.offset) {
      return make_error(ErrorCode::kSectionOutOfBounds, who + " spans [" + str(s.offset) + ", +" +
                                                            str(s.length) + ") but the body is " +
                                                            str(h.body_length) + " bytes");
    }
    if (s.offset != expected_offset) {
      return make_error(ErrorCode::kSectionMisaligned,
                        who + " starts at " + str(s.offset) + "; the canonical layout (packed in " +
                            "table order, 64-byte aligned) puts it at " + str(expected_offset));
    }
    // Cannot overflow: offset + length <= body_length <= max_body_bytes.
    expected_offset = *align_up(s.offset + s.length, kBodyAlignment);
  }
  if (h.body_length != expected_offset) {
    return make_error(ErrorCode::kBadSectionTable,
                      "body_length is " + str(h.body_length) + " but the sections end at " +
                          str(expected_offset) + " (after 64-byte padding)");
  }
  return {};
}

Status check_kind_fields(const MessageHeader& h, const DecoderLimits& lim) {
  auto missing = [&](const char* field) {
    return make_error(ErrorCode::kMissingField, std::string(message_kind_name(h.kind)) +
                                                    " message without its `" + field + "` field");
  };
  switch (h.kind) {
    case MessageKind::kTensorPacket:
      if (!h.tensor) return missing("tensor");
      if (!h.codec) return missing("codec");
      if (h.sections.empty()) return missing("sections");
      break;
    case MessageKind::kHello:
    case MessageKind::kHelloReply:
      if (!h.hello) return missing("hello");
      break;
    case MessageKind::kAck:
      if (!h.ack) return missing("ack");
      break;
    case MessageKind::kError:
      if (!h.error) return missing("error");
      break;
    case MessageKind::kHeartbeat:
    case MessageKind::kBye:
      break;
  }
  if (h.hello) {
    const HelloDesc& he = *h.hello;
    AGP_RETURN_IF_ERROR(check_string(he.peer_name, "hello.peer_name", lim));
    if (he.codecs.size() > lim.max_vector_elements || he.nonce.size() > lim.max_vector_elements ||
        he.auth_tag.size() > lim.max_vector_elements) {
      return make_error(ErrorCode::kHeaderInvalid,
                        "hello codec list, nonce or auth tag is longer than " +
                            str(lim.max_vector_elements) + " elements");
    }
    if (!he.codec_bits.empty() && he.codec_bits.size() != he.codecs.size()) {
      return make_error(ErrorCode::kHeaderInvalid,
                        "hello codec_bits has " + str(he.codec_bits.size()) +
                            " entries for " + str(he.codecs.size()) + " codecs");
    }
    if (he.min_protocol > he.max_protocol) {
      return make_error(ErrorCode::kHeaderInvalid, "hello protocol range [" + str(he.min_protocol) +
                                                       ", " + str(he.max_protocol) + "] is empty");
    }
  }
  if (h.error) AGP_RETURN_IF_ERROR(check_string(h.error->message, "error.message", lim));
  if (h.chunk) {
    const ChunkDesc& c = *h.chunk;
    if (c.count == 0 || c.index >= c.count) {
      return make_error(ErrorCode::kHeaderInvalid, "chunk index " + str(c.index) +
                                                       " is not below chunk count " + str(c.count));
    }
    if (c.vector_count > UINT64_MAX - c.vector_offset) {
      return make_error(ErrorCode::kHeaderInvalid, "chunk vector range overflows");
    }
  }
  return {};
}

}  // namespace

Status validate_tensor_desc(const TensorDesc& t) {
  if (!is_float_dtype(t.dtype)) {
    return make_error(ErrorCode::kBadTensorDescriptor,
                      "tensor dtype must be f32, f16 or bf16, got " +
                          std::string(dtype_name(t.dtype)) + " (" +
                          str(static_cast<unsigned>(t.dtype)) + ")");
  }
  if (t.shape.empty() || t.shape.size() > kMaxRank) {
    return make_error(ErrorCode::kBadTensorDescriptor,
                      "tensor rank must be 1.." + str(kMaxRank) + ", got " + str(t.shape.size()));
  }
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] == 0) {
      return make_error(ErrorCode::kBadTensorDescriptor,
                        "tensor dimension " + str(i) + " is 0; every dimension must be >= 1");
    }
  }
  const auto count = shape_element_count(t.shape);
  if (!count || *count > UINT64_MAX / dtype_size(t.dtype)) {
    return make_error(ErrorCode::kBadTensorDescriptor, "tensor element count overflows 64 bits");
  }
  if (t.vector_axis >= t.shape.size()) {
    return make_error(
        ErrorCode::kBadTensorDescriptor,
        "vector axis " + str(t.vector_axis) + " is not below rank " + str(t.shape.size()));
  }
  if (static_cast<unsigned>(t.layout) > static_cast<unsigned>(Layout::kBCS)) {
    return make_error(ErrorCode::kBadTensorDescriptor,
                      "layout " + str(static_cast<unsigned>(t.layout)) + " is unknown");
  }
  const std::size_t lr = layout_rank(t.layout);
  if (lr != 0 && lr != t.shape.size()) {
    return make_error(ErrorCode::kBadTensorDescriptor,
                      "layout " + std::string(layout_name(t.layout)) + " has " + str(lr) +
                          " axes but the shape has " + str(t.shape.size()));
  }
  return {};
}

std::size_t invalid_utf8_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
    }
    i += len;
  }
  return std::string::npos;
}

std::string to_header_string(std::string_view s, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(s.size(), max_bytes));
  while (!s.empty()) {
    const std::size_t bad = invalid_utf8_offset(s);
    const std::size_t good = std::min(bad, s.size());
    out.append(s.substr(0, good));
    if (bad == std::string::npos) break;
    out.push_back('?');
    s.remove_prefix(good + 1);
  }
  if (out.size() > max_bytes) {
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

std::uint64_t decoded_frame_bytes(const MessageHeader& h) {
  if (!h.tensor || h.tensor->vector_axis >= h.tensor->shape.size()) return 0;
  const auto elements = shape_element_count(h.tensor->shape);
  if (!elements) return 0;
  const std::uint64_t dim = h.tensor->shape[h.tensor->vector_axis];
  std::uint64_t vectors = *elements / dim;
  if (h.chunk) vectors = std::min(vectors, h.chunk->vector_count);
  return vectors * dim * dtype_size(h.tensor->dtype);  // <= the element count's bytes: no overflow
}

bool expansion_allowed(std::uint64_t decoded, std::uint64_t wire, const DecoderLimits& limits) {
  if (decoded <= limits.expansion_slack_bytes) return true;
  const std::uint64_t over = decoded - limits.expansion_slack_bytes;
  // over <= max_expansion * wire, without the product overflowing.
  return limits.max_expansion > 0 &&
         (over + limits.max_expansion - 1) / limits.max_expansion <= wire;
}

Status validate_header(const MessageHeader& h, const DecoderOptions& opts) {
  const DecoderLimits& lim = opts.limits;
  if (h.protocol_version != kProtocolVersion) {
    return make_error(ErrorCode::kProtocolVersionMismatch,
                      "protocol version " + str(h.protocol_version) + "; this build speaks " +
                          str(kProtocolVersion));
  }
  if (!known_kind(h.kind)) {
    return make_error(ErrorCode::kUnknownMessageKind,
                      "message kind " + str(static_cast<unsigned>(h.kind)) +
                          " is not defined by protocol version 1 (1..7)");
  }
  AGP_RETURN_IF_ERROR(check_string(h.model_id, "model_id", lim));
  AGP_RETURN_IF_ERROR(check_kind_fields(h, lim));
  if (h.tensor) {
    AGP_RETURN_IF_ERROR(check_string(h.tensor->name, "tensor.name", lim));
    AGP_RETURN_IF_ERROR(validate_tensor_desc(*h.tensor));
    const std::uint64_t bytes = *shape_element_count(h.tensor->shape) * dtype_size(h.tensor->dtype);
    if (bytes > lim.max_tensor_bytes) {
      return make_error(ErrorCode::kBodyTooLarge,
                        "the tensor is " + str(bytes) + " bytes; this receiver takes at most " +
                            str(lim.max_tensor_bytes));
    }
  }
  if (h.codec) AGP_RETURN_IF_ERROR(check_codec(*h.codec));
  AGP_RETURN_IF_ERROR(check_sections(h, lim));
  if (h.kind == MessageKind::kTensorPacket && h.tensor) {
    const std::uint64_t decoded = decoded_frame_bytes(h);
    if (!expansion_allowed(decoded, h.body_length, lim)) {
      return make_error(ErrorCode::kBadEncodedData,
                        "a body of " + str(h.body_length) + " bytes claims " + str(decoded) +
                            " decoded bytes, more than " + str(lim.max_expansion) +
                            " times its size plus " + str(lim.expansion_slack_bytes) +
                            " (DecoderLimits::max_expansion): refused before any decoding");
    }
  }
  const bool carries_model = h.kind == MessageKind::kTensorPacket ||
                             h.kind == MessageKind::kHello || h.kind == MessageKind::kHelloReply;
  if (opts.expected_fingerprint && carries_model && h.fingerprint != *opts.expected_fingerprint) {
    return make_error(ErrorCode::kFingerprintMismatch,
                      "model fingerprint " + to_hex(h.fingerprint) + " but this receiver expects " +
                          to_hex(*opts.expected_fingerprint) +
                          " (different model, weights, split layer or codec family)");
  }
  return {};
}

}  // namespace agp::ptp
