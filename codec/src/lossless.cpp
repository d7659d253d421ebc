#include "agp/codec/lossless.hpp"

#include <zstd.h>

#include <string>

namespace agp::codec {

std::size_t zstd_bound(std::size_t n) {
  return ZSTD_compressBound(n);
}

Result<std::size_t> zstd_compress(std::span<const std::byte> in, int level,
                                  std::span<std::byte> out) {
  if (out.size() < zstd_bound(in.size())) {
    return make_error(ErrorCode::kBufferTooSmall,
                      "zstd output buffer is " + std::to_string(out.size()) + " bytes; needs " +
                          std::to_string(zstd_bound(in.size())));
  }
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
    return make_error(ErrorCode::kInvalidArgument, "zstd level " + std::to_string(level) +
                                                       " is outside [" +
                                                       std::to_string(ZSTD_minCLevel()) + ", " +
                                                       std::to_string(ZSTD_maxCLevel()) + "]");
  }
  const std::size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level);
  if (ZSTD_isError(n)) {
    return make_error(ErrorCode::kInvalidArgument, std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  return n;
}

Status zstd_decompress(std::span<const std::byte> in, std::span<std::byte> out) {
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return make_error(ErrorCode::kBadEncodedData, "the lossless stage is not a zstd frame");
  }
  // Exactly one frame: ZSTD_decompress would also take further frames (skippable ones included)
  // after it, bytes no encoder of ours writes and a reader written from the spec refuses.
  if (const std::size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
      ZSTD_isError(frame) || frame != in.size()) {
    return make_error(ErrorCode::kBadEncodedData,
                      ZSTD_isError(frame) ? std::string("zstd: ") + ZSTD_getErrorName(frame)
                                          : "bytes follow the zstd frame");
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != out.size()) {
    return make_error(ErrorCode::kBadEncodedData,
                      "zstd frame declares " + std::to_string(declared) + " bytes; expected " +
                          std::to_string(out.size()));
  }
  const std::size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) {
    return make_error(ErrorCode::kBadEncodedData, std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  if (n != out.size()) {
    return make_error(ErrorCode::kBadEncodedData, "zstd frame decoded to " + std::to_string(n) +
                                                      " bytes; expected " +
                                                      std::to_string(out.size()));
  }
  return {};
}

}  // namespace agp::codec
