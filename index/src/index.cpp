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
#include "bitpack.hpp"
#include "codebooks.hpp"
#include "index_state.hpp"
#include "rotation.hpp"

namespace agp::index {

namespace {

constexpr std::uint32_t kMaxDim = 65536;

// Scales `v` to unit length in place; the error names what is wrong with it.
Status normalize(float* v, std::uint32_t dim, const std::string& what) {
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
  const float inv = static_cast<float>(1.0 / std::sqrt(ss));
  for (std::uint32_t k = 0; k < dim; ++k) v[k] *= inv;
  return {};
}

// Keeps the best `n` hits seen, best first once sorted.
void keep_best(std::vector<Hit>& hits, std::size_t n) {
  auto better = [](const Hit& a, const Hit& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  };
  if (hits.size() > n) {
    std::nth_element(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(n), hits.end(),
                     better);
    hits.resize(n);
  }
  std::sort(hits.begin(), hits.end(), better);
}

}  // namespace

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
  s->signs = codec::random_signs(dim, options.seed);
  for (const codec::Block& b : s->blocks)
    s->books.push_back(&codec::codebook(static_cast<int>(b.size), options.bits));
  s->code_bytes = static_cast<std::uint32_t>(codec::packed_bytes(dim, options.bits));
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
  return s_->count;
}
const IndexOptions& Index::options() const {
  return s_->options;
}

double Index::code_bits_per_dimension() const {
  return 8.0 * (s_->code_bytes + 4.0 * static_cast<double>(s_->blocks.size())) / s_->dim;
}

Status Index::add(std::span<const float> vectors) {
  State& s = *s_;
  if (vectors.size() % s.dim != 0) {
    return make_error(ErrorCode::kInvalidArgument, std::to_string(vectors.size()) +
                                                       " values are not whole vectors of " +
                                                       std::to_string(s.dim));
  }
  const std::uint64_t n = vectors.size() / s.dim;
  if (n == 0) return {};
  std::vector<float> unit(vectors.begin(), vectors.end());
  for (std::uint64_t i = 0; i < n; ++i) {
    AGP_RETURN_IF_ERROR(normalize(unit.data() + i * s.dim, s.dim,
                                  "vector " + std::to_string(i) + " of this batch"));
  }
  const std::size_t blocks = s.blocks.size();
  std::vector<std::uint8_t> codes(n * s.code_bytes);
  std::vector<float> norms(n * blocks);
  const auto view = codec::TensorView::contiguous(unit.data(), DType::kF32, {n, s.dim}, 1);
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
      xd += static_cast<double>(unit[i * s.dim + k]) * decoded[i * s.dim + k];
      dd += static_cast<double>(decoded[i * s.dim + k]) * decoded[i * s.dim + k];
    }
    const float g = s.options.unbias && dd > 0 ? static_cast<float>(std::max(xd / dd, 0.0)) : 1.0f;
    for (std::size_t b = 0; b < blocks; ++b)
      norms[i * blocks + b] *= g / static_cast<float>(s.blocks[b].size);
  }
  s.own();  // a mapped snapshot is copied before it grows
  s.codes_owned.insert(s.codes_owned.end(), codes.begin(), codes.end());
  s.norms_owned.insert(s.norms_owned.end(), norms.begin(), norms.end());
  if (s.options.keep_exact) {
    s.exact_owned.reserve(s.exact_owned.size() + unit.size());
    for (float v : unit) s.exact_owned.push_back(f32_to_f16(v));
  }
  s.count += n;
  s.bind_owned();
  return {};
}

