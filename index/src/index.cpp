// The index (index.hpp): codes from the codec, scored against per-dimension lookup tables.
//
// The codec stores a block of m values x (one Hadamard block of the vector) as indices i_k of
// the centroids c of z = H (s * x) / |x|, and decodes it as x' = s * H c / m * |x| (H the
// unnormalized Hadamard matrix, s the random signs; turboquant_mse.cpp). H is symmetric, so
//   <x', q> = |x| / m * <c, H (s * q)>:
// the query is rotated once per search, and a vector's score is a sum of table entries
// t_k[i_k] = c[i_k] * (H (s * q))_k per block, times the block's norm over m.
#include "agp/index/index.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "agp/codec/codec.hpp"
#include "agp/codec/dtype.hpp"
#include "agp/codec/tensor_view.hpp"
#include "bit_planes.hpp"
#include "bitpack.hpp"
#include "codebooks.hpp"
#include "index_state.hpp"
#include "rotation.hpp"
#include "simd_kernels.hpp"

namespace agp::index {

namespace {

constexpr std::uint32_t kMaxDim = 65536;

}  // namespace

// Scales `v` to unit length in place; the error names what is wrong with it.
Status normalize_in_place(float* v, std::uint32_t dim, const std::string& what) {
  double ss = 0;
  for (std::uint32_t k = 0; k < dim; ++k) {
    if (!std::isfinite(v[k])) {
      return make_error(ErrorCode::kNonFiniteInput,
                        what + " has a NaN or infinite value at " + std::to_string(k));
    }
    ss += static_cast<double>(v[k]) * v[k];
  }
  if (ss == 0 || !std::isfinite(ss)) {
    return make_error(ErrorCode::kValueOutOfRange,
                      what + " has no direction (its length is 0 or overflows)");
  }
  // In double: for vectors of subnormal values 1 / |v| is beyond float's range.
  const double inv = 1.0 / std::sqrt(ss);
  for (std::uint32_t k = 0; k < dim; ++k) v[k] = static_cast<float>(v[k] * inv);
  return {};
}

Index::Index(std::unique_ptr<State> state) : s_(std::move(state)) {}
Index::Index(Index&&) noexcept = default;
Index& Index::operator=(Index&&) noexcept = default;
Index::~Index() = default;

Result<std::unique_ptr<Index::State>> Index::State::make(std::uint32_t dim,
                                                         const IndexOptions& options) {
  if (dim == 0 || dim > kMaxDim) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "index dimension must be 1.." + std::to_string(kMaxDim) + ", got " + std::to_string(dim));
  }
  if (options.bits < 1 || options.bits > 8) {
    return make_error(ErrorCode::kInvalidArgument,
                      "index bits must be 1..8, got " + std::to_string(options.bits));
  }
  auto s = std::make_unique<State>();
  s->dim = dim;
  s->options = options;
  codec::CodecConfig c;
  c.id = CodecId::kTurboQuantMse;
  c.bits = options.bits;
  c.norm_dtype = DType::kF32;
  c.seed = options.seed;
  auto made = codec::make_codec(c, dim);
  if (!made) return made.status();
  s->codec = std::move(made).value();
  s->blocks = codec::hadamard_blocks(dim);
  s->rotation_signs = codec::random_signs(dim, options.seed);
  for (const codec::Block& b : s->blocks)
    s->books.push_back(&codec::codebook(static_cast<int>(b.size), options.bits));
  s->plane = static_cast<std::uint32_t>(plane_bytes(dim));
  for (const codec::Block& b : s->blocks) {
    if (b.offset % 8 != 0 || b.size % 8 != 0) {
      s->sign_blocks.clear();
      break;
    }
    s->sign_blocks.push_back({b.offset / 8, (b.offset + b.size) / 8});
  }
  return s;
}

Result<Index> Index::create(std::uint32_t dim, const IndexOptions& options) {
  auto s = State::make(dim, options);
  if (!s) return s.status();
  return Index(std::move(s).value());
}

std::uint32_t Index::dim() const {
  return s_->dim;
}
std::uint64_t Index::size() const {
  const auto reading = s_->reading();
  return s_->count;
}
const IndexOptions& Index::options() const {
  return s_->options;
}

double Index::code_bits_per_dimension() const {
  return 8.0 *
         (s_->options.bits * static_cast<double>(s_->plane) +
          4.0 * static_cast<double>(s_->blocks.size())) /
         s_->dim;
}

