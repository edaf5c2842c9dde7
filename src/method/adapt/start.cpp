// The start candidates of the arm registry: the rDLMs' soup, the greedy soup, the budget-matched
// training of the matched control.
#include <ATen/CPUGeneratorImpl.h>

#include "arm.hpp"

namespace apricot::adapt_detail {

// The mean of the rDLMs `members` (rows of R) put into the model, BatchNorm recalibrated if asked.
void put_soup(const Arm& arm, NetImpl& model, const std::vector<int64_t>& members) {
  auto idx = torch::tensor(members, torch::kInt64).to(arm.R.device());
  assign_weights(model, arm.layout, arm.R.index_select(0, idx).mean(0));
  recalibrate(arm, model);
}

// Greedy soup (Wortsman et al. 2022): the rDLMs ranked by accuracy on `on` (the selection split, or
// one half of it); start from the best and add each next one if the soup with it does at least as
// well there.
std::vector<int64_t> greedy_members(const Arm& arm, NetImpl& model, const Split& on, json& log) {
  const int64_t n = arm.R.size(0);
  auto acc_on = [&] { return accuracy(model, on, arm.data.norm, arm.device, arm.eval_batch); };
  std::vector<double> acc(n);
  for (int64_t k = 0; k < n; ++k) {  // each rDLM as a soup of one (recalibrated like every soup)
    put_soup(arm, model, {k});
    acc[k] = acc_on();
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
    const double a = acc_on();
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

// greedy-soup-split's halves of the selection split: a seeded random half of its rows chooses the
// members, the other half judges the soup (rows in split order within each half). Random, because a
// split's rows may be in class order (image folders are read class by class).
std::pair<torch::Tensor, torch::Tensor> split_halves(const Arm& arm) {
  const int64_t n = arm.sel->size();
  auto gen = at::detail::createCPUGenerator(seeds::greedy_split(arm.cfg.seed));
  const torch::Tensor perm = torch::randperm(n, gen, torch::kInt64);
  return {std::get<0>(perm.slice(0, 0, n / 2).sort()), std::get<0>(perm.slice(0, n / 2).sort())};
}

// greedy-soup-split's verdict on the soup in `model`: the loop's rule (more right answers than the
// base, breaks within adapt.max_break_rate) on the judging half of the selection split only, the rows
// the members were not chosen on. Accepted, the soup becomes the best with its counts on the whole
// split (the loop goes on there); rejected, the base is restored.
bool accept_on_other_half(const Arm& arm, NetImpl& model, AdaptState& st, Best& best, const torch::Tensor& judge,
                          json& start) {
  const int64_t n = arm.sel->size();
  CorrectCount c = count_correct(model, *arm.sel, {torch::arange(n, torch::kInt64)}, -1, arm.data.norm, arm.device,
                                 arm.eval_batch);
  const int64_t base2 = arm.base_right_sel.index_select(0, judge).sum().item<int64_t>();
  const int64_t right2 = c.right.index_select(0, judge).sum().item<int64_t>();
  start["judge_right"] = right2;
  start["judge_base_right"] = base2;
  return settle_candidate(arm, model, st, best, c, right2 > base2, judge);
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
    } else if (kind == StartCandidate::kGreedySoupSplit) {
      const torch::Tensor choose = split_halves(arm).first;
      members = greedy_members(arm, model, Split{arm.sel->x.index_select(0, choose), arm.sel->y.index_select(0, choose)},
                               start);
      start["choose_rows"] = int64_values(choose);
    } else {
      members = greedy_members(arm, model, *arm.sel, start);
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
    // The candidate as it is, before any retraining or selection: the loop-free comparison of the
    // study (scripts/study-analysis.py) reads its answers per test image.
    const torch::Tensor pred = predict(model, arm.data.test.x, arm.data.norm, arm.device, arm.eval_batch);
    start["test_acc"] = pred.eq(arm.data.test.y).to(torch::kDouble).mean().item<double>();
    start["test_after"] = int64_values(pred);
  }
  bool accepted = false;
  if (kind == StartCandidate::kGreedySoupSplit) {
    ScopeTimer t(st.time.evaluation);
    const torch::Tensor judge = split_halves(arm).second;
    start["judge_rows"] = int64_values(judge);
    accepted = accept_on_other_half(arm, model, st, best, judge, start);
  } else {
    accept_if_better(arm, model, st, best, &accepted);
  }
  if (accepted) ++(kind == StartCandidate::kMatchedTraining ? st.accepted_retrains : st.accepted_adjustments);
  start["accepted"] = accepted;
  st.start = start;
  spdlog::info("{}: starting candidate: selection {:.2f}% (base {:.2f}%), {}", arm.name,
               100 * start["selection_acc"].get<double>(), 100 * (arm.select_on_test ? st.base_test : st.base_val),
               accepted ? "accepted" : "rejected");
}

}  // namespace apricot::adapt_detail
