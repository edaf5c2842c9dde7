// `apricot train-base`: trains the original model (the iDLM) into WORKDIR/base/ (pipeline.hpp's
// train_base); with rdlm.init = base-early it also keeps the copy the rDLMs start from.
#include "apricot/pipeline/pipeline.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct TrainBaseOptions {
  CommonOptions common;
};

int run_train_base(const TrainBaseOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  nlohmann::json out = train_base(s.cfg, s.workdir, s.device, o.common.force);
  if (o.common.json) print_json(out);
  return 0;
}

}  // namespace

CLI::App* setup_train_base(CLI::App& app, Action& action) {
  auto o = std::make_shared<TrainBaseOptions>();
  auto* sub = app.add_subcommand("train-base", "train the original model (WORKDIR/base/model.pt)");
  add_common_options(sub, o->common, /*with_force=*/true);
  sub->footer(
      "The recipe is the config's train section: train.epochs, train.lr with train.lr_schedule step "
      "(train.lr_steps, train.lr_gamma) or cosine (down to train.lr_min), and early stopping with "
      "train.patience (epochs without a better validation accuracy; the best epoch is kept). "
      "WORKDIR/base/metrics.jsonl holds the learning curve.");
  sub->callback([o, &action] { action = [o] { return run_train_base(*o); }; });
  return sub;
}

}  // namespace apricot::cli
