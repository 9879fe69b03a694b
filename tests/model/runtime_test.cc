// The runtime end to end on a tiny random model written from C++: prefill chunking, prefill vs
// decode, every policy inside the runtime (budget ≥ context equals full, dense_layers honoured,
// small budgets really sparse), ragged batches, and generation with stop tokens.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "adamas/model/llama.h"
#include "adamas/model/sampler.h"
#include "model_test_util.h"

namespace adamas::model::test {
namespace {

class Runtime : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    TinySpec s;
    s.head_dim = 32;  // Adamas codes need ≥ 16; 32 keeps Hadamard non-trivial
    s.hidden = 64;
    s.heads = 4;
    s.kv_heads = 2;
    s.dtype = "BF16";
    write_tiny_model(dir_->path, s);
    model_ = LlamaModel::load(dir_->path).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static std::vector<int32_t> tokens(int n, uint32_t seed) {
    std::mt19937 g(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = std::uniform_int_distribution<int>(0, 95)(g);
    return t;
  }
  // One thread by default: the results must not depend on it (RaggedBatch runs two), and a
  // loaded CI machine makes OpenMP barriers slow.
  static RuntimeOptions options(const std::string& policy, int chunk = 256, int threads = 1) {
    RuntimeOptions o;
    o.threads = threads;
    o.policy = parse_policy(policy);
    o.kv_dtype = DType::kF32;
    o.page_size = 8;
    o.max_tokens = 1024;
    o.max_batch = 4;
    o.prefill_chunk = chunk;
    return o;
  }
  // Prefill `prefix` tokens, then decode the rest one by one: logits of every position ≥ prefix.
  static std::vector<float> prefill_then_decode(const RuntimeOptions& o,
                                                const std::vector<int32_t>& t, int prefix) {
    Session s(*model_, o);
    const SeqId seq = s.add_sequence();
    const int V = model_->config().vocab_size;
    std::vector<float> out(size_t(t.size() - prefix + 1) * V);
    s.prefill(seq, std::span(t).first(prefix), out.data());
    for (size_t i = prefix; i < t.size(); ++i)
      s.decode(std::span<const SeqId>(&seq, 1), std::span(t).subspan(i, 1),
               out.data() + (i - prefix + 1) * V);
    return out;
  }
  static double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
    return m;
  }
  static TempDir* dir_;
  static LlamaModel* model_;
};
TempDir* Runtime::dir_ = nullptr;
LlamaModel* Runtime::model_ = nullptr;

TEST_F(Runtime, PrefillChunkSizeDoesNotChangeLogits) {
  const auto t = tokens(150, 1);
  const int V = model_->config().vocab_size;
  std::vector<float> ref(t.size() * V);
  {
    Session s(*model_, options("full", 256));
    s.prefill(s.add_sequence(), t, ref.data(), true);
  }
  for (int chunk : {1, 7, 64}) {
    Session s(*model_, options("full", chunk));
    std::vector<float> got(ref.size());
    s.prefill(s.add_sequence(), t, got.data(), true);
    EXPECT_LT(max_abs_diff(got, ref), 2e-4) << "chunk " << chunk;
  }
}

TEST_F(Runtime, DecodeStepsEqualPrefillLogits) {
  const auto t = tokens(90, 2);
  const int V = model_->config().vocab_size, prefix = 40;
  std::vector<float> all(t.size() * V);
  Session s(*model_, options("full"));
  s.prefill(s.add_sequence(), t, all.data(), true);
  const std::vector<float> want(all.begin() + (prefix - 1) * V, all.end());
  EXPECT_LT(max_abs_diff(prefill_then_decode(options("full"), t, prefix), want), 2e-4);
}

// budget ≥ context: every sparse policy must reproduce dense attention.
TEST_F(Runtime, EveryPolicyWithBudgetAboveContextEqualsFull) {
  const auto t = tokens(100, 3);
  const auto full = prefill_then_decode(options("full"), t, 50);
  for (const char* p : {"adamas:budget=512,dense_layers=0", "oracle:budget=512,dense_layers=0",
                        "quest:budget=512,dense_layers=0", "streaming:budget=512,dense_layers=0",
                        "adamas:budget=512,dense_layers=0,gqa=shared,thresholds=calibrated"}) {
    EXPECT_EQ(max_abs_diff(prefill_then_decode(options(p), t, 50), full), 0.0) << p;
  }
}

// truncate + set_policy: decoding again from the end of the prompt repeats the same logits, and
// a session that stores every policy's metadata switches policies over one prefill.
TEST_F(Runtime, TruncateAndSetPolicyReuseOnePrefill) {
  const auto t = tokens(80, 9);
  const int V = model_->config().vocab_size, prefix = 50;
  RuntimeOptions o = options("full");
  o.any_policy = true;
  Session s(*model_, o);
  const SeqId seq = s.add_sequence();
  std::vector<float> last(V);
  s.prefill(seq, std::span(t).first(prefix), last.data());
  auto decode_rest = [&] {
    std::vector<float> out(size_t(t.size() - prefix) * V);
    for (size_t i = prefix; i < t.size(); ++i)
      s.decode(std::span<const SeqId>(&seq, 1), std::span(t).subspan(i, 1),
               out.data() + (i - prefix) * V);
    return out;
  };
  const auto first = decode_rest();
  s.truncate(seq, prefix);
  EXPECT_EQ(s.length(seq), prefix);
  EXPECT_EQ(max_abs_diff(decode_rest(), first), 0.0);
  s.truncate(seq, prefix);
  s.set_policy(parse_policy("adamas:budget=512,dense_layers=0"));
  EXPECT_EQ(max_abs_diff(decode_rest(), first), 0.0);
  s.truncate(seq, prefix);
  s.set_policy(parse_policy("adamas:budget=8,dense_layers=0"));
  EXPECT_GT(max_abs_diff(decode_rest(), first), 1e-3);  // really sparse
  // Without any_policy the cache has no codes: switching to adamas names the problem.
  Session plain(*model_, options("full"));
  EXPECT_THAT([&] { plain.set_policy(parse_policy("adamas")); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("key codes")));
}

// Small budgets change the logits (attention is really sparse), except when every layer is
// declared dense; the oracle at a larger budget stays closer to full than at a tiny one.
TEST_F(Runtime, SmallBudgetsAreSparseAndDenseLayersAreHonoured) {
  const auto t = tokens(160, 4);
  const auto full = prefill_then_decode(options("full"), t, 120);
  const int L = model_->config().num_layers;
  for (const char* p : {"adamas", "oracle", "quest", "streaming"}) {
    const std::string sparse = std::string(p) + ":budget=16,dense_layers=0";
    EXPECT_GT(max_abs_diff(prefill_then_decode(options(sparse), t, 120), full), 1e-3) << sparse;
    const std::string dense = std::string(p) + ":budget=16,dense_layers=" + std::to_string(L);
    EXPECT_EQ(max_abs_diff(prefill_then_decode(options(dense), t, 120), full), 0.0) << dense;
  }
  const double tiny =
      max_abs_diff(prefill_then_decode(options("oracle:budget=8,dense_layers=0"), t, 120), full);
  const double big =
      max_abs_diff(prefill_then_decode(options("oracle:budget=96,dense_layers=0"), t, 120), full);
  EXPECT_LT(big, tiny);
}

// Sequences of different lengths decoded in one batch give what each gives alone.
TEST_F(Runtime, RaggedBatchEqualsSeparateDecodes) {
  const int V = model_->config().vocab_size;
  for (const char* p : {"full", "adamas:budget=16,dense_layers=1"}) {
    const std::vector<std::vector<int32_t>> prompts = {tokens(30, 5), tokens(77, 6), tokens(51, 7)};
    const auto next = tokens(3 * 6, 8);
    Session batch(*model_, options(p, 256, 2));
    std::vector<SeqId> seqs;
    std::vector<float> tmp(V);
    for (const auto& pr : prompts) {
      seqs.push_back(batch.add_sequence());
      batch.prefill(seqs.back(), pr, tmp.data());
    }
    std::vector<float> got(3 * V);
    for (int step = 0; step < 6; ++step)
      batch.decode(seqs, std::span(next).subspan(step * 3, 3), got.data());
    for (int b = 0; b < 3; ++b) {
      Session one(*model_, options(p));
      const SeqId s = one.add_sequence();
      one.prefill(s, prompts[b], tmp.data());
      for (int step = 0; step < 6; ++step)
        one.decode(std::span<const SeqId>(&s, 1), std::span(next).subspan(step * 3 + b, 1),
                   tmp.data());
      const std::vector<float> row(got.begin() + b * V, got.begin() + (b + 1) * V);
      EXPECT_LT(max_abs_diff(row, tmp), 1e-4) << p << " sequence " << b;
    }
  }
}

TEST_F(Runtime, GenerateStopsAtStopTokensAndStreamsEachToken) {
  Session s(*model_, options("adamas:budget=16"));
  const auto prompt = tokens(20, 9);
  GenerationConfig gc;
  gc.max_new_tokens = 12;
  std::vector<int32_t> seen;
  const auto st = generate(s, prompt, gc, [&](int32_t t) {
    seen.push_back(t);
    return true;
  });
  ASSERT_EQ(st.new_tokens, 12);
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(st.decode_steps, 11);
  EXPECT_FALSE(st.stopped);
  gc.stop_tokens = {seen[4]};  // greedy is deterministic: it stops at the first occurrence
  const size_t first = std::find(seen.begin(), seen.end(), seen[4]) - seen.begin();
  std::vector<int32_t> again;
  const auto st2 = generate(s, prompt, gc, [&](int32_t t) {
    again.push_back(t);
    return true;
  });
  EXPECT_TRUE(st2.stopped);
  EXPECT_EQ(again, std::vector<int32_t>(seen.begin(), seen.begin() + first + 1));
  EXPECT_EQ(s.cache().free_pages(), s.cache().config().num_pages);  // sequences were removed
}

// set_policy makes the key thresholds the policy's: switching to thresholds=calibrated after a
// prefill decodes exactly like a session built calibrated, and switching back to the paper's
// thresholds like a session built with them (evaluations compare both over one prefill).
TEST_F(Runtime, SetPolicyAppliesThePolicysThresholds) {
  const auto t = tokens(120, 11);
  const int V = model_->config().vocab_size, prefix = 80;
  auto fresh = [&](const std::string& p) {
    auto all = prefill_then_decode(options(p), t, prefix);
    return std::vector<float>(all.begin() + V, all.end());  // the decode steps' logits
  };
  const std::string paper = "adamas:budget=8,dense_layers=0";
  const std::string calibrated = paper + ",thresholds=calibrated";
  RuntimeOptions o = options("full");
  o.any_policy = true;
  Session s(*model_, o);
  const SeqId seq = s.add_sequence();
  std::vector<float> last(V);
  s.prefill(seq, std::span(t).first(prefix), last.data());
  auto decode_rest = [&](const std::string& p) {
    s.truncate(seq, prefix);
    s.set_policy(parse_policy(p));
    std::vector<float> out(size_t(t.size() - prefix) * V);
    for (size_t i = prefix; i < t.size(); ++i)
      s.decode(std::span<const SeqId>(&seq, 1), std::span(t).subspan(i, 1),
               out.data() + (i - prefix) * V);
    return out;
  };
  const auto want_calibrated = fresh(calibrated), want_paper = fresh(paper);
  EXPECT_GT(max_abs_diff(want_calibrated, want_paper), 0.0);  // the thresholds matter here
  EXPECT_EQ(max_abs_diff(decode_rest(calibrated), want_calibrated), 0.0);
  EXPECT_EQ(max_abs_diff(decode_rest(paper), want_paper), 0.0);
  EXPECT_EQ(max_abs_diff(decode_rest(calibrated), want_calibrated), 0.0);
}

// The query observer sees every layer's post-RoPE queries once per decode step, in layer order,
// and changes nothing.
TEST_F(Runtime, QueryObserverSeesEveryLayersQueries) {
  const auto t = tokens(60, 12);
  const ModelConfig& c = model_->config();
  const int prefix = 40;
  const auto want = prefill_then_decode(options("full"), t, prefix);
  Session s(*model_, options("full"));
  const SeqId seq = s.add_sequence();
  std::vector<int> layers;
  double norm = 0;
  s.set_query_observer([&](int layer, std::span<const SeqId> seqs, const float* q) {
    layers.push_back(layer);
    EXPECT_EQ(seqs.size(), 1u);
    for (int i = 0; i < c.num_heads * c.head_dim; ++i) norm += double{q[i]} * q[i];
  });
  std::vector<float> got(want.size());
  s.prefill(seq, std::span(t).first(prefix), got.data());
  EXPECT_TRUE(layers.empty());  // prefill is not observed
  for (size_t i = prefix; i < t.size(); ++i)
    s.decode(std::span<const SeqId>(&seq, 1), std::span(t).subspan(i, 1),
             got.data() + (i - prefix + 1) * c.vocab_size);
  ASSERT_EQ(layers.size(), size_t(t.size() - prefix) * c.num_layers);
  for (size_t i = 0; i < layers.size(); ++i) EXPECT_EQ(layers[i], int(i % c.num_layers));
  EXPECT_GT(norm, 0.0);
  EXPECT_TRUE(std::isfinite(norm));
  EXPECT_EQ(max_abs_diff(got, want), 0.0);
}

TEST_F(Runtime, ErrorsAreClear) {
  Session s(*model_, options("full"));
  const SeqId seq = s.add_sequence();
  std::vector<float> out(96);
  const int32_t bad = 500;
  EXPECT_THAT(test_error([&] { s.prefill(seq, std::span(&bad, 1), out.data()); }),
              ::testing::HasSubstr("token id 500 out of range"));
  const int32_t ok = 5;
  EXPECT_THAT(
      test_error([&] { s.decode(std::span<const SeqId>(&seq, 1), std::span(&ok, 1), out.data()); }),
      ::testing::HasSubstr("prefill it first"));
  RuntimeOptions small = options("full");
  small.max_tokens = 16;
  small.max_batch = 1;
  Session tiny(*model_, small);
  const auto t = tokens(40, 10);
  EXPECT_THAT(test_error([&] { tiny.prefill(tiny.add_sequence(), t, out.data()); }),
              ::testing::HasSubstr("KV cache is full"));
  // Options are checked before any size is computed from them (a page size of 0 once divided).
  for (int page : {0, -3, 5000}) {
    RuntimeOptions bad_page = options("full");
    bad_page.page_size = page;
    EXPECT_THAT(test_error([&] { Session(*model_, bad_page); }),
                ::testing::HasSubstr("page_size (--page-size) must be in [1, 4096]"));
  }
  RuntimeOptions no_tokens = options("full");
  no_tokens.max_tokens = 0;
  EXPECT_THAT(test_error([&] { Session(*model_, no_tokens); }),
              ::testing::HasSubstr("max_tokens (0)"));
}

// A model whose config.json says max_position_embeddings = 24: prefill and decode refuse
// positions past it unless allowed, and generate() stops there.
TEST(RuntimeLimits, PositionsBeyondTheContextAreRefused) {
  TempDir dir;
  TinySpec spec;
  spec.head_dim = 32;
  write_tiny_model(dir.path, spec);
  std::string cfg = tiny_config_json(spec);
  cfg.replace(cfg.find("\"hidden_act\""), 0, "\"max_position_embeddings\":24,");
  write_text(dir.path / "config.json", cfg);
  const auto model = LlamaModel::load(dir.path);
  ASSERT_EQ(model->config().max_position_embeddings, 24);
  RuntimeOptions o;
  o.threads = 1;
  o.kv_dtype = DType::kF32;
  o.page_size = 8;
  o.max_tokens = 64;
  std::vector<int32_t> t(30, 5);
  std::vector<float> logits(96);
  {
    Session s(*model, o);
    EXPECT_THAT(test_error([&] { s.prefill(s.add_sequence(), t, logits.data()); }),
                ::testing::HasSubstr("would reach position 29, beyond the model's "
                                     "max_position_embeddings (24)"));
    const SeqId seq = s.add_sequence();
    s.prefill(seq, std::span(t).first(20), logits.data());
    for (int i = 0; i < 4; ++i)  // positions 20 .. 23
      s.decode(std::span<const SeqId>(&seq, 1), std::span(t).first(1), logits.data());
    EXPECT_THAT(test_error([&] {
                  s.decode(std::span<const SeqId>(&seq, 1), std::span(t).first(1), logits.data());
                }),
                ::testing::HasSubstr("decode: sequence 1 would reach position 24"));
    GenerationConfig gc;
    gc.max_new_tokens = 10;
    const GenerationStats st = generate(s, std::span(t).first(20), gc, {});
    EXPECT_TRUE(st.context_full);
    EXPECT_EQ(st.new_tokens, 5);  // one from the prefill's logits, four decodes (20 .. 23)
  }
  o.allow_beyond_context = true;
  Session s(*model, o);
  s.prefill(s.add_sequence(), t, logits.data());
  for (float x : logits) EXPECT_TRUE(std::isfinite(x));
}

// One NaN in one k_proj made every output meaningless, with exit status 0: refused at load,
// naming the tensor and element (bf16 matrices and f32 norm vectors alike).
TEST(RuntimeLimits, NonFiniteWeightsAreRefusedAtLoad) {
  TinySpec spec;
  spec.head_dim = 32;
  spec.dtype = "BF16";
  for (const char* name : {"model.layers.1.self_attn.k_proj.weight",
                           "model.layers.2.post_attention_layernorm.weight", "lm_head.weight"}) {
    SCOPED_TRACE(name);
    TempDir dir;
    auto tensors = tiny_tensors(spec);
    RawTensor& bad = tensors.at(name);
    // Element 37 (or the last one of a short vector) set to NaN / +Inf in bf16: exponent all ones.
    const size_t at = std::min<size_t>(37, bad.bytes.size() / 2 - 1);
    const uint16_t bits = std::string(name).find("norm") != std::string::npos ? 0x7f80 : 0x7fc0;
    std::memcpy(bad.bytes.data() + 2 * at, &bits, 2);
    fs::create_directories(dir.path);
    write_text(dir.path / "config.json", tiny_config_json(spec));
    write_safetensors(dir.path / "model.safetensors", tensors);
    EXPECT_THAT(test_error([&] { LlamaModel::load(dir.path); }),
                ::testing::AllOf(::testing::HasSubstr(std::string("checkpoint's ") + name),
                                 ::testing::HasSubstr("non-finite value (NaN or Inf)")));
  }
}

// Finite weights whose products overflow: the logits are refused, not sampled from.
TEST(RuntimeLimits, NonFiniteLogitsStopTheStep) {
  TempDir dir;
  TinySpec spec;
  spec.head_dim = 32;
  auto tensors = tiny_tensors(spec);
  RawTensor& head = tensors.at("lm_head.weight");
  const std::vector<float> huge(head.bytes.size() / 4, 3e38f);
  std::memcpy(head.bytes.data(), huge.data(), head.bytes.size());
  fs::create_directories(dir.path);
  write_text(dir.path / "config.json", tiny_config_json(spec));
  write_safetensors(dir.path / "model.safetensors", tensors);
  const auto model = LlamaModel::load(dir.path);
  RuntimeOptions o;
  o.threads = 1;
  o.kv_dtype = DType::kF32;
  o.page_size = 8;
  o.max_tokens = 64;
  Session s(*model, o);
  std::vector<int32_t> t(6, 5);
  std::vector<float> logits(96);
  EXPECT_THAT(test_error([&] { s.prefill(s.add_sequence(), t, logits.data()); }),
              ::testing::HasSubstr("prefill: the logits of sequence 0 are not finite"));
}

}  // namespace
}  // namespace adamas::model::test
