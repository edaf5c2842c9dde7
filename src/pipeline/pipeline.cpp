// The pipeline: base model, rDLMs, adaptation arms, in order over one work directory. The phases
// themselves live in train.cpp, rdlm.cpp and adapt.cpp; this file only orders them and decides what
// is already done. It prints nothing but logs: tables and JSON output are the command line's.
#include "apricot/pipeline/pipeline.hpp"

#include "apricot/data/field.hpp"

#include <spdlog/spdlog.h>

#include "apricot/method/adapt.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/core/clock.hpp"
#include "apricot/core/device.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/method/recipe.hpp"
#include "apricot/models/torchscript.hpp"
#include "apricot/io/resume.hpp"
#include "apricot/train/train.hpp"
#include "apricot/io/workdir.hpp"

namespace apricot {

using nlohmann::json;

namespace {

// The metadata of the base model on disk, which is kept only when made with this run's recipe
// (train-base and run both refuse it otherwise).
json checked_base_meta(const Config& cfg, const WorkDir& wd) {
  json meta = load_checkpoint(wd.base_model()).meta;
  require_same_recipe(meta, cfg, "the base model '" + wd.base_model() + "'", Phase::kBase);
  return meta;
}

// The base model on disk is kept: say so, and warn when the early copy the rDLMs need is missing.
json existing_base(const Config& cfg, const WorkDir& wd) {
  const json meta = checked_base_meta(cfg, wd);
  json metrics = meta.value("metrics", json::object());
  if (!metrics.is_object()) metrics = json::object();
  spdlog::info("base model exists: {} (test accuracy {:.2f}%); nothing to do (use --force to retrain)",
               wd.base_model(), 100 * metrics.value("test_acc", 0.0));
  if (cfg.rdlm.init == "base-early" && !checkpoint_exists(wd.base_early()))
    spdlog::warn("rdlm.init is base-early but {} is missing (the base model was trained without it); "
                 "retrain with train-base --force to keep the epoch-{} copy",
                 wd.base_early(), cfg.rdlm.init_epochs);
  return {{"model", wd.base_model()}, {"skipped", true}, {"metrics", metrics}};
}

}  // namespace

json train_base(const Config& cfg, const std::string& workdir, const torch::Device& device, bool force,
                const Dataset* loaded) {
  const WorkDir wd(workdir);
  if (checkpoint_exists(wd.base_model()) && !force) return existing_base(cfg, wd);
  const auto t0 = Clock::now();
  Dataset own;
  if (!loaded) own = load_dataset(cfg.data, cfg.seed);
  const Dataset& data = loaded ? *loaded : own;
  spdlog::info("data {}: train {} val {} test {} | {}x{}x{} | {} classes | fingerprint {}", data.name,
               data.train.size(), data.val.size(), data.test.size(), data.channels, data.height, data.width,
               data.classes, data.fingerprint);
  const ModelSpec spec = model_spec(cfg.model, data);
  torch::manual_seed(cfg.seed);
  // model.pretrained: the user's TorchScript file, with its own weights, is the base model.
  Net model = cfg.model.pretrained ? load_torchscript(spec) : make_model(spec);
  model->to(device);
  const auto counts = count_params(*model);
  spdlog::info("model {}: {} trainable parameters, {} in total", spec.arch, counts.trainable, counts.total);

  TrainOptions opts;
  opts.recipe = cfg.train;
  opts.label = "base";
  const bool keep_early = cfg.rdlm.init == "base-early";
  if (force) remove_state(wd.base_state());
  opts.state_path = wd.base_state();
  opts.state_every_epochs = cfg.resume.every_epochs;
  json config = to_json(cfg);
  drop_added_defaults(config);  // a state saved by an earlier version, before keys were added, still matches
  opts.state_key = {{"phase", "base"}, {"seed", cfg.seed}, {"model", config["model"]},
                    {"train", config["train"]}, {"data", data.fingerprint},
                    {"early", keep_early ? cfg.rdlm.init_epochs : 0}};
  opts.resume_hint = "rerun the same command to resume from it";
  opts.on_epoch = [&](const EpochStats& st, const std::vector<EpochStats>& history) {
    write_file_atomic(wd.base_metrics(), metrics_jsonl(history));
    if (keep_early && st.epoch == cfg.rdlm.init_epochs) {
      json meta = checkpoint_meta(spec, data, "base-early", cfg.seed, cfg);
      meta["epoch"] = st.epoch;
      save_checkpoint(wd.base_early(), *model, meta);
      spdlog::info("kept the epoch-{} copy for rDLM initialisation: {}", st.epoch, wd.base_early());
    }
  };
  if (!cfg.model.pretrained && cfg.train.lr_schedule == "cosine" && cfg.train.lr_min == 0 && cfg.train.epochs > 1)
    spdlog::warn("train.lr_schedule cosine with train.lr_min 0: the last epoch trains at learning rate 0 and does "
                 "not move the weights; set train.lr_min (e.g. train.lr / 100)");
  TrainResult tr;
  if (cfg.model.pretrained) {
    spdlog::info("model.pretrained: the base model is {} as it is (not trained)", spec.path);
  } else {
    tr = train_model(*model, data, torch::Tensor(), opts, device, cfg.seed);
  }

  const int64_t eb = cfg.train.eval_batch_size;
  // The answers on both splits (not just the accuracies) are kept for the adaptation arms.
  const SplitAnswers answers{count_all(*model, data.val, data.norm, device, eb),
                             count_all(*model, data.test, data.norm, device, eb)};
  json m = {{"train_acc", accuracy(*model, data.train, data.norm, device, eb)},
            {"val_acc", accuracy_of(answers.val)},
            {"test_acc", accuracy_of(answers.test)},
            {"best_epoch", tr.best_epoch},
            {"epochs", cfg.model.pretrained ? 0 : cfg.train.epochs},
            {"epochs_run", static_cast<int64_t>(tr.history.size())},
            {"stopped_early", tr.stopped_early},
            {"train_seconds", tr.seconds}};
  const double seconds = since(t0);
  json meta = checkpoint_meta(spec, data, "base", cfg.seed, cfg);
  meta["metrics"] = m;
  meta["params"] = {{"trainable", counts.trainable}, {"total", counts.total}};
  meta["seconds"] = seconds;
  meta["device"] = device.str();
  save_checkpoint(wd.base_model(), *model, meta);
  remove_state(wd.base_state());  // the final model is safe on disk
  const std::string crc = json::parse(read_file(wd.base_meta())).at("weights").at("crc32").get<std::string>();
  save_answers(wd.base_answers(), answers, answers_key(crc, data.fingerprint, device, eb, spec.path));
  spdlog::info("base model: train {:.2f}%  val {:.2f}% (best epoch {})  test {:.2f}%  in {:.1f}s -> {}",
               100 * m["train_acc"].get<double>(), 100 * m["val_acc"].get<double>(), tr.best_epoch,
               100 * m["test_acc"].get<double>(), seconds, wd.base_model());
  return {{"model", wd.base_model()}, {"skipped", false}, {"metrics", m}, {"seconds", seconds}};
}

std::vector<Strategy> arms_of(const Config& cfg, const std::string& only) {
  if (!only.empty()) return {parse_strategy(only)};
  std::vector<Strategy> out;
  for (const auto& s : cfg.adapt.strategies) out.push_back(parse_strategy(s));
  return out;
}

std::vector<json> adapt_arms(const Config& cfg, const Dataset& data, const std::string& workdir,
                             const torch::Device& device, const std::vector<Strategy>& arms, bool force) {
  std::vector<json> results(arms.size());
  std::vector<int64_t> jobs;
  for (size_t i = 0; i < arms.size(); ++i) jobs.push_back(static_cast<int64_t>(i));
  const ParallelPlan plan = make_parallel_plan(cfg.adapt.parallel, {device}, torch::get_num_threads());
  if (plan.workers > 1)
    spdlog::info("adapting {} arms, up to {} at once on {} ({} CPU threads each)", jobs.size(), plan.workers,
                 device.str(), plan.threads_per_worker);
  run_parallel(jobs, plan, [&](int64_t i, const torch::Device& dev) {
    spdlog::info("adaptation, strategy {}", to_string(arms[i]));
    AdaptRequest req;
    req.strategy = arms[i];
    req.force = force;
    req.progress = plan.workers <= 1;
    results[i] = run_adapt(cfg, data, workdir, dev, req);
  });
  return results;
}

json run_pipeline(const Config& cfg, const std::string& workdir, const torch::Device& device, bool force) {
  const WorkDir wd(workdir);
  const auto arms = arms_of(cfg);
  resolve_devices(cfg.rdlm.devices);  // fail before any data is loaded
  const Dataset data = load_dataset(cfg.data, cfg.seed);
  spdlog::info("data {}: train {} val {} test {} | {}x{}x{} | {} classes", data.name, data.train.size(),
               data.val.size(), data.test.size(), data.channels, data.height, data.width, data.classes);
  for (auto s : arms)  // bad field data fails here, before any training
    if (is_field_arm(s)) {
      const FieldSet field = load_field(cfg.field, cfg.data, data, cfg.seed);
      spdlog::info("field set {}: {} images to repair on, {} held out", field.source, field.sel.size(),
                   field.holdout.size());
      break;
    }
  const auto t0 = Clock::now();
  if (!checkpoint_exists(wd.base_model()) || force) {
    spdlog::info("phase 1/3: training the base model");
    train_base(cfg, workdir, device, force, &data);
  } else {
    // As train-base: arms that need no rDLMs would otherwise adapt a base trained with another recipe.
    checked_base_meta(cfg, wd);
    spdlog::info("phase 1/3: base model exists ({}), skipped", wd.base_model());
  }
  bool needs_rdlms = false;
  for (auto s : arms) needs_rdlms = needs_rdlms || uses_rdlms(s);
  if (needs_rdlms) {
    spdlog::info("phase 2/3: rDLMs");
    RdlmTrainRequest req;
    req.force = force;
    train_rdlms(cfg, data, workdir, device, req);
  }
  spdlog::info("phase 3/3: adaptation");
  std::vector<json> results = adapt_arms(cfg, data, workdir, device, arms, force);
  return {{"workdir", workdir}, {"base", results.at(0)["base"]}, {"results", results}, {"seconds", since(t0)}};
}

}  // namespace apricot
