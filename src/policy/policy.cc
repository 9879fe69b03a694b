// Policy configuration, parsing and the stage skeleton shared by all policies.
#include "adamas/policy/policy.h"

#include <charconv>
#include <string>

#include "common/check.h"

namespace adamas {

std::string_view policy_kind_name(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kFull:
      return "full";
    case PolicyKind::kOracle:
      return "oracle";
    case PolicyKind::kAdamas:
      return "adamas";
    case PolicyKind::kQuest:
      return "quest";
    case PolicyKind::kStreaming:
      return "streaming";
  }
  return "?";
}

void PolicyConfig::validate() const {
  ADAMAS_CHECK(budget >= 1, "budget must be ≥ 1 token, got {}", budget);
  ADAMAS_CHECK(dense_layers >= 0, "dense_layers must be ≥ 0, got {}", dense_layers);
  if (kind == PolicyKind::kAdamas) {
    ADAMAS_CHECK(bits >= 1 && bits <= kMaxCodeBits, "adamas bits must be 1, 2 or 3, got {}", bits);
    ADAMAS_CHECK(keep_sinks >= 0 && keep_recent >= 0,
                 "adamas keep_sinks and keep_recent must be ≥ 0, got {} and {}", keep_sinks,
                 keep_recent);
    if (!thresholds.empty()) {
      CodeSpec s;
      s.bits = bits;
      s.thresholds = thresholds;
      s.validate();
    }
  }
  if (kind == PolicyKind::kStreaming) {
    ADAMAS_CHECK(sinks >= 0, "streaming sinks must be ≥ 0, got {}", sinks);
  }
}

std::string PolicyConfig::describe() const {
  std::string s(policy_kind_name(kind));
  const char* gqa_name = gqa == GqaMode::kGroupShared ? "shared" : "per-head";
  if (kind == PolicyKind::kAdamas) {
    const char* dist_name = distance == Distance::kL1   ? "l1"
                            : distance == Distance::kL2 ? "l2"
                                                        : "ip";
    s += fmt::format("(bits={},{},{}{},{}", bits, dist_name, hadamard ? "hadamard" : "no-hadamard",
                     calibrate ? ",calibrated" : (thresholds.empty() ? "" : ",thresholds"),
                     gqa_name);
    if (keep_sinks > 0 || keep_recent > 0) s += fmt::format(",keep={}+{}", keep_sinks, keep_recent);
    s += ")";
  } else if (kind == PolicyKind::kStreaming) {
    s += fmt::format("(sinks={})", sinks);
  } else if (kind != PolicyKind::kFull) {
    s += fmt::format("({})", gqa_name);
  }
  if (kind != PolicyKind::kFull) {
    s += fmt::format(" budget={} dense_layers={}", budget, dense_layers);
  }
  return s;
}

namespace {

int parse_int(std::string_view key, std::string_view value) {
  int out = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  ADAMAS_CHECK(ec == std::errc() && ptr == value.data() + value.size(),
               "policy option {}={}: expected an integer", key, value);
  return out;
}

bool parse_bool(std::string_view key, std::string_view value) {
  if (value == "1" || value == "true" || value == "on") return true;
  if (value == "0" || value == "false" || value == "off") return false;
  throw Error(fmt::format("policy option {}={}: expected 0/1, true/false or on/off", key, value));
}

}  // namespace

PolicyConfig parse_policy(std::string_view spec) {
  PolicyConfig c;
  const size_t colon = spec.find(':');
  const std::string_view name = spec.substr(0, colon);
  if (name == "full")
    c.kind = PolicyKind::kFull;
  else if (name == "oracle")
    c.kind = PolicyKind::kOracle;
  else if (name == "adamas")
    c.kind = PolicyKind::kAdamas;
  else if (name == "quest")
    c.kind = PolicyKind::kQuest;
  else if (name == "streaming")
    c.kind = PolicyKind::kStreaming;
  else
    throw Error(fmt::format(
        "unknown policy '{}': expected full, oracle, adamas, quest or streaming", name));
  std::string_view rest = colon == std::string_view::npos ? "" : spec.substr(colon + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    ADAMAS_CHECK(eq != std::string_view::npos, "policy option '{}' is not key=value", item);
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "budget")
      c.budget = parse_int(key, value);
    else if (key == "dense_layers")
      c.dense_layers = parse_int(key, value);
    else if (key == "bits")
      c.bits = parse_int(key, value);
    else if (key == "sinks")
      c.sinks = parse_int(key, value);
    else if (key == "keep_sinks")
      c.keep_sinks = parse_int(key, value);
    else if (key == "keep_recent")
      c.keep_recent = parse_int(key, value);
    else if (key == "hadamard")
      c.hadamard = parse_bool(key, value);
    else if (key == "thresholds") {
      if (value == "paper")
        c.calibrate = false;
      else if (value == "calibrated")
        c.calibrate = true;
      else
        throw Error(
            fmt::format("policy option thresholds={}: expected paper or calibrated", value));
    } else if (key == "dist") {
      if (value == "l1")
        c.distance = Distance::kL1;
      else if (value == "l2")
        c.distance = Distance::kL2;
      else if (value == "ip")
        c.distance = Distance::kIP;
      else
        throw Error(fmt::format("policy option dist={}: expected l1, l2 or ip", value));
    } else if (key == "gqa") {
      if (value == "per-head")
        c.gqa = GqaMode::kPerQueryHead;
      else if (value == "shared")
        c.gqa = GqaMode::kGroupShared;
      else
        throw Error(fmt::format("policy option gqa={}: expected per-head or shared", value));
    } else {
      throw Error(fmt::format(
          "unknown policy option '{}': expected budget, dense_layers, gqa, bits, dist, hadamard, "
          "thresholds, keep_sinks, keep_recent or sinks",
          key));
    }
  }
  c.validate();
  return c;
}

bool SelectionPolicy::is_dense(int layer, int length) const {
  return config_.kind == PolicyKind::kFull || layer < config_.dense_layers ||
         config_.budget >= length;
}

void SelectionPolicy::begin(const HeadTask& task, HeadScratch& s) const {
  ADAMAS_CHECK(task.length >= 1, "decode step over an empty sequence {} at layer {}", task.seq,
               task.layer);
  s.dense = is_dense(task.layer, task.length);
  s.shared = config_.gqa == GqaMode::kGroupShared || task.nq == 1;
  const int rows = s.shared ? 1 : task.nq;
  s.counts.assign(rows, 0);
  if (!s.dense) s.indices.resize(static_cast<size_t>(rows) * config_.budget);
}

}  // namespace adamas
