// What an arm's result depends on, and whether a stored result can be reused.
#include "arm.hpp"

namespace apricot::adapt_detail {

namespace {

// The adaptation keys only the weight adjustment (strategies 1-3) reads.
constexpr const char* kAdjustmentOnlyKeys[] = {"step", "step_mode", "direction", "adjust_buffers"};

}  // namespace

// What a result depends on: the base and rDLM weights (by checksum) and the configuration that
// shapes the loop. A stored result is reused only when this is unchanged.
json provenance(const Config& cfg, const WorkDir& wd, Strategy s) {
  auto crc_of = [](const std::string& pt) -> json {
    try {
      return json::parse(read_file(meta_path_for(pt))).at("weights").at("crc32");
    } catch (const std::exception&) {
      return nullptr;
    }
  };
  json rdlms = json::array();
  if (uses_rdlms(s))
    for (int64_t k = 0; k < cfg.rdlm.count; ++k) rdlms.push_back(crc_of(wd.rdlm_model(k)));
  json c = to_json(cfg);
  drop_added_defaults(c);  // results made before those keys existed stay valid
  json& a = c["adapt"];
  a.erase("strategies");
  a.erase("parallel");      // arms at once or one by one: the same loop
  a.erase("early_reject");  // stops counting losers early: the same decisions
  const ArmInfo& info = arm_info(s);
  if (!info.reads_adjustment)
    for (const char* k : kAdjustmentOnlyKeys) a.erase(k);
  if (!info.reads_bn_recalibrate) a.erase("bn_recalibrate");
  json prov = {{"base_crc32", crc_of(wd.base_model())},
               {"rdlm_crc32", rdlms},
               {"config", {{"seed", c["seed"]}, {"data", c["data"]}, {"train", c["train"]}, {"adapt", a}}}};
  if (info.reads_finetune)
    prov["matching"] = {{"images", rdlm_images(cfg)}, {"finetune", c["rdlm"]["finetune"]}};
  return prov;
}

// The stored result when it is complete and was made from the same inputs; nothing when absent.
std::optional<json> reusable_result(const std::string& path, const json& prov) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  json old;
  try {
    old = json::parse(read_file(path));
    for (const char* k : {"strategy", "base", "final", "gain_test", "selection", "accepted", "seconds"}) old.at(k);
  } catch (const json::exception& e) {
    state_error("'" + path + "' is corrupt or from an older version (" + std::string(e.what()) + ")",
                "rerun with --force");
  }
  json stored = old.value("provenance", json());
  if (stored.is_object() && prov["config"]["adapt"].is_object() && !prov["config"]["adapt"].contains("step")) {
    // An arm that does not adjust: results made before its provenance dropped the adjustment-only
    // keys recorded them; they never changed such a result.
    json* a = stored.contains("config") && stored["config"].contains("adapt") ? &stored["config"]["adapt"] : nullptr;
    if (a && a->is_object())
      for (const char* k : kAdjustmentOnlyKeys)
        if (!prov["config"]["adapt"].contains(k)) a->erase(k);
    if (a && a->is_object() && !prov["config"]["adapt"].contains("bn_recalibrate")) a->erase("bn_recalibrate");
  }
  if (stored != prov)
    state_error("'" + path + "' was produced from another base model, other rDLMs or another configuration",
                "rerun with --force to redo this strategy, or point --workdir at a fresh directory");
  spdlog::info("{} exists and is up to date; not rerunning (use --force)", path);
  return old;
}

}  // namespace apricot::adapt_detail
