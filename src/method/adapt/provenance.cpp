// What an arm's result depends on, and whether a stored result can be reused.
#include "arm.hpp"

namespace apricot::adapt_detail {

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
  const json config = to_json(cfg);
  json prov = {{"base_crc32", crc_of(wd.base_model())},
               {"rdlm_crc32", rdlms},
               {"config", recipe_key(config, Phase::kAdapt, s)}};  // results made before a key existed stay valid
  if (arm_info(s).reads_finetune) {
    json recipe = config["rdlm"]["finetune"];
    recipe.erase("lr_factors"), recipe.erase("augment");  // they vary the rDLMs; the matched training keeps the plain recipe
    prov["matching"] = {{"images", rdlm_images(cfg)}, {"finetune", recipe}};
  }
  return prov;
}

// The stored result when it is complete and was made from the same inputs; nothing when absent.
std::optional<json> reusable_result(const std::string& path, const json& prov, Strategy s) {
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
  if (stored.is_object() && stored.contains("config") && stored["config"].is_object() &&
      stored["config"].contains("adapt")) {
    // Results made before an arm's provenance dropped the keys it does not read (the adjustment-only
    // keys, bn_recalibrate) recorded them; they never changed such a result.
    stored["config"]["adapt"] = recipe_section(stored["config"]["adapt"], "adapt", Phase::kAdapt, s);
  }
  if (stored != prov)
    state_error("'" + path + "' was produced from another base model, other rDLMs or another configuration",
                "rerun with --force to redo this strategy, or point --workdir at a fresh directory");
  spdlog::info("{} exists and is up to date; not rerunning (use --force)", path);
  return old;
}

}  // namespace apricot::adapt_detail
