// The adaptation loop: batches over a seeded permutation of the training split (the same batches
// for every strategy and the control arm), the composed weight adjustment on the failing inputs,
// acceptance on the selection split, periodic retraining whose result is a candidate too.
// Predictions of a batch are taken once, before its adjustments (as the public ports do).
// A candidate is compared with the best by its count of correct selection answers; the count stops
// as soon as the candidate can no longer win (eval.hpp), which leaves every decision unchanged.
#include "apricot/method/adapt.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>

#include "apricot/io/checkpoint.hpp"
#include "apricot/models/torchscript.hpp"
#include "apricot/core/clock.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/progress.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/io/resume.hpp"
#include "apricot/train/train.hpp"
#include "apricot/io/workdir.hpp"
#include "apricot/models/state.hpp"
#include "apricot/core/seeds.hpp"

namespace apricot {

using nlohmann::json;

std::string to_string(StopReason r) {
  switch (r) {
    case StopReason::kPasses: return "passes";
    case StopReason::kMaxBatches: return "max_batches";
    case StopReason::kPatience: return "patience";
    case StopReason::kTimeBudget: return "time_budget";
  }
  return "?";
}

namespace {

// What stays fixed while one arm adapts: its settings, the selection split, the rDLMs stacked as
// R (n, P) with their memoised correctness, and the retraining recipe.
struct Arm {
  Arm(const Config& c, const Dataset& d, torch::Device dev, Strategy s)
      : cfg(c), ac(c.adapt), data(d), device(dev), strategy(s), direction(parse_direction(c.adapt.direction)),
        step_mode(parse_step_mode(c.adapt.step_mode)),
        name("adapt-" + to_string(s)), select_on_test(c.adapt.selection == "test"),
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

bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

void save_cache(const Arm& arm) {
  if (!arm.cache) return;
  try {
    arm.cache->save();
  } catch (const Error& e) {
    spdlog::warn("could not save the rDLM correctness cache ({}); it is only an optimisation", e.what());
  }
}

// The adaptation keys only the weight adjustment (strategies 1-3) reads.
constexpr const char* kAdjustmentOnlyKeys[] = {"step", "step_mode", "direction", "adjust_buffers"};

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
  json c = to_json(cfg);
  drop_added_defaults(c);  // results made before those keys existed stay valid
  json& a = c["adapt"];
  a.erase("strategies");
  a.erase("parallel");      // arms at once or one by one: the same loop
  a.erase("early_reject");  // stops counting losers early: the same decisions
  const ArmInfo& info = arm_info(s);
  if (!info.reads_adjustment)
    for (const char* k : kAdjustmentOnlyKeys) a.erase(k);
  if (!info.reads_bn_recalibrate) a.erase("bn_recalibrate");
  json prov = {{"base_crc32", crc_of(wd.base_model())},
               {"rdlm_crc32", rdlms},
               {"config", {{"seed", c["seed"]}, {"data", c["data"]}, {"train", c["train"]}, {"adapt", a}}}};
  if (info.reads_finetune)
    prov["matching"] = {{"images", rdlm_images(cfg)}, {"finetune", c["rdlm"]["finetune"]}};
  return prov;
}

// The stored result when it is complete and was made from the same inputs; nothing when absent.
std::optional<json> reusable_result(const std::string& path, const json& prov) {
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
  if (stored.is_object() && prov["config"]["adapt"].is_object() && !prov["config"]["adapt"].contains("step")) {
    // An arm that does not adjust: results made before its provenance dropped the adjustment-only
    // keys recorded them; they never changed such a result.
    json* a = stored.contains("config") && stored["config"].contains("adapt") ? &stored["config"]["adapt"] : nullptr;
    if (a && a->is_object())
      for (const char* k : kAdjustmentOnlyKeys)
        if (!prov["config"]["adapt"].contains(k)) a->erase(k);
    if (a && a->is_object() && !prov["config"]["adapt"].contains("bn_recalibrate")) a->erase("bn_recalibrate");
  }
  if (stored != prov)
    state_error("'" + path + "' was produced from another base model, other rDLMs or another configuration",
                "rerun with --force to redo this strategy, or point --workdir at a fresh directory");
  spdlog::info("{} exists and is up to date; not rerunning (use --force)", path);
  return old;
}

TrainOptions retrain_options(const Config& cfg, int64_t n_train) {
  const AdaptConfig& ac = cfg.adapt;
  TrainOptions retrain;
  retrain.recipe = cfg.train;
  retrain.recipe.batch_size = ac.retrain.batch_size;
  retrain.recipe.optimizer = ac.retrain.optimizer;
  retrain.recipe.lr = ac.retrain.lr;
  retrain.recipe.momentum = ac.retrain.momentum;
  retrain.recipe.nesterov = false;
  retrain.recipe.lr_steps = {};
  retrain.recipe.epochs = 1;
  retrain.max_steps = ac.retrain.steps > 0
                          ? ac.retrain.steps
                          : static_cast<int64_t>(std::ceil(ac.retrain.epochs * n_train / ac.retrain.batch_size));
  retrain.keep_best = false;
  retrain.progress = false;
  retrain.log_epochs = false;
  retrain.label = "retrain";
  return retrain;
}

// Everything fixed for the arm: settings, the rDLMs stacked on the device, the retraining recipe.
std::unique_ptr<Arm> prepare_arm(const Config& cfg, const Dataset& data, const WorkDir& wd, NetImpl& model,
                                 const ModelSpec& spec, const torch::Device& device, Strategy strategy,
                                 const json& prov, const std::string& base_crc32) {
  auto arm = std::make_unique<Arm>(cfg, data, device, strategy);
  const AdaptConfig& ac = cfg.adapt;
  if (arm->select_on_test)
    spdlog::warn("adapt.selection = test reproduces the paper's protocol and leaks the test set into model "
                 "selection: the reported test accuracy is optimistic");
  if (!ac.target.empty()) arm->target.emplace(ac.target[0], ac.target[1]);
  // A soup is the mean of whole models, BatchNorm statistics included (recalibrated when asked).
  const StartCandidate start = arm_info(strategy).start;
  const bool soup = start == StartCandidate::kSoup || start == StartCandidate::kGreedySoup;
  arm->layout = weight_layout(model, ac.adjust_buffers || soup);
  if (uses_rdlms(strategy)) {
    if (cfg.rdlm.init == "base") require_rdlms_of_base(cfg, wd.root());
    auto rdlms = load_rdlms(cfg, spec, data.fingerprint, wd.root(), device);
    std::vector<torch::Tensor> rows;
    for (auto& r : rdlms) rows.push_back(flatten_weights(*r, arm->layout));
    arm->R = torch::stack(rows);  // (n, P)
    if (arm->adjusting()) {
      arm->cache = std::make_unique<CorrectnessCache>(rdlms, data.train, data.norm, device, wd.correctness_cache(),
                                                      data.fingerprint, rdlm_checksums(wd.root(), cfg.rdlm.count));
      spdlog::info("strategy {} ({}, {} r = {}): {} rDLMs stacked as {} x {} on {}", to_string(strategy),
                   to_string(arm->direction), to_string(arm->step_mode), ac.step, arm->R.size(0), arm->R.size(0),
                   arm->R.size(1), device.str());
    }
  }
  if (ac.bn_recalibrate > 0) arm->bn_images = recalibration_images(data.train, cfg.seed, ac.bn_recalibrate);
  if (ac.bn_recalibrate > 0 && is_torchscript(model))
    spdlog::warn("{}: adapt.bn_recalibrate recomputes the statistics of built-in BatchNorm layers only; this "
                 "TorchScript module's statistics are left as they are", arm->name);
  const int64_t n_train = data.train.size();
  arm->retrain = retrain_options(cfg, n_train);
  arm->retraining = ac.retrain_every > 0 && arm->retrain.max_steps > 0;
  if (device.is_cuda() && arm->retraining) {
    arm->train_on_device = Split{data.train.x.to(device), data.train.y.to(device)};
    arm->retrain.device_train = &arm->train_on_device;
  }
  arm->batches_per_pass = (n_train + ac.batch_size - 1) / ac.batch_size;
  arm->total_batches = ac.passes * arm->batches_per_pass;
  if (ac.max_batches > 0) arm->total_batches = std::min(ac.max_batches, arm->total_batches);
  arm->state_key = {{"phase", "adapt"}, {"strategy", to_string(strategy)}, {"provenance", prov},
                    {"device", device.str()}};
  arm->state_path = wd.adapt_state(to_string(strategy));
  arm->start_state_path = wd.adapt_start_state(to_string(strategy));
  // The base on both splits, once (the model is still the base here): its count, answers and margins
  // on the selection split start the loop; its answers on both splits tell what a candidate repairs
  // and breaks. train-base kept them (base/answers.pt) when it evaluated the base on the same
  // device with the same threads and batch size, which gives the same bits: then they are read.
  const auto t0 = Clock::now();
  torch::Tensor other;
  const json key = answers_key(base_crc32, data.fingerprint, device, arm->eval_batch, spec.path);
  if (auto kept = base_crc32.empty() ? std::nullopt : load_answers(wd.base_answers(), key, data.val, data.test)) {
    arm->base_sel = arm->select_on_test ? kept->test : kept->val;
    other = (arm->select_on_test ? kept->val : kept->test).pred;
    spdlog::debug("{}: the base's answers on both splits read from {}", arm->name, wd.base_answers());
  } else {
    arm->base_sel = count_all(model, *arm->sel, data.norm, device, arm->eval_batch);
    other = predict(model, (arm->select_on_test ? data.val : data.test).x, data.norm, device, arm->eval_batch);
  }
  arm->base_pred_val = arm->select_on_test ? other : arm->base_sel.pred;
  arm->base_pred_test = arm->select_on_test ? arm->base_sel.pred : other;
  arm->base_right_sel = arm->base_sel.right;
  arm->base_right_sel_count = arm->base_sel.correct;
  arm->base_eval_seconds = since(t0);
  return arm;
}

// The pair's errors (inputs of class src predicted as dst) on the validation and test splits, from a
// model's predictions on them.
json pair_errors(const Arm& arm, const torch::Tensor& pred_val, const torch::Tensor& pred_test) {
  auto count = [&](const Split& split, const torch::Tensor& pred) {
    return (split.y.eq(arm.target->first) & pred.eq(arm.target->second)).sum().item<int64_t>();
  };
  return {{"val", count(arm.data.val, pred_val)}, {"test", count(arm.data.test, pred_test)}};
}

// adapt.target: the pair's errors of the base that the final model gets right, and the inputs of the
// pair's source class the base got right that the final model gets wrong.
int64_t pair_repaired(const Arm& arm, const Split& split, const torch::Tensor& before, const torch::Tensor& after) {
  const auto pair = split.y.eq(arm.target->first) & before.eq(arm.target->second);
  return (pair & after.eq(split.y)).sum().item<int64_t>();
}
int64_t pair_broken(const Arm& arm, const Split& split, const torch::Tensor& before, const torch::Tensor& after) {
  const auto src = split.y.eq(arm.target->first);
  return (src & before.eq(split.y) & after.ne(split.y)).sum().item<int64_t>();
}

// The state of a fresh run: the base model (evaluated by prepare_arm) is the best so far.
AdaptState initial_state(const Arm& arm) {
  AdaptState st;
  st.gen = at::detail::createCPUGenerator(seeds::adapt_batches(arm.cfg.seed));  // the same batches for every arm
  auto acc = [](const Split& split, const torch::Tensor& pred) {
    return split.size() ? pred.eq(split.y).sum().item<double>() / static_cast<double>(split.size()) : 0.0;
  };
  st.base_val = acc(arm.data.val, arm.base_pred_val);
  st.base_test = acc(arm.data.test, arm.base_pred_test);
  const CorrectCount& c = arm.base_sel;
  st.best_correct = c.correct, st.best_acc = arm.select_on_test ? st.base_test : st.base_val;
  st.best_right = c.right.clone(), st.best_margin = c.margin.clone();
  if (arm.target) st.target_before = pair_errors(arm, arm.base_pred_val, arm.base_pred_test);
  return st;
}

// Steps 3 and 4's rule, one function for both candidates: the model's current weights become the
// best if they classify more of the selection split correctly; otherwise the best weights are
// restored. Rows the best gets wrong are counted first, then its right ones by rising margin
// (reference_order), so a losing candidate stops early. Returns the candidate's selection accuracy, NaN when it lost before being fully counted.
double accept_if_better(const Arm& arm, NetImpl& model, AdaptState& st, Best& best, bool* accepted) {
  ScopeTimer t(st.time.evaluation);
  const int64_t n = arm.sel->size();
  std::vector<torch::Tensor> groups;
  if (arm.ac.early_reject) {
    groups = reference_order(st.best_right, st.best_margin);
  } else {
    groups = {torch::arange(n, torch::kInt64)};
  }
  CorrectCount c = count_correct(model, *arm.sel, groups, arm.ac.early_reject ? st.best_correct : -1,
                                 arm.data.norm, arm.device, arm.eval_batch);
  *accepted = c.beats(st.best_correct);
  if (*accepted && arm.ac.max_break_rate < 1.0 && arm.base_right_sel_count > 0) {
    // adapt.max_break_rate: the share of the base's right selection answers the candidate gets wrong.
    const int64_t broken = (arm.base_right_sel & c.right.logical_not()).sum().item<int64_t>();
    if (static_cast<double>(broken) / arm.base_right_sel_count > arm.ac.max_break_rate) {
      *accepted = false;
      ++st.rejected_breaks;
    }
  }
  if (*accepted) {
    st.best_correct = c.correct, st.best_acc = static_cast<double>(c.correct) / n;
    st.best_right = c.right, st.best_margin = c.margin;
    best.weights = snapshot_state(model);
  } else {
    restore_state(model, best.weights);
  }
  return c.complete ? static_cast<double>(c.correct) / n : std::numeric_limits<double>::quiet_NaN();
}

void reject_nonfinite(NetImpl& model, AdaptState& st, const Best& best, const std::string& why) {
  ++st.rejected_nonfinite;
  restore_state(model, best.weights);
  spdlog::warn("batch {}: {}; rejected", st.batches, why);
}

// Step 1: the batch's inputs that the current model gets wrong (with adapt.target, only the pair's).
torch::Tensor failing_inputs(const Arm& arm, NetImpl& model, AdaptState& st, const torch::Tensor& idx) {
  ScopeTimer t(st.time.prediction);
  auto pred = predict(model, arm.data.train.x.index_select(0, idx), arm.data.norm, arm.device, arm.eval_batch);
  auto labels = arm.data.train.y.index_select(0, idx);
  auto wrong = pred.ne(labels);
  if (arm.target) wrong &= labels.eq(arm.target->first) & pred.eq(arm.target->second);
  return idx.index_select(0, wrong.nonzero().flatten());
}

// adapt.bn_recalibrate: the running statistics of weights just changed by averaging, recomputed.
void recalibrate(const Arm& arm, NetImpl& model) {
  if (arm.bn_images.defined()) recalibrate_batchnorm(model, arm.bn_images, arm.data.norm, arm.device, arm.eval_batch);
}

// Step 2: the strategy's per-input updates over the failing inputs, composed into one affine map
// and applied. Returns how many inputs moved the weights; *finite is false when they left the reals
// (the weights are then untouched).
int64_t adjust(const Arm& arm, NetImpl& model, AdaptState& st, const torch::Tensor& failing, bool* finite) {
  torch::Tensor right;
  {
    ScopeTimer t(st.time.prediction);
    right = arm.cache->rows(failing);  // (F, n): which rDLMs classify each failing input correctly
  }
  ScopeTimer t(st.time.adjustment);
  AffineUpdate upd = compose_updates(right, arm.strategy, arm.direction, arm.ac.step, arm.step_mode);
  *finite = true;
  if (upd.adjusted > 0) {
    auto w = apply_update(flatten_weights(model, arm.layout), arm.R, upd);
    *finite = all_finite(w);
    if (*finite) {
      assign_weights(model, arm.layout, w);
      recalibrate(arm, model);
    }
  }
  return upd.adjusted;
}

// Step 4's training: the current (best) weights trained on the whole training split. False when it
// diverged or left non-finite weights.
bool retrain(const Arm& arm, NetImpl& model, AdaptState& st) {
  ScopeTimer t(st.time.retraining);
  ++st.retrains;
  try {
    train_model(model, arm.data, torch::Tensor(), arm.retrain, arm.device,
                seeds::retraining(arm.cfg.seed, st.batches));
  } catch (const TrainingDiverged& e) {
    spdlog::warn("batch {}: retraining diverged ({})", st.batches, e.what());
    return false;
  }
  return all_finite(flatten_weights(model, arm.layout));
}

// Training images that `steps` optimiser steps over the whole training split process: whole epochs
// (the last batch of each may be short), then the steps of the epoch they end in.
int64_t images_of_steps(int64_t steps, int64_t n_train, int64_t batch) {
  const int64_t per_epoch = (n_train + batch - 1) / batch;
  const int64_t full = steps / per_epoch, rest = steps - full * per_epoch;
  return full * n_train + std::min(rest * batch, n_train);
}

// Training images one retraining processes.
int64_t retrain_images(const Arm& arm) {
  return images_of_steps(arm.retrain.max_steps, arm.data.train.size(), arm.retrain.recipe.batch_size);
}

double selection_accuracy(const Arm& arm, NetImpl& model) {
  return accuracy(model, *arm.sel, arm.data.norm, arm.device, arm.eval_batch);
}

// The mean of the rDLMs `members` (rows of R) put into the model, BatchNorm recalibrated if asked.
void put_soup(const Arm& arm, NetImpl& model, const std::vector<int64_t>& members) {
  auto idx = torch::tensor(members, torch::kInt64).to(arm.R.device());
  assign_weights(model, arm.layout, arm.R.index_select(0, idx).mean(0));
  recalibrate(arm, model);
}

// Greedy soup (Wortsman et al. 2022): the rDLMs ranked by selection accuracy; start from the best and
// add each next one if the soup with it does at least as well on the selection split.
std::vector<int64_t> greedy_members(const Arm& arm, NetImpl& model, json& log) {
  const int64_t n = arm.R.size(0);
  std::vector<double> acc(n);
  for (int64_t k = 0; k < n; ++k) {  // each rDLM as a soup of one (recalibrated like every soup)
    put_soup(arm, model, {k});
    acc[k] = selection_accuracy(arm, model);
  }
  std::vector<int64_t> order(n);
  for (int64_t k = 0; k < n; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return acc[a] > acc[b]; });
  std::vector<int64_t> members = {order[0]};
  double cur = acc[order[0]];
  json tried = json::array();
  for (int64_t i = 1; i < n; ++i) {
    std::vector<int64_t> trial = members;
    trial.push_back(order[i]);
    put_soup(arm, model, trial);
    const double a = selection_accuracy(arm, model);
    tried.push_back({{"rdlm", order[i]}, {"acc", a}, {"kept", a >= cur}});
    if (a >= cur) members = trial, cur = a;
  }
  log["rdlm_selection_acc"] = acc;
  log["tried"] = tried;
  return members;
}

// none-matched: the base trained on the whole training split with the rDLMs' recipe for as many
// images as the rDLMs processed. Returns the images it processed; false in *ok when it diverged.
int64_t train_matching(const Arm& arm, NetImpl& model, bool* ok) {
  const Config& cfg = arm.cfg;
  const int64_t budget = rdlm_images(cfg), n_train = arm.data.train.size();
  TrainOptions o;
  o.recipe = finetune_recipe(cfg);
  o.max_steps = (budget + cfg.train.batch_size - 1) / cfg.train.batch_size;
  o.recipe.epochs = budget / n_train + 2;  // max_steps ends it
  o.keep_best = false;
  o.progress = false;
  o.log_epochs = false;
  o.label = "budget-matched training";
  o.device_train = arm.retrain.device_train;
  // Resumable like every training: saved each epoch and on SIGINT/SIGTERM (which then end the run).
  o.state_path = arm.start_state_path;
  o.state_key = {{"phase", "matching"}, {"arm", arm.state_key}};
  o.state_every_epochs = cfg.resume.every_epochs;
  o.resume_hint = "rerun the same command to resume the budget-matched training";
  *ok = true;
  try {
    TrainResult tr = train_model(model, arm.data, torch::Tensor(), o, arm.device, seeds::matched_training(cfg.seed));
    *ok = all_finite(flatten_weights(model, arm.layout));
    return images_of_steps(tr.steps, n_train, o.recipe.batch_size);
  } catch (const TrainingDiverged& e) {
    spdlog::warn("{}: budget-matched training diverged ({})", arm.name, e.what());
    *ok = false;
    return budget;
  }
}

// The arms with a start candidate in the registry (soup, greedy-soup, none-matched) begin with it,
// accepted by the loop's rule against the base; the loop that follows is the control's.
void start_candidate(const Arm& arm, NetImpl& model, AdaptState& st) {
  const StartCandidate kind = arm_info(arm.strategy).start;
  if (kind == StartCandidate::kNone) return;
  Best best{snapshot_state(model)};
  json start = {{"kind", to_string(arm.strategy)}};
  bool ok = true;
  if (kind == StartCandidate::kMatchedTraining) {
    ScopeTimer t(st.time.retraining);
    st.images_matching = train_matching(arm, model, &ok);
    start["images"] = st.images_matching;
  } else {
    ScopeTimer t(st.time.adjustment);
    std::vector<int64_t> members;
    if (kind == StartCandidate::kSoup) {
      for (int64_t k = 0; k < arm.R.size(0); ++k) members.push_back(k);
    } else {
      members = greedy_members(arm, model, start);
    }
    put_soup(arm, model, members);
    ok = all_finite(flatten_weights(model, arm.layout));
    start["members"] = members;
  }
  if (!ok) {
    reject_nonfinite(model, st, best, "the starting candidate is not usable");
    start["accepted"] = false;
    st.start = start;
    return;
  }
  {
    ScopeTimer t(st.time.evaluation);
    start["selection_acc"] = selection_accuracy(arm, model);
    start["test_acc"] = accuracy(model, arm.data.test, arm.data.norm, arm.device, arm.eval_batch);
  }
  bool accepted = false;
  accept_if_better(arm, model, st, best, &accepted);
  if (accepted) ++(kind == StartCandidate::kMatchedTraining ? st.accepted_retrains : st.accepted_adjustments);
  start["accepted"] = accepted;
  st.start = start;
  spdlog::info("{}: starting candidate: selection {:.2f}% (base {:.2f}%), {}", arm.name,
               100 * start["selection_acc"].get<double>(), 100 * (arm.select_on_test ? st.base_test : st.base_val),
               accepted ? "accepted" : "rejected");
}

// One batch of the method, APRICOT.md Phase 2 steps 1-4. Returns the batch's trace line. On return
// the model holds the best weights so far.
json adapt_step(const Arm& arm, NetImpl& model, AdaptState& st, Best& best, const torch::Tensor& idx) {
  const auto t0 = Clock::now();
  json line = {{"batch", st.batches}, {"pass", st.pass}, {"digest", (idx * 1000003 + 17).sum().item<int64_t>()}};
  // 1. The failing inputs.
  const torch::Tensor failing = failing_inputs(arm, model, st, idx);
  // 2. The composed update toward (and/or away from) the rDLMs' mean weights.
  int64_t adjusted = 0;
  bool finite = true, improved = false, accepted = false;
  if (arm.adjusting() && failing.size(0) > 0) adjusted = adjust(arm, model, st, failing, &finite);
  // 3. The adjusted weights are kept only if they beat the best on the selection split.
  double acc_adjusted = -1;
  if (adjusted > 0 && !finite) {
    reject_nonfinite(model, st, best, "adjusted weights are not finite");
  } else if (adjusted > 0) {
    acc_adjusted = accept_if_better(arm, model, st, best, &accepted);
    if (accepted) ++st.accepted_adjustments, improved = true;
  }
  // 4. Retraining; the retrained weights are a candidate by the same rule.
  double acc_retrained = -1;
  if (arm.retrain_due(st.batches)) {
    if (!retrain(arm, model, st)) {
      reject_nonfinite(model, st, best, "retrained weights are not usable");
    } else {
      acc_retrained = accept_if_better(arm, model, st, best, &accepted);
      if (accepted) ++st.accepted_retrains, improved = true;
    }
  }
  st.failing_inputs += failing.size(0);
  st.adjusted_inputs += adjusted;
  ++st.batches;
  st.since_improvement = improved ? 0 : st.since_improvement + 1;
  auto acc = [](double a) { return std::isnan(a) ? json(nullptr) : json(a); };  // null: lost before fully counted
  line.update({{"failing", failing.size(0)}, {"adjusted", adjusted}, {"acc_adjusted", acc(acc_adjusted)},
               {"acc_retrained", acc(acc_retrained)}, {"accepted", improved}, {"best_acc", st.best_acc},
               {"seconds", since(t0)}});
  return line;
}

// Step 5: patience and the time budget (passes and max_batches bound the loop itself).
std::optional<StopReason> stop_rule(const AdaptConfig& ac, const AdaptState& st, double elapsed) {
  if (ac.patience > 0 && st.since_improvement >= ac.patience) return StopReason::kPatience;
  if (ac.time_budget > 0 && elapsed >= ac.time_budget) return StopReason::kTimeBudget;
  return std::nullopt;
}

void draw_progress(Progress& progress, const Arm& arm, const AdaptState& st, int64_t batches_at_start,
                   double seconds_here) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "batch %lld/%lld  best %s %.2f%%  accepted %lld+%lld  ETA %s",
                static_cast<long long>(st.batches), static_cast<long long>(arm.total_batches),
                arm.select_on_test ? "test" : "val", 100 * st.best_acc,
                static_cast<long long>(st.accepted_adjustments), static_cast<long long>(st.accepted_retrains),
                format_duration(seconds_here / std::max<int64_t>(1, st.batches - batches_at_start) *
                                (arm.total_batches - st.batches))
                    .c_str());
  progress.draw(buf);
}

