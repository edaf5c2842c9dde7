// What an arm's result depends on, and whether a stored result can be reused.
#include "arm.hpp"

namespace apricot::adapt_detail {

// What a result depends on: the base and rDLM weights (by checksum) and the configuration that
// shapes the loop. A stored result is reused only when this is unchanged.
json provenance(const Config& cfg, const WorkDir& wd, Strategy s) {
  json rdlms = json::array();
  if (uses_rdlms(s))
    for (int64_t k = 0; k < cfg.rdlm.count; ++k) rdlms.push_back(weights_crc32(wd.rdlm_model(k)));
  const json config = to_json(cfg);
  json prov = {{"base_crc32", weights_crc32(wd.base_model())},
               {"rdlm_crc32", rdlms},
               {"config", recipe_key(config, Phase::kAdapt, s)}};  // results made before a key existed stay valid
  if (arm_info(s).reads_finetune) {
    json recipe = config["rdlm"]["finetune"];
    recipe.erase("lr_factors"), recipe.erase("augment");  // they vary the rDLMs; the matched training keeps the plain recipe
    prov["matching"] = {{"images", rdlm_images(cfg)}, {"finetune", recipe}};
  }
  return prov;
}

}  // namespace apricot::adapt_detail
