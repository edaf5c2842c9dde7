// The field arms (field.hpp): the selection rule, each arm's candidates, result.json.
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "apricot/core/clock.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/seeds.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/io/resume.hpp"
#include "apricot/io/workdir.hpp"
#include "apricot/method/adapt.hpp"
#include "apricot/method/adjustment.hpp"
#include "apricot/method/field.hpp"
#include "apricot/method/recipe.hpp"
#include "apricot/models/gated.hpp"
#include "apricot/models/state.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/train/train.hpp"
#include "internal.hpp"

namespace apricot {

using nlohmann::json;

namespace field_detail {

torch::Tensor Judge::answers(NetImpl& m, const Split& s) const { return predict(m, s.x, data.norm, device, eval_batch); }

FieldAnswers Judge::answers_of(NetImpl& m) const {
  return {answers(m, data.val), answers(m, field.pick), answers(m, field.holdout), answers(m, data.test)};
}

double share(const torch::Tensor& right) {
  return right.numel() ? right.to(torch::kDouble).mean().item<double>() : 0.0;
}

namespace {

// One arm's search over its candidates.
struct Search {
  const Config& cfg;
  const Dataset& data;
  const FieldSet& field;
  const Judge& judge;
  NetImpl& model;
  torch::Device device;
  Strategy arm;
  std::vector<torch::Tensor> base_state;
  WeightLayout layout;           // with the BatchNorm statistics: interpolation and soups move them too
  torch::Tensor base_flat;       // (P) on the device
  Chooser chooser;
  int64_t images = 0;
  double finetune_seconds = 0, evaluation_seconds = 0;
  std::vector<torch::Tensor> endpoints;  // interpolating arms: per learning rate, the far end of the line
  json per_lr = json::array();

  void to_base() { restore_state(model, base_state); }

  Verdict consider(const json& at) {
    ScopeTimer t(evaluation_seconds);
    return chooser.consider(judge, model, at);
  }

  // One fine-tune from the base; false when it diverged (its candidates so far stay considered).
  bool tune(const FineTune& ft, const std::function<void(int64_t)>& checkpoint) {
    to_base();
    const auto t0 = Clock::now();
    double eval_before = evaluation_seconds;
    try {
      images += fine_tune(cfg, data, field, model, device, ft, checkpoint);
    } catch (const TrainingDiverged& e) {
      spdlog::warn("adapt-{}: {}", to_string(arm), e.what());
      images += ft.steps * cfg.field.batch_size;
      finetune_seconds += since(t0) - (evaluation_seconds - eval_before);
      return false;
    }
    finetune_seconds += since(t0) - (evaluation_seconds - eval_before);
    return true;
  }

  // Candidates on the line from the base to `end` (flat, in `layout`).
  void walk(const torch::Tensor& end, double lr, json& log) {
    for (double alpha : interp_alphas(cfg.field.interp_points)) {
      to_base();
      assign_weights(model, layout, interpolate(base_flat, end, alpha));
      const Verdict v = consider({{"lr", lr}, {"alpha", alpha}});
      json e = v.to_json();
      e["alpha"] = alpha;
      log.push_back(e);
    }
  }

  // BatchNorm statistics of a soup recomputed on the mix the members trained on: the field fit
  // images and as many replayed training images per field image as field.replay says.
  // The images are shuffled (seeded) first: the recalibration averages the statistics of equal
  // chunks, and each chunk must hold the mix, as the members' training batches did.
  void recalibrate() {
    const int64_t n_replay = std::llround(cfg.field.replay * static_cast<double>(field.fit.size()));
    const uint64_t seed = seeds::field_finetune(cfg.seed, 0, 0);
    torch::Tensor x = field.fit.x;
    if (n_replay > 0) x = torch::cat({x, recalibration_images(data.train, seed, n_replay)});
    auto gen = at::detail::createCPUGenerator(seed ^ 0x5EC0ULL);
    x = x.index_select(0, torch::randperm(x.size(0), gen, torch::kInt64));
    if (recalibrate_batchnorm(model, x, data.norm, device, 256) == 0 && !warned_recalibration) {
      for (const auto& b : model.named_buffers())
        if (b.key().size() >= 12 && b.key().compare(b.key().size() - 12, 12, "running_mean") == 0) {
          spdlog::warn("adapt-{}: the soup's BatchNorm statistics are not recomputed: this model's normalisation "
                       "layers are not apricot's built-in BatchNorm (a TorchScript module); they stay averaged",
                       to_string(arm));
          warned_recalibration = true;
          break;
        }
    }
  }
  bool warned_recalibration = false;

