// The gated arms (internal.hpp, docs/FIELD.md "gated"): train the scope gates, walk every expert
// candidate the field fine-tunes make (each checkpoint, each point of each WiSE line), and choose the
// expert, the gate and the threshold by the one selection rule; gated-distilled then distils the chosen
// composite into one network of the base's architecture.
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>

#include "apricot/core/clock.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/seeds.hpp"
#include "apricot/method/adjustment.hpp"
#include "apricot/method/field.hpp"
#include "apricot/models/gated.hpp"
#include "apricot/train/train.hpp"
#include "internal.hpp"

namespace apricot::field_detail {

namespace {

constexpr double kGateLr = 0.01;   // Adam; the gates are small and see balanced batches
constexpr int64_t kQuantiles = 51;  // thresholds from each of the pick part's and the validation split's scores
constexpr double kInf = std::numeric_limits<double>::infinity();

// A gate's scores on the splits the rule and the report look at (float, CPU).
struct Scores {
  torch::Tensor val, pick, hold, test;
};

torch::Tensor scores_on(GateImpl& gate, NetImpl& base, const Split& s, const Normalizer& norm,
                        const torch::Device& device, int64_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (int64_t at = 0; at < s.size(); at += batch) {
    const torch::Tensor x = norm.apply(s.x.slice(0, at, std::min(s.size(), at + batch)).to(device));
    out.push_back(gate.score(x, base.forward(x)).cpu());
  }
  return out.empty() ? torch::empty({0}) : torch::cat(out);
}

// One gate trained to tell the field's kind of input (the fit part, label 1) from replayed training
// images (label 0), in balanced batches of field.batch_size, Adam, field.gate_steps steps.
std::shared_ptr<GateImpl> train_gate(const Config& cfg, const Dataset& data, const FieldSet& field, NetImpl& base,
                                     const torch::Device& device, const std::string& kind, int64_t index,
                                     json& log, int64_t& images) {
  const uint64_t seed = seeds::field_gate(cfg.seed, index);
  auto gen = at::detail::createCPUGenerator(seed);
  auto gate = std::make_shared<GateImpl>(GateSpec{kind, data.channels, data.classes});
  gate->initialise(gen);
  gate->to(device);
  torch::optim::Adam opt(gate->parameters(), torch::optim::AdamOptions(kGateLr));
  const int64_t batch = cfg.field.batch_size, n_pos = batch / 2, n_neg = batch - n_pos;
  torch::Tensor order;
  int64_t at = 0;
  double loss_first = 0, loss_last = 0;
  for (int64_t step = 1; step <= cfg.field.gate_steps; ++step) {
    std::vector<torch::Tensor> rows;
    for (int64_t n = n_pos; n > 0;) {
      if (!order.defined() || at == order.size(0)) order = torch::randperm(field.fit.size(), gen, torch::kInt64), at = 0;
      const int64_t take = std::min(n, order.size(0) - at);
      rows.push_back(order.slice(0, at, at + take));
      at += take, n -= take;
    }
    const torch::Tensor ri = torch::randint(data.train.size(), {n_neg}, gen, torch::kInt64);
    const torch::Tensor x = data.norm.apply(
        torch::cat({field.fit.x.index_select(0, torch::cat(rows)), data.train.x.index_select(0, ri)}).to(device));
    const torch::Tensor y = torch::cat({torch::ones({n_pos}), torch::zeros({n_neg})}).to(device);
    torch::Tensor logits;
    {
      torch::NoGradGuard no_grad;
      logits = base.forward(x);
    }
    const torch::Tensor loss = torch::binary_cross_entropy_with_logits(gate->score(x, logits), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    const double l = loss.item<double>();
    if (!std::isfinite(l))
      throw TrainingDiverged(ExitCode::kState, "the " + kind + " gate's loss is " + std::to_string(l), "report it");
    if (step == 1) loss_first = l;
    loss_last = l;
  }
  images += cfg.field.gate_steps * batch;
  log = {{"gate", kind}, {"steps", cfg.field.gate_steps}, {"lr", kGateLr}, {"loss_first", loss_first},
         {"loss_last", loss_last}};
  return gate;
}

// The thresholds a gate offers, from the highest: +inf (the base), quantiles of its scores on the pick
// part's field images and on the validation split, -inf (the expert everywhere).
torch::Tensor thresholds(const Scores& s) {
  std::vector<torch::Tensor> parts = {torch::full({1}, kInf, torch::kDouble), torch::full({1}, -kInf, torch::kDouble)};
  const torch::Tensor q = torch::linspace(0, 1, kQuantiles, torch::kDouble);
  for (const torch::Tensor& t : {s.pick, s.val})
    if (t.numel() > 0) parts.push_back(torch::quantile(t.to(torch::kDouble), q));
  return std::get<0>(torch::unique_dim(torch::cat(parts), 0)).flip(0);  // descending
}

struct Best {
  double score = -kInf;
  int64_t gate = -1;  // -1: the base
  double tau = kInf;
  std::vector<torch::Tensor> expert;
  json where = {{"base", true}};
};

// A fresh model of `spec` holding `state`, on the device in eval mode.
Net fresh_model(const ModelSpec& spec, const std::vector<torch::Tensor>& state, const torch::Device& device) {
  Net m;
  {
    std::lock_guard<std::mutex> lock(global_generator_mutex());
    m = make_model(spec);
  }
  restore_state(*m, state);
  m->to(device);
  m->eval();
  return m;
}

}  // namespace

GatedOutcome stored_gated(const json& result, Net model) {
  GatedOutcome out;
  const json& f = result.at("field");
  out.where = f.at("chosen");
  out.chosen = out.where.value("base", false) ? nullptr : std::move(model);
  out.score = f.at("score").get<double>();
  out.candidates = f.at("candidates").get<int64_t>();
  out.refused_breaks = f.at("refused_breaks").get<int64_t>();
  out.finetune_images = result.at("images").at("field_finetune").get<int64_t>();
  out.gate_images = result.at("images").value("gate", int64_t{0});
  out.search = f.at("search");
  out.gates = f.value("gates", json::array());
  out.cost = result.value("cost", json::object());
  out.teacher_seconds = result.value("seconds", 0.0);
  return out;
}

GatedOutcome run_gated(const Config& cfg, const Dataset& data, const FieldSet& field, const Judge& judge,
                       NetImpl& base, const ModelSpec& spec, const torch::Device& device) {
  const FieldConfig& fc = cfg.field;
  const int64_t eb = cfg.train.eval_batch_size;
  const std::string arm = "gated";
  GatedOutcome out;
  const std::vector<torch::Tensor> base_state = snapshot_state(base);
  base.eval();

  // 1. The gates, and their scores on every split (measured ones included: the report shows them).
  std::vector<std::shared_ptr<GateImpl>> gates;
  std::vector<Scores> scores;
  std::vector<torch::Tensor> taus;
  {
    ScopeTimer t(out.gate_seconds);
    for (size_t k = 0; k < fc.gates.size(); ++k) {
      json log;
      gates.push_back(train_gate(cfg, data, field, base, device, fc.gates[k], static_cast<int64_t>(k), log,
                                 out.gate_images));
      gates.back()->eval();
      Scores s{scores_on(*gates.back(), base, data.val, data.norm, device, eb),
               scores_on(*gates.back(), base, field.pick, data.norm, device, eb),
               scores_on(*gates.back(), base, field.holdout, data.norm, device, eb),
               scores_on(*gates.back(), base, data.test, data.norm, device, eb)};
      // How well it separates, measured: the share of field images it sends to the expert at the
      // threshold where 1 % of the validation split goes there.
      const double t1 = s.val.numel() ? torch::quantile(s.val.to(torch::kDouble), 0.99).item<double>() : kInf;
      log["tau_at_1pct_val"] = t1;
      log["pick_share_at_1pct_val"] = share(s.pick.to(torch::kDouble).gt(t1));
      log["holdout_share_at_1pct_val"] = share(s.hold.to(torch::kDouble).gt(t1));
      log["test_share_at_1pct_val"] = share(s.test.to(torch::kDouble).gt(t1));
      out.gates.push_back(log);
      taus.push_back(thresholds(s));
      scores.push_back(std::move(s));
      spdlog::info("adapt-{}: gate {} trained ({} steps): at 1% of validation images it takes {:.1f}% of the pick "
                   "part's field images",
                   arm, fc.gates[k], fc.gate_steps, 100 * log["pick_share_at_1pct_val"].get<double>());
    }
  }

  // 2. Every expert candidate under every gate and threshold. The base is the first candidate.
  const torch::Tensor yv = data.val.y, yp = field.pick.y;
  const torch::Tensor right_base_v = judge.base_val_right;
  Best best;
  best.score = (share(judge.base.val.eq(yv)) + share(judge.base.pick.eq(yp))) / 2;
  ++out.candidates;
  auto consider = [&](const json& at, json& log) {
    ScopeTimer t(out.evaluation_seconds);
    const torch::Tensor ev = judge.answers(base, data.val), ep = judge.answers(base, field.pick);
    json e = at;
    double expert_best = -kInf;
    bool improved = false;
    for (size_t k = 0; k < gates.size(); ++k) {
      const torch::Tensor& T = taus[k];
      const torch::Tensor mv = scores[k].val.to(torch::kDouble).unsqueeze(0).gt(T.unsqueeze(1));  // (T, Nv)
      const torch::Tensor mp = scores[k].pick.to(torch::kDouble).unsqueeze(0).gt(T.unsqueeze(1));
      const torch::Tensor rv = torch::where(mv, ev.unsqueeze(0), judge.base.val.unsqueeze(0)).eq(yv.unsqueeze(0));
      const torch::Tensor rp = torch::where(mp, ep.unsqueeze(0), judge.base.pick.unsqueeze(0)).eq(yp.unsqueeze(0));
      const torch::Tensor breaks = (right_base_v.unsqueeze(0) & ~rv).sum(1);
      const torch::Tensor score = (rv.to(torch::kDouble).mean(1) + rp.to(torch::kDouble).mean(1)) / 2;
      const torch::Tensor ok = breaks.le(judge.allowed_breaks);
      out.candidates += T.size(0);
      out.refused_breaks += (~ok).sum().item<int64_t>();
      if (!ok.any().item<bool>()) continue;
      // The best admissible threshold; among equals the highest (the least the expert is asked).
      const torch::Tensor masked = torch::where(ok, score, torch::full_like(score, -kInf));
      const int64_t i = masked.argmax().item<int64_t>();
      const double sc = masked[i].item<double>();
      if (sc > expert_best) {
        expert_best = sc;
        e["gate"] = fc.gates[k], e["tau"] = T[i].item<double>(), e["score"] = sc,
        e["val_breaks"] = breaks[i].item<int64_t>(), e["pick_routed"] = share(mp[i]);
      }
      if (sc > best.score) {
        best.score = sc, best.gate = static_cast<int64_t>(k), best.tau = T[i].item<double>();
        best.where = at;
        best.where["gate"] = fc.gates[k];
        best.where["tau"] = std::isfinite(best.tau) ? json(best.tau) : json(best.tau > 0 ? "inf" : "-inf");
        improved = true;
      }
    }
    if (improved) best.expert = snapshot_state(base);
    if (!e.contains("gate")) e["admissible"] = false;
    if (e.contains("tau") && !std::isfinite(e["tau"].get<double>())) e["tau"] = e["tau"].get<double>() > 0 ? "inf" : "-inf";
    log.push_back(e);
  };

  const WeightLayout layout = weight_layout(base, /*include_buffers=*/true);
  const torch::Tensor base_flat = flatten_weights(base, layout);
  for (size_t i = 0; i < fc.lrs.size(); ++i) {
    const double lr = fc.lrs[i];
    json entry = {{"lr", lr}}, ckpts = json::array(), line = json::array();
    restore_state(base, base_state);
    const auto t0 = Clock::now();
    const double eval_before = out.evaluation_seconds;
    bool finite = true;
    FineTune ft{fc.steps, lr, seeds::field_finetune(cfg.seed, 0, static_cast<int64_t>(i)), false, fc.checkpoint_every};
    try {  // the same fine-tune as finetune's and finetune-interp's, bit for bit
      out.finetune_images += fine_tune(cfg, data, field, base, device, ft, [&](int64_t step) {
        consider({{"lr", lr}, {"step", step}}, ckpts);
      });
    } catch (const TrainingDiverged& e) {
      spdlog::warn("adapt-{}: {}", arm, e.what());
      out.finetune_images += fc.steps * fc.batch_size;
      finite = false;
    }
    out.finetune_seconds += since(t0) - (out.evaluation_seconds - eval_before);
    if (finite) {
      const torch::Tensor end = flatten_weights(base, layout);
      for (double alpha : interp_alphas(fc.interp_points)) {
        restore_state(base, base_state);
        assign_weights(base, layout, interpolate(base_flat, end, alpha));
        consider({{"lr", lr}, {"alpha", alpha}}, line);
      }
    }
    entry["finite"] = finite, entry["checkpoints"] = ckpts, entry["path"] = line;
    out.search.push_back(entry);
    spdlog::info("adapt-{}: lr {} done, best score so far {:.4f} ({})", arm, lr, best.score, best.where.dump());
  }
  restore_state(base, base_state);
  out.score = best.score;
  out.where = best.where;

  // 3. The chosen model: the base, a plain expert (tau -inf) or the composite.
  auto fresh = [&](const std::vector<torch::Tensor>& state) { return fresh_model(spec, state, device); };
  if (best.gate >= 0 && best.tau == -kInf) {
    out.chosen = fresh(best.expert);
  } else if (best.gate >= 0) {
    auto composite = std::make_shared<GatedNetImpl>(fresh(base_state), fresh(best.expert),
                                                    gates[static_cast<size_t>(best.gate)]->spec, best.tau);
    restore_state(*composite->gate, snapshot_state(*gates[static_cast<size_t>(best.gate)]));
    composite->to(device);
    composite->eval();
    out.chosen = composite;
  }

  // Its cost against the base: parameters, and inference time on the test split side by side.
  {
    NetImpl& m = out.chosen ? *out.chosen : base;
    auto time_of = [&](NetImpl& net) {
      double best_s = kInf;
      for (int r = 0; r < 2; ++r) {
        const auto t0 = Clock::now();
        predict(net, data.test.x, data.norm, device, eb);
        best_s = std::min(best_s, since(t0));
      }
      return best_s;
    };
    const double tb = time_of(base), tm = time_of(m);
    out.cost = {{"parameters", count_params(m).total}, {"base_parameters", count_params(base).total},
                {"test_seconds", tm}, {"base_test_seconds", tb}, {"time_ratio", tb > 0 ? tm / tb : 0.0},
                {"images", data.test.size()}};
    if (auto* g = dynamic_cast<GatedNetImpl*>(&m))
      out.cost["test_routed"] = share(g->routed(scores[static_cast<size_t>(best.gate)].test));
  }
  return out;
}

void distil_gated(GatedOutcome& out, const Config& cfg, const Dataset& data, const FieldSet& field,
                  const Judge& judge, NetImpl& base, const ModelSpec& spec, const torch::Device& device) {
  if (!out.chosen || !is_gated(*out.chosen)) return;  // the base or a plain expert: one network already
  const FieldConfig& fc = cfg.field;
  const int64_t eb = cfg.train.eval_batch_size;
  const std::string arm = "gated-distilled";
  const std::vector<torch::Tensor> base_state = snapshot_state(base);
  const torch::Tensor yv = data.val.y, yp = field.pick.y;
  auto fresh = [&](const std::vector<torch::Tensor>& state) { return fresh_model(spec, state, device); };
  // One network of the base's architecture, from the base, fine-tuned on the composite's answers
  // (field fit images and replayed training images, as the fine-tunes mix them) and chosen by the
  // same rule on the true labels.
  NetImpl& composite = *out.chosen;
  FieldSet taught = field;
  taught.fit = Split{field.fit.x, predict(composite, field.fit.x, data.norm, device, eb)};
  Dataset teacher = data;
  teacher.train = Split{data.train.x, predict(composite, data.train.x, data.norm, device, eb)};
  Chooser chooser;
  chooser.score = -kInf;
  restore_state(base, base_state);
  {
    ++chooser.candidates;
    chooser.score = (share(judge.base.val.eq(yv)) + share(judge.base.pick.eq(yp))) / 2;
    chooser.state = base_state, chooser.where = {{"base", true}};
  }
  json distill_log = json::array();
  for (size_t i = 0; i < fc.lrs.size(); ++i) {
    const double lr = fc.lrs[i];
    restore_state(base, base_state);
    json ckpts = json::array();
    FineTune ft{fc.steps, lr, seeds::field_distill(cfg.seed, static_cast<int64_t>(i)), false,
                fc.checkpoint_every};
    const auto t0 = Clock::now();
    const double eval_before = out.evaluation_seconds;
    try {
      out.distill_images += fine_tune(cfg, teacher, taught, base, device, ft, [&](int64_t step) {
        ScopeTimer t(out.evaluation_seconds);
        json e = chooser.consider(judge, base, {{"lr", lr}, {"step", step}}).to_json();
        e["step"] = step;
        ckpts.push_back(e);
      });
    } catch (const TrainingDiverged& e) {
      spdlog::warn("adapt-{}: distillation: {}", arm, e.what());
      out.distill_images += fc.steps * fc.batch_size;
    }
    out.finetune_seconds += since(t0) - (out.evaluation_seconds - eval_before);
    distill_log.push_back({{"lr", lr}, {"checkpoints", ckpts}});
  }
  out.candidates += chooser.candidates;
  out.refused_breaks += chooser.refused_breaks;
  json teacher_where = out.where;
  out.where = chooser.where;
  out.where["teacher"] = teacher_where;
  out.score = chooser.score;
  out.search = {{"teacher", out.search}, {"distillation", distill_log}};
  restore_state(base, base_state);
  out.chosen = chooser.where.value("base", false) ? nullptr : fresh(chooser.state);
  if (out.chosen) {
    out.cost["parameters"] = count_params(*out.chosen).total;
    out.cost.erase("test_routed");
    out.cost["teacher_time_ratio"] = out.cost["time_ratio"];
    out.cost.erase("time_ratio"), out.cost.erase("test_seconds");
  }
}

}  // namespace apricot::field_detail
