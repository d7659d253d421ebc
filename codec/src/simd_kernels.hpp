// Internal: the vectorized kernels of the codec (Highway, dispatched once per process to the best
// level the CPU has; tests force each level through agp/codec/simd.hpp).
//
// They work on "lane tiles": kTileLanes vectors stored coordinate-major, X[j * kTileLanes + t] is
// coordinate j of vector t. Every step of TurboQuant is then a vertical operation on rows, with no
// shuffles inside the Walsh-Hadamard transform. Each kernel performs the same floating-point
// operations in the same order as the scalar reference (turboquant_mse.cpp, vector by vector), so
// every level produces the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace agp::codec::simd {

inline constexpr std::size_t kTileLanes = 16;

// Index tile (idx[j * 16 + t], dim rows) <-> each vector's packed codes (bitpack.hpp layout):
// vector t's codes at out + t * stride, for t < lanes. Lanes >= lanes of idx are written as 0 by
// unpack_tile.
void pack_tile(const std::uint8_t* idx, std::size_t dim, int bits, std::size_t lanes,
               std::uint8_t* out, std::size_t stride);
// With keep_packed4 and bits == 4, idx receives the packed rows (row k = indices 2k, 2k+1 of the
// 16 lanes, low nibble first) for decode_block to split.
void unpack_tile(const std::uint8_t* in, std::size_t stride, std::size_t dim, int bits,
                 std::size_t lanes, std::uint8_t* idx, bool keep_packed4);

// Fused TurboQuant steps for one Hadamard block (m rows) of a lane tile.
// encode_load: rows j < m of the source (16 contiguous f16 or f32 values at src + j * stride
// elements) -> ss[t] = sum of squares (in row order), x[j][t] = value * signs[j].
void encode_load(const void* src, bool src_f16, std::ptrdiff_t stride, std::size_t m,
                 const float* signs, float* x, float* ss);
// encode_transform: the transform of x, then z = x * inv[t] quantized into idx rows (bits <= 4);
// for bits > 4, z is left in x for the scalar quantizer.
void encode_transform(float* x, std::size_t m, const float* inv, const float* boundaries, int bits,
                      std::uint8_t* idx);
// Nearest-centroid indices of the m rows of z (any bit width) with a codebook's bin table: the
// same result as Codebook::quantize. `start` has `bins` entries, `boundaries` 256.
void quantize_lut_rows(const float* z, std::size_t m, float lo, float inv_bin, int bins,
                       const std::int32_t* start, const float* boundaries, int max_steps,
                       std::uint8_t* idx);
// decode_block: centroids of idx rows (packed4: of packed 4-bit rows, the block starting at an
// even index; any bit width, the table holding 2^bits entries), the transform, times
// lane_scale[t] * signs[j], stored as f16 or f32 rows at dst + j * stride.
void decode_block(const std::uint8_t* idx, bool packed4, std::size_t m, const float* centroids,
                  int bits, const float* lane_scale, const float* signs, float* x, void* dst,
                  bool dst_f16, std::ptrdiff_t stride);

// The calibrated codec. subtract_rows: z[r * dim + j] = x[r * dim + j] - mean[j].
// quantize_round: q[i] = roundeven(z[i] * inv) (the product in f32). dequantize_levels:
// x[i] = mean[i] + step * level[i] (a product, then a sum; x may be level).
void subtract_rows(const float* x, std::size_t rows, std::size_t dim, const float* mean, float* z);
void quantize_round(const float* z, std::size_t count, float inv, std::int32_t* q);
void dequantize_levels(const float* level, std::size_t count, const float* mean, float step,
                       float* x);
// The same, converted to f16 (nearest even) as f32_to_f16_n would.
void dequantize_to_f16(const float* level, std::size_t count, const float* mean, float step,
                       std::uint16_t* x);

// The largest |x[i]|; not finite when some x[i] is not (NaN or infinity).
float max_abs(const float* x, std::size_t count);
// Per row: q = roundeven(z * inv), h = q >> shift[j] (arithmetic), sym = h + 31 for |h| <= 31,
// else 63 (the escape).
void quantize_symbols(const float* z, std::size_t rows, std::size_t dim, float inv,
                      const std::int32_t* shift, std::int32_t* q, std::uint8_t* sym);
// Over `rows` rows of m values (h and r contiguous, row q's outputs at out + q * out_stride):
// out[i] = float(h[i] * 2^k + r[i]); out[i] = recon64[(h[i] + 31) & 63].
void shift_add_levels(const std::int8_t* h, const std::int32_t* r, std::size_t rows, std::size_t m,
                      int k, float* out, std::size_t out_stride);
void recon_levels(const std::int8_t* h, std::size_t rows, std::size_t m, const float* recon64,
                  float* out, std::size_t out_stride);
// The same as shift_add_levels for raw parts of at most 8 bits.
void shift_add_levels_u8(const std::int8_t* h, const std::uint8_t* r, std::size_t rows,
                         std::size_t m, int k, float* out, std::size_t out_stride);

// Rows of `width` f16 values `stride` elements apart <-> rows * width contiguous f32 (one call for
// a tile of channels-first vectors).
void f16_strided_to_f32(const std::uint16_t* base, std::ptrdiff_t stride, std::size_t rows,
                        std::size_t width, float* dst);
void f32_to_f16_strided(const float* src, std::size_t rows, std::size_t width, std::uint16_t* base,
                        std::ptrdiff_t stride);

// B = A^T for A of `rows` x `cols` values, A[r][c] at src[r * src_stride + c] (f16 or f32), B[c][r]
// at dst[c * dst_stride + r] (f32); and the other way, from f32 to f16 (nearest even) or f32. They
// turn channels-first tiles of kTileLanes vectors into rows and back, and row-major vectors into
// lane tiles, 4 x 4 values at a time in registers.
void transpose_to_f32(const void* src, bool src_f16, std::size_t rows, std::size_t cols,
                      std::ptrdiff_t src_stride, float* dst, std::size_t dst_stride);
void transpose_from_f32(const float* src, std::size_t rows, std::size_t cols, std::size_t src_stride,
                        void* dst, bool dst_f16, std::ptrdiff_t dst_stride);
// A tile of kTileLanes channels-first vectors (row j: their coordinate j, kTileLanes contiguous
// f16 or f32 values at base + j * stride elements) -> the vectors as rows, dequantized on the way:
// x = mean[j] + step * level[t * dim + j], as dequantize_levels.
void rows_to_lanes(const float* level, std::size_t dim, const float* mean, float step, void* base,
                   bool dst_f16, std::ptrdiff_t stride);

// Contiguous conversions.
void f16_to_f32_n(const std::uint16_t* src, std::size_t n, float* dst);
void f32_to_f16_n(const float* src, std::size_t n, std::uint16_t* dst);

// The Highway target the dispatcher currently uses, e.g. "AVX2" or "NEON".
const char* dispatched_target_name();

}  // namespace agp::codec::simd
