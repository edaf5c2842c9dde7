// `apricot eval`: accuracy, per-class accuracy and confusion matrix of a checkpoint on one split.
// Uses the checkpoint's own normalisation; refuses a checkpoint that does not fit the config.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/train/train.hpp"
#include "apricot/io/workdir.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct EvalOptions {
  CommonOptions common;
  std::string model;
  std::string split = "test";
  std::string compare;  // a reference checkpoint: what the model repaired and broke against it
  int64_t bn_recalibrate = 0;  // > 0: recompute BatchNorm statistics on this many training images first
};

// The checkpoint at `pt`, checked against the config and the data.
LoadedModel load_for_eval(const std::string& pt, const Session& s, const Dataset& data) {
  LoadedModel m = load_checkpoint(pt);
  check_compatible(m, model_spec(s.cfg.model, data), "", "checkpoint '" + pt + "'");
  std::string fp = m.meta.value("dataset", nlohmann::json::object()).value("fingerprint", "");
  if (!fp.empty() && fp != data.fingerprint)
    spdlog::warn("checkpoint '{}' was trained on other data or another split (fingerprint {} vs {})", pt, fp,
                 data.fingerprint);
  m.model->to(s.device);
  return m;
}

// --bn-recalibrate N: the model's BatchNorm statistics recomputed as adapt.bn_recalibrate does (the
// first N training images of a seeded permutation), so that stale statistics can be told apart.
void recalibrate_for_eval(const EvalOptions& o, const Session& s, const Dataset& data, LoadedModel& m) {
  if (o.bn_recalibrate <= 0) return;
  if (o.bn_recalibrate < 2)
    config_error("--bn-recalibrate 1: batch statistics need at least two images", "use 0 (off) or N >= 2");
  auto x = recalibration_images(data.train, s.cfg.seed, o.bn_recalibrate);
  const int64_t n = x.size(0);
  const int64_t layers = recalibrate_batchnorm(*m.model, x, m.norm, s.device, s.cfg.train.eval_batch_size);
  spdlog::info("recalibrated {} BatchNorm layers on {} training images", layers, n);
}

// `eval --compare REF`: repaired and broken inputs and per-class accuracy, REF -> the model.
int print_comparison(const EvalOptions& o, const Session& s, const Dataset& data, const std::string& pt,
                     LoadedModel& m, const Split& split) {
  LoadedModel ref = load_for_eval(o.compare, s, data);
  const int64_t eb = s.cfg.train.eval_batch_size;
  auto before = predict(*ref.model, split.x, ref.norm, s.device, eb);
  auto after = predict(*m.model, split.x, m.norm, s.device, eb);
  Changes c = compare_predictions(split.y, before, after, data.classes);
  if (o.common.json) {
    auto j = c.to_json();
    j["split"] = o.split, j["model"] = pt, j["reference"] = o.compare;
    print_json(j);
    return 0;
  }
  std::printf("%s split: %lld images; %s -> %s\n", o.split.c_str(), static_cast<long long>(c.n), o.compare.c_str(),
              pt.c_str());
  std::printf("accuracy %.2f%% -> %.2f%% (%+.2f pp)\n", 100.0 * c.right_before / std::max<int64_t>(1, c.n),
              100.0 * c.right_after / std::max<int64_t>(1, c.n),
              100.0 * (c.right_after - c.right_before) / std::max<int64_t>(1, c.n));
  std::printf("repaired %lld of the reference's %lld failures (%.2f%%); broke %lld of its %lld right answers (%.2f%%)\n",
              static_cast<long long>(c.repaired), static_cast<long long>(c.n - c.right_before), 100 * c.repaired_rate(),
              static_cast<long long>(c.broken), static_cast<long long>(c.right_before), 100 * c.broken_rate());
  std::printf("class   before    after   change\n");
  for (int64_t k = 0; k < data.classes; ++k)
    std::printf("%5lld  %6.2f%%  %6.2f%%  %+6.2f pp\n", static_cast<long long>(k), 100 * c.class_before[k],
                100 * c.class_after[k], 100 * (c.class_after[k] - c.class_before[k]));
  return 0;
}

int run_eval(const EvalOptions& o) {
  Session s = open_session(o.common, /*write_config=*/false);
  std::string pt = o.model.empty() ? WorkDir(s.workdir).base_model() : o.model;
  Dataset data = load_dataset(s.cfg.data, s.cfg.seed);
  LoadedModel m = load_for_eval(pt, s, data);
  recalibrate_for_eval(o, s, data, m);
  const Split& split = o.split == "train" ? data.train : o.split == "val" ? data.val : data.test;
  if (!o.compare.empty()) return print_comparison(o, s, data, pt, m, split);
  EvalResult r = evaluate(*m.model, split, o.split, data.classes, m.norm, s.device, s.cfg.train.eval_batch_size);
  if (o.common.json) {
    auto j = r.to_json();
    j["model"] = pt;
    print_json(j);
    return 0;
  }
  std::printf("%s split: %lld images, accuracy %.2f%%\n", o.split.c_str(), static_cast<long long>(r.n),
              100 * r.accuracy);
  std::printf("class  accuracy   confusion row (predicted 0..%lld)\n", static_cast<long long>(data.classes - 1));
  for (int64_t c = 0; c < data.classes; ++c) {
    std::printf("%5lld  %7.2f%%  ", static_cast<long long>(c), 100 * r.per_class[c]);
    for (auto v : r.confusion[c]) std::printf(" %5lld", static_cast<long long>(v));
    std::printf("\n");
  }
  return 0;
}

}  // namespace

CLI::App* setup_eval(CLI::App& app, Action& action) {
  auto o = std::make_shared<EvalOptions>();
  auto* sub = app.add_subcommand("eval", "accuracy, per-class accuracy and confusion matrix of a model");
  add_common_options(sub, o->common, /*with_force=*/false);
  sub->add_option("-m,--model", o->model, "checkpoint (default: WORKDIR/base/model.pt)");
  sub->add_option("--compare", o->compare,
                  "reference checkpoint (e.g. WORKDIR/base/model.pt): print what the model repaired and broke "
                  "against it, and per-class accuracy before and after");
  sub->add_option("--bn-recalibrate", o->bn_recalibrate,
                  "recompute the model's BatchNorm statistics on N training images before evaluating (as "
                  "adapt.bn_recalibrate does; the reference of --compare is left as it is)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--split", o->split, "train | val | test")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val", "test"}));
  sub->callback([o, &action] { action = [o] { return run_eval(*o); }; });
  return sub;
}

}  // namespace apricot::cli
