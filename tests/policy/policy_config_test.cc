// policy.h: parse_policy (round trips, defaults, errors that list the accepted values),
// PolicyConfig::validate, make_policy, check_cache, configure_cache_for, is_dense.
#include "adamas/policy/policy.h"
#include "test_util.h"

namespace adamas::test {
namespace {

TEST(PolicyConfig, ParseNamesAndDefaults) {
  const std::pair<const char*, PolicyKind> names[] = {{"full", PolicyKind::kFull},
                                                      {"oracle", PolicyKind::kOracle},
                                                      {"adamas", PolicyKind::kAdamas},
                                                      {"quest", PolicyKind::kQuest},
                                                      {"streaming", PolicyKind::kStreaming}};
  const PolicyConfig defaults;
  for (const auto& [name, kind] : names) {
    SCOPED_TRACE(name);
    const PolicyConfig c = parse_policy(name);
    EXPECT_EQ(c.kind, kind);
    EXPECT_EQ(policy_kind_name(kind), name);
    EXPECT_EQ(parse_policy(std::string(policy_kind_name(kind))).kind, kind);
    EXPECT_EQ(c.budget, defaults.budget);
    EXPECT_EQ(c.dense_layers, defaults.dense_layers);
    EXPECT_EQ(c.gqa, GqaMode::kPerQueryHead);
    EXPECT_EQ(c.bits, 2);
    EXPECT_EQ(c.distance, Distance::kL1);
    EXPECT_TRUE(c.hadamard);
    EXPECT_EQ(c.sinks, 4);
    EXPECT_EQ(parse_policy(std::string(name) + ":").kind, kind);
  }
  EXPECT_EQ(defaults.budget, 256);
  EXPECT_EQ(defaults.dense_layers, 2);
}

TEST(PolicyConfig, ParseEveryOption) {
  const PolicyConfig a =
      parse_policy("adamas:budget=128,dense_layers=0,gqa=shared,bits=3,dist=l2,hadamard=0");
  EXPECT_EQ(a.kind, PolicyKind::kAdamas);
  EXPECT_EQ(a.budget, 128);
  EXPECT_EQ(a.dense_layers, 0);
  EXPECT_EQ(a.gqa, GqaMode::kGroupShared);
  EXPECT_EQ(a.bits, 3);
  EXPECT_EQ(a.distance, Distance::kL2);
  EXPECT_FALSE(a.hadamard);
  const PolicyConfig b = parse_policy("adamas:bits=1,dist=l1,hadamard=1,gqa=per-head");
  EXPECT_EQ(b.bits, 1);
  EXPECT_EQ(b.distance, Distance::kL1);
  EXPECT_TRUE(b.hadamard);
  EXPECT_EQ(b.gqa, GqaMode::kPerQueryHead);
  for (const char* t : {"true", "on", "1"})
    EXPECT_TRUE(parse_policy(std::string("adamas:hadamard=") + t).hadamard);
  for (const char* f : {"false", "off", "0"})
    EXPECT_FALSE(parse_policy(std::string("adamas:hadamard=") + f).hadamard);
  const PolicyConfig s = parse_policy("streaming:budget=64,sinks=8");
  EXPECT_EQ(s.kind, PolicyKind::kStreaming);
  EXPECT_EQ(s.sinks, 8);
  EXPECT_EQ(s.budget, 64);
  const PolicyConfig q = parse_policy("quest:budget=512,dense_layers=1,gqa=shared");
  EXPECT_EQ(q.kind, PolicyKind::kQuest);
  EXPECT_EQ(q.budget, 512);
  EXPECT_EQ(q.dense_layers, 1);
  EXPECT_EQ(q.gqa, GqaMode::kGroupShared);
  EXPECT_FALSE(parse_policy("adamas").calibrate);
  EXPECT_TRUE(parse_policy("adamas:thresholds=calibrated").calibrate);
  EXPECT_FALSE(parse_policy("adamas:thresholds=paper").calibrate);
  const PolicyConfig ip = parse_policy("adamas:dist=ip,keep_sinks=4,keep_recent=16");
  EXPECT_EQ(ip.distance, Distance::kIP);
  EXPECT_EQ(ip.keep_sinks, 4);
  EXPECT_EQ(ip.keep_recent, 16);
  EXPECT_EQ(parse_policy("adamas").keep_sinks, 0);
  EXPECT_EQ(parse_policy("adamas").keep_recent, 0);
  // Later options override earlier ones.
  EXPECT_EQ(parse_policy("oracle:budget=10,budget=20").budget, 20);
}

TEST(PolicyConfig, DescribeNamesTheSettings) {
  const std::string d = parse_policy("adamas:budget=128,bits=3,dist=l2,gqa=shared").describe();
  EXPECT_THAT(d, AllOf(HasSubstr("adamas"), HasSubstr("bits=3"), HasSubstr("l2"),
                       HasSubstr("shared"), HasSubstr("budget=128")));
  EXPECT_THAT(parse_policy("adamas:hadamard=0").describe(), HasSubstr("no-hadamard"));
  EXPECT_THAT(parse_policy("adamas:thresholds=calibrated").describe(), HasSubstr("calibrated"));
  EXPECT_THAT(parse_policy("streaming:sinks=7").describe(), HasSubstr("sinks=7"));
  EXPECT_THAT(parse_policy("adamas:dist=ip,keep_sinks=2,keep_recent=8").describe(),
              AllOf(HasSubstr("ip"), HasSubstr("keep=2+8")));
  EXPECT_THAT(parse_policy("full").describe(), HasSubstr("full"));
}

TEST(PolicyConfig, UnknownNameListsAcceptedNames) {
  for (const char* bad : {"dense", "", "Adamas", "adamas2", "quest;budget=3"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(error_message([&] { parse_policy(bad); }),
                AllOf(HasSubstr("unknown policy"), HasSubstr("full"), HasSubstr("oracle"),
                      HasSubstr("adamas"), HasSubstr("quest"), HasSubstr("streaming")));
  }
  EXPECT_THAT(error_message([] { parse_policy("dense:budget=3"); }), HasSubstr("'dense'"));
}

TEST(PolicyConfig, UnknownKeyListsAcceptedKeys) {
  EXPECT_THAT(error_message([] { parse_policy("adamas:buget=3"); }),
              AllOf(HasSubstr("'buget'"), HasSubstr("budget"), HasSubstr("dense_layers"),
                    HasSubstr("gqa"), HasSubstr("bits"), HasSubstr("dist"), HasSubstr("hadamard"),
                    HasSubstr("thresholds"), HasSubstr("sinks"), HasSubstr("keep_recent")));
  EXPECT_THAT(error_message([] { parse_policy("oracle:budget"); }), HasSubstr("key=value"));
}

TEST(PolicyConfig, BadValuesListAcceptedValues) {
  EXPECT_THAT(error_message([] { parse_policy("adamas:budget=abc"); }),
              AllOf(HasSubstr("budget=abc"), HasSubstr("integer")));
  EXPECT_THAT(error_message([] { parse_policy("adamas:budget=12x"); }), HasSubstr("integer"));
  EXPECT_THAT(error_message([] { parse_policy("adamas:bits="); }), HasSubstr("integer"));
  EXPECT_THAT(error_message([] { parse_policy("adamas:dist=l3"); }),
              AllOf(HasSubstr("dist=l3"), HasSubstr("l1"), HasSubstr("l2"), HasSubstr("ip")));
  EXPECT_THAT(error_message([] { parse_policy("adamas:keep_recent=-1"); }),
              AllOf(HasSubstr("keep_recent"), HasSubstr("-1")));
  EXPECT_THAT(error_message([] { parse_policy("adamas:keep_sinks=x"); }), HasSubstr("integer"));
  EXPECT_THAT(error_message([] { parse_policy("adamas:gqa=grouped"); }),
              AllOf(HasSubstr("gqa=grouped"), HasSubstr("per-head"), HasSubstr("shared")));
  EXPECT_THAT(error_message([] { parse_policy("adamas:hadamard=yes"); }),
              AllOf(HasSubstr("hadamard=yes"), HasSubstr("0/1")));
  EXPECT_THAT(error_message([] { parse_policy("adamas:thresholds=fixed"); }),
              AllOf(HasSubstr("thresholds=fixed"), HasSubstr("paper"), HasSubstr("calibrated")));
  // Values that parse but are invalid.
  EXPECT_THAT(error_message([] { parse_policy("adamas:bits=4"); }),
              AllOf(HasSubstr("bits"), HasSubstr("1, 2 or 3"), HasSubstr("got 4")));
  EXPECT_THAT(error_message([] { parse_policy("adamas:bits=0"); }), HasSubstr("got 0"));
  EXPECT_THAT(error_message([] { parse_policy("oracle:budget=0"); }),
              AllOf(HasSubstr("budget"), HasSubstr("got 0")));
  EXPECT_THAT(error_message([] { parse_policy("oracle:budget=-5"); }), HasSubstr("got -5"));
  EXPECT_THAT(error_message([] { parse_policy("quest:dense_layers=-1"); }),
              AllOf(HasSubstr("dense_layers"), HasSubstr("-1")));
  EXPECT_THAT(error_message([] { parse_policy("streaming:sinks=-2"); }),
              AllOf(HasSubstr("sinks"), HasSubstr("-2")));
}

TEST(PolicyConfig, ValidateAndMakePolicy) {
  PolicyConfig c;
  c.kind = PolicyKind::kAdamas;
  c.thresholds = {1.f, 0.f, 2.f};
  EXPECT_THAT(error_message([&] { c.validate(); }), HasSubstr("strictly ascending"));
  EXPECT_THAT(error_message([&] { make_policy(c); }), HasSubstr("strictly ascending"));
  c.thresholds = {0.f};
  EXPECT_THAT(error_message([&] { c.validate(); }), HasSubstr("3 thresholds"));
  c.thresholds = {-1.f, 0.f, 1.f};
  EXPECT_NO_THROW(c.validate());
  for (PolicyKind k : {PolicyKind::kFull, PolicyKind::kOracle, PolicyKind::kAdamas,
                       PolicyKind::kQuest, PolicyKind::kStreaming}) {
    PolicyConfig p;
    p.kind = k;
    const auto policy = make_policy(p);
    ASSERT_NE(policy, nullptr);
    EXPECT_EQ(policy->config().kind, k);
  }
  PolicyConfig bad;
  bad.budget = 0;
  EXPECT_THAT(error_message([&] { make_policy(bad); }), HasSubstr("budget"));
}

TEST(PolicyConfig, IsDense) {
  PolicyConfig c = parse_policy("oracle:budget=10,dense_layers=2");
  const auto p = make_policy(c);
  EXPECT_TRUE(p->is_dense(0, 100));
  EXPECT_TRUE(p->is_dense(1, 100));
  EXPECT_FALSE(p->is_dense(2, 100));
  EXPECT_FALSE(p->is_dense(2, 11));
  EXPECT_TRUE(p->is_dense(2, 10));  // budget ≥ length
  EXPECT_TRUE(p->is_dense(5, 1));
  EXPECT_TRUE(make_policy(parse_policy("full:dense_layers=0"))->is_dense(3, 100000));
}

TEST(PolicyConfig, ConfigureCacheForAdamasOnly) {
  CacheConfig cache;
  cache.codes.bits = 2;
  cache.codes.hadamard = true;
  cache.store_codes = false;
  PolicyConfig p = parse_policy("adamas:bits=3,hadamard=0");
  p.thresholds = {-3.f, -2.f, -1.f, 0.f, 1.f, 2.f, 3.f};
  configure_cache_for(p, cache);
  EXPECT_TRUE(cache.store_codes);
  EXPECT_EQ(cache.codes.bits, 3);
  EXPECT_FALSE(cache.codes.hadamard);
  EXPECT_EQ(cache.codes.thresholds, p.thresholds);
  CacheConfig other;
  other.codes.bits = 1;
  other.store_codes = false;
  for (const char* name : {"full", "oracle", "quest", "streaming"}) {
    CacheConfig c = other;
    configure_cache_for(parse_policy(std::string(name) + ":bits=3"), c);
    EXPECT_EQ(c.codes.bits, 1) << name;
    EXPECT_FALSE(c.store_codes) << name;
  }
}

TEST(PolicyConfig, CheckCacheRejectsWhatThePolicyCannotRead) {
  CacheConfig cfg = small_cache_config(64, 16, DType::kF16);
  cfg.num_pages = 2;
  cfg.codes.bits = 3;
  const PagedKVCache three_bit(cfg);
  const auto adamas2 = make_policy(parse_policy("adamas:bits=2"));
  EXPECT_THAT(error_message([&] { adamas2->check_cache(three_bit); }),
              AllOf(HasSubstr("2-bit"), HasSubstr("3-bit")));
  cfg.codes.bits = 2;
  cfg.codes.hadamard = false;
  const PagedKVCache raw(cfg);
  EXPECT_THAT(error_message([&] { adamas2->check_cache(raw); }), HasSubstr("Hadamard"));
  cfg.codes.hadamard = true;
  cfg.store_codes = false;
  const PagedKVCache no_codes(cfg);
  EXPECT_THAT(error_message([&] { adamas2->check_cache(no_codes); }), HasSubstr("key codes"));
  cfg.store_codes = true;
  const PagedKVCache good(cfg);
  EXPECT_NO_THROW(adamas2->check_cache(good));

  const auto quest_small = make_policy(parse_policy("quest:budget=8"));
  EXPECT_THAT(error_message([&] { quest_small->check_cache(good); }),
              AllOf(HasSubstr("budget 8"), HasSubstr("16")));
  const auto quest = make_policy(parse_policy("quest:budget=16"));
  EXPECT_NO_THROW(quest->check_cache(good));
  cfg.store_page_minmax = false;
  const PagedKVCache no_minmax(cfg);
  EXPECT_THAT(error_message([&] { quest->check_cache(no_minmax); }), HasSubstr("min/max"));
  for (const char* name : {"full", "oracle", "streaming"})
    EXPECT_NO_THROW(make_policy(parse_policy(name))->check_cache(no_codes)) << name;
}

}  // namespace
}  // namespace adamas::test
