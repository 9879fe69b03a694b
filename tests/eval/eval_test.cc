// The evaluation suite in small on the shipped model: the properties that must hold whatever the
// policies' accuracy (full attention retrieves the passkey at short contexts; the oracle's recall
// of its own top-k is 1 and its attention mass is the largest; budget ≥ context is full
// attention, bit for bit), plus the pieces (policy expansion, held-out text).
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include "adamas/common/error.h"
#include "adamas/model/llama.h"
#include "adamas/model/tokenizer.h"
#include "eval/common.h"
#include "eval/passkey_eval.h"
#include "eval/ppl_eval.h"
#include "eval/recall_eval.h"
#include "passkey.h"

namespace adamas::eval {
namespace {

namespace fs = std::filesystem;
const fs::path kRoot = ADAMAS_SOURCE_DIR;

class EvalOnModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = model::LlamaModel::load(kRoot / "models" / "adamas-tiny-8k").release();
    tok_ = model::load_tokenizer(kRoot / "models" / "adamas-tiny-8k").release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
  }
  static model::LlamaModel* model_;
  static model::Tokenizer* tok_;
};
model::LlamaModel* EvalOnModel::model_ = nullptr;
model::Tokenizer* EvalOnModel::tok_ = nullptr;

TEST(EvalPieces, PolicyExpansion) {
  const auto runs =
      expand_policies({"full", "adamas:gqa=shared", "quest", "streaming:budget=48"}, {16, 64}, 32);
  std::vector<std::pair<std::string, int>> got;
  for (const auto& r : runs) got.emplace_back(r.label, r.budget);
  const std::vector<std::pair<std::string, int>> want = {{"full", 0},
                                                         {"adamas:gqa=shared", 16},
                                                         {"adamas:gqa=shared", 64},
                                                         {"quest", 64},
                                                         {"streaming:budget=48", 48}};
  EXPECT_EQ(got, want);  // quest below one page (32) is left out
  EXPECT_EQ(runs[2].config.gqa, GqaMode::kGroupShared);
  EXPECT_THROW(expand_policies({"adamas"}, {0}, 16), Error);
  EXPECT_THROW(expand_policies({"nonsense"}, {16}, 16), Error);
}

TEST(EvalPieces, HeldoutExcerptIsInTheCorpusFormat) {
  const auto docs = read_documents(kRoot / kDefaultHeldout);
  ASSERT_EQ(docs.size(), 8u);
  for (const auto& d : docs) {
    EXPECT_GT(d.size(), 20000u);
    EXPECT_EQ(d.find('\x1e'), std::string::npos);
  }
}

// The multi-key template, byte for byte as tools/model/tasks.py mk_text writes it.
TEST(EvalPieces, MultikeyTextMatchesTheTrainingTemplate) {
  const std::string filler =
      "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";
  const std::string want =
      "Some keys are hidden inside a lot of irrelevant text, each with a value. Memorize them. I "
      "will ask for the value of one key at the end.\n" +
      filler + "The value of key 11111 is 33333.\n" + filler + filler +
      "The value of key 22222 is 44444.\n" + filler +
      "What is the value of key 22222? The value of key 22222 is";
  EXPECT_EQ(cli::multikey_text(4, {1, 3}, {11111, 22222}, {33333, 44444}, 1), want);
}