Status Index::vectors(std::uint64_t first, std::uint64_t count, std::span<float> out) const {
  const State& s = *s_;
  const auto reading = s.reading();
  if (first > s.count || count > s.count - first || out.size() != count * s.dim) {
    return make_error(ErrorCode::kInvalidArgument,
                      "vectors " + std::to_string(first) + ".." + std::to_string(first + count) +
                          " into " + std::to_string(out.size()) + " values: the index holds " +
                          std::to_string(s.count) + " of " + std::to_string(s.dim));
  }
  if (s.options.keep_exact) {
    AGP_RETURN_IF_ERROR(s.exact_ready());
    codec::simd::f16_to_f32_n(s.exact.data() + first * s.dim, count * s.dim, out.data());
    return {};
  }
  // x' = s * H c per block, times the stored norm (|x_b| g / m): the decode up to the factor g,
  // which normalizing removes.
  const std::size_t lower = static_cast<std::size_t>(s.options.bits - 1) * s.plane;
  std::vector<std::uint8_t> idx(std::size_t{s.plane} * 8);
  for (std::uint64_t i = first; i < first + count; ++i) {
    planes_to_codes(s.top_planes.data() + i * s.plane, s.lower_planes.data() + i * lower, s.dim,
                    s.options.bits, idx.data());
    float* x = out.data() + (i - first) * s.dim;
    for (std::size_t b = 0; b < s.blocks.size(); ++b) {
      const codec::Block& blk = s.blocks[b];
      const float* c = s.books[b]->centroids();
      for (std::uint32_t k = blk.offset; k < blk.offset + blk.size; ++k) x[k] = c[idx[k]];
      codec::fwht(x + blk.offset, blk.size);
      const float norm = s.norms[i * s.blocks.size() + b];
      for (std::uint32_t k = blk.offset; k < blk.offset + blk.size; ++k)
        x[k] *= s.rotation_signs[k] * norm;
    }
    if (!s.mean.empty()) {  // the codes hold the difference from the mean
      for (std::uint32_t k = 0; k < s.dim; ++k) x[k] += s.mean[k];
    }
    double ss = 0;
    for (std::uint32_t k = 0; k < s.dim; ++k) ss += static_cast<double>(x[k]) * x[k];
    const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.0f;
    for (std::uint32_t k = 0; k < s.dim; ++k) x[k] *= inv;
  }
  return {};
}

Status Index::add(std::span<const float> vectors) {
  State& s = *s_;
  if (vectors.size() % s.dim != 0) {
    return make_error(ErrorCode::kInvalidArgument, std::to_string(vectors.size()) +
                                                       " values are not whole vectors of " +
                                                       std::to_string(s.dim));
  }
  const std::uint64_t n = vectors.size() / s.dim;
  // Every row is checked before anything is added: a bad row leaves the index as it was.
  std::vector<float> row(s.dim);
  std::vector<double> sum(s.dim, 0.0);  // of the normalized rows, for the mean
  for (std::uint64_t i = 0; i < n; ++i) {
    std::copy_n(vectors.begin() + static_cast<std::ptrdiff_t>(i * s.dim), s.dim, row.begin());
    AGP_RETURN_IF_ERROR(
        normalize_in_place(row.data(), s.dim, "vector " + std::to_string(i) + " of this batch"));
    for (std::uint32_t k = 0; k < s.dim; ++k) sum[k] += row[k];
  }
  if (n == 0) return {};
  const auto writing = s.writing();  // searches wait (and are not waited for) meanwhile
  AGP_RETURN_IF_ERROR(s.own());            // a mapped snapshot is copied before it grows
  const std::uint64_t before = s.count;
  // The first add fixes the mean for the index's life (codes already made stay valid).
  const bool centering = s.options.center && before == 0 && s.mean.empty() &&
                         n >= IndexOptions::kMinCenterVectors;
  if (centering) {
    s.mean.resize(s.dim);
    for (std::uint32_t k = 0; k < s.dim; ++k) s.mean[k] = static_cast<float>(sum[k] / static_cast<double>(n));
  }
  s.reserve(before + n);
  // Encoded a batch at a time, so the temporaries stay small whatever the caller passes.
  constexpr std::uint64_t kBatch = 4096;
  for (std::uint64_t first = 0; first < n; first += kBatch) {
    const Status st =
        add_batch(vectors.subspan(first * s.dim, std::min(kBatch, n - first) * s.dim));
    if (!st) {
      s.truncate(before);
      if (centering) s.mean.clear();
      return st;
    }
  }
  return {};
}

