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
#include "apricot/models/state.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/train/train.hpp"
#include "internal.hpp"

namespace apricot {

using nlohmann::json;

namespace field_detail {
namespace {

// A model's answers on the four splits a field arm looks at (int64 predictions on the CPU).
struct FieldAnswers {
  torch::Tensor val, sel, hold, test;
};

// The selection rule (field.hpp) with the base's answers it compares against.
struct Judge {
  const Dataset& data;
  const FieldSet& field;
  torch::Device device;
  int64_t eval_batch;
  double bound;                 // adapt.max_break_rate
  FieldAnswers base;
  torch::Tensor base_val_right;  // (N_val) bool
  int64_t allowed_breaks = 0;

  torch::Tensor answers(NetImpl& m, const Split& s) const {
    return predict(m, s.x, data.norm, device, eval_batch);
  }
};

// A candidate's standing under the rule. A candidate stops being evaluated as soon as it breaks more
// validation answers than allowed (the same decisions, sooner): its accuracies are then unknown
// (complete false, null in the logs) and `breaks` is the count when it stopped.
struct Verdict {
  double field_acc = 0, val_acc = 0, score = 0;
  int64_t breaks = 0;
  bool admissible = true;
  bool complete = true;
  json to_json() const {
    auto known = [&](double v) { return complete ? json(v) : json(nullptr); };
    return {{"selection_field_acc", known(field_acc)}, {"val_acc", known(val_acc)}, {"score", known(score)},
            {"val_breaks", breaks}, {"admissible", admissible}};
  }
};

double share(const torch::Tensor& right) {
  return right.numel() ? right.to(torch::kDouble).mean().item<double>() : 0.0;
}

Verdict judge(const Judge& j, NetImpl& m) {
  Verdict v;
  const Split& val = j.data.val;
  const int64_t n = val.size(), chunk = std::min<int64_t>(j.eval_batch, 256);
  int64_t right = 0;
  for (int64_t at = 0; at < n; at += chunk) {  // the validation split first, in chunks: breaks end it early
    const int64_t end = std::min(n, at + chunk);
    const torch::Tensor r = predict(m, val.x.slice(0, at, end), j.data.norm, j.device, j.eval_batch).eq(val.y.slice(0, at, end));
    right += r.sum().item<int64_t>();
    v.breaks += (j.base_val_right.slice(0, at, end) & ~r).sum().item<int64_t>();
    if (v.breaks > j.allowed_breaks) {
      v.admissible = v.complete = false;
      return v;
    }
  }
  v.val_acc = n ? static_cast<double>(right) / static_cast<double>(n) : 0.0;
  v.field_acc = share(j.answers(m, j.field.sel).eq(j.field.sel.y));
  v.score = (v.val_acc + v.field_acc) / 2;
  return v;
}

// The best admissible candidate so far; starts with the base.
struct Chooser {
  double score = -std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> state;
  json where;
  int64_t candidates = 0, refused_breaks = 0, refused_nonfinite = 0;

  Verdict consider(const Judge& j, NetImpl& m, const json& at) {
    ++candidates;
    for (const auto& p : m.parameters())
      if (!torch::isfinite(p).all().item<bool>()) {
        ++refused_nonfinite;
        Verdict bad;
        bad.admissible = bad.complete = false;
        return bad;
      }
    const Verdict v = judge(j, m);
    if (!v.admissible) ++refused_breaks;
    if (v.admissible && v.score > score) score = v.score, state = snapshot_state(m), where = at;
    return v;
  }
};

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

