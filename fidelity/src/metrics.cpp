#include "agp/fidelity/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace agp::fidelity {

void StateError::add(const float* x, const float* y, std::uint64_t n, std::uint32_t dim) {
  for (std::uint64_t v = 0; v < n; ++v) {
    const float* a = x + v * dim;
    const float* b = y + v * dim;
    double e = 0, d = 0, na = 0, nb = 0;
    for (std::uint32_t j = 0; j < dim; ++j) {
      const double diff = static_cast<double>(a[j]) - b[j];
      e += diff * diff;
      d += static_cast<double>(a[j]) * b[j];
      na += static_cast<double>(a[j]) * a[j];
      nb += static_cast<double>(b[j]) * b[j];
      max_abs = std::max(max_abs, std::abs(diff));
    }
    rel_mse_sum += na > 0 ? e / na : 0.0;
    cosine_sum += na > 0 && nb > 0 ? d / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
    energy += na;
    noise += e;
    ++vectors;
  }
}

void StateError::merge(const StateError& o) {
  rel_mse_sum += o.rel_mse_sum;
  cosine_sum += o.cosine_sum;
  energy += o.energy;
  noise += o.noise;
  max_abs = std::max(max_abs, o.max_abs);
  vectors += o.vectors;
}

double StateError::rel_mse() const {
  return vectors ? rel_mse_sum / static_cast<double>(vectors) : 0.0;
}
double StateError::cosine() const {
  return vectors ? cosine_sum / static_cast<double>(vectors) : 1.0;
}
double StateError::snr_db() const {
  return noise > 0 ? 10.0 * std::log10(energy / noise) : INFINITY;
}

namespace {

// log-softmax of one row into out.
void log_softmax(const float* z, int n, std::vector<double>& out) {
  out.resize(static_cast<std::size_t>(n));
  double mx = z[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(z[i]));
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(z[i] - mx);
  const double lse = mx + std::log(s);
  for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = z[i] - lse;
}

std::vector<int> top_k(const float* z, int n, int k) {
  std::vector<int> idx(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
  k = std::min(k, n);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
  idx.resize(static_cast<std::size_t>(k));
  return idx;
}

}  // namespace

void LogitError::merge(const LogitError& o) {
  kl_sum += o.kl_sum;
  top1 += o.top1;
  top5 += o.top5;
  positions += o.positions;
}

void LogitError::add(const float* ref, const float* got, std::uint64_t n, int vocab) {
  std::vector<double> lp, lq;
  for (std::uint64_t t = 0; t < n; ++t) {
    const float* a = ref + t * static_cast<std::uint64_t>(vocab);
    const float* b = got + t * static_cast<std::uint64_t>(vocab);
    log_softmax(a, vocab, lp);
    log_softmax(b, vocab, lq);
    double kl = 0;
    for (int i = 0; i < vocab; ++i) {
      const auto u = static_cast<std::size_t>(i);
      kl += std::exp(lp[u]) * (lp[u] - lq[u]);
    }
    kl_sum += std::max(kl, 0.0);
    const auto ta = top_k(a, vocab, 5), tb = top_k(b, vocab, 5);
    top1 += ta[0] == tb[0] ? 1.0 : 0.0;
    int common = 0;
    for (int x : ta) common += static_cast<int>(std::count(tb.begin(), tb.end(), x));
    top5 += static_cast<double>(common) / static_cast<double>(ta.size());
    ++positions;
  }
}

}  // namespace agp::fidelity
