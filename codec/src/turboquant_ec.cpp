#include "agp/codec/turboquant_ec.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "agp/codec/codec.hpp"
#include "agp/codec/lossless.hpp"
#include "codecs.hpp"
#include "rotation.hpp"

namespace agp::codec {
namespace {

constexpr std::uint32_t kMagic = 0x43455154;  // "TQEC"
constexpr std::uint16_t kVersion = 1;
constexpr std::uint16_t kModeEntropy = 0;  // uniform levels, zstd-coded
constexpr std::uint16_t kModeFixed = 1;    // TurboQuant-MSE codes of the mean-removed residual
constexpr int kMaxLevel = 127;             // levels -127..127 fit one byte
constexpr std::size_t kFixedSide = 4 + 2 + 2 + 4 + 8 + 4 + 2 + 2;

template <typename T>
void put(std::vector<std::byte>& out, T v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

template <typename T>
T get(std::span<const std::byte> in, std::size_t& pos) {
  T v;
  std::memcpy(&v, in.data() + pos, sizeof(T));
  pos += sizeof(T);
  return v;
}

// Levels of every value for a step, and the histogram.
void quantize_all(const std::vector<float>& z, float step, std::vector<std::uint8_t>& sym,
                  std::vector<std::uint64_t>& hist) {
  hist.assign(2 * kMaxLevel + 1, 0);
  const float inv = 1.0f / step;
  for (std::size_t i = 0; i < z.size(); ++i) {
    const float r = std::clamp(std::nearbyint(z[i] * inv), static_cast<float>(-kMaxLevel),
                               static_cast<float>(kMaxLevel));
    const auto q = static_cast<std::uint8_t>(static_cast<int>(r) + kMaxLevel);
    sym[i] = q;
    ++hist[q];
  }
}

double entropy_bytes(const std::vector<std::uint64_t>& hist, std::uint64_t total) {
  double bits = 0;
  for (std::uint64_t c : hist) {
    if (c)
      bits -=
          static_cast<double>(c) * std::log2(static_cast<double>(c) / static_cast<double>(total));
  }
  return bits / 8;
}

}  // namespace

Result<EcPacket> ec_encode(const TensorView& in, const EcConfig& cfg) {
  AGP_RETURN_IF_ERROR(in.validate());
  const VectorAccess access(in);
  const std::uint32_t d = access.dim();
  const std::uint64_t n = access.count();
  if (n * d > (std::uint64_t{1} << 31)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "TurboQuant-EC packets are limited to 2^31 values");
  }
  std::vector<float> x(n * d);
  access.gather(0, n, x.data());

  // 1. Channel mean, rounded to f16 as it is sent.
  std::vector<double> acc(d, 0.0);
  for (std::uint64_t v = 0; v < n; ++v) {
    for (std::uint32_t j = 0; j < d; ++j) acc[j] += x[v * d + j];
  }
  std::vector<float> mean(d);
  for (std::uint32_t j = 0; j < d; ++j) {
    const float m = static_cast<float>(acc[j] / static_cast<double>(n));
    if (!std::isfinite(m)) return explain_bad_sum(x.data(), x.size(), d);
    if (std::abs(m) > 65504.0f) {
      return make_error(ErrorCode::kValueOutOfRange, "a channel mean does not fit in f16");
    }
    mean[j] = f16_to_f32(f32_to_f16(m));
  }

  auto write_header = [&](EcPacket& out, std::uint16_t mode, float step, int qmin, int qmax) {
    put(out.side, kMagic);
    put(out.side, kVersion);
    put(out.side, mode);
    put(out.side, d);
    put(out.side, n);
    put(out.side, step);
    put(out.side, static_cast<std::int16_t>(qmin));
    put(out.side, static_cast<std::int16_t>(qmax));
    for (std::uint32_t j = 0; j < d; ++j) put(out.side, f32_to_f16(mean[j]));
  };
  if (cfg.fixed_bits != 0) {
    CodecConfig tq;
    tq.bits = cfg.fixed_bits;
    tq.seed = cfg.seed;
    auto codec = make_codec(tq, d);
    if (!codec) return codec.status();
    for (std::uint64_t v = 0; v < n; ++v) {
      for (std::uint32_t j = 0; j < d; ++j) x[v * d + j] -= mean[j];
    }
    EcPacket out;
    out.codes.resize(n * (*codec)->parts()[0].bytes_per_vector);
    out.norms.resize(n * (*codec)->parts()[1].bytes_per_vector);
    const std::span<std::byte> parts[2] = {out.codes, out.norms};
    AGP_RETURN_IF_ERROR(
        (*codec)->encode_all(TensorView::contiguous(x.data(), DType::kF32, {n, d}, 1), parts));
    write_header(out, kModeFixed, 0.0f, cfg.fixed_bits, cfg.fixed_bits);
    return out;
  }

