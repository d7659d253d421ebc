// Tensor frames as a peer sends them after the handshake: well formed (checksums and section table
// computed by the builder), with hostile contents. The input chooses a real packet of some codec,
// shape and chunking, then lies in any descriptor field and overwrites any section bytes. The
// frame is parsed as a receiver parses it, checked as a Link checks it on arrival
// (TensorPacketReader::verify) and, if that passes, decoded into a buffer sized from the
// descriptor. Nothing may crash, read out of bounds, or allocate beyond the receiver's limits.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <vector>

#include "agp/codec/dtype.hpp"
#include "agp/ptp/frame_builder.hpp"
#include "agp/ptp/frame_decoder.hpp"
#include "agp/ptp/tensor_packet.hpp"

namespace {

using namespace agp;

constexpr const char* kCodecs[] = {"raw",   "tq1",   "tq2",   "tq3",   "tq4",   "tq5",  "tq8",
                                   "prod2", "prod3", "prod8", "int8",  "int4",  "ec2",  "ec4",
                                   "ec6",   "ec8"};

ptp::DecoderLimits limits() {
  ptp::DecoderLimits l;
  l.max_tensor_bytes = 8u << 20;  // the decode buffer stays small enough to fuzz fast
  l.max_body_bytes = 8u << 20;
  return l;
}

// Builds a genuine packet (or one chunk of it) from the input's choices.
bool genuine(FuzzedDataProvider& in, ptp::MessageHeader& h, std::vector<std::vector<std::byte>>& s) {
  const DType dtypes[] = {DType::kF16, DType::kF32, DType::kBF16};
  const DType dtype = dtypes[in.ConsumeIntegralInRange<int>(0, 2)];
  const std::uint64_t dim = in.ConsumeIntegralInRange<std::uint64_t>(1, 300);
  const std::uint64_t vectors = in.ConsumeIntegralInRange<std::uint64_t>(1, 40);
  const std::vector<std::uint64_t> shape = {vectors, dim};
  std::vector<float> x(vectors * dim);
  for (auto& v : x) v = static_cast<float>(in.ConsumeIntegralInRange<int>(-1000, 1000)) / 100.0f;
  std::vector<std::byte> bytes(x.size() * dtype_size(dtype));
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(bytes.data() + 4 * i, &x[i], 4);
    } else {
      const std::uint16_t v = dtype == DType::kF16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
      std::memcpy(bytes.data() + 2 * i, &v, 2);
    }
  }
  auto codec = ptp::parse_packet_codec(
      kCodecs[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kCodecs) - 1)], dtype);
  if (!codec) return false;
  ptp::TensorPacketWriter w(*codec);
  const auto view = codec::TensorView::contiguous(bytes.data(), dtype, shape, 1);
  Result<ptp::GatherList> g = ptp::GatherList{};
  if (ptp::TensorPacketWriter::chunkable(codec->config.id) && in.ConsumeBool()) {
    const std::uint64_t first = in.ConsumeIntegralInRange<std::uint64_t>(0, vectors - 1);
    const std::uint64_t count = in.ConsumeIntegralInRange<std::uint64_t>(1, vectors - first);
    g = w.write_chunk(view, ptp::MessageHeader{}, ptp::Layout::kSD,
                      ptp::ChunkDesc{0, static_cast<std::uint32_t>(vectors), first, count});
  } else {
    g = w.write(view, ptp::MessageHeader{}, ptp::Layout::kSD);
  }
  if (!g) return false;
  const auto flat = g->flatten();
  auto f = ptp::parse_frame(flat);
  if (!f) return false;
  h = f->header;
  for (std::size_t i = 0; i < h.sections.size(); ++i) {
    const auto b = f->section(i);
    s.emplace_back(b.begin(), b.end());
  }
  return true;
}

