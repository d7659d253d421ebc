#include "header_codec.hpp"

#include "agp/ptp/ptp_generated.h"

namespace agp::ptp::detail {
namespace {

template <typename To, typename From>
To enum_cast(From v) {
  return static_cast<To>(static_cast<std::underlying_type_t<From>>(v));
}

std::string to_string(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

template <typename T>
std::vector<T> to_vector(const flatbuffers::Vector<T>* v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

}  // namespace

void encode_header(flatbuffers::FlatBufferBuilder& fbb, const MessageHeader& h) {
  fbb.Clear();
  const auto model_id = h.model_id.empty() ? 0 : fbb.CreateString(h.model_id).o;

  flatbuffers::Offset<fb::TensorDesc> tensor;
  if (h.tensor) {
    const auto name = fbb.CreateString(h.tensor->name);
    const auto shape = fbb.CreateVector(h.tensor->shape);
    tensor = fb::CreateTensorDesc(fbb, name, enum_cast<fb::DType>(h.tensor->dtype), shape,
                                  enum_cast<fb::Layout>(h.tensor->layout), h.tensor->vector_axis);
  }
  flatbuffers::Offset<fb::CodecDesc> codec;
  if (h.codec) {
    const CodecDesc& c = *h.codec;
    codec = fb::CreateCodecDesc(
        fbb, enum_cast<fb::CodecId>(c.codec), c.bits, enum_cast<fb::RotationKind>(c.rotation),
        c.rotation_seed, c.block_size, c.codebook_id, c.codebook_version,
        enum_cast<fb::DType>(c.norm_dtype), enum_cast<fb::LosslessKind>(c.lossless),
        c.lossless_level, c.original_bytes, c.calibration_id);
  }
  flatbuffers::Offset<fb::ChunkDesc> chunk;
  if (h.chunk) {
    chunk = fb::CreateChunkDesc(fbb, h.chunk->index, h.chunk->count, h.chunk->vector_offset,
                                h.chunk->vector_count);
  }
  flatbuffers::Offset<fb::HelloDesc> hello;
  if (h.hello) {
    const HelloDesc& he = *h.hello;
    hello = fb::CreateHelloDescDirect(fbb, he.min_protocol, he.max_protocol, he.max_frame_bytes,
                                      he.max_streams, &he.codecs, he.flags, &he.nonce, &he.auth_tag,
                                      he.peer_name.c_str(), he.session_id,
                                      he.delivered_sequence, he.next_sequence,
                                      he.codec_bits.empty() ? nullptr : &he.codec_bits,
                                      he.stream_index);
  }
  flatbuffers::Offset<fb::AckDesc> ack;
  if (h.ack) ack = fb::CreateAckDesc(fbb, h.ack->cumulative_sequence);
  flatbuffers::Offset<fb::ErrorDesc> error;
  if (h.error) error = fb::CreateErrorDescDirect(fbb, h.error->code, h.error->message.c_str());

  std::vector<fb::Section> sections;
  sections.reserve(h.sections.size());
  for (const SectionEntry& s : h.sections) {
    sections.emplace_back(s.offset, s.length, s.checksum, enum_cast<fb::SectionKind>(s.kind));
  }
  const auto section_vec = fbb.CreateVectorOfStructs(sections);
  const fb::Hash128 fp(h.fingerprint.lo, h.fingerprint.hi);

  fb::HeaderBuilder b(fbb);
  b.add_body_length(h.body_length);
  b.add_timestamp_ns(h.timestamp_ns);
  b.add_sequence(h.sequence);
  b.add_sections(section_vec);
  b.add_error(error);
  b.add_ack(ack);
  b.add_hello(hello);
  b.add_chunk(chunk);
  b.add_codec(codec);
  b.add_tensor(tensor);
  b.add_split_layer(h.split_layer);
  if (model_id) b.add_model_id(flatbuffers::Offset<flatbuffers::String>(model_id));
  b.add_fingerprint(&fp);
  b.add_stream_id(h.stream_id);
  b.add_protocol_version(h.protocol_version);
  b.add_kind(enum_cast<fb::MessageKind>(h.kind));
  fbb.Finish(b.Finish(), fb::HeaderIdentifier());
}

Result<MessageHeader> decode_header(std::span<const std::byte> region, const DecoderLimits& lim) {
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(region.data());
  flatbuffers::Verifier verifier(bytes, region.size(), lim.max_verifier_depth,
                                 lim.max_verifier_tables);
  if (!fb::VerifyHeaderBuffer(verifier)) {
    return make_error(ErrorCode::kHeaderInvalid,
                      "the FlatBuffers Verifier rejected the header (bad offsets, identifier other "
                      "than \"APH1\", or nesting/table limits exceeded)");
  }
  const fb::Header* f = fb::GetHeader(bytes);
  MessageHeader h;
  h.protocol_version = f->protocol_version();
  h.kind = enum_cast<MessageKind>(f->kind());
  h.stream_id = f->stream_id();
  h.sequence = f->sequence();
  h.timestamp_ns = f->timestamp_ns();
  if (const fb::Hash128* fp = f->fingerprint()) h.fingerprint = {fp->lo(), fp->hi()};
  h.model_id = to_string(f->model_id());
  h.split_layer = f->split_layer();
  if (const fb::TensorDesc* t = f->tensor()) {
    TensorDesc td;
    td.name = to_string(t->name());
    td.dtype = enum_cast<DType>(t->dtype());
    td.shape = to_vector(t->shape());
    td.layout = enum_cast<Layout>(t->layout());
    td.vector_axis = t->vector_axis();
    h.tensor = std::move(td);
  }
  if (const fb::CodecDesc* c = f->codec()) {
    CodecDesc cd;
    cd.codec = enum_cast<CodecId>(c->codec());
    cd.bits = c->bits();
    cd.rotation = enum_cast<RotationKind>(c->rotation());
    cd.rotation_seed = c->rotation_seed();
    cd.block_size = c->block_size();
    cd.codebook_id = c->codebook_id();
    cd.codebook_version = c->codebook_version();
    cd.norm_dtype = enum_cast<DType>(c->norm_dtype());
    cd.lossless = enum_cast<LosslessKind>(c->lossless());
    cd.lossless_level = c->lossless_level();
    cd.original_bytes = c->original_bytes();
    cd.calibration_id = c->calibration_id();
    h.codec = cd;
  }
  if (const fb::ChunkDesc* c = f->chunk()) {
    h.chunk = ChunkDesc{c->index(), c->count(), c->vector_offset(), c->vector_count()};
  }
  if (const fb::HelloDesc* he = f->hello()) {
    HelloDesc d;
    d.min_protocol = he->min_protocol();
    d.max_protocol = he->max_protocol();
    d.max_frame_bytes = he->max_frame_bytes();
    d.max_streams = he->max_streams();
    d.codecs = to_vector(he->codecs());
    d.flags = he->flags();
    d.nonce = to_vector(he->nonce());
    d.auth_tag = to_vector(he->auth_tag());
    d.peer_name = to_string(he->peer_name());
    d.session_id = he->session_id();
    d.delivered_sequence = he->delivered_sequence();
    d.next_sequence = he->next_sequence();
    d.codec_bits = to_vector(he->codec_bits());
    d.stream_index = he->stream_index();
    h.hello = std::move(d);
  }
  if (const fb::AckDesc* a = f->ack()) h.ack = AckDesc{a->cumulative_sequence()};
  if (const fb::ErrorDesc* e = f->error()) h.error = ErrorDesc{e->code(), to_string(e->message())};
  if (const auto* secs = f->sections()) {
    if (secs->size() > lim.max_sections) {
      return make_error(ErrorCode::kBadSectionTable, std::to_string(secs->size()) +
                                                         " sections; the limit is " +
                                                         std::to_string(lim.max_sections));
    }
    h.sections.reserve(secs->size());
    for (const fb::Section* s : *secs) {
      h.sections.push_back(
          {enum_cast<SectionKind>(s->kind()), s->offset(), s->length(), s->xxh3()});
    }
  }
  h.body_length = f->body_length();
  return h;
}

}  // namespace agp::ptp::detail