  // 2. Rotate each residual block by block; z has unit variance per coordinate.
  const auto blocks = hadamard_blocks(d);
  const auto signs = random_signs(d, cfg.seed);
  EcPacket p;
  p.norms.resize(n * blocks.size() * 2);
  std::vector<float> z(n * d);
  for (std::uint64_t v = 0; v < n; ++v) {
    float* zv = z.data() + v * d;
    for (std::uint32_t j = 0; j < d; ++j) zv[j] = (x[v * d + j] - mean[j]) * signs[j];
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      float* zb = zv + blocks[b].offset;
      float ss = 0;
      for (std::uint32_t i = 0; i < blocks[b].size; ++i) ss += zb[i] * zb[i];
      if (!std::isfinite(ss)) return explain_bad_sum(x.data() + v * d, d, d);
      std::byte* slot = p.norms.data() + (v * blocks.size() + b) * 2;
      AGP_RETURN_IF_ERROR(store_scale(std::sqrt(ss), DType::kF16, slot));
      float norm;
      load_scale(slot, DType::kF16, &norm);  // normalize by the norm the decoder will use
      fwht(zb, blocks[b].size);
      const float inv = norm > 0 ? 1.0f / norm : 0.0f;
      for (std::uint32_t i = 0; i < blocks[b].size; ++i) zb[i] *= inv;
    }
  }