  // The members of a soup at learning rate number i, as rows of R (K, P).
  std::optional<torch::Tensor> members(int64_t i) {
    const FieldConfig& fc = cfg.field;
    std::vector<torch::Tensor> rows;
    for (int64_t k = 0; k < fc.members; ++k) {
      FineTune ft{fc.steps / fc.members, fc.lrs[i], seeds::field_finetune(cfg.seed, k + 1, i), false, 0};
      if (!tune(ft, [](int64_t) {})) return std::nullopt;
      rows.push_back(flatten_weights(model, layout));
    }
    return torch::stack(rows);
  }

  // apricot-interp's far end: strategy 2 of the engine on the field failures of the base, with the
  // per-batch step 1, i.e. the members weighted by how many of those failures each gets right
  // (each failure's right members sharing its weight). The base when no member gets any right.
  torch::Tensor apricot_target(const torch::Tensor& R, json& log) {
    to_base();
    const torch::Tensor failing = judge.answers(model, field.fit).ne(field.fit.y).nonzero().flatten();
    log["failing"] = failing.size(0);
    log["adjusted"] = 0;
    if (failing.size(0) == 0) return base_flat.clone();
    const Split fails{field.fit.x.index_select(0, failing), field.fit.y.index_select(0, failing)};
    std::vector<torch::Tensor> cols;
    for (int64_t k = 0; k < R.size(0); ++k) {
      to_base();
      assign_weights(model, layout, R[k]);
      cols.push_back(judge.answers(model, fails).eq(fails.y));
    }
    const torch::Tensor correct = torch::stack(cols, 1);  // (F, K)
    log["members_right"] = int64_values(correct.sum(0));  // failures each member gets right
    const AffineUpdate upd = compose_updates(correct, Strategy::k2, Direction::kIntent, 1.0, StepMode::kPerBatch);
    log["adjusted"] = upd.adjusted;
    if (upd.adjusted == 0) return base_flat.clone();
    return apply_update(base_flat, R, upd);
  }

