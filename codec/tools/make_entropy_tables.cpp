// Generates codec/src/entropy_tables.inc: the static prefix codes of the calibrated codec. Each
// table is a length-limited Huffman code (at most 11 bits) for the 63 symbols h = -31..31 plus an
// escape, designed for one model of a group's values: a generalized Gaussian of shape beta (2, 1,
// 0.5) and a scale in step units, quantized by rounding (family 0, groups sending no raw low bits)
// or by rounding then an arithmetic shift of k >= 1 low bits (families 1 and 2: k = 1 and k >= 2).
// Round-family tables also carry each symbol's reconstruction point (the model's conditional
// mean). The tables are constants so that every platform builds the same codes.
// Regenerate with:
//   ./dev build && build/release/codec/agp-make-entropy-tables > codec/src/entropy_tables.inc
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace {

constexpr int kSymbols = 64;  // 0..62: h = sym - 31; 63: escape
constexpr int kMaxLength = 11;
constexpr double kShapes[] = {2.0, 1.0, 0.5};

// Unit-variance generalized Gaussian density of shape beta.
struct GenGauss {
  double beta, alpha, norm;
  explicit GenGauss(double b) : beta(b) {
    alpha = std::sqrt(std::tgamma(1 / b) / std::tgamma(3 / b));
    norm = b / (2 * alpha * std::tgamma(1 / b));
  }
  double pdf(double z) const { return norm * std::exp(-std::pow(std::abs(z) / alpha, beta)); }
};

// Integral of pdf (moment 0) or z * pdf (moment 1) over [a, b], Simpson's rule, split at 0 (the
// density's cusp for beta < 2).
double integrate(const GenGauss& g, double a, double b, int moment) {
  if (a < 0 && b > 0) return integrate(g, a, 0, moment) + integrate(g, 0, b, moment);
  const int n = 2000;
  const double h = (b - a) / n;
  double s = 0;
  for (int i = 0; i <= n; ++i) {
    const double z = a + i * h;
    const double w = (i == 0 || i == n) ? 1 : (i % 2 ? 4 : 2);
    s += w * g.pdf(z) * (moment ? z : 1.0);
  }
  return s * h / 3;
}

// Length-limited Huffman code lengths by package-merge; weights of 0 get no code (length 0).
std::vector<int> package_merge(const std::vector<double>& p, int limit) {
  struct Item {
    double w;
    std::vector<int> syms;
  };
  std::vector<Item> leaves;
  for (int i = 0; i < static_cast<int>(p.size()); ++i) {
    if (p[i] > 0) leaves.push_back({p[i], {i}});
  }
  std::sort(leaves.begin(), leaves.end(), [](const Item& a, const Item& b) { return a.w < b.w; });
  std::vector<int> len(p.size(), 0);
  if (leaves.size() == 1) {
    len[leaves[0].syms[0]] = 1;
    return len;
  }
  std::vector<Item> list = leaves;
  for (int level = 1; level < limit; ++level) {
    std::vector<Item> packaged;
    for (std::size_t i = 0; i + 1 < list.size(); i += 2) {
      Item m{list[i].w + list[i + 1].w, list[i].syms};
      m.syms.insert(m.syms.end(), list[i + 1].syms.begin(), list[i + 1].syms.end());
      packaged.push_back(std::move(m));
    }
    std::vector<Item> merged;
    std::merge(leaves.begin(), leaves.end(), packaged.begin(), packaged.end(),
               std::back_inserter(merged),
               [](const Item& a, const Item& b) { return a.w < b.w; });
    list = std::move(merged);
  }
  for (std::size_t i = 0; i < 2 * leaves.size() - 2; ++i) {
    for (int s : list[i].syms) ++len[s];
  }
  return len;
}

struct Table {
  std::vector<int> lengths;
  std::vector<double> recon;
  double bits = 0;  // expected bits per value under the model (escapes at 32 extra bits)
};

// `scale` is the model's standard deviation in steps. family 0: bins [h - 0.5, h + 0.5); family 1, 2: bins [h - o, h + 1 - o) with
// o = 1/4, 1/8 (the arithmetic shift of a rounded value by 1, 2 bits).
Table design(const GenGauss& g, int family, double scale) {
  const double o = family == 0 ? 0.5 : (family == 1 ? 0.25 : 0.125);
  std::vector<double> p(kSymbols, 0), m1(kSymbols, 0);
  double inside = 0;
  for (int h = -31; h <= 31; ++h) {
    const double a = (h - o) / scale, b = (h + 1 - o) / scale;
    p[h + 31] = integrate(g, a, b, 0);
    m1[h + 31] = integrate(g, a, b, 1);
    inside += p[h + 31];
  }
  // Symbols rarer than 2^-13 are sent as escapes (each would waste code space).
  double escape = std::max(0.0, 1 - inside);
  for (int s = 0; s < 63; ++s) {
    if (p[s] < 1.0 / 8192) {
      escape += p[s];
      p[s] = 0;
    }
  }
  p[63] = std::max(escape, 1.0 / 8192);
  Table t;
  t.lengths = package_merge(p, kMaxLength);
  t.recon.assign(kSymbols, 0);
  for (int s = 0; s < 63; ++s) {
    const double mass = integrate(g, (s - 31 - o) / scale, (s - 31 + 1 - o) / scale, 0);
    t.recon[s] = mass > 1e-300 ? (m1[s] * scale) / mass : (s - 31);
    if (family == 0) t.recon[s] = std::clamp(t.recon[s], s - 31 - 0.5, s - 31 + 0.5);
    if (s == 31) t.recon[s] = 0;  // exactly, by symmetry
    if (t.lengths[s]) t.bits += p[s] * t.lengths[s];
  }
  t.bits += p[63] * (t.lengths[63] + 32);
  return t;
}

}  // namespace

