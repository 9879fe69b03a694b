#include "eval_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <tuple>

#include "adamas/common/error.h"
#include "adamas/model/llama.h"
#include "adamas/model/tokenizer.h"
#include "eval/passkey_eval.h"
#include "eval/ppl_eval.h"
#include "eval/recall_eval.h"
#include "flag_checks.h"
#include "progress.h"
#include "result_file.h"

namespace adamas::cli {
namespace {

namespace fs = std::filesystem;

struct Common {
  std::string model = "models/adamas-tiny-8k";
  std::string out_dir = "eval-results";
  std::vector<std::string> policies;  // empty: the evaluation's default
  std::vector<int> budgets;           // empty: the evaluation's default
  int page_size = 16;
  int threads = 1;
  int jobs = 0;  // 0: cores / threads (1 on cuda)
  std::string device = "auto";
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("--model", c.model, "model directory (config.json, safetensors, tokenizer)");
  cmd->add_option("--out-dir", c.out_dir, "directory for the CSV files");
  cmd->add_option("--policies", c.policies,
                  "';'-separated policy specs (full, oracle, adamas[:...], quest, streaming)")
      ->delimiter(';');
  cmd->add_option("--budgets", c.budgets, "token budgets of the sparse policies")
      ->delimiter(',')
      ->check(positive(kMaxTokens));
  cmd->add_option("--page-size", c.page_size, "KV cache page size (Quest's page)")
      ->check(positive(kMaxPageSize));
  cmd->add_option("--threads", c.threads, "threads per job")->check(threads_range());
  cmd->add_option("--jobs", c.jobs, "jobs in parallel (default: cores / threads; 1 on cuda)")
      ->check(threads_range());
  cmd->add_option("--device", c.device,
                  "cpu, cuda or auto (cuda when usable); cuda runs full and adamas only");
}

int jobs_of(const Common& c, model::Device device) {
  if (c.jobs > 0) return c.jobs;
  if (device == model::Device::kCuda) return 1;  // one GPU: sessions in turn
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(c.threads, 1));
}

// A subcommand's result files under --out-dir: opened (as temporary files) before the work, so
// that a bad --out-dir fails at once, and committed together at the end, so that a failure
// leaves the previous results as they were.
class Outputs {
 public:
  Outputs(const Common& c, std::initializer_list<const char*> names) {
    prepare_output_dir(c.out_dir, "--out-dir");
    for (const char* n : names)
      files_.emplace_back(n, std::make_unique<ResultFile>(fs::path(c.out_dir) / n, "--out-dir"));
  }
  std::ofstream& operator[](const std::string& name) {
    for (auto& [n, f] : files_)
      if (n == name) return f->out();
    throw Error(fmt::format("internal: no output file '{}'", name));
  }
  void commit() {
    for (auto& [n, f] : files_) f->commit();
  }