// The loop over batches, from wherever the state says, until the passes are done or a stop rule
// fires. Saves the state every resume.every_batches batches and on SIGINT/SIGTERM (then throws).
StopReason adapt_loop(const Arm& arm, NetImpl& model, AdaptState& st, AppendFile& trace, const RunClock& clock,
                      bool show_progress) {
  Best best{snapshot_state(model)};  // invariant: at every batch boundary the model holds the best weights
  Progress progress(arm.name, show_progress);
  const int64_t batches_at_start = st.batches;
  const int64_t n_train = arm.data.train.size(), B = arm.ac.batch_size;
  for (; st.pass < arm.ac.passes && st.batches < arm.total_batches; ++st.pass, st.next_batch = 0) {
    if (st.next_batch == 0) st.perm = torch::randperm(n_train, st.gen, torch::kInt64);
    while (st.next_batch < arm.batches_per_pass && st.batches < arm.total_batches) {
      const int64_t b = st.next_batch++;
      trace.append(adapt_step(arm, model, st, best, st.perm.slice(0, b * B, std::min(n_train, (b + 1) * B))).dump() + "\n");
      st.elapsed = clock.now();
      if (auto stop = stop_rule(arm.ac, st, st.elapsed)) return *stop;
      const bool interrupted = interrupt_requested();
      if (interrupted || (arm.cfg.resume.every_batches > 0 && st.batches % arm.cfg.resume.every_batches == 0)) {
        st.trace_bytes = trace.sync();
        save_adapt_state(arm.state_path, arm.state_key, st, model);
        save_cache(arm);
      }
      if (interrupted) {
        progress.finish();
        throw_interrupted(arm.name + ": state saved to " + meta_path_for(arm.state_path) + " after batch " +
                              std::to_string(st.batches),
                          "rerun the same command to resume");
      }
      if (progress.should_draw()) draw_progress(progress, arm, st, batches_at_start, since(clock.t0));
    }
  }
  progress.finish();
  const bool cut = arm.ac.max_batches > 0 && st.batches >= arm.ac.max_batches &&
                   st.batches < arm.ac.passes * arm.batches_per_pass;
  return cut ? StopReason::kMaxBatches : StopReason::kPasses;
}

