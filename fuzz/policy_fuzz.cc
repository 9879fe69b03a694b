// The input as a policy string ("NAME[:key=value,...]") → parse_policy. An accepted policy must
// validate(), describe(), build (make_policy), configure a cache that validates, and survive a
// round trip: its every field written back as a spec string parses to an equal config.
// (describe() is a human-readable summary, not a spec, so the round trip goes through to_spec.)
#include "adamas/cache/cache_config.h"
#include "adamas/policy/policy.h"
#include "fuzz_util.h"

namespace {

using namespace adamas;

std::string to_spec(const PolicyConfig& c) {
  std::string s(policy_kind_name(c.kind));
  s += ":budget=" + std::to_string(c.budget);
  s += ",dense_layers=" + std::to_string(c.dense_layers);
  s += std::string(",gqa=") + (c.gqa == GqaMode::kGroupShared ? "shared" : "per-head");
  s += ",bits=" + std::to_string(c.bits);
  s += std::string(",dist=") + (c.distance == Distance::kL1   ? "l1"
                                : c.distance == Distance::kL2 ? "l2"
                                                              : "ip");
  s += std::string(",hadamard=") + (c.hadamard ? "1" : "0");
  s += std::string(",thresholds=") + (c.calibrate ? "calibrated" : "paper");
  s += ",sinks=" + std::to_string(c.sinks);
  s += ",keep_sinks=" + std::to_string(c.keep_sinks);
  s += ",keep_recent=" + std::to_string(c.keep_recent);
  return s;
}

bool same(const PolicyConfig& a, const PolicyConfig& b) {
  return a.kind == b.kind && a.budget == b.budget && a.dense_layers == b.dense_layers &&
         a.gqa == b.gqa && a.bits == b.bits && a.distance == b.distance &&
         a.hadamard == b.hadamard && a.thresholds == b.thresholds && a.calibrate == b.calibrate &&
         a.sinks == b.sinks && a.keep_sinks == b.keep_sinks && a.keep_recent == b.keep_recent;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view spec = adamas::fuzz::as_text(data, size);
  PolicyConfig c;
  if (!adamas::fuzz::accepts([&] { c = parse_policy(spec); })) return 0;

  FUZZ_CHECK(adamas::fuzz::accepts([&] { c.validate(); }), "parsed policy fails validate()");
  FUZZ_CHECK(c.budget >= 1 && c.dense_layers >= 0, "budget / dense_layers");
  const std::string described = c.describe();
  FUZZ_CHECK(described.rfind(policy_kind_name(c.kind), 0) == 0, "describe() names the policy");

  const std::string canonical = to_spec(c);
  PolicyConfig again;
  FUZZ_CHECK(adamas::fuzz::accepts([&] { again = parse_policy(canonical); }),
             "the canonical spec of a parsed policy is rejected: " + canonical);
  FUZZ_CHECK(same(c, again), "round trip changed the policy: " + canonical);
  FUZZ_CHECK(again.describe() == described, "round trip changed describe()");

  FUZZ_CHECK(adamas::fuzz::accepts([&] {
               auto p = make_policy(c);
               FUZZ_CHECK(p->config().describe() == described, "make_policy config");
               (void)p->is_dense(0, 1);
               (void)p->is_dense(INT32_MAX, INT32_MAX);
             }),
             "make_policy rejects a parsed policy");

  CacheConfig cache;
  cache.num_pages = 1;
  configure_cache_for(c, cache);
  FUZZ_CHECK(adamas::fuzz::accepts([&] { cache.validate(); }),
             "the cache configured for a parsed policy fails validate(): " + described);
  return 0;
}