  // 3. The step: the finest whose coded levels fit the budget.
  const double budget = cfg.bits_per_value * static_cast<double>(n * d) / 8.0 -
                        static_cast<double>(cfg.reserved_bytes + p.norms.size() + kFixedSide +
                                            2 * d + 4 * (2 * kMaxLevel + 1));
  // Side data grows with the channels and norms with the vectors: on a packet of few vectors they
  // can take most of the budget, and the codes left would give a uselessly coarse result within
  // the promised size. Refuse rather than deliver that.
  const double values = static_cast<double>(n * d);
  if (budget < cfg.bits_per_value * values / 16.0) {
    char text[256];
    std::snprintf(text, sizeof text,
                  "a budget of %g bits per value: side data and norms of %llu vectors of %u take "
                  "all but %.2f bits per value for the codes (under half the budget); send more "
                  "vectors per packet or use TurboQuant-MSE",
                  cfg.bits_per_value, static_cast<unsigned long long>(n), d,
                  std::max(0.0, budget * 8.0 / values));
    return make_error(ErrorCode::kInvalidArgument, text);
  }
  std::vector<std::uint8_t> sym(z.size());
  std::vector<std::uint64_t> hist;
  // The step search runs on an evenly strided sample of at most 2^17 coordinates; the final step
  // is checked against the real coded size below.
  const std::size_t stride = std::max<std::size_t>(1, z.size() >> 17);
  std::vector<float> sample;
  for (std::size_t i = 0; i < z.size(); i += stride) sample.push_back(z[i]);
  std::vector<std::uint8_t> sample_sym(sample.size());
  const double scale_up = static_cast<double>(z.size()) / static_cast<double>(sample.size());
  auto estimate = [&](double log_step) {
    quantize_all(sample, static_cast<float>(std::exp(log_step)), sample_sym, hist);
    return entropy_bytes(hist, sample.size()) * scale_up * 1.015 + 512;
  };
  // Entropy falls as the step grows, as long as no level is clamped: search above the step that
  // keeps the largest coordinate inside +-kMaxLevel.
  float zmax = 0;
  for (float v : z) zmax = std::max(zmax, std::abs(v));
  double lo = std::log(std::max(1e-6, static_cast<double>(zmax) / (kMaxLevel - 0.5))),
         hi = std::log(16.0);
  // Huffman (zstd) costs a little over the entropy: aim 1.5% under the budget.
  const double no_clamp = lo;  // the finest step without clamping, kept: the search moves lo
  const bool finest_fits = estimate(lo) <= budget;  // budgets above ~6 bits per value
  for (int it = 0; it < 30 && !finest_fits; ++it) {
    const double mid = 0.5 * (lo + hi);
    (estimate(mid) <= budget ? hi : lo) = mid;
  }
  // The exact budget: what the packet holds besides the codes is known once the levels are.
  const double total = cfg.bits_per_value * static_cast<double>(n * d) / 8.0 -
                       static_cast<double>(cfg.reserved_bytes + p.norms.size() + kFixedSide + 2 * d);
  std::vector<std::byte> packed(zstd_bound(z.size()));
  struct Coded {
    float step = 0;
    int qmin = 0, qmax = 0;
    std::vector<std::byte> codes;
    std::vector<std::uint64_t> hist;
  };
  // Codes for one step, levels stored relative to the lowest one used.
  auto code_with = [&](float st, Coded& c) -> Result<bool> {
    quantize_all(z, st, sym, hist);
    int qmin = kMaxLevel, qmax = -kMaxLevel;
    for (int q = -kMaxLevel; q <= kMaxLevel; ++q) {
      if (hist[static_cast<std::size_t>(q + kMaxLevel)]) {
        qmin = std::min(qmin, q);
        qmax = std::max(qmax, q);
      }
    }
    std::vector<std::uint8_t> shifted(sym.size());
    for (std::size_t i = 0; i < sym.size(); ++i) {
      shifted[i] = static_cast<std::uint8_t>(sym[i] - (qmin + kMaxLevel));
    }
    auto size = zstd_compress(std::as_bytes(std::span(shifted)), cfg.zstd_level, packed);
    if (!size) return size.status();
    const double limit = total - 4.0 * (qmax - qmin + 1);
    if (static_cast<double>(*size) > limit) return false;
    c.step = st;
    c.qmin = qmin;
    c.qmax = qmax;
    c.codes.assign(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(*size));
    c.hist = hist;
    return true;
  };
  // From the estimate: coarser until the codes fit, then finer while they still do, so the
  // budget is used rather than left over.
  float step = static_cast<float>(std::exp(finest_fits ? lo : hi));
  Coded best;
  bool have = false;
  for (int attempt = 0; attempt < 80 && !have; ++attempt, step *= 1.01f) {
    auto fits = code_with(step, best);
    if (!fits) return fits.status();
    have = *fits;
  }
  if (!have) {
    return make_error(ErrorCode::kInvalidArgument,
                      "a budget of " + std::to_string(cfg.bits_per_value) +
                          " bits per value is too small for these values");
  }
  // Finer by a shrinking factor (6%, then 2.5%, 1.2%, 0.6%): a few coding passes instead of one per
  // percent.
  const float finest = static_cast<float>(std::exp(no_clamp));
  for (float factor = 1.06f; factor > 1.005f;) {
    const float trial = best.step / factor;
    Coded finer;
    Result<bool> fits = trial >= finest ? code_with(trial, finer) : Result<bool>(false);
    if (!fits) return fits.status();
    if (*fits) {
      best = std::move(finer);
    } else {
      factor = std::sqrt(factor);
    }
  }
  step = best.step;
  p.codes = std::move(best.codes);
  hist = std::move(best.hist);
  quantize_all(z, step, sym, hist);

  // 4. Each level is reconstructed at the mean of the coordinates it took.
  const int qmin = best.qmin, qmax = best.qmax;
  std::vector<double> sum(2 * kMaxLevel + 1, 0.0);
  for (std::size_t i = 0; i < z.size(); ++i) sum[sym[i]] += z[i];
  write_header(p, kModeEntropy, step, qmin, qmax);
  for (int q = qmin; q <= qmax; ++q) {
    const auto k = static_cast<std::size_t>(q + kMaxLevel);
    put(p.side, hist[k] ? static_cast<float>(sum[k] / static_cast<double>(hist[k]))
                        : static_cast<float>(q) * step);
  }
  return p;
}