  // BatchNorm statistics of a soup recomputed on the mix the members trained on: the field selection
  // images and as many replayed training images per field image as field.replay says.
  // The images are shuffled (seeded) first: the recalibration averages the statistics of equal
  // chunks, and each chunk must hold the mix, as the members' training batches did.
  void recalibrate() {
    const int64_t n_replay = std::llround(cfg.field.replay * static_cast<double>(field.sel.size()));
    const uint64_t seed = seeds::field_finetune(cfg.seed, 0, 0);
    torch::Tensor x = field.sel.x;
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
    const torch::Tensor failing = judge.base.sel.ne(field.sel.y).nonzero().flatten();
    log["failing"] = failing.size(0);
    log["adjusted"] = 0;
    if (failing.size(0) == 0) return base_flat.clone();
    const Split fails{field.sel.x.index_select(0, failing), field.sel.y.index_select(0, failing)};
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
      const double val_acc = share(judge.base.val.eq(data.val.y)), field_acc = share(judge.base.sel.eq(field.sel.y));
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

FieldAnswers answers_of(const Judge& j, NetImpl& m) {
  return {j.answers(m, j.data.val), j.answers(m, j.field.sel), j.answers(m, j.field.holdout),
          j.answers(m, j.data.test)};
}

double acc_of(const torch::Tensor& pred, const Split& s) { return share(pred.eq(s.y)); }



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
  NetImpl& model = *base.model;
  model.to(device);
  model.eval();

  Judge judge{data, field, device, cfg.train.eval_batch_size, cfg.adapt.max_break_rate, {}, {}, 0};
  double base_eval_seconds = 0;
  {
    ScopeTimer t(base_eval_seconds);
    judge.base = answers_of(judge, model);
  }
  judge.base_val_right = judge.base.val.eq(data.val.y);
  const int64_t base_right = judge.base_val_right.sum().item<int64_t>();
  judge.allowed_breaks = static_cast<int64_t>(std::floor(cfg.adapt.max_break_rate * static_cast<double>(base_right)));
  spdlog::info("adapt-{}: field set {}: {} to repair on, {} held out; base field accuracy {:.2f}% / {:.2f}%, "
               "at most {} validation breaks",
               name, field.source, field.sel.size(), field.holdout.size(), 100 * acc_of(judge.base.sel, field.sel),
               100 * acc_of(judge.base.hold, field.holdout), judge.allowed_breaks);

  const WeightLayout layout = weight_layout(model, /*include_buffers=*/true);
  Search s{cfg, data, field, judge, model, device, req.strategy, snapshot_state(model), layout,
           flatten_weights(model, layout), Chooser{}, 0, 0, 0, {}, json::array()};
  s.run();
  json path = measured_path(s, judge.base);

  restore_state(model, s.chooser.state);
  FieldAnswers after;
  {
    ScopeTimer t(s.evaluation_seconds);
    after = answers_of(judge, model);
  }
  const int64_t classes = data.classes;
  const double final_val = acc_of(after.val, data.val), final_test = acc_of(after.test, data.test);
  const double base_val = acc_of(judge.base.val, data.val), base_test = acc_of(judge.base.test, data.test);
  const bool moved = !s.chooser.where.value("base", false);
  const double seconds = since(t0);
  const double evaluation = s.evaluation_seconds + base_eval_seconds;
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
      {"time", {{"finetune", s.finetune_seconds}, {"evaluation", evaluation},
                {"other", seconds - s.finetune_seconds - evaluation}}},
      {"images", {{"field_finetune", s.images}, {"total", s.images}}},
      {"changes", {{"val", changes_json(data.val, judge.base.val, after.val, classes)},
                   {"test", changes_json(data.test, judge.base.test, after.test, classes)}}},
      {"field",
       {{"source", field.source},
        {"fingerprint", field.fingerprint},
        {"selection", changes_json(field.sel, judge.base.sel, after.sel, classes)},
        {"holdout", changes_json(field.holdout, judge.base.hold, after.hold, classes)},
        {"chosen", s.chooser.where},
        {"score", s.chooser.score},
        {"candidates", s.chooser.candidates},
        {"refused_breaks", s.chooser.refused_breaks},
        {"refused_nonfinite", s.chooser.refused_nonfinite},
        {"allowed_val_breaks", judge.allowed_breaks},
        {"search", s.per_lr},
        {"path", path},
        // Per image, for bootstraps over the hold-out (scripts/field-analysis.py): labels and both answers.
        {"holdout_answers", answers_json(field.holdout.y, judge.base.hold, after.hold)},
        {"test_answers", answers_json(data.test.y, judge.base.test, after.test)}}},
      {"weights", layout.total},
      {"device", device.str()},
      {"provenance", prov},
  };
  json meta = checkpoint_meta(spec, data, "adapt", cfg.seed, cfg);
  meta["metrics"] = {{"val_acc", final_val}, {"test_acc", final_test}};
  meta["result"] = result;
  save_checkpoint(wd.adapt_model(name), model, meta);
  write_json_atomic(wd.adapt_result(name), result);
  const json& h = result["field"]["holdout"];
  spdlog::info("adapt-{}: field hold-out {:.2f}% -> {:.2f}% ({} repaired, {} broken), test {:.2f}% -> {:.2f}% "
               "({} broken), chose {}, {} images, {:.1f}s",
               name, 100 * h["accuracy_before"].get<double>(), 100 * h["accuracy_after"].get<double>(),
               h["repaired"]["count"].get<int64_t>(), h["broken"]["count"].get<int64_t>(), 100 * base_test,
               100 * final_test, result["changes"]["test"]["broken"]["count"].get<int64_t>(), s.chooser.where.dump(),
               s.images, seconds);
  return result;
}

}  // namespace apricot
