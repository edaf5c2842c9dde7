// The adaptation loop: batches over a seeded permutation of the training split (the same batches
// for every strategy and the control arm), the composed weight adjustment on the failing inputs,
// acceptance on the selection split, periodic retraining whose result is a candidate too.
// Predictions of a batch are taken once, before its adjustments (as the public ports do).
// A candidate is compared with the best by its count of correct selection answers; the count stops
// as soon as the candidate can no longer win (eval.hpp), which leaves every decision unchanged.
#include "arm.hpp"
#include "apricot/models/gated.hpp"
#include "apricot/method/field.hpp"

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
  using namespace adapt_detail;
  if (is_field_arm(req.strategy)) return run_field_arm(cfg, data, workdir, device, req);  // method/field.hpp
  const WorkDir wd(workdir);
  check_target(cfg.adapt, data);
  const json prov = provenance(cfg, wd, req.strategy);
  if (!req.force)
    if (auto old = reusable_result(wd.adapt_result(to_string(req.strategy)), prov, req.strategy,
                                   {"strategy", "base", "final", "gain_test", "selection", "accepted", "seconds"},
                                   "another base model, other rDLMs or another configuration"))
      return *old;
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
  refuse_gated(*base.model, "base model '" + wd.base_model() + "'", "weight adaptation (strategy " + to_string(req.strategy) + ")");
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