  void run() {
    const FieldConfig& fc = cfg.field;
    to_base();
    {
      // The base is the reference: it breaks nothing by definition, whatever rounding a differently
      // batched evaluation of its validation answers might give.
      ++chooser.candidates;
      const double val_acc = share(judge.base.val.eq(data.val.y)), field_acc = share(judge.base.pick.eq(field.pick.y));
      chooser.score = (val_acc + field_acc) / 2, chooser.state = snapshot_state(model), chooser.where = {{"base", true}};
    }
    for (int64_t i = 0; i < static_cast<int64_t>(fc.lrs.size()); ++i) {
      const double lr = fc.lrs[i];
      json log = {{"lr", lr}};
      if (arm == Strategy::kFinetune || arm == Strategy::kHeadOnly) {
        json ckpts = json::array();
        FineTune ft{fc.steps, lr, seeds::field_finetune(cfg.seed, 0, i), arm == Strategy::kHeadOnly,
                    fc.checkpoint_every};
        log["finite"] = tune(ft, [&](int64_t step) {
          json e = consider({{"lr", lr}, {"step", step}}).to_json();
          e["step"] = step;
          ckpts.push_back(e);
        });
        log["checkpoints"] = ckpts;
      } else {
        torch::Tensor end;
        if (arm == Strategy::kFinetuneInterp) {
          FineTune ft{fc.steps, lr, seeds::field_finetune(cfg.seed, 0, i), false, 0};
          if (tune(ft, [](int64_t) {})) end = flatten_weights(model, layout);
        } else if (auto R = members(i)) {
          const torch::Tensor target = arm == Strategy::kSoupInterp ? R->mean(0) : apricot_target(*R, log);
          to_base();
          if (arm == Strategy::kApricotInterp && log.value("adjusted", int64_t{0}) == 0) {
            end = base_flat.clone();  // nothing to move toward: the line is the base, statistics included
          } else {
            assign_weights(model, layout, target);
            recalibrate();
            end = flatten_weights(model, layout);
          }
        }
        log["finite"] = end.defined() && torch::isfinite(end).all().item<bool>();
        json path = json::array();
        if (log["finite"].get<bool>()) walk(end, lr, path);
        log["path"] = path;
        endpoints.push_back(log["finite"].get<bool>() ? end : torch::Tensor());
      }
      per_lr.push_back(log);
      spdlog::info("adapt-{}: lr {} done, best score so far {:.4f} ({})", to_string(arm), lr, chooser.score,
                   chooser.where.dump());
    }
  }
};

json changes_json(const Split& s, const torch::Tensor& before, const torch::Tensor& after, int64_t classes) {
  return compare_predictions(s.y, before, after, classes).to_json();
}

// The chosen line's candidates measured on the hold-out and the test split: the report's Pareto chart
// (field hold-out gain against clean test breaks). Measuring only: nothing here is chosen.
json measured_path(Search& s, const FieldAnswers& base) {
  if (s.endpoints.empty() || !s.chooser.where.contains("lr")) return json::array();
  const double lr = s.chooser.where["lr"].get<double>();
  const auto& lrs = s.cfg.field.lrs;
  const auto i = std::find(lrs.begin(), lrs.end(), lr) - lrs.begin();
  if (i >= static_cast<int64_t>(s.endpoints.size()) || !s.endpoints[i].defined()) return json::array();
  json out = json::array();
  const int64_t classes = s.data.classes;
  for (double alpha : interp_alphas(s.cfg.field.interp_points)) {
    s.to_base();
    assign_weights(s.model, s.layout, interpolate(s.base_flat, s.endpoints[i], alpha));
    const torch::Tensor hold = s.judge.answers(s.model, s.field.holdout);
    const torch::Tensor test = s.judge.answers(s.model, s.data.test);
    const Changes h = compare_predictions(s.field.holdout.y, base.hold, hold, classes);
    const Changes t = compare_predictions(s.data.test.y, base.test, test, classes);
    out.push_back({{"alpha", alpha}, {"holdout_acc", acc_of(hold, s.field.holdout)},
                   {"holdout_repaired_rate", h.repaired_rate()}, {"holdout_broken_rate", h.broken_rate()},
                   {"test_acc", acc_of(test, s.data.test)}, {"test_broken_rate", t.broken_rate()}});
  }
  return out;
}

json provenance_of(const Config& cfg, const WorkDir& wd, Strategy s, const FieldSet& field) {
  return {{"base_crc32", weights_crc32(wd.base_model())},
          {"config", recipe_key(to_json(cfg), Phase::kAdapt, s)},
          {"field", field.fingerprint}};
}

}  // namespace
}  // namespace field_detail

json run_field_arm(const Config& cfg, const Dataset& data, const std::string& workdir, const torch::Device& device,
                   const AdaptRequest& req) {
  using namespace field_detail;
  const auto t0 = Clock::now();
  const WorkDir wd(workdir);
  const std::string name = to_string(req.strategy);
  const FieldSet field = load_field(cfg.field, cfg.data, data, cfg.seed);  // bad field data: nothing written yet
  if (cfg.adapt.max_break_rate >= 1.0)
    spdlog::warn("{}: adapt.max_break_rate is 1, so any number of the base's right validation answers may break; "
                 "set it (e.g. 0.01) to bound what the repair may break",
                 name);
  const json prov = provenance_of(cfg, wd, req.strategy, field);
  if (!req.force)
    if (auto old = reusable_result(wd.adapt_result(name), prov, req.strategy,
                                   {"strategy", "base", "final", "field", "provenance"},
                                   "another base model, field set or configuration"))
      return *old;
  if (!checkpoint_exists(wd.base_model()))
    state_error("no base model in '" + workdir + "' (" + wd.base_model() + " is missing)",
                "train it first: apricot train-base -c CONFIG -w " + workdir);
  FileLock lock;
  if (!lock.try_lock(wd.adapt_lock(name)))
    state_error("arm " + name + " is being run in '" + workdir + "' by " + lock.holder(),
                "wait for it to finish, or use another --workdir");
  const ModelSpec spec = model_spec(cfg.model, data);
  LoadedModel base = load_checkpoint(wd.base_model());
  check_compatible(base, spec, data.fingerprint, "base model '" + wd.base_model() + "'");
  refuse_gated(*base.model, "base model '" + wd.base_model() + "'", "a field repair (arm " + name + ")");
  NetImpl& model = *base.model;
  model.to(device);
  model.eval();

  Judge judge{data, field, device, cfg.train.eval_batch_size, cfg.adapt.max_break_rate, {}, {}, 0};
  double base_eval_seconds = 0;
  {
    ScopeTimer t(base_eval_seconds);
    judge.base = judge.answers_of(model);
  }
  judge.base_val_right = judge.base.val.eq(data.val.y);
  const int64_t base_right = judge.base_val_right.sum().item<int64_t>();
  judge.allowed_breaks = static_cast<int64_t>(std::floor(cfg.adapt.max_break_rate * static_cast<double>(base_right)));
  spdlog::info("adapt-{}: field set {}: {} to repair on, {} held out; base field accuracy {:.2f}% / {:.2f}%, "
               "at most {} validation breaks",
               name, field.source, field.fit.size(), field.holdout.size(), 100 * acc_of(judge.base.pick, field.pick),
               100 * acc_of(judge.base.hold, field.holdout), judge.allowed_breaks);

  const WeightLayout layout = weight_layout(model, /*include_buffers=*/true);
  const bool gated = req.strategy == Strategy::kGated || req.strategy == Strategy::kGatedDistilled;
  Search s{cfg, data, field, judge, model, device, req.strategy, snapshot_state(model), layout,
           flatten_weights(model, layout), Chooser{}, 0, 0, 0, {}, json::array()};
  GatedOutcome g;
  json path = json::array();
  if (gated) {
    // gated-distilled's teacher: the stored gated result of the same inputs when there is one (the
    // same search, seed for seed), else the search now.
    std::optional<GatedOutcome> stored;
    if (req.strategy == Strategy::kGatedDistilled && checkpoint_exists(wd.adapt_model("gated"))) {
      try {
        if (auto r = reusable_result(wd.adapt_result("gated"), provenance_of(cfg, wd, Strategy::kGated, field),
                                     Strategy::kGated, {"field", "images", "provenance"}, "other inputs")) {
          LoadedModel t = load_checkpoint(wd.adapt_model("gated"));
          t.model->to(device);
          t.model->eval();
          stored = stored_gated(*r, t.model);
          spdlog::info("adapt-{}: the teacher is {} (made from the same inputs)", name, wd.adapt_model("gated"));
        }
      } catch (const Error&) {
        stored.reset();  // another recipe, or damaged: search again
      }
    }
    g = stored ? *stored : run_gated(cfg, data, field, judge, model, spec, device);
    if (req.strategy == Strategy::kGatedDistilled) distil_gated(g, cfg, data, field, judge, model, spec, device);
  } else {
    s.run();
    path = measured_path(s, judge.base);
    restore_state(model, s.chooser.state);
  }
  NetImpl& chosen = gated && g.chosen ? *g.chosen : model;
  FieldAnswers after;
  double final_eval_seconds = 0;
  {
    ScopeTimer t(final_eval_seconds);
    after = judge.answers_of(chosen);
  }
  const int64_t classes = data.classes;
  const double final_val = acc_of(after.val, data.val), final_test = acc_of(after.test, data.test);
  const double base_val = acc_of(judge.base.val, data.val), base_test = acc_of(judge.base.test, data.test);
  const json where = gated ? g.where : s.chooser.where;
  const bool moved = !where.value("base", false);
  const double seconds = since(t0);
  const double finetune = gated ? g.finetune_seconds : s.finetune_seconds;
  const double evaluation = (gated ? g.evaluation_seconds : s.evaluation_seconds) + base_eval_seconds + final_eval_seconds;
  json time = {{"finetune", finetune}, {"evaluation", evaluation},
               {"other", seconds - finetune - evaluation - g.gate_seconds}};
  json images = {{"field_finetune", gated ? g.finetune_images : s.images}};
  if (gated) {
    time["gate"] = g.gate_seconds;
    images["gate"] = g.gate_images;
    if (req.strategy == Strategy::kGatedDistilled) images["distill"] = g.distill_images;
  }
  images["total"] = gated ? g.finetune_images + g.gate_images + g.distill_images : s.images;
  json result = {
      {"strategy", name},
      {"seed", cfg.seed},
      {"selection", "field+val"},
      {"base", {{"val_acc", base_val}, {"test_acc", base_test}}},
      {"final", {{"val_acc", final_val}, {"test_acc", final_test}}},
      {"gain_test", final_test - base_test},
      {"gain_val", final_val - base_val},
      {"accepted", moved ? 1 : 0},
      {"max_break_rate", cfg.adapt.max_break_rate},
      {"seconds", seconds},
      {"time", time},
      {"images", images},
      {"changes", {{"val", changes_json(data.val, judge.base.val, after.val, classes)},
                   {"test", changes_json(data.test, judge.base.test, after.test, classes)}}},
      {"field",
       {{"source", field.source},
        {"fingerprint", field.fingerprint},
        {"split", {{"fit", field.fit.size()}, {"pick", field.pick.size()}, {"holdout", field.holdout.size()},
                   {"select", cfg.field.select}}},
        {"selection", changes_json(field.pick, judge.base.pick, after.pick, classes)},
        {"holdout", changes_json(field.holdout, judge.base.hold, after.hold, classes)},
        {"chosen", where},
        {"score", gated ? g.score : s.chooser.score},
        {"candidates", gated ? g.candidates : s.chooser.candidates},
        {"refused_breaks", gated ? g.refused_breaks : s.chooser.refused_breaks},
        {"refused_nonfinite", gated ? 0 : s.chooser.refused_nonfinite},
        {"allowed_val_breaks", judge.allowed_breaks},
        {"search", gated ? g.search : s.per_lr},
        {"path", path},
        // Per image, for bootstraps over the hold-out (scripts/field-analysis.py): labels and both answers.
        {"holdout_answers", answers_json(field.holdout.y, judge.base.hold, after.hold)},
        {"test_answers", answers_json(data.test.y, judge.base.test, after.test)}}},
      {"weights", layout.total},
      {"device", device.str()},
      {"provenance", prov},
  };
  if (gated) result["field"]["gates"] = g.gates, result["cost"] = g.cost;
  if (g.teacher_seconds > 0) result["time"]["teacher_stored"] = g.teacher_seconds;
  json meta = checkpoint_meta(spec, data, "adapt", cfg.seed, cfg);
  meta["metrics"] = {{"val_acc", final_val}, {"test_acc", final_test}};
  meta["result"] = result;
  if (auto* composite = dynamic_cast<GatedNetImpl*>(&chosen)) meta["composite"] = gated_meta(*composite);
  save_checkpoint(wd.adapt_model(name), chosen, meta);
  write_json_atomic(wd.adapt_result(name), result);
  const json& h = result["field"]["holdout"];
  spdlog::info("adapt-{}: field hold-out {:.2f}% -> {:.2f}% ({} repaired, {} broken), test {:.2f}% -> {:.2f}% "
               "({} broken), chose {}, {} images, {:.1f}s",
               name, 100 * h["accuracy_before"].get<double>(), 100 * h["accuracy_after"].get<double>(),
               h["repaired"]["count"].get<int64_t>(), h["broken"]["count"].get<int64_t>(), 100 * base_test,
               100 * final_test, result["changes"]["test"]["broken"]["count"].get<int64_t>(), where.dump(),
               result["images"]["total"].get<int64_t>(), seconds);
  return result;
}

}  // namespace apricot
