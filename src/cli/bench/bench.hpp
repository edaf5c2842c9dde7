// Micro-benchmarks behind `apricot bench`: each times an optimised path against its naive reference
// on synthetic data and returns the figures as JSON. They print nothing; the CLI formats the result.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/models/model.hpp"

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
// Returns {"arch", "batch", "precision", "memory_format", "device", "input", "classes", "steps",
//          "repeats", "threads", "train_images_per_s", "infer_images_per_s"}.
// channels_last: weights and batches in NHWC order (train.memory_format channels_last).
nlohmann::json bench_train(const ModelSpec& spec, int64_t batch, const std::string& precision, int64_t steps,
                           int64_t repeats, int64_t warmup, const torch::Device& device, bool channels_last = false);

// bench_train of several models side by side: the same data, and round by round every model's
// training repeat in turn (then every model's inference repeat), so that a shared machine's noise
// falls on all of them alike and their ratios are fair. One document per model, in order; a
// TorchScript model's also carries "module" (its file).
std::vector<nlohmann::json> bench_train_models(const std::vector<ModelSpec>& specs, int64_t batch,
                                               const std::string& precision, int64_t steps, int64_t repeats,
                                               int64_t warmup, const torch::Device& device, bool channels_last = false);

// Aggregate training images/s of k models (each with its own SGD optimiser, random data on its
// device) trained one at a time against all k at once through run_parallel (a CUDA stream per
// model; on the CPU each worker gets threads / k intra-op threads), `steps` steps per model per
// repeat, after one warm-up of each; the two ways alternate, and each figure is the median of
// `repeats`. Models are spread over `devices` as rDLMs are (model j on devices[j % size]).
// Returns {"arch", "batch", "precision", "k", "devices", "device", "steps", "repeats", "threads",
//          "workers", "threads_per_worker", "sequential_images_per_s", "concurrent_images_per_s",
//          "speedup"}.
nlohmann::json bench_rdlms(const ModelSpec& spec, int64_t k, int64_t batch, const std::string& precision,
                           int64_t steps, int64_t repeats, const std::vector<torch::Device>& devices);

// The measured matrix-multiply rate: an n x n by n x n product (2n^3 FLOPs) in fp32 (TF32 off),
// and on CUDA also with TF32 on and in bf16; the median of `repeats`.
// Returns {"n", "device", "repeats", "threads", "rows": [{"dtype", "ms", "tflops"}]}.
nlohmann::json bench_matmul(int64_t n, int64_t repeats, const torch::Device& device);

}  // namespace apricot
