// dtype.h: f16/bf16 conversions against independent references (the compiler's IEEE _Float16
// for f16, an explicit nearest-even rule in double for bf16), and parse_dtype.
#include "adamas/common/dtype.h"

#include "test_util.h"

namespace adamas::test {
namespace {

uint32_t bits_of(float f) { return std::bit_cast<uint32_t>(f); }
float float_of(uint32_t u) { return std::bit_cast<float>(u); }

bool is_f16_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool is_bf16_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

#if defined(__FLT16_MAX__)
uint16_t reference_f32_to_f16(float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); }
float reference_f16_to_f32(uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }
#endif

// bf16 reference: the two bf16 neighbours of f (toward zero and away from it), in double; the
// nearer one wins, a tie goes to the even mantissa. Magnitudes past the largest finite bf16 are
// measured against 2^128 (IEEE overflow: round to Inf from max + half an ulp on).
uint16_t reference_f32_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7fc0u;  // NaN (payload not compared)
  if (a == 0x7f800000u) return sign | 0x7f80u;
  const uint16_t down = static_cast<uint16_t>(a >> 16);
  const uint16_t up = static_cast<uint16_t>(down + 1);
  const double x = double{float_of(a)};
  const double lo = double{float_of(uint32_t{down} << 16)};
  const double hi = up == 0x7f80u ? std::ldexp(1.0, 128) : double{float_of(uint32_t{up} << 16)};
  uint16_t r;
  if (x - lo < hi - x)
    r = down;
  else if (x - lo > hi - x)
    r = up;
  else
    r = (down & 1u) ? up : down;
  return sign | r;
}

TEST(DType, NamesSizesAndParse) {
  EXPECT_EQ(dtype_size(DType::kF32), 4u);
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  EXPECT_EQ(parse_dtype("f32"), DType::kF32);
  EXPECT_EQ(parse_dtype("fp32"), DType::kF32);
  EXPECT_EQ(parse_dtype("float32"), DType::kF32);
  EXPECT_EQ(parse_dtype("f16"), DType::kF16);
  EXPECT_EQ(parse_dtype("fp16"), DType::kF16);
  EXPECT_EQ(parse_dtype("float16"), DType::kF16);
  EXPECT_EQ(parse_dtype("bf16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::kBF16);
}

TEST(DType, ParseErrorsNameTheBadString) {
  for (const char* bad : {"fp8", "int8", "float64", "bf32", "f16 ", "xyzzy"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(error_message([&] { parse_dtype(bad); }),
                AllOf(HasSubstr(std::string("'") + bad + "'"), HasSubstr("f32"), HasSubstr("f16"),
                      HasSubstr("bf16")));
  }
  EXPECT_THAT(error_message([] { parse_dtype(""); }), HasSubstr("''"));
}

#if defined(__FLT16_MAX__)
TEST(DType, F16ToF32ExhaustiveMatchesFloat16) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float got = f16_to_f32(static_cast<uint16_t>(h));
    const float want = reference_f16_to_f32(static_cast<uint16_t>(h));
    if (is_f16_nan(static_cast<uint16_t>(h))) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000u) != 0) << std::hex << h;
    } else {
      ASSERT_EQ(bits_of(got), bits_of(want))
          << "f16 0x" << std::hex << h << ": " << got << " vs " << want;
    }
  }
}

TEST(DType, F32ToF16MatchesFloat16OnRandomBitPatterns) {
  std::mt19937 g(101);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 400000; ++i) {
    // Mix arbitrary patterns with patterns near the f16 range (exponents 100..145).
    uint32_t u = any(g);
    if (i & 1) u = (u & 0x807fffffu) | ((100u + (u >> 23) % 46u) << 23);
    const float f = float_of(u);
    const uint16_t got = f32_to_f16(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(is_f16_nan(got)) << std::hex << u;
      ASSERT_EQ(got & 0x8000u, (u >> 16) & 0x8000u) << std::hex << u;
    } else {
      ASSERT_EQ(got, reference_f32_to_f16(f)) << "f32 0x" << std::hex << u << " = " << f;
    }
  }
}

