// Index::search (index.hpp). A query is scored in up to three steps:
//   1. the sign stage: every vector's top bit plane against the query quantized to 4 bits
//      (scan_kernels.hpp), which reads 1 bit per dimension and keeps the best `coarse`;
//   2. whole codes: per-dimension tables of centroid times rotated query, which give exactly the
//      inner product of the query with the codec's decode of the vector (index.cpp);
//   3. the exact rerank against fp16 copies.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <thread>

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

// The sign stage's view of a query: 4 planes of the rotated query quantized per block to 4 bits,
// and each block's weight and bias, so that a vector's 1-bit estimate is
//   sum_b norm_b * c1_b * pi/2 * step_b * (7.5 n_b - D_b)
//     ~ sum_b norm_b * c1_b * pi/2 * sum_{k in b} s_k q_k,
// c1_b the 1-bit codebook's centroid standing for every coordinate's magnitude.
struct SignQuery {
  std::vector<std::uint8_t> planes;
  std::vector<float> weight, bias;
};

SignQuery sign_query(const Index::State& s, const Query& q) {
  const std::size_t blocks = s.blocks.size();
  SignQuery sq{std::vector<std::uint8_t>(4 * std::size_t{s.plane}, 0), std::vector<float>(blocks),
               std::vector<float>(blocks)};
  for (std::size_t b = 0; b < blocks; ++b) {
    const codec::Block& blk = s.blocks[b];
    float max_abs = 0;
    for (std::uint32_t k = blk.offset; k < blk.offset + blk.size; ++k)
      max_abs = std::max(max_abs, std::fabs(q.rotated[k]));
    const float step = max_abs > 0 ? max_abs / 7.5f : 1.0f;
    for (std::uint32_t k = blk.offset; k < blk.offset + blk.size; ++k) {
      const long u = std::clamp(std::lround(q.rotated[k] / step + 7.5f), 0L, 15L);
      for (int j = 0; j < 4; ++j) {
        if ((u >> j) & 1)
          sq.planes[j * std::size_t{s.plane} + k / 8] |= static_cast<std::uint8_t>(1u << (k % 8));
      }
    }
    // The 1-bit decode shrinks an inner product by 2/pi on average (its centroid, sqrt(2/pi) for
    // unit-variance coordinates, times the sqrt(2/pi) a sign keeps of a coordinate's correlation
    // with the query); undoing that puts the estimates on the whole codes' scale, which the
    // automatic candidate margin needs (sign_error).
    constexpr float kUnshrink = 1.5707963f;
    sq.weight[b] = codec::codebook(static_cast<int>(blk.size), 1).centroids()[1] * step * kUnshrink;
    sq.bias[b] = 7.5f * static_cast<float>(blk.size);
  }
  return sq;
}

// Vectors [begin, end): the share of the index one thread scans.
struct Range {
  std::uint64_t begin, end;
};

// Runs work(range) for `threads` consecutive shares of [0, count) at once (on this thread and
// threads - 1 more), and returns the results in order.
template <typename Work>
auto in_parallel(std::uint64_t count, unsigned threads, Work work) {
  using Out = decltype(work(Range{0, 0}));
  std::vector<Out> out(threads);
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < threads; ++t) {
    helpers.emplace_back([&, t] {
      out[t] = work(Range{count * t / threads, count * (t + 1) / threads});
    });
  }
  out[0] = work(Range{0, count / threads});
  for (auto& h : helpers) h.join();
  return out;
}

// Estimates of vectors [start, start + m), m at most kChunk.
constexpr std::size_t kChunk = 256;
class SignScanner {
 public:
  SignScanner(const Index::State& s, const SignQuery& sq)
      : s_(s), sq_(sq), dist_(kChunk * s.blocks.size()), est_(kChunk) {}
  const float* operator()(std::uint64_t start, std::size_t m) {
    sign_distances(s_.top_planes.data() + start * s_.plane, s_.plane, m, sq_.planes.data(),
                   s_.sign_blocks, dist_.data());
    sign_estimates(dist_.data(), s_.norms.data() + start * s_.blocks.size(), s_.blocks.size(), m,
                   sq_.weight.data(), sq_.bias.data(), est_.data());
    return est_.data();
  }

 private:
  const Index::State& s_;
  const SignQuery& sq_;
  std::vector<std::uint32_t> dist_;
  std::vector<float> est_;
};

