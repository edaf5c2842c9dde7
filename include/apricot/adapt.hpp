// Phase 2 of Apricot: the adaptation loop (APRICOT.md "Phase 2") for one strategy or the control
// arm, writing WORKDIR/adapt-<strategy>/{model.pt, model.json, trace.jsonl, result.json}.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "apricot/config.hpp"
#include "apricot/data.hpp"
#include "apricot/weights.hpp"

namespace apricot {

std::string adapt_dir(const std::string& workdir, Strategy s);  // WORKDIR/adapt-<1|2|3|none>

struct AdaptRequest {
  Strategy strategy = Strategy::k1;
  bool force = false;     // rerun even if result.json exists
  bool progress = true;
};

// Runs the loop and returns result.json's contents. Needs WORKDIR/base/model.pt and, unless the
// strategy is none, all rDLMs (Error kState otherwise). An existing result is returned unchanged
// unless force.
nlohmann::json run_adapt(const Config& cfg, const Dataset& data, const std::string& workdir,
                         const torch::Device& device, const AdaptRequest& req);

}  // namespace apricot
