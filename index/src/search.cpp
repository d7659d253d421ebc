// Index::search (index.hpp). A query is scored in up to three steps:
//   1. the sign stage: every vector's top bit plane against the query quantized to 4 bits
//      (scan_kernels.hpp), which reads 1 bit per dimension and keeps the best `coarse`;
//   2. whole codes: per-dimension tables of centroid times rotated query, which give exactly the
//      inner product of the query with the codec's decode of the vector (index.cpp);
//   3. the exact rerank against fp16 copies.
#include <algorithm>
#include <cmath>
#include <limits>

#include "agp/codec/dtype.hpp"
#include "bit_planes.hpp"
#include "index_state.hpp"
#include "scan_kernels.hpp"
#include "simd_kernels.hpp"

namespace agp::index {

namespace {

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

// Collects the best `n` of a stream of hits: once 2n are held, the n-th best score becomes the
// bar a new hit must pass, so most of a large index never reaches the buffer.
class BestOf {
 public:
  explicit BestOf(std::size_t n) : n_(std::max<std::size_t>(n, 1)) { hits_.reserve(2 * n_); }
  void offer(std::uint64_t id, float score) {
    if (score <= bar_) return;
    hits_.push_back({id, score});
    if (hits_.size() == 2 * n_) {
      // The n best, unsorted, the n-th last; ties with it are not needed (a later equal score
      // could only replace an equal one).
      std::nth_element(hits_.begin(), hits_.begin() + static_cast<std::ptrdiff_t>(n_ - 1),
                       hits_.end(), [](const Hit& a, const Hit& b) {
                         return a.score > b.score || (a.score == b.score && a.id < b.id);
                       });
      hits_.resize(n_);
      bar_ = hits_.back().score;
    }
  }
  // The best n, sorted best first.
  std::vector<Hit> take() {
    keep_best(hits_, n_);
    return std::move(hits_);
  }

 private:
  std::size_t n_;
  float bar_ = -std::numeric_limits<float>::infinity();
  std::vector<Hit> hits_;
};

// What a search computes from the query once.
struct Query {
  std::vector<float> unit;     // the normalized query
  std::vector<float> rotated;  // H (s * q) per block
  // Codes wider than 4 bits: t[k * levels + j] = c_b[j] * rotated[k]. Narrower ones are scored
  // by code_dot from the codebooks (scan_kernels.hpp), padded here to 16 centroids per block.
  std::vector<float> table;
  std::vector<float> centroids16;
};

Query prepare(const Index::State& s, std::vector<float> unit) {
  Query q;
  q.rotated = unit;
  q.unit = std::move(unit);
  for (const codec::Block& b : s.blocks) {
    float* x = q.rotated.data() + b.offset;
    for (std::uint32_t k = 0; k < b.size; ++k) x[k] *= s.rotation_signs[b.offset + k];
    codec::fwht(x, b.size);
  }
  const int levels = 1 << s.options.bits;
  if (levels <= 16) {
    q.centroids16.assign(16 * s.blocks.size(), 0.0f);
    for (std::size_t b = 0; b < s.blocks.size(); ++b)
      std::copy_n(s.books[b]->centroids(), levels, q.centroids16.begin() + 16 * b);
    return q;
  }
  q.table.resize(static_cast<std::size_t>(s.dim) * levels);
  for (std::size_t b = 0; b < s.blocks.size(); ++b) {
    const float* c = s.books[b]->centroids();
    for (std::uint32_t k = s.blocks[b].offset; k < s.blocks[b].offset + s.blocks[b].size; ++k) {
      for (int j = 0; j < levels; ++j)
        q.table[static_cast<std::size_t>(k) * levels + j] = c[j] * q.rotated[k];
    }
  }
  return q;
}

// Scores vectors from their whole codes.
class CodeScorer {
 public:
  CodeScorer(const Index::State& s, const Query& q)
      : s_(s),
        q_(q),
        levels_(1 << s.options.bits),
        lower_(static_cast<std::size_t>(s.options.bits - 1) * s.plane),
        idx_(std::size_t{s.plane} * 8) {}
  // Asks for vector i's bytes ahead of scoring it.
  void prefetch(std::uint64_t i) const {
    __builtin_prefetch(s_.top_planes.data() + i * s_.plane);
    const std::uint8_t* lower = s_.lower_planes.data() + i * lower_;
    for (std::size_t o = 0; o < lower_; o += 64) __builtin_prefetch(lower + o);
    __builtin_prefetch(s_.norms.data() + i * s_.blocks.size());
  }
  float operator()(std::uint64_t i) {
    planes_to_codes(s_.top_planes.data() + i * s_.plane, s_.lower_planes.data() + i * lower_,
                    s_.dim, s_.options.bits, idx_.data());
    const std::size_t blocks = s_.blocks.size();
    float score = 0;
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::uint32_t begin = s_.blocks[b].offset, end = begin + s_.blocks[b].size;
      float sum = 0;
      if (levels_ <= 16) {
        sum = code_dot(idx_.data() + begin, q_.rotated.data() + begin, end - begin,
                       q_.centroids16.data() + 16 * b);
      } else {
        for (std::uint32_t k = begin; k < end; ++k)
          sum += q_.table[std::size_t{k} * levels_ + idx_[k]];
      }
      score += sum * s_.norms[i * blocks + b];
    }
    return score;
  }

