#include "agp/fidelity/calibrate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "blas.hpp"

extern "C" {
// LAPACK: eigenvalues and eigenvectors of a symmetric matrix (divide and conquer).
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
             double* w, double* work, const int* lwork, int* iwork, const int* liwork, int* info);
}

namespace agp::fidelity {

Result<Calibrated> calibrate_from_states(const float* x, std::uint64_t n, std::uint32_t dim,
                                         const CalibrateOptions& options) {
  if (n < 2 || dim == 0 || dim > 65536) {
    return make_error(ErrorCode::kInvalidArgument, "calibration needs at least 2 states of 1..65536 values");
  }
  // The covariance is dim x dim doubles and its eigendecomposition O(dim^3): refuse what cannot
  // fit or finish rather than abort on an allocation.
  constexpr std::uint32_t kMaxDim = 8192;  // 512 MiB of covariance, minutes of decomposition
  if (dim > kMaxDim) {
    return make_error(ErrorCode::kInvalidArgument,
                      "states of " + std::to_string(dim) + " values: calibration handles at most " +
                          std::to_string(kMaxDim) + " (the covariance alone would take " +
                          std::to_string(static_cast<std::uint64_t>(dim) * dim * 8 >> 30) +
                          " GiB)");
  }
  for (std::uint64_t i = 0; i < n * dim; ++i) {
    if (!std::isfinite(x[i])) return make_error(ErrorCode::kInvalidArgument, "calibration states hold NaN or infinity");
    if (std::abs(x[i]) > codec::kMaxCalibrationMagnitude) {
      return make_error(ErrorCode::kInvalidArgument,
                        "calibration states hold a value of " + std::to_string(x[i]) +
                            ": above 1e16 the codec's float arithmetic would overflow");
    }
  }
  // Mean and covariance in double (states can carry offsets much larger than their spread).
  std::vector<double> mean(dim, 0.0);
  for (std::uint64_t v = 0; v < n; ++v) {
    for (std::uint32_t j = 0; j < dim; ++j) mean[j] += x[v * dim + j];
  }
  for (double& m : mean) m /= static_cast<double>(n);
  std::vector<double> cov(static_cast<std::size_t>(dim) * dim, 0.0);
  std::vector<double> centred(dim);
  constexpr std::uint64_t kBlock = 256;
  std::vector<double> block(kBlock * dim);
  for (std::uint64_t v0 = 0; v0 < n; v0 += kBlock) {
    const std::uint64_t b = std::min(kBlock, n - v0);
    for (std::uint64_t v = 0; v < b; ++v) {
      for (std::uint32_t j = 0; j < dim; ++j) block[v * dim + j] = x[(v0 + v) * dim + j] - mean[j];
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(dim), static_cast<int>(b), 1.0,
                block.data(), static_cast<int>(dim), 1.0, cov.data(), static_cast<int>(dim));
  }
  for (double& c : cov) c /= static_cast<double>(n - 1);
  // LAPACK is column-major: the upper triangle of a row-major matrix is its lower triangle.
  const int nn = static_cast<int>(dim);
  std::vector<double> w(dim);
  int info = 0, lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  dsyevd_("V", "L", &nn, cov.data(), &nn, w.data(), &wq, &lwork, &iwq, &liwork, &info);
  lwork = static_cast<int>(wq);
  liwork = iwq;
  std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<std::size_t>(std::max(liwork, 1)));
  dsyevd_("V", "L", &nn, cov.data(), &nn, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0) return make_error(ErrorCode::kInvalidArgument, "eigendecomposition failed (LAPACK info " + std::to_string(info) + ")");
  // Column-major result: eigenvector k is cov[k * dim .. k * dim + dim), eigenvalues ascending.
  Calibrated out;
  out.vectors = n;
  out.basis.assign(static_cast<std::size_t>(dim) * dim, 0.0f);
  codec::Calibration& cal = out.file.calibration;
  cal.dim = dim;
  cal.mean.resize(dim);
  cal.scale.resize(dim);
  for (std::uint32_t j = 0; j < dim; ++j) {
    const double* vec = cov.data() + static_cast<std::size_t>(dim - 1 - j) * dim;
    std::uint32_t big = 0;
    for (std::uint32_t i = 1; i < dim; ++i) {
      if (std::abs(vec[i]) > std::abs(vec[big])) big = i;
    }
    const double sign = vec[big] < 0 ? -1.0 : 1.0;
    double m = 0;
    for (std::uint32_t i = 0; i < dim; ++i) {
      out.basis[static_cast<std::size_t>(i) * dim + j] = static_cast<float>(sign * vec[i]);
      m += mean[i] * sign * vec[i];
    }
    cal.mean[j] = static_cast<float>(m);
    cal.scale[j] = static_cast<float>(std::sqrt(std::max(0.0, w[dim - 1 - j])));
  }
  cal.group_starts = codec::make_calibration_groups(
      cal.scale, options.group_ratio, std::min(options.max_groups, codec::kMaxCalibrationGroups));
  AGP_RETURN_IF_ERROR(cal.validate());  // what the tools would refuse to load is never written
  out.file.info = options.info;
  ptp::serialize_calibration(out.file);  // sets the id
  return out;
}

Result<std::vector<float>> split_states(const LlamaModel& model, int split,
                                        const std::vector<std::vector<int>>& windows) {
  const int hidden = model.config().hidden_size;
  std::vector<float> out;
  for (const auto& w : windows) {
    std::vector<float> x(w.size() * static_cast<std::size_t>(hidden));
    AGP_RETURN_IF_ERROR(model.embed(w, x.data()));
    KvCache cache = model.new_cache();
    AGP_RETURN_IF_ERROR(model.run_layers(0, split, x.data(), static_cast<int>(w.size()), cache));
    out.insert(out.end(), x.begin(), x.end());
  }
  return out;
}

namespace {
void multiply(const std::vector<float>& basis, std::uint32_t dim, float* x, std::uint64_t n,
              bool transpose) {
  std::vector<float> y(static_cast<std::size_t>(n) * dim);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasTrans : CblasNoTrans,
              static_cast<int>(n), static_cast<int>(dim), static_cast<int>(dim), 1.0f, x,
              static_cast<int>(dim), basis.data(), static_cast<int>(dim), 0.0f, y.data(),
              static_cast<int>(dim));
  std::copy(y.begin(), y.end(), x);
}
}  // namespace

void to_basis(const std::vector<float>& basis, std::uint32_t dim, float* x, std::uint64_t n) {
  multiply(basis, dim, x, n, false);
}
void from_basis(const std::vector<float>& basis, std::uint32_t dim, float* x, std::uint64_t n) {
  multiply(basis, dim, x, n, true);
}

}  // namespace agp::fidelity