// Lies told about a genuine packet: descriptor fields and section bytes.
void lie(FuzzedDataProvider& in, ptp::MessageHeader& h, std::vector<std::vector<std::byte>>& s) {
  const int lies = in.ConsumeIntegralInRange<int>(0, 6);
  for (int k = 0; k < lies && in.remaining_bytes() > 0; ++k) {
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
      case 0:
        h.tensor->shape[in.ConsumeIntegralInRange<std::size_t>(0, h.tensor->shape.size() - 1)] =
            in.ConsumeIntegral<std::uint64_t>() >> in.ConsumeIntegralInRange<int>(0, 63);
        break;
      case 1:
        h.tensor->dtype = static_cast<DType>(in.ConsumeIntegralInRange<int>(0, 4));
        break;
      case 2:
        h.codec->bits = in.ConsumeIntegral<std::uint8_t>();
        break;
      case 3:
        h.codec->codec = static_cast<CodecId>(in.ConsumeIntegralInRange<int>(0, 7));
        break;
      case 4:
        h.codec->lossless = static_cast<ptp::LosslessKind>(in.ConsumeIntegralInRange<int>(0, 1));
        break;
      case 5:
        h.codec->original_bytes = in.ConsumeIntegral<std::uint64_t>();
        break;
      case 6:
        h.codec->norm_dtype = static_cast<DType>(in.ConsumeIntegralInRange<int>(0, 3));
        break;
      case 7:
        h.chunk = ptp::ChunkDesc{in.ConsumeIntegral<std::uint32_t>(),
                                 in.ConsumeIntegral<std::uint32_t>(),
                                 in.ConsumeIntegral<std::uint64_t>() >> 40,
                                 in.ConsumeIntegral<std::uint64_t>() >> 40};
        break;
      case 8: {  // overwrite bytes of a section
        if (s.empty()) break;
        auto& b = s[in.ConsumeIntegralInRange<std::size_t>(0, s.size() - 1)];
        if (b.empty()) break;
        const std::size_t at = in.ConsumeIntegralInRange<std::size_t>(0, b.size() - 1);
        b[at] = static_cast<std::byte>(in.ConsumeIntegral<std::uint8_t>());
        break;
      }
      case 9: {  // resize a section
        if (s.empty()) break;
        auto& b = s[in.ConsumeIntegralInRange<std::size_t>(0, s.size() - 1)];
        b.resize(in.ConsumeIntegralInRange<std::size_t>(0, b.size() + 64));
        break;
      }
      case 10:  // change a section's kind
        if (!h.sections.empty()) {
          h.sections[in.ConsumeIntegralInRange<std::size_t>(0, h.sections.size() - 1)].kind =
              static_cast<ptp::SectionKind>(in.ConsumeIntegralInRange<int>(1, 8));
        }
        break;
      default:
        h.codec->codebook_id = in.ConsumeIntegralInRange<std::uint16_t>(0, 2);
        h.codec->rotation_seed = in.ConsumeIntegral<std::uint64_t>();
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  ptp::MessageHeader h;
  std::vector<std::vector<std::byte>> sections;
  if (!genuine(in, h, sections)) return 0;
  lie(in, h, sections);
  std::vector<ptp::SectionInput> inputs;
  for (std::size_t i = 0; i < sections.size(); ++i) {
    inputs.push_back({h.sections[i].kind, sections[i], std::nullopt});
  }
  ptp::DecoderLimits wide = limits();
  wide.max_tensor_bytes = UINT64_MAX;  // the peer's builder is not bound by our limits
  wide.max_expansion = UINT32_MAX;     // nor by our expansion bound: the receiver checks it
  ptp::FrameBuilder builder(wide);
  auto g = builder.build(h, inputs);
  if (!g) return 0;
  const auto flat = g->flatten();
  ptp::DecoderOptions opts;
  opts.limits = limits();
  auto f = ptp::parse_frame(flat, opts);
  if (!f) return 0;
  ptp::TensorPacketReader reader;
  if (!reader.verify(f->header)) return 0;
  // What a host does next: a buffer sized from the verified descriptor.
  const auto& t = *f->header.tensor;
  std::uint64_t elements = 1;
  for (auto d : t.shape) elements *= d;
  if (elements * sizeof(float) > (std::uint64_t{64} << 20)) __builtin_trap();  // verify() let it by
  std::vector<float> out(elements);
  (void)reader.read(f->header, f->body,
                    codec::TensorView::contiguous(out.data(), DType::kF32, t.shape, t.vector_axis));
  return 0;
}
