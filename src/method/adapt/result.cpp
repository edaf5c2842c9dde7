// result.json (accuracies, repairs and breaks, images, times) and the final checkpoint.
#include "arm.hpp"

namespace apricot::adapt_detail {

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
  // Per test image, for bootstraps over seeds and images (scripts/study-analysis.py).
  result["test_answers"] = answers_json(arm.data.test.y, arm.base_pred_test, pred_test);
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

}  // namespace apricot::adapt_detail
