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

#include "apricot/checkpoint.hpp"
#include "apricot/config.hpp"
#include "apricot/data.hpp"
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
    // KNOWN FINDING (docs/RELIABILITY.md): a number beyond double's range (1e400) makes
    // json::parse throw out_of_range.406, which load_checkpoint does not catch (it catches only
    // parse_error). Skipped here so that the target keeps exploring the rest; remove once
    // load_checkpoint catches json::exception.
    return 0;
  }
  // KNOWN FINDING (docs/RELIABILITY.md), found by this target: spec_from_meta reads "input" and
  // "classes" with get<int64_t>(), which converts a JSON number written with a fraction or an
  // exponent (1e300) from double without a range check: undefined behaviour (UBSan
  // float-cast-overflow). Skipped so that the target keeps exploring; remove once spec_from_meta
  // checks is_number_integer().
  const nlohmann::json& m = meta;
  auto beyond_int64 = [](const nlohmann::json& v) {
    return v.is_number_float() && !(std::fabs(v.get<double>()) < 9.2e18);
  };
  if (m.is_object()) {
    if (m.contains("classes") && beyond_int64(m["classes"])) return 0;
    if (m.contains("input") && m["input"].is_array())
      for (const auto& v : m["input"])
        if (beyond_int64(v)) return 0;
  }
  const apricot::Config defaults;
  apricot_fuzz::guarded(kTarget, [&] {
    apricot::ModelSpec spec = apricot::spec_from_meta(meta, "model.json");
    (void)spec;
    if (meta.contains("normalization")) (void)apricot::Normalizer::from_json(meta["normalization"]);
    apricot::require_same_recipe(meta, defaults, "the fuzzed checkpoint", {"train", "rdlm", "adapt", "model", "seed"});
  });
  return 0;
}
