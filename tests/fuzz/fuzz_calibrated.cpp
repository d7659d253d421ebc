// The calibrated codec's inputs from outside: calibration files (parsed; damage must be a typed
// error) and calibrated chunks (a genuine chunk of the input's choosing, then any side data or
// code bytes overwritten) decoded as a receiver does. Nothing may crash or read out of bounds,
// and every refusal is typed.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "agp/codec/calibrated.hpp"
#include "agp/ptp/calibration_file.hpp"

namespace {

using namespace agp;

void fuzz_file(FuzzedDataProvider& in) {
  const auto bytes = in.ConsumeRemainingBytes<std::uint8_t>();
  auto parsed = ptp::parse_calibration(std::as_bytes(std::span(bytes)));
  if (!parsed) {
    if (parsed.status().code() != ErrorCode::kBadCalibration) __builtin_trap();
    return;
  }
  if (!parsed->calibration.validate()) __builtin_trap();  // a parsed file is always usable
}

void fuzz_chunk(FuzzedDataProvider& in) {
  const std::uint32_t dim = in.ConsumeIntegralInRange<std::uint32_t>(1, 96);
  const std::uint64_t n = in.ConsumeIntegralInRange<std::uint64_t>(1, 40);
  codec::Calibration cal;
  cal.dim = dim;
  for (std::uint32_t j = 0; j < dim; ++j) {
    cal.mean.push_back(in.ConsumeFloatingPointInRange<float>(-4, 4));
    cal.scale.push_back(8.0f / static_cast<float>(1 + j));
  }
  cal.group_starts = codec::make_calibration_groups(cal.scale, 1.0 + in.ConsumeProbability<double>(),
                                                    in.ConsumeIntegralInRange<std::size_t>(1, 16));
  cal.id = in.ConsumeIntegral<std::uint64_t>();
  std::vector<float> x(n * dim);
  for (float& v : x) v = in.ConsumeFloatingPointInRange<float>(-100, 100);
  codec::CalConfig cfg;
  cfg.bits_per_value = in.ConsumeIntegralInRange<int>(2, 8);
  cfg.reserved_bytes = 0;
  const auto view = codec::TensorView::contiguous(x.data(), DType::kF32, {n, dim}, 1);
  auto chunk = codec::cal_encode(view, 0, n, cal, cfg);
  if (!chunk) {
    // Finite values and a positive budget always code, unless the rate cannot pay for any group
    // of a tiny chunk, which is refused rather than sent as the mean.
    const bool too_small = chunk.status().code() == ErrorCode::kInvalidArgument &&
                           chunk.status().message().find("every group would be sent as zero") !=
                               std::string::npos;
    if (!too_small) __builtin_trap();
    return;
  }
  // Lies: overwrite bytes of the side data and the codes, or cut the codes.
  const int edits = in.ConsumeIntegralInRange<int>(0, 8);
  for (int e = 0; e < edits && in.remaining_bytes() > 0; ++e) {
    auto& part = in.ConsumeBool() ? chunk->side : chunk->codes;
    if (part.empty()) continue;
    part[in.ConsumeIntegralInRange<std::size_t>(0, part.size() - 1)] = static_cast<std::byte>(in.ConsumeIntegral<std::uint8_t>());
  }
  if (in.ConsumeBool() && !chunk->codes.empty()) {
    chunk->codes.resize(in.ConsumeIntegralInRange<std::size_t>(0, chunk->codes.size()));
  }
  std::vector<float> y(n * dim);
  const auto out = codec::TensorView::contiguous(y.data(), DType::kF32, {n, dim}, 1);
  // Any decode error is bad_encoded_data (a huge but finite step may decode to infinities: the
  // format allows it, so values are not checked).
  const Status s = codec::cal_decode(chunk->side, chunk->codes, cal, out, 0, n);
  if (!s.is_ok() && s.code() != ErrorCode::kBadEncodedData) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeBool()) {
    fuzz_file(in);
  } else {
    fuzz_chunk(in);
  }
  return 0;
}
