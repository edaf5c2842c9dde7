// Internal to src/method/adapt/: what the files of the adaptation loop share. The interface is
// apricot/method/adapt.hpp (run_adapt); outside this folder only tests/method/test_adapt_step.cpp
// includes this file, to drive one batch (adapt_step) by hand.
//   arm.cpp         an arm's fixed inputs (Arm) and the steps every part uses (accepting a candidate)
//   provenance.cpp  what a result depends on, and whether a stored one can be reused
//   start.cpp       the start candidates of the registry (soup, greedy soup, budget-matched training)
//   loop.cpp        one batch (adapt_step: failing inputs, adjustment, retraining) and the loop
//   result.cpp      result.json and the final checkpoint
//   state.cpp       the loop's resumable state
//   adapt.cpp       run_adapt: one arm from start to result
#pragma once
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apricot/core/clock.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/progress.hpp"
#include "apricot/core/seeds.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/io/resume.hpp"
#include "apricot/io/workdir.hpp"
#include "apricot/method/adapt.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/method/recipe.hpp"
#include "apricot/models/state.hpp"
#include "apricot/models/torchscript.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/train/train.hpp"

namespace apricot::adapt_detail {

using nlohmann::json;

// What stays fixed while one arm adapts: its settings, the selection split, the rDLMs stacked as
// R (n, P) with their memoised correctness, and the retraining recipe.
struct Arm {
  Arm(const Config& c, const Dataset& d, torch::Device dev, Strategy s)
      : cfg(c), ac(c.adapt), data(d), device(dev), strategy(s), direction(parse_direction(c.adapt.direction)),
        step_mode(parse_step_mode(c.adapt.step_mode)),
        name(WorkDir::adapt_name(to_string(s))), select_on_test(c.adapt.selection == "test"),
        sel(select_on_test ? &d.test : &d.val), eval_batch(c.train.eval_batch_size) {}
  const Config& cfg;
  const AdaptConfig& ac;
  const Dataset& data;
  torch::Device device;
  Strategy strategy;
  Direction direction;
  StepMode step_mode;
  std::string name;                  // "adapt-<strategy>", in logs
  bool select_on_test;
  const Split* sel;                  // the selection split
  int64_t eval_batch;
  std::optional<std::pair<int64_t, int64_t>> target;  // adapt.target: (src, dst)
  WeightLayout layout;                                // soups: with the BatchNorm statistics
  torch::Tensor R;                                    // (n, P); undefined for the control arms
  torch::Tensor bn_images;                            // adapt.bn_recalibrate's training images (uint8)
  CorrectCount base_sel;                              // the base on the selection split (complete)
  torch::Tensor base_pred_val, base_pred_test;        // the base model's predictions (int64, CPU)
  torch::Tensor base_right_sel;                       // which selection inputs the base gets right (bool)
  int64_t base_right_sel_count = 0;
  double base_eval_seconds = 0;                       // evaluating the base, in this process
  std::unique_ptr<CorrectnessCache> cache;
  TrainOptions retrain;
  bool retraining = false;
  Split train_on_device;             // one device copy of the training images for every retraining
  int64_t batches_per_pass = 0, total_batches = 0;
  json state_key;
  std::string state_path;
  std::string start_state_path;      // none-matched's training before the loop (train_matching)