 private:
  const Index::State& s_;
  const Query& q_;
  int levels_;
  std::size_t lower_;
  std::vector<std::uint8_t> idx_;
};

// The sign stage: the best `n` vectors by the 1-bit estimate
//   sum_b norm_b * c1_b * sum_{k in b} s_k q_k,
// c1_b the 1-bit codebook's centroid standing for every coordinate's magnitude, and q quantized.
std::vector<Hit> sign_stage(const Index::State& s, const Query& q, std::size_t n) {
  const std::size_t blocks = s.blocks.size();
  std::vector<std::uint8_t> planes(4 * std::size_t{s.plane}, 0);
  std::vector<float> weight(blocks), bias(blocks);
  for (std::size_t b = 0; b < blocks; ++b) {
    const codec::Block& blk = s.blocks[b];
    float max_abs = 0;
    for (std::uint32_t k = blk.offset; k < blk.offset + blk.size; ++k)
      max_abs = std::max(max_abs, std::fabs(q.rotated[k]));
    const float step = max_abs > 0 ? max_abs / 7.5f : 1.0f;
    for (std::uint32_t k = blk.offset; k < blk.offset + blk.size; ++k) {
      const long u = std::clamp(std::lround(q.rotated[k] / step + 7.5f), 0L, 15L);
      for (int j = 0; j < 4; ++j) {
        if ((u >> j) & 1) planes[j * std::size_t{s.plane} + k / 8] |= std::uint8_t(1u << (k % 8));
      }
    }
    weight[b] = codec::codebook(static_cast<int>(blk.size), 1).centroids()[1] * step;
    bias[b] = 7.5f * static_cast<float>(blk.size);
  }
  constexpr std::size_t kChunk = 256;
  std::vector<std::uint32_t> dist(kChunk * blocks);
  std::vector<float> est(kChunk);
  BestOf best(n);
  for (std::uint64_t start = 0; start < s.count; start += kChunk) {
    const std::size_t m =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, s.count - start));
    sign_distances(s.top_planes.data() + start * s.plane, s.plane, m, planes.data(), s.sign_blocks,
                   dist.data());
    sign_estimates(dist.data(), s.norms.data() + start * blocks, blocks, m, weight.data(),
                   bias.data(), est.data());
    for (std::size_t i = 0; i < m; ++i) best.offer(start + i, est[i]);
  }
  return best.take();
}

// Replaces each hit's score by the exact inner product with its fp16 copy.
void rerank_exactly(const Index::State& s, const std::vector<float>& unit, std::vector<Hit>& hits) {
  auto fetch = [&](std::uint64_t id) {
    const auto* row = reinterpret_cast<const char*>(s.exact.data() + id * s.dim);
    for (std::size_t o = 0; o < std::size_t{s.dim} * 2; o += 64) __builtin_prefetch(row + o);
  };
  if (!hits.empty()) fetch(hits[0].id);
  std::vector<float> row(s.dim);
  for (std::size_t j = 0; j < hits.size(); ++j) {
    if (j + 1 < hits.size()) fetch(hits[j + 1].id);
    codec::simd::f16_to_f32_n(s.exact.data() + hits[j].id * s.dim, s.dim, row.data());
    float lanes[4] = {};
    std::uint32_t k = 0;
    for (; k + 4 <= s.dim; k += 4) {
      for (std::uint32_t l = 0; l < 4; ++l) lanes[l] += row[k + l] * unit[k + l];
    }
    float dot = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; k < s.dim; ++k) dot += row[k] * unit[k];
    hits[j].score = dot;
  }
}

}  // namespace

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
  std::vector<float> unit(query.begin(), query.end());
  AGP_RETURN_IF_ERROR(normalize_in_place(unit.data(), s.dim, "the query"));
  const Query q = prepare(s, std::move(unit));
  const std::size_t keep = std::max(options.k, options.rerank);
  CodeScorer score(s, q);
  std::vector<Hit> hits;
  const std::size_t candidates = std::max(options.coarse, keep);
  if (options.coarse > 0 && s.count > candidates && !s.sign_blocks.empty() && s.options.bits > 1) {
    hits = sign_stage(s, q, candidates);
    // In the order they are stored, each fetched a few ahead of its scoring.
    std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.id < b.id; });
    constexpr std::size_t kAhead = 4;
    for (std::size_t j = 0; j < std::min(kAhead, hits.size()); ++j) score.prefetch(hits[j].id);
    for (std::size_t j = 0; j < hits.size(); ++j) {
      if (j + kAhead < hits.size()) score.prefetch(hits[j + kAhead].id);
      hits[j].score = score(hits[j].id);
    }
    keep_best(hits, keep);
  } else {
    BestOf best(keep);
    for (std::uint64_t i = 0; i < s.count; ++i) best.offer(i, score(i));
    hits = best.take();
  }
  if (options.rerank > 0) rerank_exactly(s, q.unit, hits);
  keep_best(hits, options.k);
  return hits;
}

}  // namespace agp::index
