// Fuzzes the checkpoint metadata (model.json) the way load_checkpoint reads it, up to the point
// where weights would be read: JSON text -> document (a json::parse_error is load_checkpoint's
// "corrupt (not JSON)" rejection) -> spec_from_meta -> the normalisation (Normalizer::from_json)
// -> the recipe check of a later phase (require_same_recipe). No model is built and no weights are
// read: the spec's sizes are not bounded here (make_model checks them, and allocating a model of
// absurd size is not a parsing question).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/method/recipe.hpp"
#include "fuzz_common.hpp"

namespace {
constexpr const char* kTarget = "fuzz_checkpoint_meta";
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  apricot_fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error&) {
    return 0;  // load_checkpoint: "checkpoint metadata ... is corrupt (not JSON)"
  } catch (const nlohmann::json::out_of_range&) {
    return 0;  // a number beyond double's range (1e400): load_checkpoint reports it as corrupt JSON
  }
  const apricot::Config defaults;
  apricot_fuzz::guarded(kTarget, [&] {
    apricot::ModelSpec spec = apricot::spec_from_meta(meta, "model.json");
    (void)spec;
    if (meta.contains("normalization")) (void)apricot::Normalizer::from_json(meta["normalization"]);
    if (meta.is_object() && meta.contains("config"))
      for (auto phase : {apricot::Phase::kBase, apricot::Phase::kRdlm, apricot::Phase::kAdapt})
        (void)apricot::recipe_key(meta["config"], phase);
    for (auto phase : {apricot::Phase::kBase, apricot::Phase::kRdlm})
      apricot::require_same_recipe(meta, defaults, "the fuzzed checkpoint", phase);
  });
  return 0;
}
