// Which settings a phase's result depends on (recipe.hpp).
#include "apricot/method/recipe.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <vector>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/io/checkpoint.hpp"

namespace apricot {

using nlohmann::json;

namespace {

// The adaptation keys only the weight adjustment (strategies 1-3) reads.
constexpr const char* kAdjustmentOnlyKeys[] = {"step", "step_mode", "direction", "adjust_buffers"};

std::vector<std::string> sections_of(Phase phase) {
  switch (phase) {
    case Phase::kBase: return {"seed", "model", "train"};
    case Phase::kRdlm: return {"train", "rdlm"};
    case Phase::kAdapt: return {"seed", "data", "train", "adapt"};
  }
  return {};
}

}  // namespace

json recipe_section(json j, const std::string& section, Phase phase, Strategy arm) {
  if (!j.is_object()) return j;
  if (section == "train" && phase != Phase::kAdapt) j.erase("eval_batch_size"), j.erase("memory_format");
  // A module's path as a file, not as spelt: "mymodel.pt" and its absolute path are one file.
  if (section == "model" && j.contains("path") && j["path"].is_string() && !j["path"].get<std::string>().empty())
    j["path"] = std::filesystem::absolute(j["path"].get<std::string>()).lexically_normal().string();
  // The field set's folder too (field arms): a relative root and its absolute path are one folder.
  if (section == "field" && j.contains("root") && j["root"].is_string() && !j["root"].get<std::string>().empty()) {
    auto root = std::filesystem::absolute(j["root"].get<std::string>()).lexically_normal();
    if (!root.has_filename() && root.has_parent_path()) root = root.parent_path();  // "dir/" is "dir"
    j["root"] = root.string();
  }
  if (section == "field") {
    // Results made before field.select existed chose on the images they were fine-tuned on.
    if (!j.contains("select")) j["select"] = 0.0;
    if (arm != Strategy::kGated && arm != Strategy::kGatedDistilled) j.erase("gates"), j.erase("gate_steps");
  }
  if (section == "rdlm") {
    j.erase("count"), j.erase("parallel"), j.erase("devices");
    if (j.value("init", "") != "base") j.erase("finetune");  // only fine-tuned rDLMs follow it
  }
  if (section == "adapt") {
    j.erase("strategies");
    j.erase("parallel");      // arms at once or one by one: the same loop
    j.erase("early_reject");  // stops counting losers early: the same decisions
    const ArmInfo& info = arm_info(arm);
    if (info.field) {  // a field arm reads only the break bound of adapt.* (and the field section)
      json kept = json::object();
      for (const char* k : {"max_break_rate", "selection"})
        if (j.contains(k)) kept[k] = j[k];
      return kept;
    }
    if (!info.reads_adjustment)
      for (const char* k : kAdjustmentOnlyKeys) j.erase(k);
    if (!info.reads_bn_recalibrate) j.erase("bn_recalibrate");
  }
  return j;
}

json recipe_key(const json& config, Phase phase, Strategy arm) {
  json c = config.is_object() ? config : json::object();  // a stored config of another shape has no recipe
  drop_added_defaults(c);  // keys added since, at their defaults, are not changes
  json key = json::object();
  for (const auto& sec : sections_of(phase)) key[sec] = recipe_section(c.value(sec, json()), sec, phase, arm);
  if (phase == Phase::kAdapt && arm_info(arm).field) key["field"] = recipe_section(c.value("field", json()), "field", phase, arm);
  return key;
}

void require_same_recipe(const json& meta, const Config& cfg, const std::string& what, Phase phase) {
  if (!meta.contains("config") || !meta["config"].is_object()) return;
  const json then_key = recipe_key(meta["config"], phase), now_key = recipe_key(to_json(cfg), phase);
  std::vector<std::string> changed;
  for (const auto& sec : sections_of(phase)) {
    const json &then_v = then_key[sec], &now_v = now_key[sec];
    if (then_v == now_v) continue;
    if (then_v.is_object() && now_v.is_object()) {
      for (auto it = now_v.begin(); it != now_v.end(); ++it)
        if (!then_v.contains(it.key()) || then_v[it.key()] != it.value())
          changed.push_back(sec + "." + it.key() + " (" + (then_v.contains(it.key()) ? then_v[it.key()].dump() : "-") +
                            " -> " + it.value().dump() + ")");
    } else {
      changed.push_back(sec + " (" + then_v.dump() + " -> " + now_v.dump() + ")");
    }
  }
  if (changed.empty()) return;
  std::string list;
  for (size_t i = 0; i < changed.size() && i < 6; ++i) list += (i ? ", " : "") + changed[i];
  state_error(what + " was made with another configuration: " + list,
              "rerun with --force to redo it, or use the configuration it was made with");
}

json weights_crc32(const std::string& pt_path) {
  try {
    return json::parse(read_file(meta_path_for(pt_path))).at("weights").at("crc32");
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::optional<json> reusable_result(const std::string& path, const json& prov, Strategy arm,
                                    std::initializer_list<const char*> required, const std::string& inputs) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  json old;
  try {
    old = json::parse(read_file(path));
    for (const char* k : required) old.at(k);
  } catch (const json::exception& e) {
    state_error("'" + path + "' is corrupt or from an older version (" + std::string(e.what()) + ")",
                "rerun with --force");
  }
  json stored = old.value("provenance", json());
  if (stored.is_object() && stored.contains("config") && stored["config"].is_object()) {
    // Results made before an arm's provenance dropped the keys it does not read (the adjustment-only
    // keys, bn_recalibrate), or while field.root was kept as spelt, recorded them so; they never
    // changed such a result.
    json& c = stored["config"];
    for (const char* sec : {"adapt", "field"})
      if (c.contains(sec)) c[sec] = recipe_section(c[sec], sec, Phase::kAdapt, arm);
  }
  if (stored != prov)
    state_error("'" + path + "' was produced from " + inputs,
                "rerun with --force to redo this arm, or point --workdir at a fresh directory");
  spdlog::info("{} exists and is up to date; not rerunning (use --force)", path);
  return old;
}

}  // namespace apricot