TEST_F(EvalOnModel, MultikeyPromptsPlaceTheQueriedNeedleAtTheDepth) {
  const std::vector<int> keys = {12345, 23456, 34567, 45678}, values = {11111, 22222, 33333, 44444};
  for (double depth : {0.0, 0.3, 1.0}) {
    std::mt19937 rng(9);
    const auto p = cli::make_multikey_prompt(*tok_, 1024, depth, keys, values, 2, rng, 6);
    EXPECT_LE(p.ids.size() + 6, 1024u);
    EXPECT_GT(p.ids.size() + 6 + 26, 1024u) << "not the longest prompt that fits";
    EXPECT_EQ(p.key, 33333);
    EXPECT_EQ(p.needle_line, static_cast<int>(std::nearbyint(depth * p.filler_lines)));
    EXPECT_EQ(tok_->encode_prompt(p.text), p.ids);
    for (size_t i = 0; i < keys.size(); ++i)
      EXPECT_NE(p.text.find(fmt::format("The value of key {} is {}.", keys[i], values[i])),
                std::string::npos);
    EXPECT_TRUE(p.text.ends_with("What is the value of key 34567? The value of key 34567 is"));
  }
  std::mt19937 rng(1);
  try {
    cli::make_multikey_prompt(*tok_, 40, 0.5, keys, values, 0, rng, 6);
    ADD_FAILURE() << "a 40-token context fits no 4-key prompt";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("a 4-key prompt needs at least"));
  }
}

TEST_F(EvalOnModel, FullAttentionRetrievesTheQueriedValueAmongDistractors) {
  PasskeyOptions o;
  o.lengths = {1024};
  o.depths = {0, 0.5, 1};
  o.trials = 1;
  o.keys = 4;
  o.policies = {"full", "oracle"};
  o.budgets = {64};
  o.jobs = 2;
  const auto rows = run_passkey(*model_, *tok_, o);
  ASSERT_EQ(rows.size(), 3u * 2u);
  for (const auto& r : rows) {
    EXPECT_TRUE(r.correct) << r.policy << " depth " << r.depth << ": '" << r.answer
                           << "' for value " << r.key;
  }
  o.keys = 0;
  EXPECT_THROW(run_passkey(*model_, *tok_, o), Error);
}

TEST_F(EvalOnModel, FullAttentionRetrievesThePasskey) {
  PasskeyOptions o;
  o.lengths = {512, 1024};
  o.depths = {0, 1};
  o.trials = 1;
  o.policies = {"full", "adamas", "streaming"};
  o.budgets = {64, 4096};
  o.jobs = 2;
  const auto rows = run_passkey(*model_, *tok_, o);
  ASSERT_EQ(rows.size(), 4u * 5u);
  std::map<std::tuple<int, double>, bool> full;
  for (const auto& r : rows)
    if (r.policy == "full") {
      EXPECT_TRUE(r.correct) << "length " << r.length << " depth " << r.depth << ": '" << r.answer
                             << "' for key " << r.key;
      EXPECT_EQ(r.tokens_right, 6);
      full[{r.length, r.depth}] = r.correct;
    }
  for (const auto& r : rows) {
    EXPECT_EQ(r.dense, r.budget == 0 || r.budget == 4096) << r.policy << " " << r.budget;
    if (r.dense) {
      EXPECT_EQ(r.correct, (full[{r.length, r.depth}])) << r.policy;
    }
  }
}

// budget ≥ context: every sparse policy decodes exactly what full attention decodes, on the real
// model, over one prefill (the runtime test checks the same on a random model).
TEST_F(EvalOnModel, BudgetAtLeastContextEqualsFullBitForBit) {
  const auto prompt = cli::make_passkey_prompt(*tok_, 512, 0.5, 31415, 6);
  const int n = static_cast<int>(prompt.ids.size()), V = model_->config().vocab_size;
  model::RuntimeOptions ro;
  ro.any_policy = true;
  ro.page_size = 16;
  ro.max_tokens = n + 16;
  ro.threads = 1;
  model::Session s(*model_, ro);
  const SeqId seq = s.add_sequence();
  std::vector<float> logits(V);
  s.prefill(seq, prompt.ids, logits.data());
  const int32_t first = argmax(logits.data(), V);
  auto decode = [&](const std::string& spec) {
    s.truncate(seq, n);
    s.set_policy(parse_policy(spec));
    std::vector<float> out;
    int32_t next = first;
    for (int step = 0; step < 4; ++step) {
      s.decode(std::span<const SeqId>(&seq, 1), std::span<const int32_t>(&next, 1), logits.data());
      out.insert(out.end(), logits.begin(), logits.end());
      next = argmax(logits.data(), V);
    }
    return out;
  };
  const auto full = decode("full");
  for (const char* spec :
       {"adamas:budget=4096,dense_layers=0", "oracle:budget=4096,dense_layers=0",
        "quest:budget=4096,dense_layers=0", "streaming:budget=4096,dense_layers=0",
        "adamas:budget=4096,dense_layers=0,gqa=shared,thresholds=calibrated,bits=2"}) {
    EXPECT_EQ(decode(spec), full) << spec;
  }
  EXPECT_NE(decode("streaming:budget=16,dense_layers=0"), full);  // small budgets are sparse
}