// Exact midpoints between neighbouring f16 values must round to the even one; one float ulp
// either side must round to the nearer one. Covers subnormals, the normal range and overflow.
TEST(DType, F32ToF16RoundsTiesToEven) {
  for (uint32_t h = 0; h < 0x7c00u; ++h) {  // positive finite
    const double a = reference_f16_to_f32(static_cast<uint16_t>(h));
    const double b =
        h + 1 == 0x7c00u ? 65536.0 : reference_f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((a + b) / 2);  // exact: 12 significant bits
    ASSERT_EQ(double{mid}, (a + b) / 2);
    const uint16_t even = (h & 1u) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    ASSERT_EQ(f32_to_f16(mid), even) << "midpoint above f16 0x" << std::hex << h;
    ASSERT_EQ(f32_to_f16(-mid), even | 0x8000u) << "midpoint above f16 -0x" << std::hex << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, INFINITY)), h + 1) << std::hex << h;
  }
}
#endif  // __FLT16_MAX__

TEST(DType, F16SpecialValues) {
  // Inf, NaN, zeros.
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00u);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00u);
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000u);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000u);
  EXPECT_TRUE(is_f16_nan(f32_to_f16(NAN)));
  EXPECT_TRUE(is_f16_nan(f32_to_f16(-NAN)));
  EXPECT_TRUE(is_f16_nan(f32_to_f16(float_of(0x7f800001u))));  // NaN with a low payload only
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00u)) && f16_to_f32(0x7c00u) > 0);
  EXPECT_TRUE(std::isinf(f16_to_f32(0xfc00u)) && f16_to_f32(0xfc00u) < 0);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00u)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01u)));
  EXPECT_EQ(bits_of(f16_to_f32(0x8000u)), 0x80000000u);
  // Largest finite and overflow: 65504 is max; from 65520 on (max + half ulp) it is Inf.
  EXPECT_EQ(f16_to_f32(0x7bffu), 65504.0f);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00u);
  EXPECT_EQ(f32_to_f16(1e30f), 0x7c00u);
  EXPECT_EQ(f32_to_f16(-1e30f), 0xfc00u);
  // Subnormals: smallest 2^-24, largest 1023 · 2^-24, smallest normal 2^-14.
  EXPECT_EQ(f16_to_f32(0x0001u), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ffu), 1023.0f * std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x0400u), std::ldexp(1.0f, -14));
  EXPECT_EQ(f16_to_f32(0x8001u), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001u);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000u);  // tie → even (0)
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001u);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002u);  // 1.5 ulp: tie → even (2)
  EXPECT_EQ(f32_to_f16(std::ldexp(5.0f, -25)), 0x0002u);  // 2.5 ulp: tie → even (2)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000u);
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -30)), 0x8000u);
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400u);  // rounds up into the normals
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00u);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00u);  // tie → even
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02u);  // tie → even (up)
}

TEST(DType, F16RoundTripExhaustive) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const uint16_t x = static_cast<uint16_t>(h);
    if (is_f16_nan(x)) {
      ASSERT_TRUE(is_f16_nan(f32_to_f16(f16_to_f32(x)))) << std::hex << h;
    } else {
      ASSERT_EQ(f32_to_f16(f16_to_f32(x)), x) << std::hex << h;
    }
  }
}

TEST(DType, BF16RoundTripExhaustive) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const uint16_t x = static_cast<uint16_t>(b);
    const float f = bf16_to_f32(x);
    ASSERT_EQ(bits_of(f), uint32_t{x} << 16) << std::hex << b;
    if (is_bf16_nan(x)) {
      ASSERT_TRUE(is_bf16_nan(f32_to_bf16(f))) << std::hex << b;
    } else {
      ASSERT_EQ(f32_to_bf16(f), x) << std::hex << b;
    }
  }
}

TEST(DType, F32ToBF16MatchesNearestEvenReference) {
  std::mt19937 g(202);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 400000; ++i) {
    const uint32_t u = any(g);
    const float f = float_of(u);
    const uint16_t got = f32_to_bf16(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(is_bf16_nan(got)) << std::hex << u;
      ASSERT_EQ(got & 0x8000u, (u >> 16) & 0x8000u) << std::hex << u;
    } else {
      ASSERT_EQ(got, reference_f32_to_bf16(f)) << "f32 0x" << std::hex << u;
    }
  }
}

