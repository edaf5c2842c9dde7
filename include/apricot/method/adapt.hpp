// Phase 2 of Apricot: the adaptation loop (docs/METHOD.md, "Phase 2") for one strategy or the control
// arm, writing WORKDIR/adapt-<strategy>/{model.pt, model.json, trace.jsonl, result.json}.
// AdaptState holds everything the loop changes except the model's weights; one batch of the method
// is adapt_step (src/method/adapt/loop.cpp); its state files are saved and loaded between batches
// (save_adapt_state below, src/method/adapt/state.cpp).
#pragma once
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/method/adjustment.hpp"

namespace apricot {

// Why the loop ended. max_batches and passes bound it; patience and the time budget cut it short.
enum class StopReason { kPasses, kMaxBatches, kPatience, kTimeBudget };
std::string to_string(StopReason r);  // "passes" "max_batches" "patience" "time_budget"

// Wall time of the loop's parts, in seconds (result.json "time").
struct AdaptTimes {
  double adjustment = 0;  // composing and applying the updates
  double prediction = 0;  // the batch's predictions and the rDLMs' correctness on its failing inputs
  double evaluation = 0;  // candidates and the base on the selection (and test) split
  double retraining = 0;
};

// Everything the loop changes, weights aside. Saved at batch boundaries (resume.hpp), where the
// model holds the best weights so far; the scalars go to state.json, the tensors to its archive.
struct AdaptState {
  int64_t pass = 0;                  // the pass the next batch belongs to
  int64_t next_batch = 0;            // its index in the pass (== batches per pass: the pass is over)
  int64_t batches = 0;               // batches done
  int64_t failing_inputs = 0;        // inputs the model got wrong, summed over batches
  int64_t adjusted_inputs = 0;       // failing inputs that changed the weights
  int64_t accepted_adjustments = 0;  // adjusted weights that became the best
  int64_t accepted_retrains = 0;     // retrained weights that became the best
  int64_t retrains = 0;
  int64_t rejected_nonfinite = 0;    // candidates with NaN/Inf weights, or diverged retrainings
  int64_t rejected_breaks = 0;       // better candidates refused by adapt.max_break_rate
  int64_t since_improvement = 0;     // batches since the best last changed (patience)
  int64_t best_correct = 0;          // selection inputs the best model classifies correctly
  double best_acc = 0;               // best_correct / size of the selection split
  double base_val = 0, base_test = 0;
  nlohmann::json target_before;      // adapt.target: the pair's errors of the base {val, test}; else null
  nlohmann::json start;              // soup, greedy-soup, none-matched: the starting candidate; else null
  int64_t images_matching = 0;       // none-matched: training images spent on the base before the loop
  AdaptTimes time;
  double elapsed = 0;                // seconds, including earlier processes of a resumed run
  int64_t trace_bytes = 0;           // length of trace.jsonl when the state was saved
  // Tensors, kept in the state's archive:
  at::Generator gen;                 // draws each pass's permutation of the training rows
  torch::Tensor perm;                // this pass's permutation (int64)
  torch::Tensor best_right;          // (N_sel) bool: which selection inputs the best model gets right
  torch::Tensor best_margin;         // (N_sel) float: its true-class logit minus the largest other one
};
void to_json(nlohmann::json& j, const AdaptTimes& t);
void from_json(const nlohmann::json& j, AdaptTimes& t);
void to_json(nlohmann::json& j, const AdaptState& s);  // the scalars
void from_json(const nlohmann::json& j, AdaptState& s);

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

// ---- resumable state (io/resume.hpp's state files) ----
// The adaptation loop's state: its scalars in state.json, its generator, permutation and the best
// model's selection answers in the archive, with the model (which then holds the best weights).
void save_adapt_state(const std::string& pt_path, const nlohmann::json& key, const AdaptState& st,
                      const torch::nn::Module& model);
// true when a state for `key` was found and loaded into st and model; false when there is none, or
// one made for another key or by an older version (it is removed then, with a warning).
// Error(kState) when it is damaged. `what` names the phase in messages ("adapt-1").
bool load_adapt_state(const std::string& pt_path, const nlohmann::json& key, AdaptState& st,
                      torch::nn::Module& model, const std::string& what);

void validate(const AdaptConfig& a);  // the range checks of adapt.*; kUsage naming the key

}  // namespace apricot