json result_json(const Arm& arm, const AdaptState& st, StopReason stop, double final_val, double final_test,
                 const json& prov) {
  const AdaptTimes& t = st.time;
  // Training images this arm cost beyond the base model (which every arm shares).
  const int64_t rdlms = uses_rdlms(arm.strategy) ? rdlm_images(arm.cfg) : 0;
  const int64_t retraining = st.retrains * retrain_images(arm);
  const json images = {{"rdlms", rdlms}, {"matching", st.images_matching}, {"retraining", retraining},
                       {"total", rdlms + st.images_matching + retraining}};
  return {
      {"strategy", to_string(arm.strategy)},
      {"direction", to_string(arm.direction)},
      {"step_mode", to_string(arm.step_mode)},
      {"step", arm.ac.step},
      {"bn_recalibrate", arm.ac.bn_recalibrate},
      {"seed", arm.cfg.seed},
      {"selection", arm.ac.selection},
      {"base", {{"val_acc", st.base_val}, {"test_acc", st.base_test}}},
      {"final", {{"val_acc", final_val}, {"test_acc", final_test}}},
      {"gain_test", final_test - st.base_test},
      {"gain_val", final_val - st.base_val},
      {"batches", st.batches},
      {"failing_inputs", st.failing_inputs},
      {"adjusted_inputs", st.adjusted_inputs},
      {"accepted", st.accepted_adjustments + st.accepted_retrains},
      {"accepted_adjustments", st.accepted_adjustments},
      {"accepted_retrains", st.accepted_retrains},
      {"retrains", st.retrains},
      {"rejected_nonfinite", st.rejected_nonfinite},
      {"rejected_breaks", st.rejected_breaks},
      {"max_break_rate", arm.ac.max_break_rate},
      {"stopped_by", to_string(stop)},
      {"seconds", st.elapsed},
      {"time", {{"adjustment", t.adjustment}, {"prediction", t.prediction}, {"evaluation", t.evaluation},
                {"retraining", t.retraining},
                {"other", st.elapsed - t.adjustment - t.prediction - t.evaluation - t.retraining}}},
      {"start", st.start},
      {"images", images},
      {"rdlm_predictions", arm.cache ? arm.cache->predicted() : 0},
      {"weights", arm.layout.total},
      {"device", arm.device.str()},
      {"provenance", prov},
  };
}

