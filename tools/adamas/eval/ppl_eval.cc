#include "ppl_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "adamas/common/error.h"

namespace adamas::eval {

PplResult run_ppl(const model::LlamaModel& model, const model::Tokenizer& tok, const PplOptions& o,
                  const ProgressFn& progress) {
  if (o.prefix < 1 || o.tokens < 1 || o.docs < 1 || o.bucket < 1 || o.skip_docs < 0)
    throw Error(
        fmt::format("ppl: --prefix ({}), --tokens ({}), --docs ({}) and --bucket ({}) "
                    "must be ≥ 1, --skip-docs ({}) ≥ 0",
                    o.prefix, o.tokens, o.docs, o.bucket, o.skip_docs));
  PplResult result;
  result.window = o.prefix + o.tokens + 1;
  const int max_ctx = model.config().max_position_embeddings;
  if (max_ctx > 0 && result.window - 1 > max_ctx)
    throw Error(fmt::format("ppl: --prefix {} + --tokens {} is beyond the model's context {}",
                            o.prefix, o.tokens, max_ctx));

  // Windows: [BOS] + the document's first ids, as the model was trained (one document per row).
  std::vector<std::vector<int32_t>> windows;
  int skipped = 0;
  for (const std::string& doc : read_documents(o.text)) {
    if (static_cast<int>(windows.size()) == o.docs) break;
    if (doc.size() < static_cast<size_t>(result.window)) continue;  // ≥ 1 byte per token
    std::vector<int32_t> ids = tok.encode_prompt(doc);
    if (static_cast<int>(ids.size()) < result.window) continue;
    if (skipped < o.skip_docs) {
      ++skipped;
      continue;
    }
    ids.resize(result.window);
    windows.push_back(std::move(ids));
    result.doc_names.push_back(doc.substr(0, std::min(doc.find('\n'), size_t{60})));
  }
  if (static_cast<int>(windows.size()) < o.docs)
    throw Error(fmt::format(
        "ppl: '{}' has {} documents of ≥ {} tokens after --skip-docs {}, --docs asks for {}",
        o.text.string(), windows.size(), result.window, o.skip_docs, o.docs));

  std::vector<PolicyRun> runs = expand_policies(o.policies, o.budgets, o.page_size);
  for (const PolicyRun& r : runs) check_policy_on_device(o.device, r.config, r.label, "--policies");
  auto full_it = std::find_if(runs.begin(), runs.end(), [](auto& r) { return r.is_full(); });
  const bool report_full = full_it != runs.end();
  if (!report_full) runs.insert(runs.begin(), PolicyRun{"full", PolicyConfig{}, 0});
  // A decode step feeding position i sees i + 1 tokens; the last feeds prefix + tokens − 1.
  const int max_len = o.prefix + o.tokens;
  auto dense = [&](const PolicyRun& r) { return r.is_full() || r.config.budget >= max_len; };
  std::vector<int> computed;  // runs that need decoding (the others equal full)
  int full_index = -1;
  for (size_t r = 0; r < runs.size(); ++r) {
    if (runs[r].is_full()) full_index = static_cast<int>(r);
    if (runs[r].is_full() || !dense(runs[r])) computed.push_back(static_cast<int>(r));
  }

  const int D = static_cast<int>(windows.size());
  const int vocab = model.config().vocab_size;
  // nll[run][doc][t]: t-th scored token (position prefix + 1 + t).
  std::vector<std::vector<std::vector<float>>> nll(runs.size(), std::vector<std::vector<float>>(D));
  std::vector<double> seconds(runs.size(), 0.0);
  std::mutex mu;
  ProgressCounter counter(progress, int64_t(computed.size()) * D * o.tokens);
  const int J = static_cast<int>(computed.size()) * D;
  run_jobs(J, o.jobs, [&](int j) {
    const int r = computed[j / D], d = j % D;
    const std::vector<int32_t>& ids = windows[d];
    model::RuntimeOptions ro;
    ro.device = o.device;
    ro.policy = runs[r].config;
    ro.page_size = o.page_size;
    ro.max_tokens = result.window + 8;
    ro.threads = o.threads;
    model::Session session(model, ro);
    const SeqId seq = session.add_sequence();
    std::vector<float> logits(vocab);
    session.prefill(seq, std::span<const int32_t>(ids).first(o.prefix), logits.data());
    std::vector<float> out(o.tokens);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < o.tokens; ++t) {
      const int i = o.prefix + t;  // fed position
      session.decode(std::span<const SeqId>(&seq, 1), std::span<const int32_t>(&ids[i], 1),
                     logits.data());
      out[t] = static_cast<float>(nll_of(logits.data(), vocab, ids[i + 1]));
      if ((t + 1) % 64 == 0 || t + 1 == o.tokens)
        counter.add(t + 1 == o.tokens ? (t % 64) + 1 : 64);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(mu);
    nll[r][d] = std::move(out);
    seconds[r] += s;
  });

  for (size_t r = 0; r < runs.size(); ++r) {
    const bool copied = !runs[r].is_full() && dense(runs[r]);
    const auto& src = copied ? nll[full_index] : nll[r];
    if (runs[r].is_full() && !report_full) continue;
    PplRow row;
    row.policy = runs[r].label;
    row.budget = runs[r].budget;
    row.dense = dense(runs[r]);
    row.docs = D;
    row.seconds = copied ? 0.0 : seconds[r];
    double sum = 0;
    for (const auto& v : src)
      for (float x : v) sum += x;
    row.tokens = int64_t(D) * o.tokens;
    row.nll = sum / row.tokens;
    row.ppl = std::exp(row.nll);
    result.rows.push_back(row);
    for (int b = 0; b < o.tokens; b += o.bucket) {
      const int e = std::min(o.tokens, b + o.bucket);
      double s = 0;
      for (const auto& v : src)
        for (int t = b; t < e; ++t) s += v[t];
      PplCurveRow c;
      c.policy = row.policy;
      c.budget = row.budget;
      c.begin = o.prefix + 1 + b;
      c.end = o.prefix + 1 + e;
      c.tokens = int64_t(D) * (e - b);
      c.nll = s / c.tokens;
      c.ppl = std::exp(c.nll);
      result.curve.push_back(c);
    }
  }
  return result;
}

}  // namespace adamas::eval
