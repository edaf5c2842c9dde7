// Micro-benchmarks behind `apricot bench`: each times an optimised path against its naive reference
// on synthetic data and returns the figures as JSON. They print nothing; the CLI formats the result.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/models.hpp"

namespace apricot {

// One batch's weight adjustment at P weights and n rDLMs, once per entry of failing_counts:
// naive_adjust (per failing input: select and average the rDLM rows, update w) against the engine
// (mask to the CPU, compose_updates, apply_update), strategy 1, direction intent, step 0.001.
// R (n, P) and w (P) are random float32 on `device`; every mask row has at least one correct rDLM.
// Each time is the median of `repeats` runs after one warm-up, in ms, device work included.
// Returns {"P", "n", "device", "strategy", "direction", "repeats", "threads",
//          "rows": [{"failing", "naive_ms", "engine_ms", "ratio" (naive/engine),
//                    "max_rel_diff" (max |engine - naive| / max |naive|, a sanity check)}]}.
nlohmann::json bench_adjust(int64_t P, int64_t n, const std::vector<int64_t>& failing_counts,
                            int64_t repeats, uint64_t seed, const torch::Device& device);

// Training and inference images/s of one model at one batch size on random data held on `device`:
// the tool's train_step (SGD, momentum 0.9) and its eval-mode forward pass, `steps` steps per repeat,
// the median over `repeats` after `warmup` untimed repeats, with device synchronisation.
// Returns {"arch", "batch", "precision", "device", "input", "classes", "steps", "repeats", "threads",
//          "train_images_per_s", "infer_images_per_s"}.
nlohmann::json bench_train(const ModelSpec& spec, int64_t batch, const std::string& precision, int64_t steps,
                           int64_t repeats, int64_t warmup, const torch::Device& device);

}  // namespace apricot
