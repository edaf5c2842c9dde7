// Which settings a phase's result depends on, in one place: recipe_key gives, per phase, the
// configuration sections (and within them the keys) that decide whether a stored base model, rDLM
// or adaptation result can be reused or must be made again. Everything else in the configuration
// (where and how fast a phase runs: workdir, device, threads, resume, parallel, ...) is left out.
// The saved states' keys (what a half-done phase belongs to) are the phases' own, stricter: see
// pipeline.cpp, rdlm.cpp and adapt/arm.cpp.
#pragma once
#include <nlohmann/json.hpp>
#include <initializer_list>
#include <optional>
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

// The crc32 of a checkpoint's weights as its metadata (the .json beside `pt_path`) records it; null
// when there is no readable one.
nlohmann::json weights_crc32(const std::string& pt_path);

// An arm's stored result (adapt-S/result.json) when it exists, holds every key of `required` and was
// made from the inputs `prov` (what the arm recorded as its "provenance": weight checksums, recipe_key,
// ...); nothing when absent. A stored recipe is first brought to today's form (keys an arm no longer
// depends on removed, paths absolute), so results made by older versions stay reusable. Error(kState)
// when it is damaged, or was made from other inputs (`inputs` names them in the message).
std::optional<nlohmann::json> reusable_result(const std::string& path, const nlohmann::json& prov, Strategy arm,
                                              std::initializer_list<const char*> required, const std::string& inputs);

// Error(kState) unless the configuration a checkpoint was made with (meta["config"]) has the same
// recipe for `phase` as `cfg`, listing up to six changed keys; checkpoints without a config pass.
void require_same_recipe(const nlohmann::json& meta, const Config& cfg, const std::string& what, Phase phase);

}  // namespace apricot