 private:
  std::vector<std::pair<std::string, std::unique_ptr<ResultFile>>> files_;
};

struct Loaded {
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<model::Tokenizer> tok;
};

Loaded load(const Common& c) {
  Loaded l;
  l.model = model::LlamaModel::load(c.model);
  l.tok = model::load_tokenizer(c.model);
  return l;
}

std::string budget_name(int b) { return b == 0 ? "all" : std::to_string(b); }

// A table: rows = policy labels in order of appearance, columns = budgets, cells from `cell`.
void print_table(const std::string& title, const std::vector<std::string>& labels,
                 const std::vector<int>& budgets,
                 const std::function<std::string(const std::string&, int)>& cell) {
  fmt::print("\n{}\n{:<42}", title, "policy \\ budget");
  for (int b : budgets) fmt::print(" {:>7}", budget_name(b));
  fmt::print("\n");
  for (const auto& label : labels) {
    fmt::print("{:<42}", label.substr(0, 42));
    for (int b : budgets) fmt::print(" {:>7}", cell(label, b));
    fmt::print("\n");
  }
}

template <class Row>
void collect_axes(const std::vector<Row>& rows, std::vector<std::string>& labels,
                  std::vector<int>& budgets) {
  for (const Row& r : rows) {
    if (std::find(labels.begin(), labels.end(), r.policy) == labels.end())
      labels.push_back(r.policy);
    if (std::find(budgets.begin(), budgets.end(), r.budget) == budgets.end())
      budgets.push_back(r.budget);
  }
  std::sort(budgets.begin(), budgets.end());
}

// The options every evaluation shares, from the command line into its own options, checked
// before any work: the device (printed), and the policies it runs (given ones must all run;
// defaults it cannot run are left out, with a note).
template <class Options>
void apply_common(const Common& c, Options& o, const eval::DeviceChoice& device) {
  if (!c.policies.empty()) o.policies = c.policies;
  std::string left_out;
  o.policies = eval::specs_for_device(device.device, o.policies, !c.policies.empty(), "--policies",
                                      &left_out);
  if (!c.budgets.empty()) o.budgets = c.budgets;
  o.page_size = c.page_size;
  o.threads = c.threads;
  o.jobs = jobs_of(c, device.device);
  if constexpr (requires { o.device; }) o.device = device.device;
  fmt::print("{}\n", device.describe());
  if (!left_out.empty())
    fmt::print("left out of the default policies (they run on the CPU only): {}\n", left_out);
}

// ---------------------------------------------------------------------------------- passkey

int run_passkey_command(const Common& c, eval::PasskeyOptions o) {
  apply_common(c, o, eval::choose_device(c.device));
  Outputs out(c, {"passkey.csv", "passkey_summary.csv"});
  const auto t0 = std::chrono::steady_clock::now();
  Loaded m = load(c);
  fmt::print(
      "adamas eval passkey: {} ({})\n{}; lengths {}, depths {}, {} trial(s); {} jobs × {} "
      "thread(s); one dense prefill per prompt, every policy × budget decodes from it\n",
      c.model, m.model->config().describe(),
      o.keys == 1
          ? std::string("passkey")
          : fmt::format("multi-key: {} needles, 1 queried, {} distractors", o.keys, o.keys - 1),
      fmt::join(o.lengths, ","), fmt::join(o.depths, ","), o.trials, o.jobs, o.threads);
  std::vector<eval::PasskeyRow> rows;
  {
    Progress p("passkey", 1000);
    rows = eval::run_passkey(*m.model, *m.tok, o, [&](int64_t done, int64_t total) {
      p.update(done * 1000 / std::max<int64_t>(total, 1));
    });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  {
    auto& csv = out["passkey.csv"];
    csv << "length,prompt_tokens,depth,trial,key,policy,budget,dense,correct,tokens_right,answer,"
           "prefill_s\n";
    for (const auto& r : rows)
      csv << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{:.2f}\n", r.length, r.prompt_tokens,
                         r.depth, r.trial, r.key, eval::csv_quote(r.policy), r.budget, int(r.dense),
                         int(r.correct), r.tokens_right, eval::csv_quote(r.answer), r.prefill_s);
  }
  // Accuracy by (policy, budget, length, depth).
  struct Cell {
    int n = 0, ok = 0;
  };
  std::map<std::tuple<std::string, int, int, double>, Cell> cells;
  std::map<std::tuple<std::string, int, int>, Cell> by_length;
  std::map<std::pair<std::string, int>, Cell> overall;
  for (const auto& r : rows) {
    for (Cell* cl : {&cells[{r.policy, r.budget, r.length, r.depth}],
                     &by_length[{r.policy, r.budget, r.length}], &overall[{r.policy, r.budget}]}) {
      ++cl->n;
      cl->ok += r.correct;
    }
  }
  {
    auto& csv = out["passkey_summary.csv"];
    csv << "policy,budget,length,depth,trials,correct,accuracy\n";
    for (const auto& [k, v] : cells) {
      const auto& [pol, b, L, d] = k;
      csv << fmt::format("{},{},{},{},{},{},{:.4f}\n", eval::csv_quote(pol), b, L, d, v.n, v.ok,
                         double(v.ok) / v.n);
    }
  }
  std::vector<std::string> labels;
  std::vector<int> budgets;
  collect_axes(rows, labels, budgets);
  auto fmt_cell = [](const Cell* cl) {
    return cl ? fmt::format("{:.2f}", double(cl->ok) / cl->n) : std::string("-");
  };
  for (int L : o.lengths) {
    int tokens = 0;
    for (const auto& r : rows)
      if (r.length == L) tokens = r.prompt_tokens;
    print_table(
        fmt::format("passkey accuracy, context {} (prompt {} tokens), {} depths × {} trials", L,
                    tokens, o.depths.size(), o.trials),
        labels, budgets, [&](const std::string& pol, int b) {
          auto it = by_length.find({pol, b, L});
          return fmt_cell(it == by_length.end() ? nullptr : &it->second);
        });
  }
  print_table("passkey accuracy, all lengths", labels, budgets, [&](const std::string& pol, int b) {
    auto it = overall.find({pol, b});
    return fmt_cell(it == overall.end() ? nullptr : &it->second);
  });
  out.commit();
  fmt::print(
      "\n{} rows in {:.0f}s (a full-attention row marks budgets ≥ context: 'all').\n"
      "wrote {}/passkey.csv and passkey_summary.csv\n",
      rows.size(), secs, c.out_dir);
  return 0;
}

// -------------------------------------------------------------------------------------- ppl

int run_ppl_command(const Common& c, eval::PplOptions o) {
  apply_common(c, o, eval::choose_device(c.device));
  Outputs out(c, {"ppl.csv", "ppl_curve.csv"});
  const auto t0 = std::chrono::steady_clock::now();
  Loaded m = load(c);
  fmt::print(
      "adamas eval ppl: {} on {}: {} document(s), dense prefix {} then {} tokens decoded "
      "one at a time through each policy; {} jobs × {} thread(s)\n",
      c.model, o.text.string(), o.docs, o.prefix, o.tokens, o.jobs, o.threads);
  eval::PplResult res;
  {
    Progress p("ppl (decode tokens)", 1000);
    res = eval::run_ppl(*m.model, *m.tok, o, [&](int64_t done, int64_t total) {
      p.update(done * 1000 / std::max<int64_t>(total, 1));
    });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double full_ppl = 0;
  for (const auto& r : res.rows)
    if (r.budget == 0) full_ppl = r.ppl;
  {
    auto& csv = out["ppl.csv"];
    csv << "policy,budget,dense,docs,tokens,nll,ppl,rel_to_full,decode_s\n";
    for (const auto& r : res.rows)
      csv << fmt::format("{},{},{},{},{},{:.6f},{:.5f},{:.5f},{:.1f}\n", eval::csv_quote(r.policy),
                         r.budget, int(r.dense), r.docs, r.tokens, r.nll, r.ppl,
                         full_ppl > 0 ? r.ppl / full_ppl - 1 : 0.0, r.seconds);
    auto& curve = out["ppl_curve.csv"];
    curve << "policy,budget,begin,end,tokens,nll,ppl\n";
    for (const auto& r : res.curve)
      curve << fmt::format("{},{},{},{},{},{:.6f},{:.5f}\n", eval::csv_quote(r.policy), r.budget,
                           r.begin, r.end, r.tokens, r.nll, r.ppl);
  }
  std::vector<std::string> labels;
  std::vector<int> budgets;
  collect_axes(res.rows, labels, budgets);
  auto find = [&](const std::string& pol, int b) -> const eval::PplRow* {
    for (const auto& r : res.rows)
      if (r.policy == pol && r.budget == b) return &r;
    return nullptr;
  };
  fmt::print("documents: ");
  for (const auto& n : res.doc_names) fmt::print("'{}' ", n);
  fmt::print("\n");
  print_table(
      fmt::format("perplexity (decode mode, positions {}..{})", o.prefix + 1, o.prefix + o.tokens),
      labels, budgets, [&](const std::string& pol, int b) {
        const auto* r = find(pol, b);
        return r ? fmt::format("{:.3f}", r->ppl) : std::string("-");
      });
  print_table("perplexity relative to full attention (%)", labels, budgets,
              [&](const std::string& pol, int b) {
                const auto* r = find(pol, b);
                return r && full_ppl > 0 ? fmt::format("{:+.2f}", 100 * (r->ppl / full_ppl - 1))
                                         : std::string("-");
              });
  out.commit();
  fmt::print("\n{:.0f}s. wrote {}/ppl.csv and ppl_curve.csv\n", secs, c.out_dir);
  return 0;
}

// ----------------------------------------------------------------------------------- recall

int run_recall_command(const Common& c, eval::RecallOptions o, int sparse_from) {
  // The captures read K/V from the CPU cache's host views (Session::cache()).
  eval::DeviceChoice device = eval::choose_device(c.device);
  if (device.device == model::Device::kCuda) {
    if (c.device == "cuda")
      throw Error(
          "eval recall reads the keys and values from the CPU KV cache: --device cuda is "
          "not supported (use --device cpu)");
    device = {model::Device::kCpu, "eval recall reads the CPU KV cache"};
  }
  apply_common(c, o, device);
  Outputs out(c, {"recall.csv", "recall_buckets.csv", "recall_summary.csv"});
  const auto t0 = std::chrono::steady_clock::now();
  Loaded m = load(c);
  fmt::print(
      "adamas eval recall: {}: queries/keys captured over {} decode steps at the end of "
      "passkey prompts (lengths {}, depths {}) and {} held-out window(s) of {} tokens; "
      "{} jobs\n",
      c.model, o.steps, fmt::join(o.lengths, ","), fmt::join(o.depths, ","), o.text_docs,
      o.text_tokens, o.jobs);
  eval::RecallResult res;
  {
    Progress p("recall", 1000);
    res = eval::run_recall_eval(*m.model, *m.tok, o, [&](int64_t done, int64_t total) {
      p.update(done * 1000 / std::max<int64_t>(total, 1));
    });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    auto& csv = out["recall.csv"];
    csv << "kind,policy,budget,layer,head,queries,recall,attention_mass,output_rel_error\n";
    for (const auto& r : res.rows)
      csv << fmt::format("{},{},{},{},{},{},{:.5f},{:.5f},{:.6f}\n", r.kind,
                         eval::csv_quote(r.policy), r.budget, r.layer, r.head, r.queries, r.recall,
                         r.mass, r.error);
    auto& b = out["recall_buckets.csv"];
    b << "kind,layer,vector,share_b0,share_b1,share_b2,share_b3,rms,elements\n";
    for (const auto& r : res.buckets)
      b << fmt::format("{},{},{},{:.5f},{:.5f},{:.5f},{:.5f},{:.4f},{}\n", r.kind, r.layer,
                       r.vector, r.share[0], r.share[1], r.share[2], r.share[3], r.rms, r.elements);
  }
  // Summary over layers ≥ sparse_from and all heads, per kind and for both kinds.
  struct S {
    double recall = 0, mass = 0, error = 0;
    int n = 0;
  };
  std::map<std::tuple<std::string, std::string, int>, S> sum;
  for (const auto& r : res.rows) {
    if (r.layer < sparse_from) continue;
    for (const std::string& kind : {r.kind, std::string("all")}) {
      S& s = sum[{kind, r.policy, r.budget}];
      s.recall += r.recall;
      s.mass += r.mass;
      s.error += r.error;
      ++s.n;
    }
  }
  {
    auto& csv = out["recall_summary.csv"];
    csv << "kind,policy,budget,layers_from,recall,attention_mass,output_rel_error\n";
    for (const auto& [k, s] : sum) {
      const auto& [kind, pol, b] = k;
      csv << fmt::format("{},{},{},{},{:.5f},{:.5f},{:.6f}\n", kind, eval::csv_quote(pol), b,
                         sparse_from, s.recall / s.n, s.mass / s.n, s.error / s.n);
    }
  }
  std::vector<std::string> labels;
  std::vector<int> budgets;
  collect_axes(res.rows, labels, budgets);
  for (const std::string kind : {"passkey", "text", "all"}) {
    bool any = false;
    for (const auto& [k, s] : sum) any |= std::get<0>(k) == kind;
    if (!any) continue;
    auto cell = [&](double S::*field) {
      return [&, field](const std::string& pol, int b) {
        auto it = sum.find({kind, pol, b});
        return it == sum.end() ? std::string("-")
                               : fmt::format("{:.3f}", it->second.*field / it->second.n);
      };
    };
    print_table(
        fmt::format("recall of the exact top-k, {} queries, layers ≥ {}", kind, sparse_from),
        labels, budgets, cell(&S::recall));
    print_table(fmt::format("attention mass captured, {} queries, layers ≥ {}", kind, sparse_from),
                labels, budgets, cell(&S::mass));
    print_table(fmt::format("relative error of the attention output, {} queries, layers ≥ {}", kind,
                            sparse_from),
                labels, budgets, cell(&S::error));
  }
  fmt::print(
      "\nbucket occupancy of the paper's 2-bit thresholds {{-10,0,10}} (Hadamard-transformed):\n"
      "{:<8} {:>5} {:<6} {:>7} {:>7} {:>7} {:>7} {:>8}\n",
      "kind", "layer", "vector", "<-10", "-10..0", "0..10", ">10", "rms");
  for (const auto& b : res.buckets)
    fmt::print("{:<8} {:>5} {:<6} {:>7.4f} {:>7.4f} {:>7.4f} {:>7.4f} {:>8.3f}\n", b.kind, b.layer,
               b.vector, b.share[0], b.share[1], b.share[2], b.share[3], b.rms);
  fmt::print("\nsources: ");
  for (const auto& s : res.sources) fmt::print("[{}] ", s);
  out.commit();
  fmt::print("\n{:.0f}s. wrote {}/recall.csv, recall_summary.csv, recall_buckets.csv\n", secs,
             c.out_dir);
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, int& status) {
  CLI::App* group = app.add_subcommand(
      "eval", "Evaluation suite on a model: passkey retrieval, perplexity, selection quality");
  group->require_subcommand(1);

  {
    auto c = std::make_shared<Common>();
    auto o = std::make_shared<eval::PasskeyOptions>();
    CLI::App* cmd = group->add_subcommand(
        "passkey", "Passkey retrieval: lengths × depths × trials, every policy × budget");
    add_common(cmd, *c);
    cmd->add_option("--lengths", o->lengths, "context lengths (prompt + answer ≤ length)")
        ->delimiter(',')
        ->check(positive(kMaxTokens));
    cmd->add_option("--depths", o->depths, "needle depths in [0, 1]")
        ->delimiter(',')
        ->check(unit_interval());
    cmd->add_option("--trials", o->trials, "random keys per length × depth")
        ->check(positive(1000000));
    cmd->add_option("--seed", o->seed, "seed of the keys");
    cmd->add_option("--keys", o->keys,
                    "needles per prompt: 1 = passkey; K ≥ 2 = multi-key, K key-value needles, "
                    "the queried one at the depth, the others distractors at random lines")
        ->check(CLI::Range(1, 64));
    cmd->callback([c, o, &status] { status = run_passkey_command(*c, *o); });
  }
  {
    auto c = std::make_shared<Common>();
    auto o = std::make_shared<eval::PplOptions>();
    auto text = std::make_shared<std::string>(eval::kDefaultHeldout);
    CLI::App* cmd = group->add_subcommand(
        "ppl", "Perplexity of held-out text in decode mode, every policy × budget");
    add_common(cmd, *c);
    cmd->add_option("--text", *text, "held-out text (documents separated by a line holding 0x1e)");
    cmd->add_option("--docs", o->docs, "documents (the first long enough)")->check(positive());
    cmd->add_option("--skip-docs", o->skip_docs,
                    "long-enough documents skipped first (dev and test splits of one file)")
        ->check(CLI::Range(0, 1000000));
    cmd->add_option("--prefix", o->prefix, "tokens prefilled densely before decoding")
        ->check(positive(kMaxTokens));
    cmd->add_option("--tokens", o->tokens, "tokens decoded and scored per document")
        ->check(positive(kMaxTokens));
    cmd->add_option("--bucket", o->bucket, "positions per bucket of the curve")
        ->check(positive(kMaxTokens));
    cmd->callback([c, o, text, &status] {
      o->text = *text;
      status = run_ppl_command(*c, *o);
    });
  }
  {
    auto c = std::make_shared<Common>();
    auto o = std::make_shared<eval::RecallOptions>();
    auto text = std::make_shared<std::string>(eval::kDefaultHeldout);
    auto sparse_from = std::make_shared<int>(2);
    CLI::App* cmd = group->add_subcommand(
        "recall", "Selection quality on captured queries/keys, per layer and head, with ablations");
    add_common(cmd, *c);
    cmd->add_option("--lengths", o->lengths, "passkey prompt lengths")
        ->delimiter(',')
        ->check(positive(kMaxTokens));
    cmd->add_option("--depths", o->depths, "passkey needle depths")
        ->delimiter(',')
        ->check(unit_interval());
    cmd->add_option("--text", *text, "held-out text");
    cmd->add_option("--text-docs", o->text_docs, "held-out windows (0: none)")
        ->check(non_negative());
    cmd->add_option("--text-tokens", o->text_tokens, "tokens per held-out window")
        ->check(positive(kMaxTokens));
    cmd->add_option("--steps", o->steps, "decode steps captured per source")
        ->check(positive(1000000));
    cmd->add_option("--seed", o->seed, "seed of the passkeys");
    cmd->add_option("--summary-from-layer", *sparse_from,
                    "layers averaged in the summary tables start here (the default dense_layers)")
        ->check(non_negative());
    cmd->callback([c, o, text, sparse_from, &status] {
      o->text = *text;
      status = run_recall_command(*c, *o, *sparse_from);
    });
  }
}

}  // namespace adamas::cli
