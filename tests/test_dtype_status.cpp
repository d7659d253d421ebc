#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <set>

#include "agp/codec/dtype.hpp"
#include "agp/status.hpp"

namespace agp {
namespace {

TEST(Dtype, F16RoundTripsEveryHalfValue) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto half = static_cast<std::uint16_t>(h);
    const float f = f16_to_f32(half);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), half) << std::hex << h;
  }
}

TEST(Dtype, F16KnownValuesAndRounding) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie rounds to even (zero)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even mantissa (1.0) wins.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00);
  EXPECT_FLOAT_EQ(f16_to_f32(0x3555), 0.333251953125f);
}

TEST(Dtype, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  for (std::uint32_t b = 0; b < 0x10000; b += 13) {
    const float f = bf16_to_f32(static_cast<std::uint16_t>(b));
    if (!std::isnan(f)) {
      EXPECT_EQ(f32_to_bf16(f), b);
    }
  }
}

TEST(Dtype, NamesAndSizes) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kU8, DType::kI32, DType::kI64}) {
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
    EXPECT_GT(dtype_size(t), 0u);
  }
  EXPECT_EQ(dtype_size(DType::kUnknown), 0u);
  EXPECT_FALSE(dtype_from_name("f8"));
  EXPECT_TRUE(is_float_dtype(DType::kBF16));
  EXPECT_FALSE(is_float_dtype(DType::kI64));
}

TEST(Status, CodesHaveUniqueNamesAndMessagesRender) {
  std::set<std::string_view> names;
  for (unsigned c :
       {0u,   100u, 101u, 102u, 103u, 104u, 105u, 106u, 107u, 108u, 109u, 110u, 111u, 112u,
        113u, 114u, 115u, 116u, 117u, 118u, 200u, 201u, 202u, 203u, 300u, 301u, 302u,
                     400u, 401u, 402u, 403u, 500u, 501u, 502u, 503u, 504u,
                     505u, 506u, 507u, 508u}) {
    const auto name = error_code_name(static_cast<ErrorCode>(c));
    EXPECT_NE(name, "unknown_error") << c;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  const Status s(ErrorCode::kSectionChecksumMismatch, "section 0 differs");
  EXPECT_EQ(s.to_string(), "section_checksum_mismatch (113): section 0 differs");
  EXPECT_FALSE(s.is_ok());
}

TEST(Status, ResultHoldsValueOrError) {
  Result<int> good(5);
  ASSERT_TRUE(good);
  EXPECT_EQ(*good, 5);
  EXPECT_TRUE(good.status().is_ok());
  Result<int> bad(Status(ErrorCode::kBadNpy, "x"));
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.status().code(), ErrorCode::kBadNpy);
  Result<int> misuse{Status()};  // an ok Status without a value is itself an error
  EXPECT_FALSE(misuse);
  EXPECT_EQ(misuse.status().code(), ErrorCode::kBadState);
}

}  // namespace
}  // namespace agp