// The sign stage with a fixed number of candidates: the best `n` estimates.
std::vector<Hit> best_estimates(const Index::State& s, const SignQuery& sq, std::size_t n,
                                Range range) {
  SignScanner scan(s, sq);
  BestOf best(n);
  for (std::uint64_t start = range.begin; start < range.end; start += kChunk) {
    const std::size_t m =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, range.end - start));
    const float* est = scan(start, m);
    for (std::size_t i = 0; i < m; ++i) best.offer(start + i, est[i]);
  }
  return best.take();
}

// The sign stage choosing its own number of candidates: every vector whose estimate is within
// `margin` of the k-th best estimate (a vector that belongs in the top k is missed only when its
// estimate errs by more than that). Nothing when more than `cap` qualify: the sign stage cannot
// narrow this query down, and the caller scans every vector's whole codes instead.
std::optional<std::vector<Hit>> near_estimates(const Index::State& s, const SignQuery& sq,
                                               std::size_t k, float margin, std::size_t cap,
                                               Range range) {
  SignScanner scan(s, sq);
  std::vector<float> top;  // min-heap of the k best estimates so far
  auto greater = [](float a, float b) { return a > b; };
  float floor = -std::numeric_limits<float>::infinity();  // below it nothing can make the cut
  std::vector<Hit> near;
  std::size_t compact_at = std::max<std::size_t>(4 * k, 4096);
  for (std::uint64_t start = range.begin; start < range.end; start += kChunk) {
    const std::size_t m =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, range.end - start));
    const float* est = scan(start, m);
    for (std::size_t i = 0; i < m; ++i) {
      if (est[i] < floor) continue;
      if (top.size() < k) {
        top.push_back(est[i]);
        std::push_heap(top.begin(), top.end(), greater);
      } else if (est[i] > top.front()) {
        std::pop_heap(top.begin(), top.end(), greater);
        top.back() = est[i];
        std::push_heap(top.begin(), top.end(), greater);
      }
      if (top.size() == k) floor = std::max(floor, top.front() - margin);
      near.push_back({start + i, est[i]});
    }
    if (near.size() >= compact_at) {
      std::erase_if(near, [&](const Hit& h) { return h.score < floor; });
      if (near.size() > cap) return std::nullopt;
      compact_at = std::max(compact_at, 2 * near.size());
    }
  }
  std::erase_if(near, [&](const Hit& h) { return h.score < floor; });
  if (near.size() > cap) return std::nullopt;
  return near;
}

// The sign estimate's error against the whole codes' score, measured on up to 128 vectors spread
// over the index: the root mean square of the difference.
float sign_error(const Index::State& s, const SignQuery& sq, CodeScorer& score) {
  SignScanner scan(s, sq);
  const std::uint64_t samples = std::min<std::uint64_t>(s.count, 128);
  double sum = 0;
  for (std::uint64_t j = 0; j < samples; ++j) {
    const std::uint64_t id = j * s.count / samples;
    const double d = static_cast<double>(score(id)) - scan(id, 1)[0];
    sum += d * d;
  }
  return static_cast<float>(std::sqrt(sum / static_cast<double>(samples)));
}

