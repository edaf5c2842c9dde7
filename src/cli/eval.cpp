// `apricot eval`: accuracy, per-class accuracy and confusion matrix of a checkpoint on one split.
// Uses the checkpoint's own normalisation; refuses a checkpoint that does not fit the config.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "apricot/checkpoint.hpp"
#include "apricot/eval.hpp"
#include "apricot/workdir.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct EvalOptions {
  CommonOptions common;
  std::string model;
  std::string split = "test";
};

int run_eval(const EvalOptions& o) {
  Session s = open_session(o.common, /*write_config=*/false);
  std::string pt = o.model.empty() ? WorkDir(s.workdir).base_model() : o.model;
  LoadedModel m = load_checkpoint(pt);
  Dataset data = load_dataset(s.cfg.data, s.cfg.seed);
  check_compatible(m, model_spec(s.cfg.model, data), "", "checkpoint '" + pt + "'");
  std::string fp = m.meta.value("dataset", nlohmann::json::object()).value("fingerprint", "");
  if (!fp.empty() && fp != data.fingerprint)
    spdlog::warn("checkpoint was trained on other data or another split (fingerprint {} vs {})", fp,
                 data.fingerprint);
  const Split& split = o.split == "train" ? data.train : o.split == "val" ? data.val : data.test;
  m.model->to(s.device);
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
  sub->add_option("--split", o->split, "train | val | test")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val", "test"}));
  sub->callback([o, &action] { action = [o] { return run_eval(*o); }; });
  return sub;
}

}  // namespace apricot::cli
