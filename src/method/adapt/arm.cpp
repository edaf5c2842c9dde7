// An arm's fixed inputs (Arm), its starting state, and the steps every part of the loop uses.
#include "arm.hpp"

namespace apricot::adapt_detail {

void save_cache(const Arm& arm) {
  if (!arm.cache) return;
  try {
    arm.cache->save();
  } catch (const Error& e) {
    spdlog::warn("could not save the rDLM correctness cache ({}); it is only an optimisation", e.what());
  }
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
  use_constant_lr(retrain.recipe);
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
  const bool soup = start == StartCandidate::kSoup || start == StartCandidate::kGreedySoup ||
                    start == StartCandidate::kGreedySoupSplit;
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
  set_base_answers(*arm, other);
  arm->base_eval_seconds = since(t0);
  return arm;
}

void set_base_answers(Arm& arm, const torch::Tensor& other_pred) {
  arm.base_pred_val = arm.select_on_test ? other_pred : arm.base_sel.pred;
  arm.base_pred_test = arm.select_on_test ? arm.base_sel.pred : other_pred;
  arm.base_right_sel = arm.base_sel.right;
  arm.base_right_sel_count = arm.base_sel.correct;
}

std::unique_ptr<Arm> arm_from_parts(const Config& cfg, const Dataset& data, NetImpl& model, Strategy strategy,
                                    torch::Tensor R, torch::Tensor right_table) {
  const torch::Device cpu(torch::kCPU);
  auto arm = std::make_unique<Arm>(cfg, data, cpu, strategy);
  if (!cfg.adapt.target.empty()) arm->target.emplace(cfg.adapt.target[0], cfg.adapt.target[1]);
  arm->layout = weight_layout(model, cfg.adapt.adjust_buffers);
  arm->R = std::move(R);
  arm->cache = std::make_unique<CorrectnessCache>(std::move(right_table), data.train);
  arm->retrain = retrain_options(cfg, data.train.size());
  arm->retraining = cfg.adapt.retrain_every > 0 && arm->retrain.max_steps > 0;
  arm->base_sel = count_all(model, *arm->sel, data.norm, cpu, arm->eval_batch);
  set_base_answers(*arm, predict(model, (arm->select_on_test ? data.val : data.test).x, data.norm, cpu,
                                 arm->eval_batch));
  return arm;
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

bool settle_candidate(const Arm& arm, NetImpl& model, AdaptState& st, Best& best, const CorrectCount& c, bool better,
                      const torch::Tensor& rows) {
  bool accepted = better;
  const torch::Tensor base_right = rows.defined() ? arm.base_right_sel.index_select(0, rows) : arm.base_right_sel;
  const int64_t base_count = rows.defined() ? base_right.sum().item<int64_t>() : arm.base_right_sel_count;
  if (accepted && arm.ac.max_break_rate < 1.0 && base_count > 0) {
    // adapt.max_break_rate: the share of the base's right selection answers the candidate gets wrong.
    const torch::Tensor right = rows.defined() ? c.right.index_select(0, rows) : c.right;
    const int64_t broken = (base_right & right.logical_not()).sum().item<int64_t>();
    if (static_cast<double>(broken) / static_cast<double>(base_count) > arm.ac.max_break_rate) {
      accepted = false;
      ++st.rejected_breaks;
    }
  }
  if (accepted) {
    st.best_correct = c.correct, st.best_acc = static_cast<double>(c.correct) / static_cast<double>(arm.sel->size());
    st.best_right = c.right, st.best_margin = c.margin;
    best.weights = snapshot_state(model);
  } else {
    restore_state(model, best.weights);
  }
  return accepted;
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
  *accepted = settle_candidate(arm, model, st, best, c, c.beats(st.best_correct));
  return c.complete ? static_cast<double>(c.correct) / n : std::numeric_limits<double>::quiet_NaN();
}

void reject_nonfinite(NetImpl& model, AdaptState& st, const Best& best, const std::string& why) {
  ++st.rejected_nonfinite;
  restore_state(model, best.weights);
  spdlog::warn("batch {}: {}; rejected", st.batches, why);
}

// adapt.bn_recalibrate: the running statistics of weights just changed by averaging, recomputed.
void recalibrate(const Arm& arm, NetImpl& model) {
  if (arm.bn_images.defined()) recalibrate_batchnorm(model, arm.bn_images, arm.data.norm, arm.device, arm.eval_batch);
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

}  // namespace apricot::adapt_detail