Status Index::add_batch(std::span<const float> vectors) {
  State& s = *s_;
  const std::uint64_t n = vectors.size() / s.dim;
  std::vector<float> unit(vectors.begin(), vectors.end());
  for (std::uint64_t i = 0; i < n; ++i) {
    AGP_RETURN_IF_ERROR(normalize_in_place(unit.data() + i * s.dim, s.dim, "a vector"));
  }
  // What is coded: the normalized vector, less the mean when the index is centered. A vector
  // (almost) equal to the mean keeps a sliver of its own direction instead: the codec cannot
  // code a zero vector, and that sliver's error is far below the codes'.
  std::vector<float> coded = unit;
  if (!s.mean.empty()) {
    for (std::uint64_t i = 0; i < n; ++i) {
      float* r = coded.data() + i * s.dim;
      double ss = 0;
      for (std::uint32_t k = 0; k < s.dim; ++k) {
        r[k] -= s.mean[k];
        ss += static_cast<double>(r[k]) * r[k];
      }
      if (ss < 1e-12) {
        for (std::uint32_t k = 0; k < s.dim; ++k) r[k] = 1e-6f * unit[i * s.dim + k];
      }
    }
  }
  const std::size_t blocks = s.blocks.size();
  const std::size_t code_bytes = codec::packed_bytes(s.dim, s.options.bits);
  std::vector<std::uint8_t> codes(n * code_bytes);
  std::vector<float> norms(n * blocks);
  const auto view = codec::TensorView::contiguous(coded.data(), DType::kF32, {n, s.dim}, 1);
  const std::span<std::byte> parts[] = {std::as_writable_bytes(std::span(codes)),
                                        std::as_writable_bytes(std::span(norms))};
  AGP_RETURN_IF_ERROR(s.codec->encode_all(view, parts));
  // The codec stores each block's norm; the score needs it over the block's size, times the
  // vector's correction g = <x, x'> / <x', x'> (x' the decoded vector): the part of x along x'
  // is g x', the rest is orthogonal to it and averages out over queries, so g <x', q> estimates
  // <x, q> without the quantizer's per-vector shrinkage (the idea of RaBitQ's estimator).
  std::vector<float> decoded(n * s.dim);
  const std::span<const std::byte> stored[] = {std::as_bytes(std::span(codes)),
                                               std::as_bytes(std::span(norms))};
  AGP_RETURN_IF_ERROR(s.codec->decode_all(
      stored, codec::TensorView::contiguous(decoded.data(), DType::kF32, {n, s.dim}, 1)));
  for (std::uint64_t i = 0; i < n; ++i) {
    double xd = 0, dd = 0;
    for (std::uint32_t k = 0; k < s.dim; ++k) {
      xd += static_cast<double>(coded[i * s.dim + k]) * decoded[i * s.dim + k];
      dd += static_cast<double>(decoded[i * s.dim + k]) * decoded[i * s.dim + k];
    }
    const float g = s.options.unbias && dd > 0 ? static_cast<float>(std::max(xd / dd, 0.0)) : 1.0f;
    for (std::size_t b = 0; b < blocks; ++b)
      norms[i * blocks + b] *= g / static_cast<float>(s.blocks[b].size);
  }
  const std::size_t lower_bytes = static_cast<std::size_t>(s.options.bits - 1) * s.plane;
  s.top_owned.resize((s.count + n) * s.plane);
  s.lower_owned.resize((s.count + n) * lower_bytes);
  std::vector<std::uint8_t> idx(s.dim);
  for (std::uint64_t i = 0; i < n; ++i) {
    codec::unpack_bits(codes.data() + i * code_bytes, s.dim, s.options.bits, idx.data());
    codes_to_planes(idx.data(), s.dim, s.options.bits, &s.top_owned[(s.count + i) * s.plane],
                    s.lower_owned.data() + (s.count + i) * lower_bytes);
  }
  s.norms_owned.insert(s.norms_owned.end(), norms.begin(), norms.end());
  if (s.options.keep_exact) {
    s.exact_owned.resize((s.count + n) * s.dim);
    codec::simd::f32_to_f16_n(unit.data(), unit.size(), s.exact_owned.data() + s.count * s.dim);
  }
  s.count += n;
  s.bind_owned();
  return {};
}

}  // namespace agp::index
