// Which settings a phase's result depends on, in one place: recipe_key gives, per phase, the
// configuration sections (and within them the keys) that decide whether a stored base model, rDLM
// or adaptation result can be reused or must be made again. Everything else in the configuration
// (where and how fast a phase runs: workdir, device, threads, resume, parallel, ...) is left out.
// The saved states' keys (what a half-done phase belongs to) are the phases' own, stricter: see
// pipeline.cpp, rdlm.cpp and adapt/arm.cpp.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "apricot/core/config.hpp"
#include "apricot/method/arms.hpp"

namespace apricot {

enum class Phase {
  kBase,   // seed, model (its file's absolute path), train (less eval_batch_size and memory_format)
  kRdlm,   // train (the same), rdlm (less count, parallel, devices; finetune only for rdlm.init base)
  kAdapt,  // seed, data, train (as is), adapt (less strategies, parallel, early_reject, and the keys
           // the arm does not read: the registry's reads_adjustment, reads_bn_recalibrate)
};

// The recipe of `phase` from a configuration as JSON (to_json(cfg), or a stored "config"; anything but
// an object counts as empty), keys added after results were first stored dropped where they hold
// their default.
nlohmann::json recipe_key(const nlohmann::json& config, Phase phase, Strategy arm = Strategy::kNone);

// One section of a recipe_key ("train", "adapt", ...) from that section of a configuration: the
// keys that cannot change the phase's result removed.
nlohmann::json recipe_section(nlohmann::json section, const std::string& name, Phase phase,
                              Strategy arm = Strategy::kNone);

// Error(kState) unless the configuration a checkpoint was made with (meta["config"]) has the same
// recipe for `phase` as `cfg`, listing up to six changed keys; checkpoints without a config pass.
void require_same_recipe(const nlohmann::json& meta, const Config& cfg, const std::string& what, Phase phase);

}  // namespace apricot
