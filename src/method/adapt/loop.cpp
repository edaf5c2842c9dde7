// One adaptation batch (adapt_step: the failing inputs, the composed adjustment, the retraining) and
// the loop over batches with its stop rules, progress and saved states.
#include "arm.hpp"

namespace apricot::adapt_detail {

// Step 1: the batch's inputs that the current model gets wrong (with adapt.target, only the pair's).
torch::Tensor failing_inputs(const Arm& arm, NetImpl& model, AdaptState& st, const torch::Tensor& idx) {
  ScopeTimer t(st.time.prediction);
  auto pred = predict(model, arm.data.train.x.index_select(0, idx), arm.data.norm, arm.device, arm.eval_batch);
  auto labels = arm.data.train.y.index_select(0, idx);
  auto wrong = pred.ne(labels);
  if (arm.target) wrong &= labels.eq(arm.target->first) & pred.eq(arm.target->second);
  return idx.index_select(0, wrong.nonzero().flatten());
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

// One batch of the method, docs/METHOD.md, Phase 2, steps 1-4. Returns the batch's trace line. On return
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

}  // namespace apricot::adapt_detail
