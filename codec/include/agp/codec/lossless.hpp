// The optional lossless stage: zstd over an encoded part (usually the packed codes).
#pragma once

#include <cstddef>
#include <span>

#include "agp/status.hpp"

namespace agp::codec {

// The largest output zstd_compress can produce for `n` input bytes.
std::size_t zstd_bound(std::size_t n);
// Compresses `in` at `level` (1..19; negative levels trade ratio for speed) into `out`; returns
// the compressed size. kBufferTooSmall when out is smaller than zstd_bound(in.size()).
Result<std::size_t> zstd_compress(std::span<const std::byte> in, int level,
                                  std::span<std::byte> out);
// Decompresses into `out`, which must be exactly the original size; kBadEncodedData when the input
// is not a zstd frame, is corrupt, or decodes to another size.
Status zstd_decompress(std::span<const std::byte> in, std::span<std::byte> out);

}  // namespace agp::codec