// The outputs of a finished loop: the best model, result.json, the log line. The state goes last.
json finish(const Arm& arm, const WorkDir& wd, NetImpl& model, const ModelSpec& spec, AdaptState& st,
            StopReason stop, const RunClock& clock, const json& prov) {
  // Which selection inputs the final model (the best) gets right is in the state (best_right); only
  // the other split, and the selection split's classes for a target pair, need a pass.
  const bool need_val = arm.select_on_test || arm.target.has_value();
  torch::Tensor pred_val, pred_test;
  {
    ScopeTimer t(st.time.evaluation);
    if (need_val) pred_val = predict(model, arm.data.val.x, arm.data.norm, arm.device, arm.eval_batch);
    pred_test = predict(model, arm.data.test.x, arm.data.norm, arm.device, arm.eval_batch);
  }
  const int64_t classes = arm.data.classes;
  const Changes val = need_val ? compare_predictions(arm.data.val.y, arm.base_pred_val, pred_val, classes)
                               : compare_rightness(arm.data.val.y, arm.base_right_sel, st.best_right, classes);
  const Changes test = compare_predictions(arm.data.test.y, arm.base_pred_test, pred_test, classes);
  const double final_val = val.n ? static_cast<double>(val.right_after) / val.n : 0.0;
  const double final_test = test.n ? static_cast<double>(test.right_after) / test.n : 0.0;
  st.elapsed = clock.now();
  json result = result_json(arm, st, stop, final_val, final_test, prov);
  // What the repair fixed and broke against the base (the selection split is val unless selection: test).
  result["changes"] = {{"val", val.to_json()}, {"test", test.to_json()}};
  if (arm.target) {
    json after = pair_errors(arm, pred_val, pred_test);
    result["target"] = {{"pair", {arm.target->first, arm.target->second}}, {"errors_before", st.target_before},
                        {"errors_after", after},
                        {"repaired", {{"val", pair_repaired(arm, arm.data.val, arm.base_pred_val, pred_val)},
                                      {"test", pair_repaired(arm, arm.data.test, arm.base_pred_test, pred_test)}}},
                        {"broken", {{"val", pair_broken(arm, arm.data.val, arm.base_pred_val, pred_val)},
                                    {"test", pair_broken(arm, arm.data.test, arm.base_pred_test, pred_test)}}}};
    spdlog::info("{}: target pair {} -> {}: test errors {} -> {}, val errors {} -> {}", arm.name, arm.target->first,
                 arm.target->second, st.target_before["test"].get<int64_t>(), after["test"].get<int64_t>(),
                 st.target_before["val"].get<int64_t>(), after["val"].get<int64_t>());
  }
  json meta = checkpoint_meta(spec, arm.data, "adapt", arm.cfg.seed, arm.cfg);
  meta["metrics"] = {{"val_acc", final_val}, {"test_acc", final_test}};
  meta["result"] = result;
  save_checkpoint(wd.adapt_model(to_string(arm.strategy)), model, meta);
  write_json_atomic(wd.adapt_result(to_string(arm.strategy)), result);
  remove_state(arm.state_path);  // the result is safe on disk
  save_cache(arm);
  spdlog::info("{}: val {:.2f}% -> {:.2f}%  test {:.2f}% -> {:.2f}%  ({} batches, {} failing, {} adjusted, "
               "{} accepted, stopped by {}, {:.1f}s); test: {} repaired, {} broken",
               arm.name, 100 * st.base_val, 100 * final_val, 100 * st.base_test, 100 * final_test, st.batches,
               st.failing_inputs, st.adjusted_inputs, st.accepted_adjustments + st.accepted_retrains,
               to_string(stop), st.elapsed, test.repaired, test.broken);
  return result;
}

