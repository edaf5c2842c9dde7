// The arm registry (arms.hpp).
#include "apricot/method/arms.hpp"

#include "apricot/core/errors.hpp"

namespace apricot {

const std::vector<ArmInfo>& arms() {
  // name, display, colour, adjusts, uses_rdlms, control, start, reads: adjustment, bn_recalibrate, finetune;
  // field, help
  static const std::vector<ArmInfo> table = {
      {Strategy::k1, "1", "strategy 1", "#1f77b4", true, true, false, StartCandidate::kNone, true, true, false,
       false, "1 (toward correct and away from incorrect rDLMs)"},
      {Strategy::k2, "2", "strategy 2", "#d62728", true, true, false, StartCandidate::kNone, true, true, false,
       false, "2 (toward correct)"},
      {Strategy::k3, "3", "strategy 3", "#2ca02c", true, true, false, StartCandidate::kNone, true, true, false,
       false, "3 (away from incorrect)"},
      {Strategy::kSoup, "soup", "soup", "#9467bd", false, true, false, StartCandidate::kSoup, false, true, false,
       false, "soup (the rDLMs' mean)"},
      {Strategy::kGreedySoup, "greedy-soup", "greedy-soup", "#8c564b", false, true, false,
       StartCandidate::kGreedySoup, false, true, false, false, "greedy-soup (Wortsman et al.)"},
      {Strategy::kGreedySoupSplit, "greedy-soup-split", "greedy-soup split", "#c49c94", false, true, false,
       StartCandidate::kGreedySoupSplit, false, true, false, false,
       "greedy-soup-split (members chosen on one half of the selection split, accepted on the other)"},
      {Strategy::kNone, "none", "control", "#444444", false, false, true, StartCandidate::kNone, false, false, false,
       false, "none (control arm)"},
      {Strategy::kNoneMatched, "none-matched", "matched control", "#17becf", false, false, true,
       StartCandidate::kMatchedTraining, false, false, true,
       false, "none-matched (control arm given the rDLMs' training images)"},
      {Strategy::kFinetune, "finetune", "fine-tune", "#e377c2", false, false, false, StartCandidate::kNone, false,
       false, false, true, "finetune (field set + replay, best checkpoint and learning rate)"},
      {Strategy::kFinetuneInterp, "finetune-interp", "WiSE-FT interp", "#bcbd22", false, false, false,
       StartCandidate::kNone, false, false, false, true, "finetune-interp (WiSE-FT / PAINT: base to fine-tune)"},
      {Strategy::kSoupInterp, "soup-interp", "soup interp", "#7f7f7f", false, false, false, StartCandidate::kNone,
       false, false, false, true, "soup-interp (soup of field fine-tunes, interpolated)"},
      {Strategy::kApricotInterp, "apricot-interp", "Apricot interp", "#ff7f0e", false, false, false,
       StartCandidate::kNone, false, false, false, true,
       "apricot-interp (strategy 2 toward field fine-tunes right on the field failures)"},
      {Strategy::kHeadOnly, "head-only", "head only", "#aec7e8", false, false, false, StartCandidate::kNone, false,
       false, false, true, "head-only (fine-tune the last layer)"},
      {Strategy::kGated, "gated", "gated patch", "#393b79", false, false, false, StartCandidate::kNone, false,
       false, false, true, "gated (a field fine-tune answering only where a scope gate says the input is the field's kind)"},
      {Strategy::kGatedDistilled, "gated-distilled", "gated distilled", "#637939", false, false, false,
       StartCandidate::kNone, false, false, false, true,
       "gated-distilled (the gated patch distilled into one network of the base's architecture)"},
  };
  return table;
}

const ArmInfo& arm_info(Strategy s) {
  for (const auto& a : arms())
    if (a.strategy == s) return a;
  state_error("internal: an arm missing from the registry");
}

const ArmInfo* find_arm(const std::string& name) {
  for (const auto& a : arms())
    if (name == a.name) return &a;
  return nullptr;
}

Strategy parse_strategy(const std::string& s) {
  if (const ArmInfo* a = find_arm(s)) return a->strategy;
  std::string valid;
  for (const auto& a : arms()) valid += std::string(valid.empty() ? "" : ", ") + a.help;
  config_error("unknown adjustment strategy '" + s + "'", "valid strategies: " + valid);
}

std::string to_string(Strategy s) { return arm_info(s).name; }

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& a : arms()) v.push_back(a.name);
    return v;
  }();
  return names;
}

std::string display_name(const std::string& name) {
  const ArmInfo* a = find_arm(name);
  return a ? a->display : name;
}

bool adjusts(Strategy s) { return arm_info(s).adjusts; }
bool uses_rdlms(Strategy s) { return arm_info(s).uses_rdlms; }
bool is_field_arm(Strategy s) { return arm_info(s).field; }

}  // namespace apricot
