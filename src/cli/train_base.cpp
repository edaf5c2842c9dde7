// `apricot train-base`: trains the original model (the iDLM) and writes WORKDIR/base/{model.pt,
// model.json, metrics.jsonl}. With rdlm.init = base-early it also keeps the copy after
// rdlm.init_epochs epochs (base/early.pt) that the rDLMs start from.
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

#include "apricot/checkpoint.hpp"
#include "apricot/errors.hpp"
#include "apricot/fsutil.hpp"
#include "apricot/resume.hpp"
#include "apricot/train.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TrainBaseOptions {
  CommonOptions common;
};

}  // namespace

int train_base_phase(const Session& s, bool force, bool json_out, const Dataset* loaded) {
  const fs::path dir = fs::path(s.workdir) / "base";
  const std::string pt = (dir / "model.pt").string();
  if (checkpoint_exists(pt) && !force) {
    auto m = load_checkpoint(pt);
    require_same_recipe(m.meta, s.cfg, "the base model '" + pt + "'", {"seed", "model", "train"});
    json metrics = m.meta.value("metrics", json::object());
    if (!metrics.is_object()) metrics = json::object();
    spdlog::info("base model exists: {} (test accuracy {:.2f}%); nothing to do (use --force to retrain)", pt,
                 100 * metrics.value("test_acc", 0.0));
    if (s.cfg.rdlm.init == "base-early" && !checkpoint_exists((dir / "early.pt").string()))
      spdlog::warn("rdlm.init is base-early but {} is missing (the base model was trained without it); "
                   "retrain with train-base --force to keep the epoch-{} copy",
                   (dir / "early.pt").string(), s.cfg.rdlm.init_epochs);
    if (json_out) print_json({{"model", pt}, {"skipped", true}, {"metrics", metrics}});
    return 0;
  }
  auto t0 = std::chrono::steady_clock::now();
  Dataset own;
  if (!loaded) own = load_dataset(s.cfg.data, s.cfg.seed);
  const Dataset& data = loaded ? *loaded : own;
  spdlog::info("data {}: train {} val {} test {} | {}x{}x{} | {} classes | fingerprint {}", data.name,
               data.train.size(), data.val.size(), data.test.size(), data.channels, data.height, data.width,
               data.classes, data.fingerprint);
  ModelSpec spec = model_spec(s.cfg.model, data);
  torch::manual_seed(s.cfg.seed);
  Net model = make_model(spec);
  model->to(s.device);
  auto counts = count_params(*model);
  spdlog::info("model {}: {} trainable parameters, {} in total", spec.arch, counts.trainable, counts.total);

  TrainOptions opts;
  opts.recipe = s.cfg.train;
  opts.label = "base";
  const bool keep_early = s.cfg.rdlm.init == "base-early";
  const std::string state = (dir / "state.pt").string();
  if (force) remove_state(state);
  opts.state_path = state;
  opts.state_every_epochs = s.cfg.resume.every_epochs;
  opts.state_key = {{"phase", "base"}, {"seed", s.cfg.seed}, {"model", to_json(s.cfg)["model"]},
                    {"train", to_json(s.cfg)["train"]}, {"data", data.fingerprint},
                    {"early", keep_early ? s.cfg.rdlm.init_epochs : 0}};
  opts.resume_hint = "rerun the same command to resume from it";
  opts.on_epoch = [&](const EpochStats& st, const std::vector<EpochStats>& history) {
    write_file_atomic((dir / "metrics.jsonl").string(), metrics_jsonl(history));
    if (keep_early && st.epoch == s.cfg.rdlm.init_epochs) {
      json meta = checkpoint_meta(spec, data);
      meta["seed"] = s.cfg.seed;
      meta["epoch"] = st.epoch;
      meta["role"] = "base-early";
      save_checkpoint((dir / "early.pt").string(), *model, meta);
      spdlog::info("kept the epoch-{} copy for rDLM initialisation: {}", st.epoch, (dir / "early.pt").string());
    }
  };
  TrainResult tr = train_model(*model, data, torch::Tensor(), opts, s.device, s.cfg.seed);

  const int64_t eb = s.cfg.train.eval_batch_size;
  json m = {{"train_acc", accuracy(*model, data.train, data.norm, s.device, eb)},
            {"val_acc", accuracy(*model, data.val, data.norm, s.device, eb)},
            {"test_acc", accuracy(*model, data.test, data.norm, s.device, eb)},
            {"best_epoch", tr.best_epoch},
            {"epochs", s.cfg.train.epochs},
            {"train_seconds", tr.seconds}};
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json meta = checkpoint_meta(spec, data);
  meta["role"] = "base";
  meta["seed"] = s.cfg.seed;
  meta["config"] = to_json(s.cfg);
  meta["metrics"] = m;
  meta["params"] = {{"trainable", counts.trainable}, {"total", counts.total}};
  meta["seconds"] = seconds;
  meta["device"] = s.device.str();
  save_checkpoint(pt, *model, meta);
  remove_state(state);  // the final model is safe on disk
  spdlog::info("base model: train {:.2f}%  val {:.2f}% (best epoch {})  test {:.2f}%  in {:.1f}s -> {}",
               100 * m["train_acc"].get<double>(), 100 * m["val_acc"].get<double>(), tr.best_epoch,
               100 * m["test_acc"].get<double>(), seconds, pt);
  if (json_out) print_json({{"model", pt}, {"skipped", false}, {"metrics", m}, {"seconds", seconds}});
  return 0;
}

namespace {
int run_train_base(const TrainBaseOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  return train_base_phase(s, o.common.force, o.common.json);
}
}  // namespace

CLI::App* setup_train_base(CLI::App& app, Action& action) {
  auto o = std::make_shared<TrainBaseOptions>();
  auto* sub = app.add_subcommand("train-base", "train the original model (WORKDIR/base/model.pt)");
  add_common_options(sub, o->common, /*with_force=*/true);
  sub->callback([o, &action] { action = [o] { return run_train_base(*o); }; });
  return sub;
}

}  // namespace apricot::cli