TEST(DType, BF16TiesToEvenSubnormalsAndSpecials) {
  // Every exact tie (low half 0x8000) of every finite bf16: the even neighbour wins.
  for (uint32_t b = 0; b < 0x7f80u; ++b) {
    const float tie = float_of((b << 16) | 0x8000u);
    const uint16_t even = (b & 1u) ? static_cast<uint16_t>(b + 1) : static_cast<uint16_t>(b);
    ASSERT_EQ(f32_to_bf16(tie), even) << std::hex << b;
    ASSERT_EQ(f32_to_bf16(-tie), even | 0x8000u) << std::hex << b;
    ASSERT_EQ(f32_to_bf16(float_of((b << 16) | 0x7fffu)), b) << std::hex << b;
    ASSERT_EQ(f32_to_bf16(float_of((b << 16) | 0x8001u)), b + 1) << std::hex << b;
  }
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80u);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80u);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000u);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80u);  // rounds past max
  EXPECT_EQ(f32_to_bf16(float_of(0x7f7f7fffu)), 0x7f7fu);
  // NaNs stay NaN, including a NaN whose payload sits in the low 16 bits only (truncation would
  // make it Inf) and keep their sign.
  for (uint32_t u : {0x7f800001u, 0x7f808000u, 0x7fc00000u, 0xff800001u, 0x7fffffffu}) {
    const uint16_t b = f32_to_bf16(float_of(u));
    EXPECT_TRUE(is_bf16_nan(b)) << std::hex << u << " -> " << b;
    EXPECT_EQ(b & 0x8000u, (u >> 16) & 0x8000u) << std::hex << u;
    EXPECT_TRUE(std::isnan(bf16_to_f32(b)));
  }
  // Subnormal floats are bf16 subnormals: rounding applies the same way.
  EXPECT_EQ(f32_to_bf16(float_of(0x00000001u)), 0x0000u);
  EXPECT_EQ(f32_to_bf16(float_of(0x00008000u)), 0x0000u);  // tie → even (0)
  EXPECT_EQ(f32_to_bf16(float_of(0x00018000u)), 0x0002u);  // tie → even (2)
  EXPECT_EQ(f32_to_bf16(float_of(0x00008001u)), 0x0001u);
  EXPECT_EQ(bits_of(bf16_to_f32(0x0001u)), 0x00010000u);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80u);
  EXPECT_EQ(bf16_to_f32(0x3f80u), 1.0f);
}

TEST(DType, ArrayConversionsMatchScalar) {
  std::mt19937 g(303);
  auto x = random_normal(g, 1000, 100.0f);
  x[3] = INFINITY;
  x[4] = -0.0f;
  x[5] = 1e-7f;
  // to f16 / bf16 and back
  std::vector<uint16_t> h(x.size()), b(x.size());
  convert_from_f32(x.data(), h.data(), DType::kF16, x.size());
  convert_from_f32(x.data(), b.data(), DType::kBF16, x.size());
  std::vector<float> hf(x.size()), bf(x.size()), ff(x.size());
  convert_to_f32(h.data(), DType::kF16, hf.data(), x.size());
  convert_to_f32(b.data(), DType::kBF16, bf.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], f32_to_f16(x[i])) << i;
    ASSERT_EQ(b[i], f32_to_bf16(x[i])) << i;
    ASSERT_EQ(bits_of(hf[i]), bits_of(f16_to_f32(h[i]))) << i;
    ASSERT_EQ(bits_of(bf[i]), bits_of(bf16_to_f32(b[i]))) << i;
  }
  // f32 is a copy, both ways
  std::vector<float> f32(x.size());
  convert_from_f32(x.data(), f32.data(), DType::kF32, x.size());
  convert_to_f32(f32.data(), DType::kF32, ff.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(bits_of(ff[i]), bits_of(x[i])) << i;
  // to_float overloads
  EXPECT_EQ(to_float(f16{0x3c00u}), 1.0f);
  EXPECT_EQ(to_float(bf16{0xbf80u}), -1.0f);
  EXPECT_EQ(to_float(2.5f), 2.5f);
}

}  // namespace
}  // namespace adamas::test