int main() {
  // Scales: family 0 covers s = 2^-3 .. 2^2 in eighth octaves (40 tables per shape), families 1
  // and 2 cover sigma_h = 2^1 .. 2^2 (8 tables per shape); each table sits at its interval's
  // centre.
  std::printf("// Generated by codec/tools/make_entropy_tables.cpp; do not edit. Regenerate with:\n");
  std::printf("//   build/release/codec/agp-make-entropy-tables > codec/src/entropy_tables.inc\n");
  std::printf("// Table t: family (t < 120: 0, < 144: 1, else 2), shape index, scale index; see\n");
  std::printf("// cal_tables.hpp. Lengths: 0 = no code (send an escape).\n");
  std::printf("inline constexpr unsigned char kEntropyLengths[][64] = {\n");
  std::vector<Table> tables;
  for (int family = 0; family < 3; ++family) {
    for (int shape = 0; shape < 3; ++shape) {
      const GenGauss g(kShapes[shape]);
      const int levels = family == 0 ? 40 : 8;
      for (int j = 0; j < levels; ++j) {
        const double scale = family == 0 ? std::exp2(-3 + (j + 0.5) / 8) : std::exp2(1 + (j + 0.5) / 8);
        Table t = design(g, family, scale);
        std::printf("  // family %d beta %g scale %.6f: %.4f bits\n  {", family, kShapes[shape],
                    scale, t.bits);
        for (int s = 0; s < kSymbols; ++s) std::printf("%d,", t.lengths[s]);
        std::printf("},\n");
        tables.push_back(std::move(t));
        std::fflush(stdout);
      }
    }
  }
  std::printf("};\n");
  std::printf("// Expected bits per value of each table under its own model (escapes at 32 bits).\n");
  std::printf("inline constexpr float kEntropyBits[] = {\n");
  for (std::size_t t = 0; t < tables.size(); ++t) {
    std::printf("%s%#.6gf,", t % 8 == 0 ? "  " : " ", tables[t].bits);
    if (t % 8 == 7) std::printf("\n");
  }
  std::printf("};\n");
  std::printf("// Reconstruction points (in steps) of the round family's tables, symbol order.\n");
  std::printf("inline constexpr float kEntropyRecon[][63] = {\n");
  for (std::size_t t = 0; t < 120; ++t) {
    std::printf("  {");
    for (int s = 0; s < 63; ++s) std::printf("%#.9gf,", tables[t].recon[s]);
    std::printf("},\n");
  }
  std::printf("};\n");
  return 0;
}