void check_target(const AdaptConfig& ac, const Dataset& data) {
  if (ac.target.empty() || (ac.target[0] < data.classes && ac.target[1] < data.classes)) return;
  config_error("config key 'adapt.target': classes [" + std::to_string(ac.target[0]) + ", " +
                   std::to_string(ac.target[1]) + "] do not exist in " + data.name + " (" +
                   std::to_string(data.classes) + " classes)",
               "use class indices 0.." + std::to_string(data.classes - 1));
}

}  // namespace

json run_adapt(const Config& cfg, const Dataset& data, const std::string& workdir, const torch::Device& device,
               const AdaptRequest& req) {
  const WorkDir wd(workdir);
  check_target(cfg.adapt, data);
  const json prov = provenance(cfg, wd, req.strategy);
  if (!req.force)
    if (auto old = reusable_result(wd.adapt_result(to_string(req.strategy)), prov)) return *old;
  FileLock lock;  // one process per strategy and work directory
  if (!lock.try_lock(wd.adapt_lock(to_string(req.strategy))))
    state_error("strategy " + to_string(req.strategy) + " is being adapted in '" + workdir + "' by " + lock.holder(),
                "wait for it to finish, or use another --workdir");
  if (req.force) remove_state(wd.adapt_state(to_string(req.strategy))), remove_state(wd.adapt_start_state(to_string(req.strategy)));
  const auto t_start = Clock::now();
  const ModelSpec spec = model_spec(cfg.model, data);
  if (!checkpoint_exists(wd.base_model()))
    state_error("no base model in '" + workdir + "' (" + wd.base_model() + " is missing)",
                "train it first: apricot train-base -c CONFIG -w " + workdir);
  LoadedModel base = load_checkpoint(wd.base_model());
  check_compatible(base, spec, data.fingerprint, "base model '" + wd.base_model() + "'");
  NetImpl& model = *base.model;
  model.to(device);
  const std::string base_crc32 = base.meta.value("weights", json::object()).value("crc32", "");
  auto arm = prepare_arm(cfg, data, wd, model, spec, device, req.strategy, prov, base_crc32);

  install_interrupt_handlers();  // from here on SIGINT/SIGTERM save the state and exit 130
  AdaptState st;
  if (!load_adapt_state(arm->state_path, arm->state_key, st, model, arm->name)) {
    st = initial_state(*arm);
    start_candidate(*arm, model, st);
    if (st.start.is_object()) {  // saved at once: a kill in the first batches does not redo it
      AdaptState saved = st;  // a resumed run counts the starting candidate's time, as the loop's
      saved.elapsed = since(t_start);
      save_adapt_state(arm->state_path, arm->state_key, saved, model);
      save_cache(*arm);
    }
    remove_state(arm->start_state_path);  // the loop's state has the candidate now
  }
  st.time.evaluation += arm->base_eval_seconds;
  const RunClock clock{st.elapsed, t_start};
  AppendFile trace(wd.adapt_trace(to_string(req.strategy)), st.trace_bytes);  // cut back to what the state has seen
  const StopReason stop = adapt_loop(*arm, model, st, trace, clock, req.progress);
  trace.sync();
  return finish(*arm, wd, model, spec, st, stop, clock, prov);
}

}  // namespace apricot
