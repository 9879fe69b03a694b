// The SIMD targets the fast paths are tested on: every test that calls a fast path iterates over
// hwy::SupportedAndGeneratedTargets(). This test prints them and checks that the portable
// fallback is among them, so a log shows which targets ran.
#include "adamas/common/simd.h"
#include "test_util.h"

namespace adamas::test {
namespace {

TEST(SimdTargets, ListAndIncludeScalarFallback) {
  const auto targets = compiled_targets();
  ASSERT_FALSE(targets.empty());
  std::cout << "[ targets  ] compiled and supported: " << target_names() << std::endl;
  ::testing::Test::RecordProperty("simd_targets", target_names());
  // The portable fallback: EMU128, or SCALAR where Highway marks EMU128 broken for this
  // compiler (HWY_BROKEN_EMU128, e.g. GCC 12 with Highway 1.0.3).
  bool fallback = false;
  for (int64_t t : targets) fallback |= t == HWY_EMU128 || t == HWY_SCALAR;
  EXPECT_TRUE(fallback) << "the portable fallback is not tested; targets: " << target_names();
  EXPECT_GE(targets.size(), 2u) << "only one target: the SIMD paths are not compared";
#if HWY_ARCH_X86
  // The targets the library excludes must not appear (they would not be dispatched to).
  for (int64_t t : targets) {
    EXPECT_NE(t, HWY_SSSE3);
    EXPECT_NE(t, HWY_SSE4);
  }
#endif
  // Selecting each target for the test really changes what is dispatched.
  for_each_target([&](int64_t t) { EXPECT_EQ(hwy::SupportedTargets() & t, t); });
}

// adamas/common/simd.h names the same targets, best first, and can force one of them.
TEST(SimdTargets, LibraryTargetNamesAndForcing) {
  TargetReset reset;
  std::vector<std::string> want;
  for (int64_t t : compiled_targets()) want.emplace_back(hwy::TargetName(t));
  EXPECT_EQ(available_simd_targets(), want);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(simd_target(), want.front());
  for (const std::string& name : want) {
    force_simd_target(name);
    EXPECT_EQ(simd_target(), name);
    const auto now = compiled_targets();
    ASSERT_EQ(now.size(), 1u);
    EXPECT_EQ(hwy::TargetName(now[0]), name);
  }
  force_simd_target("");
  EXPECT_EQ(available_simd_targets(), want);
  const std::string msg = error_message([] { force_simd_target("NEON"); });
  EXPECT_THAT(msg, HasSubstr("'NEON'"));
  for (const std::string& name : want) EXPECT_THAT(msg, HasSubstr(name));
  EXPECT_EQ(available_simd_targets(), want) << "a failed force must not leave a target forced";
}

}  // namespace
}  // namespace adamas::test