// SearchOptions::kAutoCoarse: candidates within this many times the sign estimate's measured error
// of the k-th best, on indexes of at least kAutoMinVectors (below, one stage is as fast).
constexpr float kAutoMargin = 3.0f;
constexpr std::uint64_t kAutoMinVectors = 1024;
// SearchOptions::threads: a thread per this many vectors at most.
constexpr std::uint64_t kMinVectorsPerThread = 16384;

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
  const auto reading = s.reading();
  if (query.size() != s.dim) {
    return make_error(ErrorCode::kInvalidArgument, "the query has " + std::to_string(query.size()) +
                                                       " values, the index " +
                                                       std::to_string(s.dim));
  }
  if (options.rerank > 0 && !s.options.keep_exact) {
    return make_error(ErrorCode::kInvalidArgument,
                      "rerank needs the exact copies (IndexOptions::keep_exact)");
  }
  if (options.rerank > 0) AGP_RETURN_IF_ERROR(s.exact_ready());
  std::vector<float> unit(query.begin(), query.end());
  AGP_RETURN_IF_ERROR(normalize_in_place(unit.data(), s.dim, "the query"));
  const Query q = prepare(s, std::move(unit));
  // No more hits than vectors, whatever was asked (a huge k or rerank must not size buffers).
  const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(options.k, s.count));
  const std::size_t keep = static_cast<std::size_t>(
      std::min<std::uint64_t>(std::max(options.k, options.rerank), s.count));
  CodeScorer score(s, q);
  std::vector<Hit> hits;
  const bool automatic = options.coarse == SearchOptions::kAutoCoarse;
  const std::size_t candidates =
      static_cast<std::size_t>(std::min<std::uint64_t>(std::max(options.coarse, keep), s.count));
  bool two_stages = options.coarse > 0 && s.count > (automatic ? kAutoMinVectors : candidates) &&
                    !s.sign_blocks.empty() && s.options.bits > 1;
  // Threads only where each has a share worth starting it for.
  const unsigned threads = static_cast<unsigned>(std::clamp<std::uint64_t>(
      std::min<std::uint64_t>(options.threads, s.count / kMinVectorsPerThread), 1, 64));
  if (two_stages) {
    const SignQuery sq = sign_query(s, q);
    if (automatic) {
      const float margin = kAutoMargin * sign_error(s, sq, score);
      const std::size_t cap = s.count / 8;
      const std::size_t k_near = std::max<std::size_t>(k, 1);
      auto shares = in_parallel(
          s.count, threads, [&](Range r) { return near_estimates(s, sq, k_near, margin, cap, r); });
      two_stages =
          std::all_of(shares.begin(), shares.end(), [](const auto& v) { return v.has_value(); });
      for (auto& share : shares) {
        if (share) hits.insert(hits.end(), share->begin(), share->end());
      }
      if (two_stages && threads > 1) {
        // Each share kept what is near its own k-th best; the whole index's is at least as high.
        std::vector<float> est;
        for (const Hit& h : hits) est.push_back(h.score);
        const std::size_t kk = std::min(k_near, est.size());
        std::nth_element(est.begin(), est.begin() + static_cast<std::ptrdiff_t>(kk - 1), est.end(),
                         std::greater<>());
        const float floor = est[kk - 1] - margin;
        std::erase_if(hits, [&](const Hit& h) { return h.score < floor; });
        two_stages = hits.size() <= cap;
      }
      if (!two_stages) hits.clear();
    } else {
      auto shares = in_parallel(s.count, threads,
                                [&](Range r) { return best_estimates(s, sq, candidates, r); });
      for (auto& share : shares) hits.insert(hits.end(), share.begin(), share.end());
      keep_best(hits, candidates);
    }
    // In the order they are stored, each fetched a few ahead of its scoring.
    std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.id < b.id; });
    constexpr std::size_t kAhead = 4;
    for (std::size_t j = 0; j < std::min(kAhead, hits.size()); ++j) score.prefetch(hits[j].id);
    for (std::size_t j = 0; j < hits.size(); ++j) {
      if (j + kAhead < hits.size()) score.prefetch(hits[j + kAhead].id);
      hits[j].score = score(hits[j].id);
    }
    if (two_stages) keep_best(hits, keep);
  }
  if (!two_stages) {
    auto shares = in_parallel(s.count, threads, [&](Range r) {
      CodeScorer own(s, q);
      BestOf best(keep);
      for (std::uint64_t i = r.begin; i < r.end; ++i) best.offer(i, own(i));
      return best.take();
    });
    for (auto& share : shares) hits.insert(hits.end(), share.begin(), share.end());
    keep_best(hits, keep);
  }
  if (options.rerank > 0) {
    rerank_exactly(s, q.unit, hits);
  } else if (!s.mean.empty()) {
    // The codes score the difference from the mean; its inner product with the query is the
    // same for every vector, added back so that scores stay cosine estimates.
    double c = 0;
    for (std::uint32_t d = 0; d < s.dim; ++d) c += static_cast<double>(s.mean[d]) * q.unit[d];
    for (Hit& h : hits) h.score += static_cast<float>(c);
  }
  keep_best(hits, k);
  return hits;
}

Result<std::vector<std::vector<Hit>>> Index::search_batch(std::span<const float> queries,
                                                          const SearchOptions& options,
                                                          unsigned threads) const {
  const std::uint32_t dim = s_->dim;
  if (queries.size() % dim != 0) {
    return make_error(
        ErrorCode::kInvalidArgument,
        std::to_string(queries.size()) + " values are not whole queries of " + std::to_string(dim));
  }
  const std::size_t n = queries.size() / dim;
  std::vector<std::vector<Hit>> out(n);
  std::vector<Status> failed(n);
  SearchOptions one = options;
  one.threads = 1;
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < n; i = next++) {
      auto hits = search(queries.subspan(i * dim, dim), one);
      if (hits) {
        out[i] = std::move(hits).value();
      } else {
        failed[i] = make_error(hits.status().code(),
                               "query " + std::to_string(i) + ": " + hits.status().message());
      }
    }
  };
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < std::clamp<unsigned>(threads, 1, 64) && t < n; ++t)
    helpers.emplace_back(work);
  work();
  for (auto& h : helpers) h.join();
  for (const Status& st : failed) {
    if (!st) return st;
  }
  return out;
}

}  // namespace agp::index
