#include "agp/ptp/frame_builder.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstring>

#include "agp/ptp/checksum.hpp"
#include "agp/ptp/validate.hpp"
#include "header_codec.hpp"
#include "prefix_codec.hpp"

namespace agp::ptp {
namespace {
constexpr std::byte kZeros[kBodyAlignment] = {};
}  // namespace

std::vector<std::byte> GatherList::flatten() const {
  std::vector<std::byte> out;
  out.reserve(total_bytes);
  for (const auto& p : pieces) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct FrameBuilder::Impl {
  DecoderLimits limits;
  flatbuffers::FlatBufferBuilder fbb{1024};
  std::vector<std::byte> head;
  MessageHeader header;
};

FrameBuilder::FrameBuilder(DecoderLimits limits) : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
}
FrameBuilder::~FrameBuilder() = default;
FrameBuilder::FrameBuilder(FrameBuilder&&) noexcept = default;
FrameBuilder& FrameBuilder::operator=(FrameBuilder&&) noexcept = default;

const MessageHeader& FrameBuilder::last_header() const {
  return impl_->header;
}

Result<GatherList> FrameBuilder::build(const MessageHeader& header,
                                       std::span<const SectionInput> sections) {
  Impl& m = *impl_;
  m.header = header;
  m.header.sections.clear();
  m.header.sections.reserve(sections.size());
  std::uint64_t offset = 0;
  for (const SectionInput& s : sections) {
    const std::uint64_t size = s.bytes.size();
    const auto end =
        size > UINT64_MAX - offset ? std::nullopt : align_up(offset + size, kBodyAlignment);
    if (!end) return make_error(ErrorCode::kBodyTooLarge, "section sizes overflow 64 bits");
    const std::uint64_t sum = s.checksum ? *s.checksum : xxh3_64(s.bytes);
    m.header.sections.push_back({s.kind, offset, size, sum});
    offset = *end;
  }
  m.header.body_length = offset;
  AGP_RETURN_IF_ERROR(validate_header(m.header, DecoderOptions{m.limits, std::nullopt}));

  detail::encode_header(m.fbb, m.header);
  const std::size_t fb_size = m.fbb.GetSize();
  const std::size_t region = *align_up(kPrefixSize + fb_size, kBodyAlignment) - kPrefixSize;
  if (region > m.limits.max_header_bytes) {
    return make_error(ErrorCode::kHeaderTooLarge, "encoded header needs " + std::to_string(region) +
                                                      " bytes; the limit is " +
                                                      std::to_string(m.limits.max_header_bytes));
  }
  m.head.assign(kPrefixSize + region, std::byte{0});
  std::memcpy(m.head.data() + kPrefixSize, m.fbb.GetBufferPointer(), fb_size);
  FramePrefix prefix;
  prefix.header_length = static_cast<std::uint32_t>(region);
  detail::write_prefix(prefix, std::span<std::byte, kPrefixSize>(m.head.data(), kPrefixSize));
  detail::seal_header_checksum(m.head);

  GatherList out;
  out.pieces.reserve(1 + 2 * sections.size());
  out.pieces.emplace_back(m.head);
  for (std::size_t i = 0; i < sections.size(); ++i) {
    const auto& bytes = sections[i].bytes;
    if (!bytes.empty()) out.pieces.push_back(bytes);
    const std::size_t pad = (kBodyAlignment - bytes.size() % kBodyAlignment) % kBodyAlignment;
    if (pad) out.pieces.emplace_back(kZeros, pad);
  }
  out.total_bytes = m.head.size() + m.header.body_length;
  return out;
}

}  // namespace agp::ptp
