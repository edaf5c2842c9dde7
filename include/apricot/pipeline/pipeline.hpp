// The pipeline of the method, phase by phase, over one work directory (workdir.hpp): the base model,
// the rDLMs, the adaptation arms. What `apricot train-base`, `run` and `sweep` do, without their
// command lines: each phase skips what is complete and up to date unless forced.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/method/arms.hpp"

namespace apricot {

// Trains the base model (the iDLM) into WORKDIR/base/{model.pt, model.json, metrics.jsonl}, and with
// rdlm.init = base-early also base/early.pt. An existing base model is kept unless force (its
// recipe must match cfg). `loaded`: the dataset when the caller has it (otherwise loaded only when
// needed). Returns {"model", "skipped", "metrics"[, "seconds"]}.
nlohmann::json train_base(const Config& cfg, const std::string& workdir, const torch::Device& device, bool force,
                          const Dataset* loaded = nullptr);

// The arms to adapt: `only` when not empty (one strategy name), else each of adapt.strategies.
std::vector<Strategy> arms_of(const Config& cfg, const std::string& only = "");

// Adapts each arm, adapt.parallel of them at once (a CUDA stream each; on the CPU a share of the
// threads each); result.json documents in the order of `arms`.
std::vector<nlohmann::json> adapt_arms(const Config& cfg, const Dataset& data, const std::string& workdir,
                                       const torch::Device& device, const std::vector<Strategy>& arms, bool force);

// Every phase in order (base, the rDLMs when an arm needs them, each arm of adapt.strategies),
// skipping complete ones. Returns {"workdir", "base": {val_acc, test_acc}, "results": [...], "seconds"}.
nlohmann::json run_pipeline(const Config& cfg, const std::string& workdir, const torch::Device& device, bool force);

}  // namespace apricot
