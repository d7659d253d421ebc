// Fuzz target: decoding arbitrary code bytes with a descriptor picked from the input. Decoding
// may fail with a typed error, never crash or read out of bounds; a successful decode gives finite
// values for TurboQuant (every code index is valid, norms are checked).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "agp/codec/codec.hpp"
#include "agp/codec/lossless.hpp"

using namespace agp;
using namespace agp::codec;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  static const CodecId kIds[] = {CodecId::kTurboQuantMse, CodecId::kBlockAbsmaxInt8,
                                 CodecId::kBlockAbsmax4, CodecId::kRaw, CodecId::kTurboQuantProd};
  CodecConfig cfg;
  cfg.id = kIds[data[0] % 5];
  cfg.bits = cfg.id == CodecId::kTurboQuantProd    ? 2 + data[1] % 7
             : cfg.id == CodecId::kTurboQuantMse ? 1 + data[1] % 8
             : cfg.id == CodecId::kBlockAbsmaxInt8 ? 8
                                                   : 4;
  cfg.norm_dtype = data[1] & 0x80 ? DType::kF32 : DType::kF16;
  cfg.raw_dtype = data[1] & 0x40 ? DType::kBF16 : DType::kF16;
  const std::uint32_t dim = 1 + data[2] % 200;
  const std::uint32_t vectors = 1 + data[3] % 20;
  auto made = make_codec(cfg, dim);
  if (!made) std::abort();  // every configuration above is valid
  const Codec& c = **made;
  std::vector<std::vector<std::byte>> parts;
  std::size_t pos = 4;
  for (const PartSpec& p : c.parts()) {
    std::vector<std::byte> b(vectors * p.bytes_per_vector);
    for (auto& x : b) x = pos < size ? static_cast<std::byte>(data[pos++]) : std::byte{0};
    parts.push_back(std::move(b));
  }
  std::vector<std::span<const std::byte>> spans(parts.begin(), parts.end());
  std::vector<float> out(static_cast<std::size_t>(dim) * vectors);
  const Status s =
      c.decode_all(spans, TensorView::contiguous(out.data(), DType::kF32, {vectors, dim}, 1));
  if (s.is_ok() && (cfg.id == CodecId::kTurboQuantMse || cfg.id == CodecId::kTurboQuantProd)) {
    for (float v : out) {
      if (std::isnan(v)) std::abort();
    }
  }
  // The lossless stage on the same bytes.
  std::vector<std::byte> raw(reinterpret_cast<const std::byte*>(data),
                             reinterpret_cast<const std::byte*>(data) + size);
  std::vector<std::byte> sink(4096);
  (void)zstd_decompress(raw, sink);
  return 0;
}
