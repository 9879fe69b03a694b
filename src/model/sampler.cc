#include "adamas/model/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/check.h"

namespace adamas::model {

void SamplingConfig::validate() const {
  ADAMAS_CHECK(temperature >= 0 && std::isfinite(temperature),
               "temperature must be ≥ 0 (0 = greedy), got {}", temperature);
  ADAMAS_CHECK(top_k >= 0, "top_k must be ≥ 0 (0 = off), got {}", top_k);
  ADAMAS_CHECK(top_p > 0 && top_p <= 1, "top_p must be in (0, 1], got {}", top_p);
}

Sampler::Sampler(SamplingConfig config) : config_(config), rng_(config.seed) { config_.validate(); }

int32_t Sampler::sample(std::span<const float> logits) {
  ADAMAS_CHECK(!logits.empty(), "sample: empty logits");
  // NaN would break the orderings below (and make the draw ignore the seed); +Inf is no
  // distribution either.
  bool any_finite = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    ADAMAS_CHECK(logits[i] < INFINITY, "sample: logit {} of token {} is not a number or +Inf",
                 logits[i], i);
    any_finite = any_finite || logits[i] > -INFINITY;
  }
  ADAMAS_CHECK(any_finite, "sample: every logit is -Inf (every token masked)");
  if (config_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  cand_.clear();
  for (size_t i = 0; i < logits.size(); ++i)
    cand_.emplace_back(logits[i] / config_.temperature, static_cast<int32_t>(i));
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = cand_.size();
  if (config_.top_k > 0 && static_cast<size_t>(config_.top_k) < keep) {
    keep = config_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
    cand_.resize(keep);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  const float mx = cand_[0].first;
  double total = 0;
  for (auto& c : cand_) total += (c.first = std::exp(c.first - mx));
  if (config_.top_p < 1.0f) {  // smallest prefix (by probability) reaching top_p
    double cum = 0;
    size_t n = 0;
    while (n < cand_.size() && cum < config_.top_p * total) cum += cand_[n++].first;
    cand_.resize(std::max<size_t>(n, 1));
    total = cum > 0 ? cum : cand_[0].first;
  }
  double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (const auto& c : cand_) {
    if (u < c.first) return c.second;
    u -= c.first;
  }
  return cand_.back().second;
}

GenerationStats generate(Session& session, std::span<const int32_t> prompt,
                         const GenerationConfig& config,
                         const std::function<bool(int32_t)>& on_token,
                         const std::function<void(int, int)>& prefill_progress,
                         std::vector<float>* prompt_logits) {
  using clock = std::chrono::steady_clock;
  ADAMAS_CHECK(config.max_new_tokens >= 0, "max_new_tokens must be ≥ 0, got {}",
               config.max_new_tokens);
  GenerationStats st;
  st.prompt_tokens = static_cast<int>(prompt.size());
  Sampler sampler(config.sampling);
  const SeqId seq = session.add_sequence();
  struct Remove {
    Session& s;
    SeqId id;
    ~Remove() { s.remove_sequence(id); }
  } remove{session, seq};
  std::vector<float> logits(static_cast<size_t>(session.model().config().vocab_size));
  auto t0 = clock::now();
  session.prefill(seq, prompt, logits.data(), false, prefill_progress);
  st.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  if (prompt_logits != nullptr) *prompt_logits = logits;
  auto is_stop = [&](int32_t t) {
    return std::find(config.stop_tokens.begin(), config.stop_tokens.end(), t) !=
           config.stop_tokens.end();
  };
  t0 = clock::now();
  const int context = session.model().config().max_position_embeddings;
  while (st.new_tokens < config.max_new_tokens) {
    if (st.new_tokens > 0) {
      if (context > 0 && !session.options().allow_beyond_context &&
          session.length(seq) >= context) {
        st.context_full = true;  // the next decode would be at position `context`
        break;
      }
      const int32_t last = st.last_token;
      session.decode(std::span<const SeqId>(&seq, 1), std::span<const int32_t>(&last, 1),
                     logits.data());
      ++st.decode_steps;
    }
    const int32_t next = sampler.sample(logits);
    ++st.new_tokens;
    st.last_token = next;
    const bool go_on = on_token ? on_token(next) : true;
    if (is_stop(next) || !go_on) {
      st.stopped = true;
      break;
    }
  }
  st.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return st;
}

}  // namespace adamas::model