  bool adjusting() const { return adjusts(strategy); }
  bool retrain_due(int64_t batches_done) const { return retraining && (batches_done + 1) % ac.retrain_every == 0; }
};

// The best model's weights (which selection inputs it gets right is in the state: best_right).
struct Best {
  std::vector<torch::Tensor> weights;
};

// Wall time of the run, including the earlier processes of a resumed run.
struct RunClock {
  double before = 0;  // seconds spent before this process
  Clock::time_point t0 = Clock::now();
  double now() const { return before + since(t0); }
};

inline bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

// ---- arm.cpp ----
void save_cache(const Arm& arm);
TrainOptions retrain_options(const Config& cfg, int64_t n_train);
std::unique_ptr<Arm> prepare_arm(const Config& cfg, const Dataset& data, const WorkDir& wd, NetImpl& model,
                                 const ModelSpec& spec, const torch::Device& device, Strategy strategy,
                                 const json& prov, const std::string& base_crc32);
// The base's answers on the split other than the selection one (`other_pred`) and on the selection
// split (arm.base_sel) as the arm keeps them.
void set_base_answers(Arm& arm, const torch::Tensor& other_pred);
// An arm on the CPU from its parts, without a work directory: the rDLMs' stacked weights R (n, P),
// in the layout weight_layout(model, adapt.adjust_buffers) gives, and their correctness on every
// training image, right_table (N_train, n). For tests that drive adapt_step with a hand-made table.
std::unique_ptr<Arm> arm_from_parts(const Config& cfg, const Dataset& data, NetImpl& model, Strategy strategy,
                                    torch::Tensor R, torch::Tensor right_table);
AdaptState initial_state(const Arm& arm);
double accept_if_better(const Arm& arm, NetImpl& model, AdaptState& st, Best& best, bool* accepted);
void reject_nonfinite(NetImpl& model, AdaptState& st, const Best& best, const std::string& why);
void recalibrate(const Arm& arm, NetImpl& model);
int64_t images_of_steps(int64_t steps, int64_t n_train, int64_t batch);
int64_t retrain_images(const Arm& arm);
double selection_accuracy(const Arm& arm, NetImpl& model);
// The end of the acceptance rule for a candidate counted completely (c) that has more right answers
// (`better`): its breaks of the base's right answers, on `rows` of the selection split (all when
// undefined), within adapt.max_break_rate. Accepted, it becomes the best with its counts on the whole
// split; otherwise the best weights are restored. Returns whether it was accepted.
bool settle_candidate(const Arm& arm, NetImpl& model, AdaptState& st, Best& best, const CorrectCount& c, bool better,
                      const torch::Tensor& rows = {});

// ---- provenance.cpp ----
json provenance(const Config& cfg, const WorkDir& wd, Strategy s);  // reused by recipe.hpp's reusable_result

// ---- start.cpp ----
void put_soup(const Arm& arm, NetImpl& model, const std::vector<int64_t>& members);
std::vector<int64_t> greedy_members(const Arm& arm, NetImpl& model, json& log);
int64_t train_matching(const Arm& arm, NetImpl& model, bool* ok);
void start_candidate(const Arm& arm, NetImpl& model, AdaptState& st);

// ---- loop.cpp ----
torch::Tensor failing_inputs(const Arm& arm, NetImpl& model, AdaptState& st, const torch::Tensor& idx);
int64_t adjust(const Arm& arm, NetImpl& model, AdaptState& st, const torch::Tensor& failing, bool* finite);
bool retrain(const Arm& arm, NetImpl& model, AdaptState& st);
json adapt_step(const Arm& arm, NetImpl& model, AdaptState& st, Best& best, const torch::Tensor& idx);
std::optional<StopReason> stop_rule(const AdaptConfig& ac, const AdaptState& st, double elapsed);
void draw_progress(Progress& progress, const Arm& arm, const AdaptState& st, int64_t batches_at_start,
                   double seconds_here);
StopReason adapt_loop(const Arm& arm, NetImpl& model, AdaptState& st, AppendFile& trace, const RunClock& clock,
                      bool show_progress);

// ---- result.cpp ----
json pair_errors(const Arm& arm, const torch::Tensor& pred_val, const torch::Tensor& pred_test);
int64_t pair_repaired(const Arm& arm, const Split& split, const torch::Tensor& before, const torch::Tensor& after);
int64_t pair_broken(const Arm& arm, const Split& split, const torch::Tensor& before, const torch::Tensor& after);
json result_json(const Arm& arm, const AdaptState& st, StopReason stop, double final_val, double final_test,
                 const json& prov);
json finish(const Arm& arm, const WorkDir& wd, NetImpl& model, const ModelSpec& spec, AdaptState& st,
            StopReason stop, const RunClock& clock, const json& prov);

}  // namespace apricot::adapt_detail