TEST_F(EvalOnModel, OracleRecallIsOneOnCapturedQueries) {
  const auto prompt = cli::make_passkey_prompt(*tok_, 512, 0.5, 27182, 6);
  Capture c = capture_decode(*model_, prompt.ids, static_cast<int>(prompt.ids.size()), 2, true);
  c.kind = "passkey";
  c.source = "test";
  const int len = c.prompt + c.steps;
  ASSERT_EQ(c.k.size(), size_t(c.layers) * len * c.kv_heads * c.head_dim);
  RecallResult res;
  evaluate_captures({&c},
                    {"oracle", "adamas", "adamas:thresholds=calibrated", "quest", "streaming"},
                    {16, 64, 1024}, 16, res);
  const int per_run = c.layers * c.heads;
  ASSERT_EQ(res.rows.size(), size_t(per_run) * (3 + 3 + 3 + 3 + 3));
  std::map<std::tuple<int, int, int>, double> oracle_mass;
  for (const auto& r : res.rows) {
    EXPECT_EQ(r.queries, 2);
    EXPECT_LE(r.mass, 1 + 1e-6);
    EXPECT_LE(r.recall, 1.0);
    if (r.policy == "oracle") {
      EXPECT_EQ(r.recall, 1.0) << "layer " << r.layer << " head " << r.head << " budget "
                               << r.budget;
      oracle_mass[{r.budget, r.layer, r.head}] = r.mass;
    }
    if (r.budget >= len) {  // dense: exactly full attention
      EXPECT_EQ(r.recall, 1.0);
      EXPECT_EQ(r.error, 0.0) << r.policy;
    }
  }
  for (const auto& r : res.rows)  // no selection of the same size holds more attention
    EXPECT_LE(r.mass, (oracle_mass[{r.budget, r.layer, r.head}] + 1e-5)) << r.policy;
  ASSERT_EQ(res.buckets.size(), size_t(c.layers) * 2);
  for (const auto& b : res.buckets)
    EXPECT_NEAR(b.share[0] + b.share[1] + b.share[2] + b.share[3], 1.0, 1e-9);
}

TEST_F(EvalOnModel, DecodeModePerplexity) {
  PplOptions o;
  o.text = kRoot / kDefaultHeldout;
  o.docs = 1;
  o.prefix = 64;
  o.tokens = 48;
  o.bucket = 16;
  o.policies = {"full", "adamas", "streaming"};
  o.budgets = {16, 4096};
  const PplResult res = run_ppl(*model_, *tok_, o);
  ASSERT_EQ(res.rows.size(), 5u);
  const double full = res.rows[0].ppl;
  EXPECT_EQ(res.rows[0].policy, "full");
  EXPECT_TRUE(std::isfinite(full));
  EXPECT_GT(full, 1.0);
  EXPECT_LT(full, 100.0);  // the model predicts its own held-out text
  for (const auto& r : res.rows) {
    EXPECT_EQ(r.tokens, 48);
    if (r.budget == 4096) {
      EXPECT_TRUE(r.dense);
      EXPECT_EQ(r.ppl, full) << r.policy;
    }
  }
  EXPECT_EQ(res.curve.size(), 5u * 3u);
}

}  // namespace
}  // namespace adamas::eval
