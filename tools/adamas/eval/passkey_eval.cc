#include "passkey_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

#include "../passkey.h"
#include "adamas/common/error.h"

namespace adamas::eval {

std::vector<PasskeyRow> run_passkey(const model::LlamaModel& model, const model::Tokenizer& tok,
                                    const PasskeyOptions& o, const ProgressFn& progress) {
  if (o.trials < 1) throw Error(fmt::format("--trials must be ≥ 1, got {}", o.trials));
  if (o.keys < 1 || o.keys > 64)
    throw Error(fmt::format("--keys must be in [1, 64], got {}", o.keys));
  for (double d : o.depths)
    if (d < 0 || d > 1) throw Error(fmt::format("depths must be in [0, 1], got {}", d));
  const int max_ctx = model.config().max_position_embeddings;
  for (int L : o.lengths)
    if (L < 1 || (max_ctx > 0 && L > max_ctx))
      throw Error(fmt::format("length {} is outside the model's context [1, {}]", L, max_ctx));
  std::vector<PolicyRun> runs = expand_policies(o.policies, o.budgets, o.page_size);
  for (const PolicyRun& r : runs) check_policy_on_device(o.device, r.config, r.label, "--policies");
  // Full attention is the reference of every prompt (and of budgets ≥ context): always first.
  auto full_it = std::find_if(runs.begin(), runs.end(), [](auto& r) { return r.is_full(); });
  const bool report_full = full_it != runs.end();
  if (report_full) {
    std::rotate(runs.begin(), full_it, full_it + 1);
  } else {
    runs.insert(runs.begin(), PolicyRun{"full", PolicyConfig{}, 0});
  }

  struct Prompt {
    int length;
    double depth;
    int trial, key;
    unsigned stream;  // seeds the multi-key needles
  };
  std::vector<Prompt> prompts;
  for (size_t li = 0; li < o.lengths.size(); ++li)
    for (size_t di = 0; di < o.depths.size(); ++di)
      for (int t = 0; t < o.trials; ++t) {
        // One key per (length, depth, trial), reproducible whatever the other options.
        std::seed_seq seq{o.seed, unsigned(o.lengths[li]), unsigned(di), unsigned(t)};
        std::mt19937 rng(seq);
        const int key = std::uniform_int_distribution<int>(10000, 99999)(rng);
        prompts.push_back({o.lengths[li], o.depths[di], t, key, static_cast<unsigned>(rng())});
      }

  // Work units: a prefill counts as much as 20 decode runs (about right at 8K on this model).
  const int64_t per_prompt = 20 + static_cast<int64_t>(runs.size());
  ProgressCounter counter(progress, per_prompt * static_cast<int64_t>(prompts.size()));
  std::vector<std::vector<PasskeyRow>> results(prompts.size());
  const int vocab = model.config().vocab_size;

  run_jobs(static_cast<int>(prompts.size()), o.jobs, [&](int pi) {
    const Prompt& pr = prompts[pi];
    cli::PasskeyPrompt prompt;
    if (o.keys == 1) {
      prompt = cli::make_passkey_prompt(tok, pr.length, pr.depth, pr.key, 6);
    } else {  // the queried needle has index 0 of the draws; keys distinct
      std::mt19937 rng(pr.stream);
      std::uniform_int_distribution<int> five(10000, 99999);
      std::vector<int> keys{pr.key}, values;
      while (static_cast<int>(keys.size()) < o.keys) {
        const int k = five(rng);
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      }
      for (int i = 0; i < o.keys; ++i) values.push_back(five(rng));
      std::mt19937 lines(pr.stream + 1);
      prompt = cli::make_multikey_prompt(tok, pr.length, pr.depth, keys, values, 0, lines, 6);
    }
    const std::string key = std::to_string(prompt.key);
    const int n = static_cast<int>(prompt.ids.size());
    // The answer's tokens as they continue the prompt (" " + digits: the piece ▁ then digits).
    const auto whole = tok.encode_prompt(prompt.text + " " + key);
    if (whole.size() <= prompt.ids.size() ||
        !std::equal(prompt.ids.begin(), prompt.ids.end(), whole.begin()))
      throw Error(
          fmt::format("the tokenizer does not continue the prompt with the answer "
                      "'{}' token by token",
                      key));
    const std::vector<int32_t> answer(whole.begin() + n, whole.end());
    const int A = static_cast<int>(answer.size());

    // One session per key-code layout (bits, Hadamard): the cache of the first holds the default
    // 2-bit codes, Quest's min/max and K/V for every other policy; an adamas ablation with other
    // codes gets its own prefill.
    struct Prefilled {
      int bits;
      bool hadamard;
      std::unique_ptr<model::Session> session;
      SeqId seq;
    };
    std::vector<Prefilled> sessions;
    std::vector<float> logits(vocab);
    double prefill_s = 0;
    int32_t first = -1;
    auto session_for = [&](const PolicyConfig& pc) -> Prefilled& {
      const bool codes = pc.kind == PolicyKind::kAdamas;
      const int bits = codes ? pc.bits : 2;
      const bool hadamard = codes ? pc.hadamard : true;
      for (auto& p : sessions)
        if (p.bits == bits && p.hadamard == hadamard) return p;
      model::RuntimeOptions ro;
      ro.device = o.device;
      ro.any_policy = true;
      ro.page_size = o.page_size;
      ro.max_tokens = n + A + 8;
      ro.threads = o.threads;
      if (codes) {
        ro.policy = pc;               // sets the cache's code layout
        ro.policy.calibrate = false;  // thresholds are set by set_policy
      }
      auto session = std::make_unique<model::Session>(model, ro);
      const SeqId seq = session->add_sequence();
      const auto t0 = std::chrono::steady_clock::now();
      session->prefill(seq, prompt.ids, logits.data());
      prefill_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const int32_t f = argmax(logits.data(), vocab);
      if (first >= 0 && f != first)
        throw Error(
            fmt::format("passkey: dense prefills disagree on the first answer token ({} vs "
                        "{})",
                        first, f));
      first = f;
      sessions.push_back({bits, hadamard, std::move(session), seq});
      return sessions.back();
    };
    session_for(PolicyConfig{});
    counter.add(20);

    const PasskeyRow* full_row = nullptr;
    std::vector<PasskeyRow>& rows = results[pi];
    rows.reserve(runs.size());
    for (const PolicyRun& run : runs) {
      PasskeyRow row;
      row.length = pr.length;
      row.prompt_tokens = n;
      row.depth = pr.depth;
      row.trial = pr.trial;
      row.key = prompt.key;
      row.policy = run.label;
      row.budget = run.budget;
      row.prefill_s = prefill_s;
      // Decode steps see contexts n + 1 .. n + A − 1: a budget covering them all is dense.
      row.dense = run.is_full() || run.config.budget >= n + A - 1;
      if (row.dense && full_row != nullptr) {
        row.correct = full_row->correct;
        row.tokens_right = full_row->tokens_right;
        row.answer = full_row->answer;
      } else {
        Prefilled& pf = session_for(run.config);
        model::Session& session = *pf.session;
        const SeqId seq = pf.seq;
        session.truncate(seq, n);
        session.set_policy(run.config);
        std::vector<int32_t> out{first};
        for (int s = 1; s < A; ++s) {
          session.decode(std::span<const SeqId>(&seq, 1), std::span<const int32_t>(&out.back(), 1),
                         logits.data());
          out.push_back(argmax(logits.data(), vocab));
        }
        int right = 0;
        while (right < A && out[right] == answer[right]) ++right;
        row.tokens_right = right;
        row.correct = right == A;
        row.answer = tok.decode(out);
      }
      rows.push_back(row);
      if (run.is_full()) full_row = &rows.back();
      counter.add(1);
    }
    if (!report_full) rows.erase(rows.begin());
  });

  std::vector<PasskeyRow> all;
  for (auto& r : results) all.insert(all.end(), r.begin(), r.end());
  return all;
}

}  // namespace adamas::eval
