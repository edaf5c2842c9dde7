// The arm registry: every fact about an arm in one table (its name in configs and directories, its
// name in tables and reports, its order and colour, whether it uses the rDLMs, whether the loop
// adjusts weights, the candidate it starts from, which settings its result depends on). The
// config check, the work directory's names, the adaptation loop, the CLI table and the report all
// read it; nothing else spells an arm's facts.
#pragma once
#include <string>
#include <vector>

namespace apricot {

// The arms. k1-k3: the paper's strategies. kNone: the control arm, no adjustment. kSoup / kGreedySoup:
// the (greedy) mean of the rDLMs as a starting candidate, then the control's loop; kGreedySoupSplit
// chooses the greedy soup's members and accepts it on disjoint halves of the selection split. kNoneMatched: the
// control arm that first spends the rDLMs' training images on the base (docs/METHOD.md, "Honest comparisons").
// The field arms (docs/FIELD.md) repair a field set (config section `field`) instead of running the
// loop: kFinetune, kFinetuneInterp (WiSE-FT / PAINT), kSoupInterp, kApricotInterp (strategy 2 of the
// engine on the field failures, fine-tuned rDLMs), kHeadOnly (the last layer only), kGated (the
// gated patch: an expert where a scope gate fires, the base elsewhere; models/gated.hpp) and
// kGatedDistilled (that composite distilled into one network of the base's architecture).
enum class Strategy {
  kNone, k1, k2, k3, kSoup, kGreedySoup, kNoneMatched,
  kFinetune, kFinetuneInterp, kSoupInterp, kApricotInterp, kHeadOnly,
  kGreedySoupSplit, kGated, kGatedDistilled
};

// The one candidate an arm tries before its loop (accepted by the loop's rule against the base).
enum class StartCandidate {
  kNone,          // the loop starts from the base
  kSoup,          // the mean of all rDLMs
  kGreedySoup,    // rDLMs added one by one while the selection accuracy does not drop (Wortsman et al.)
  kGreedySoupSplit,  // the same, members chosen on the selection split's first half, accepted on its second
  kMatchedTraining  // the base trained on the rDLMs' images with the rDLM fine-tuning recipe
};

struct ArmInfo {
  Strategy strategy;
  const char* name;     // in configs, on the command line and in directory names: "1", "none-matched"
  const char* display;  // in tables and reports: "strategy 1", "matched control"
  const char* colour;   // in the report's charts
  bool adjusts;         // the loop moves the weights toward / away from the rDLMs (docs/METHOD.md, Phase 2)
  bool uses_rdlms;      // needs the rDLMs (and their correctness table)
  bool control;         // a reference the others are compared with, compared with nothing itself
  StartCandidate start;
  // Settings beyond the loop's own that its result depends on (provenance, reuse of results):
  bool reads_adjustment;     // adapt.step, step_mode, direction, adjust_buffers
  bool reads_bn_recalibrate; // adapt.bn_recalibrate (after adjustments and soups)
  bool reads_finetune;       // rdlm.finetune, the matched training's recipe
  bool field;                // repairs the field set (section `field`) instead of running the loop
  const char* help;          // one line for messages
};

// Every arm, in the order tables and reports list them: the strategies, the soups, the controls.
const std::vector<ArmInfo>& arms();
const ArmInfo& arm_info(Strategy s);
const ArmInfo* find_arm(const std::string& name);  // nullptr when there is none
// "1" "2" "3" "soup" "greedy-soup" "none" "none-matched" "finetune" ...; throws kUsage listing the valid ones.
Strategy parse_strategy(const std::string& s);
std::string to_string(Strategy s);
const std::vector<std::string>& strategy_names();  // every arm's name, in registry order
std::string display_name(const std::string& name);   // the display name; the name itself if unknown
bool adjusts(Strategy s);
bool uses_rdlms(Strategy s);
bool is_field_arm(Strategy s);

}  // namespace apricot