Status ec_decode(std::span<const std::byte> side, std::span<const std::byte> norms,
                 std::span<const std::byte> codes, const TensorView& out, std::uint64_t seed) {
  AGP_RETURN_IF_ERROR(out.validate());
  const VectorAccess access(out);
  const std::uint32_t dim = access.dim();
  const std::uint64_t count = access.count();
  auto bad = [](const std::string& m) { return make_error(ErrorCode::kBadEncodedData, m); };
  if (side.size() < kFixedSide) return bad("TurboQuant-EC side data is too short");
  std::size_t pos = 0;
  if (get<std::uint32_t>(side, pos) != kMagic)
    return bad("TurboQuant-EC side data lacks its magic");
  if (get<std::uint16_t>(side, pos) != kVersion)
    return bad("TurboQuant-EC side data version is not 1");
  const auto mode = get<std::uint16_t>(side, pos);
  const auto d = get<std::uint32_t>(side, pos);
  const auto n = get<std::uint64_t>(side, pos);
  const auto step = get<float>(side, pos);
  const auto qmin = get<std::int16_t>(side, pos);
  const auto qmax = get<std::int16_t>(side, pos);
  if (d != dim || n != count) {
    return bad("TurboQuant-EC packet holds " + std::to_string(n) + " vectors of " +
               std::to_string(d) + "; the output has " + std::to_string(count) + " of " +
               std::to_string(dim));
  }
  if (mode == kModeFixed) {
    if (qmin != qmax || qmin < 1 || qmin > 8 || side.size() != kFixedSide + 2 * std::size_t{d}) {
      return bad("TurboQuant-EC fixed-rate side data is invalid");
    }
    std::vector<float> mean(d);
    for (auto& m : mean) m = f16_to_f32(get<std::uint16_t>(side, pos));
    for (float m : mean) {
      if (!std::isfinite(m)) return bad("TurboQuant-EC channel mean is not finite");
    }
    CodecConfig tq;
    tq.bits = qmin;
    tq.seed = seed;
    auto codec = make_codec(tq, d);
    if (!codec) return codec.status();
    if (codes.size() != n * (*codec)->parts()[0].bytes_per_vector ||
        norms.size() != n * (*codec)->parts()[1].bytes_per_vector) {
      return bad("TurboQuant-EC fixed-rate parts have the wrong size");
    }
    std::vector<float> y(n * d);
    const std::span<const std::byte> parts[2] = {codes, norms};
    AGP_RETURN_IF_ERROR(
        (*codec)->decode_all(parts, TensorView::contiguous(y.data(), DType::kF32, {n, d}, 1)));
    for (std::uint64_t v = 0; v < n; ++v) {
      for (std::uint32_t j = 0; j < d; ++j) y[v * d + j] += mean[j];
      access.scatter(v, 1, y.data() + v * d);
    }
    return {};
  }
  if (mode != kModeEntropy)
    return bad("TurboQuant-EC mode " + std::to_string(mode) + " is unknown");
  if (!(step > 0) || !std::isfinite(step) || qmin < -kMaxLevel || qmax > kMaxLevel || qmin > qmax) {
    return bad("TurboQuant-EC step or level range is invalid");
  }
  const std::size_t levels = static_cast<std::size_t>(qmax - qmin + 1);
  if (side.size() != kFixedSide + 2 * static_cast<std::size_t>(d) + 4 * levels) {
    return bad("TurboQuant-EC side data has the wrong size");
  }
  std::vector<float> mean(d), table(levels);
  for (auto& m : mean) m = f16_to_f32(get<std::uint16_t>(side, pos));
  for (auto& t : table) t = get<float>(side, pos);
  for (std::size_t i = 0; i < levels; ++i) {
    if (!std::isfinite(table[i])) return bad("TurboQuant-EC level table holds a non-finite value");
  }
  for (float m : mean) {
    if (!std::isfinite(m)) return bad("TurboQuant-EC channel mean is not finite");
  }
  const auto blocks = hadamard_blocks(d);
  if (norms.size() != n * blocks.size() * 2)
    return bad("TurboQuant-EC norms part has the wrong size");
  std::vector<std::byte> sym(n * d);
  AGP_RETURN_IF_ERROR(zstd_decompress(codes, sym));
  const auto signs = random_signs(d, seed);
  std::vector<float> vec(d);
  for (std::uint64_t v = 0; v < n; ++v) {
    for (std::uint32_t j = 0; j < d; ++j) {
      const auto s = std::to_integer<std::size_t>(sym[v * d + j]);
      if (s >= levels) return bad("TurboQuant-EC level index outside the table");
      vec[j] = table[s];
    }
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      float norm;
      if (!load_scale(norms.data() + (v * blocks.size() + b) * 2, DType::kF16, &norm)) {
        return bad("a stored block norm is negative, NaN or infinite");
      }
      float* vb = vec.data() + blocks[b].offset;
      fwht(vb, blocks[b].size);
      const float scale = norm / static_cast<float>(blocks[b].size);
      for (std::uint32_t i = 0; i < blocks[b].size; ++i) vb[i] *= scale;
    }
    for (std::uint32_t j = 0; j < d; ++j) vec[j] = vec[j] * signs[j] + mean[j];
    access.scatter(v, 1, vec.data());
  }
  return {};
}

}  // namespace agp::codec