Result<std::vector<Hit>> Index::search(std::span<const float> query,
                                       const SearchOptions& options) const {
  const State& s = *s_;
  if (query.size() != s.dim) {
    return make_error(ErrorCode::kInvalidArgument, "the query has " + std::to_string(query.size()) +
                                                       " values, the index " +
                                                       std::to_string(s.dim));
  }
  if (options.rerank > 0 && !s.options.keep_exact) {
    return make_error(ErrorCode::kInvalidArgument,
                      "rerank needs the exact copies (IndexOptions::keep_exact)");
  }
  std::vector<float> q(query.begin(), query.end());
  AGP_RETURN_IF_ERROR(normalize(q.data(), s.dim, "the query"));
  // The rotated query, then its tables: t[k * levels + j] = c_b[j] * (H (s * q))_k.
  std::vector<float> rotated(q);
  for (const codec::Block& b : s.blocks) {
    float* x = rotated.data() + b.offset;
    for (std::uint32_t k = 0; k < b.size; ++k) x[k] *= s.signs[b.offset + k];
    codec::fwht(x, b.size);
  }
  const int levels = 1 << s.options.bits;
  std::vector<float> table(static_cast<std::size_t>(s.dim) * levels);
  for (std::size_t b = 0; b < s.blocks.size(); ++b) {
    const float* c = s.books[b]->centroids();
    for (std::uint32_t k = s.blocks[b].offset; k < s.blocks[b].offset + s.blocks[b].size; ++k) {
      for (int j = 0; j < levels; ++j)
        table[static_cast<std::size_t>(k) * levels + j] = c[j] * rotated[k];
    }
  }
  const std::size_t keep = std::max(options.k, options.rerank);
  const std::size_t blocks = s.blocks.size();
  std::vector<std::uint8_t> idx(s.dim);
  // Vector i's score: term(k, code of k) summed over each block, times the block's stored norm
  // and `block_scale[b]`.
  auto blockwise = [&](std::uint64_t i, auto term, const float* block_scale) {
    codec::unpack_bits(s.codes.data() + i * s.code_bytes, s.dim, s.options.bits, idx.data());
    float score = 0;
    for (std::size_t b = 0; b < blocks; ++b) {
      float sum = 0;
      const std::uint32_t end = s.blocks[b].offset + s.blocks[b].size;
      for (std::uint32_t k = s.blocks[b].offset; k < end; ++k) sum += term(k, idx[k]);
      score += sum * block_scale[b] * s.norms[i * blocks + b];
    }
    return score;
  };
  const std::vector<float> ones(blocks, 1.0f);
  auto full_score = [&](std::uint64_t i) {
    return blockwise(
        i, [&](std::uint32_t k, std::uint8_t c) { return table[std::size_t{k} * levels + c]; },
        ones.data());
  };
  std::vector<Hit> hits;
  if (options.coarse > 0 && s.options.bits > 1) {
    // The sign stage: the 1-bit codebook's centroid stands for every coordinate's magnitude.
    std::vector<float> one_bit(blocks);
    for (std::size_t b = 0; b < blocks; ++b) {
      one_bit[b] = codec::codebook(static_cast<int>(s.blocks[b].size), 1).centroids()[1];
    }
    const int top = levels / 2;
    const std::size_t candidates = std::max(options.coarse, keep);
    std::vector<Hit> coarse;
    coarse.reserve(std::min<std::uint64_t>(s.count, 2 * candidates + 1024));
    for (std::uint64_t i = 0; i < s.count; ++i) {
      const float score = blockwise(
          i, [&](std::uint32_t k, std::uint8_t c) { return c >= top ? rotated[k] : -rotated[k]; },
          one_bit.data());
      coarse.push_back({i, score});
      if (coarse.size() >= 2 * candidates + 1024) keep_best(coarse, candidates);
    }
    keep_best(coarse, candidates);
    for (const Hit& c : coarse) hits.push_back({c.id, full_score(c.id)});
  } else {
    hits.reserve(std::min<std::uint64_t>(s.count, 2 * keep + 1024));
    for (std::uint64_t i = 0; i < s.count; ++i) {
      hits.push_back({i, full_score(i)});
      if (hits.size() >= 2 * keep + 1024) keep_best(hits, keep);
    }
  }
  keep_best(hits, keep);
  if (options.rerank > 0) {
    for (Hit& h : hits) {
      const std::uint16_t* e = s.exact.data() + h.id * s.dim;
      float dot = 0;
      for (std::uint32_t k = 0; k < s.dim; ++k) dot += f16_to_f32(e[k]) * q[k];
      h.score = dot;
    }
  }
  keep_best(hits, options.k);
  return hits;
}

}  // namespace agp::index
