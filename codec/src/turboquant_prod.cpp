// TurboQuant-prod: a (b-1)-bit TurboQuant-MSE stage plus a 1-bit QJL sketch of its residual, so
// that inner products with the decoded vector are unbiased (for retrieval and attention scores),
// where the MSE stage alone shrinks them by about its relative error.
//
// Per vector: the MSE stage's codes and norms, then per Hadamard block of m values the residual
// r = x - x_mse is sketched as sign(H D' r) (H the Walsh-Hadamard matrix, D' a second seeded sign
// vector; m bits), and its norm |r| is kept as f16. Decoding adds
//   r' = |r| * sqrt(pi/2) / m * D' H sign(H D' r),
// whose expectation over the random signs is r: the entries of H D' r behave like N(0, |r|^2)
// draws, for which E[sign(g) g] = sqrt(2/pi) |r| (the QJL estimator with a structured projection).
#include <cmath>
#include <string>
#include <vector>

#include "bitpack.hpp"
#include "codecs.hpp"
#include "rotation.hpp"

namespace agp::codec {
namespace {

constexpr double kSqrtHalfPi = 1.2533141373155002;

class TurboQuantProd final : public Codec {
 public:
  TurboQuantProd(const CodecConfig& c, std::uint32_t dim, std::unique_ptr<Codec> mse)
      : Codec(c, dim),
        mse_(std::move(mse)),
        blocks_(hadamard_blocks(dim)),
        sketch_signs_(random_signs(dim, c.seed ^ 0x51ce7c4e5eedull)) {
    parts_ = mse_->parts();
    parts_.push_back({SectionKind::kSketch, static_cast<std::uint32_t>(packed_bytes(dim, 1))});
    parts_.push_back({SectionKind::kSketchNorms, static_cast<std::uint32_t>(blocks_.size() * 2)});
  }

 protected:
  Status encode_tile(const float* x, std::size_t n, std::byte* const* out) const override {
    thread_local std::vector<float> approx, r;
    thread_local std::vector<std::uint8_t> bits;
    approx.resize(n * dim_);
    r.resize(dim_);
    bits.resize(dim_);
    AGP_RETURN_IF_ERROR(mse_round_trip(x, n, out, approx.data()));
    const std::size_t sketch_bytes = parts_[2].bytes_per_vector;
    for (std::size_t v = 0; v < n; ++v) {
      for (std::uint32_t j = 0; j < dim_; ++j) {
        r[j] = (x[v * dim_ + j] - approx[v * dim_ + j]) * sketch_signs_[j];
      }
      for (std::size_t b = 0; b < blocks_.size(); ++b) {
        float* rb = r.data() + blocks_[b].offset;
        float ss = 0;
        for (std::uint32_t i = 0; i < blocks_[b].size; ++i) ss += rb[i] * rb[i];
        AGP_RETURN_IF_ERROR(
            store_scale(std::sqrt(ss), DType::kF16, out[3] + (v * blocks_.size() + b) * 2));
        fwht(rb, blocks_[b].size);
      }
      for (std::uint32_t j = 0; j < dim_; ++j) bits[j] = r[j] >= 0 ? 1 : 0;
      pack_bits(bits.data(), dim_, 1, reinterpret_cast<std::uint8_t*>(out[2] + v * sketch_bytes));
    }
    return {};
  }

  Status decode_tile(const std::byte* const* in, std::size_t n, float* x) const override {
    const std::size_t per0 = parts_[0].bytes_per_vector, per1 = parts_[1].bytes_per_vector;
    const std::span<const std::byte> mse_parts[2] = {{in[0], n * per0}, {in[1], n * per1}};
    AGP_RETURN_IF_ERROR(
        mse_->decode(mse_parts, TensorView::contiguous(x, DType::kF32, {n, dim_}, 1), 0, n));
    thread_local std::vector<std::uint8_t> bits;
    thread_local std::vector<float> u;
    bits.resize(dim_);
    u.resize(dim_);
    const std::size_t sketch_bytes = parts_[2].bytes_per_vector;
    for (std::size_t v = 0; v < n; ++v) {
      unpack_bits(reinterpret_cast<const std::uint8_t*>(in[2] + v * sketch_bytes), dim_, 1,
                  bits.data());
      for (std::uint32_t j = 0; j < dim_; ++j) u[j] = bits[j] ? 1.0f : -1.0f;
      for (std::size_t b = 0; b < blocks_.size(); ++b) {
        float rn;
        if (!load_scale(in[3] + (v * blocks_.size() + b) * 2, DType::kF16, &rn)) {
          return make_error(ErrorCode::kBadEncodedData,
                            "a stored residual norm is negative or not finite");
        }
        float* ub = u.data() + blocks_[b].offset;
        fwht(ub, blocks_[b].size);
        const auto scale = static_cast<float>(rn * kSqrtHalfPi / blocks_[b].size);
        for (std::uint32_t i = 0; i < blocks_[b].size; ++i) ub[i] *= scale;
      }
      for (std::uint32_t j = 0; j < dim_; ++j) x[v * dim_ + j] += u[j] * sketch_signs_[j];
    }
    return {};
  }

 private:
  // Encodes the MSE stage of n vectors into out[0], out[1] and decodes it back into approx.
  Status mse_round_trip(const float* x, std::size_t n, std::byte* const* out, float* approx) const {
    const std::size_t per0 = parts_[0].bytes_per_vector, per1 = parts_[1].bytes_per_vector;
    const std::span<std::byte> w[2] = {{out[0], n * per0}, {out[1], n * per1}};
    AGP_RETURN_IF_ERROR(
        mse_->encode(TensorView::contiguous(x, DType::kF32, {n, dim_}, 1), 0, n, w));
    const std::span<const std::byte> rd[2] = {{out[0], n * per0}, {out[1], n * per1}};
    return mse_->decode(rd, TensorView::contiguous(approx, DType::kF32, {n, dim_}, 1), 0, n);
  }

  std::unique_ptr<Codec> mse_;
  std::vector<Block> blocks_;
  std::vector<float> sketch_signs_;
};

}  // namespace

Result<std::unique_ptr<Codec>> make_turboquant_prod(const CodecConfig& c, std::uint32_t dim) {
  if (c.bits < 2 || c.bits > 8) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "TurboQuant-prod bits must be 2..8 (b-1 for the MSE stage, 1 for the sketch), got " +
            std::to_string(c.bits));
  }
  CodecConfig inner = c;
  inner.id = CodecId::kTurboQuantMse;
  inner.bits = c.bits - 1;
  auto mse = make_turboquant_mse(inner, dim);
  if (!mse) return mse.status();
  return std::unique_ptr<Codec>(new TurboQuantProd(c, dim, std::move(mse).value()));
}

}  // namespace agp::codec
