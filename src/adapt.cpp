// The adaptation loop: batches over a seeded permutation of the training split (the same batches
// for every strategy and the control arm), the composed weight adjustment on the failing inputs,
// greedy acceptance on the selection split, periodic retraining whose result is a candidate too.
// Predictions of a batch are taken once, before its adjustments (as the public ports do).
#include "apricot/adapt.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "apricot/checkpoint.hpp"
#include "apricot/errors.hpp"
#include "apricot/fsutil.hpp"
#include "apricot/progress.hpp"
#include "apricot/resume.hpp"
#include "apricot/rdlm.hpp"
#include "apricot/train.hpp"

namespace apricot {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string adapt_dir(const std::string& workdir, Strategy s) {
  return (fs::path(workdir) / ("adapt-" + to_string(s))).string();
}

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Accumulates wall time into one of the result's time buckets.
struct Timer {
  double& bucket;
  Clock::time_point t0 = Clock::now();
  ~Timer() { bucket += since(t0); }
};

bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

// What a result depends on: the base and rDLM weights (by checksum) and the configuration that
// shapes the loop. A stored result is reused only when this is unchanged.
json provenance(const Config& cfg, const std::string& workdir, Strategy s) {
  auto crc_of = [](const std::string& pt) -> json {
    try {
      return json::parse(read_file(meta_path_for(pt))).at("weights").at("crc32");
    } catch (const std::exception&) {
      return nullptr;
    }
  };
  json rdlms = json::array();
  if (s != Strategy::kNone)
    for (int64_t k = 0; k < cfg.rdlm.count; ++k) rdlms.push_back(crc_of(rdlm_checkpoint(workdir, k)));
  json c = to_json(cfg);
  c["adapt"].erase("strategies");
  c["adapt"].erase("parallel");  // arms at once or one by one: the same loop
  return {{"base_crc32", crc_of((fs::path(workdir) / "base" / "model.pt").string())},
          {"rdlm_crc32", rdlms},
          {"config", {{"seed", c["seed"]}, {"data", c["data"]}, {"train", c["train"]}, {"adapt", c["adapt"]}}}};
}

}  // namespace

json run_adapt(const Config& cfg, const Dataset& data, const std::string& workdir, const torch::Device& device,
               const AdaptRequest& req) {
  const AdaptConfig& ac = cfg.adapt;
  const Direction direction = parse_direction(ac.direction);
  const bool targeted = !ac.target.empty();
  const int64_t target_src = targeted ? ac.target[0] : -1, target_dst = targeted ? ac.target[1] : -1;
  if (targeted && (target_src >= data.classes || target_dst >= data.classes))
    config_error("config key 'adapt.target': classes [" + std::to_string(target_src) + ", " +
                     std::to_string(target_dst) + "] do not exist in " + data.name + " (" +
                     std::to_string(data.classes) + " classes)",
                 "use class indices 0.." + std::to_string(data.classes - 1));
  const std::string out_dir = adapt_dir(workdir, req.strategy);
  const std::string result_path = (fs::path(out_dir) / "result.json").string();
  const json prov = provenance(cfg, workdir, req.strategy);
  if (!req.force && fs::exists(result_path)) {
    json old;
    try {
      old = json::parse(read_file(result_path));
      for (const char* k : {"strategy", "base", "final", "gain_test", "selection", "accepted", "seconds"}) old.at(k);
    } catch (const json::exception& e) {
      state_error("'" + result_path + "' is corrupt or from an older version (" + std::string(e.what()) + ")",
                  "rerun with --force");
    }
    if (old.value("provenance", json()) != prov)
      state_error("'" + result_path + "' was produced from another base model, other rDLMs or another configuration",
                  "rerun with --force to redo this strategy, or point --workdir at a fresh directory");
    spdlog::info("{} exists and is up to date; not rerunning (use --force)", result_path);
    return old;
  }
  // One process per strategy and work directory.
  FileLock lock;
  if (!lock.try_lock((fs::path(out_dir) / "lock").string()))
    state_error("strategy " + to_string(req.strategy) + " is being adapted in '" + workdir + "' by " + lock.holder(),
                "wait for it to finish, or use another --workdir");
  const std::string state_path = (fs::path(out_dir) / "state.pt").string();
  if (req.force) remove_state(state_path);
  const auto t_start = Clock::now();
  const ModelSpec spec = model_spec(cfg.model, data);
  const std::string base_pt = (fs::path(workdir) / "base" / "model.pt").string();
  if (!checkpoint_exists(base_pt))
    state_error("no base model in '" + workdir + "' (" + base_pt + " is missing)",
                "train it first: apricot train-base -c CONFIG -w " + workdir);
  LoadedModel base = load_checkpoint(base_pt);
  check_compatible(base, spec, data.fingerprint, "base model '" + base_pt + "'");
  NetImpl& model = *base.model;
  model.to(device);
  const int64_t eb = cfg.train.eval_batch_size;

  const bool select_on_test = ac.selection == "test";
  if (select_on_test)
    spdlog::warn("adapt.selection = test reproduces the paper's protocol and leaks the test set into model "
                 "selection: the reported test accuracy is optimistic");
  const Split& sel = select_on_test ? data.test : data.val;

  // The rDLMs, stacked as R (n, P) on the device; the control arm needs none of this.
  const bool adjusting = req.strategy != Strategy::kNone;
  WeightLayout layout = weight_layout(model, ac.adjust_buffers);
  torch::Tensor R;
  std::unique_ptr<CorrectnessCache> cache;
  if (adjusting) {
    auto rdlms = load_rdlms(cfg, spec, data.fingerprint, workdir, device);
    std::vector<torch::Tensor> rows;
    for (auto& r : rdlms) rows.push_back(flatten_weights(*r, layout));
    R = torch::stack(rows);  // (n, P)
    cache = std::make_unique<CorrectnessCache>(rdlms, data.train, data.norm, device,
                                               (fs::path(workdir) / "rdlms" / "correctness.pt").string(),
                                               data.fingerprint, rdlm_checksums(workdir, cfg.rdlm.count));
    spdlog::info("strategy {} ({}): {} rDLMs stacked as {} x {} on {}", to_string(req.strategy),
                 to_string(direction), R.size(0), R.size(0), R.size(1), device.str());
  }

  double t_adjust = 0, t_predict = 0, t_eval = 0, t_retrain = 0;
  double base_val, base_test, best_acc;
  {
    Timer t{t_eval};
    base_val = accuracy(model, data.val, data.norm, device, eb);
    base_test = accuracy(model, data.test, data.norm, device, eb);
    best_acc = select_on_test ? base_test : base_val;
  }
  // Targeted repair: errors of the pair (inputs of class src predicted as dst) on each split.
  auto pair_errors = [&](const Split& split) -> int64_t {
    auto pred = predict(model, split.x, data.norm, device, eb);
    return (split.y.eq(target_src) & pred.eq(target_dst)).sum().item<int64_t>();
  };
  json target_before;
  if (targeted) target_before = {{"val", pair_errors(data.val)}, {"test", pair_errors(data.test)}};

  // Batches: the same seeded permutation for every strategy, so the control arm sees the same inputs.
  auto gen = at::detail::createCPUGenerator(cfg.seed * 7919ULL + 17ULL);
  const int64_t n_train = data.train.size();
  const int64_t batches_per_pass = (n_train + ac.batch_size - 1) / ac.batch_size;
  const int64_t total_batches =
      ac.max_batches > 0 ? std::min(ac.max_batches, ac.passes * batches_per_pass) : ac.passes * batches_per_pass;

  TrainOptions retrain;
  retrain.recipe = cfg.train;
  retrain.recipe.batch_size = ac.retrain.batch_size;
  retrain.recipe.optimizer = ac.retrain.optimizer;
  retrain.recipe.lr = ac.retrain.lr;
  retrain.recipe.momentum = ac.retrain.momentum;
  retrain.recipe.nesterov = false;
  retrain.recipe.lr_steps = {};
  retrain.recipe.epochs = 1;
  retrain.max_steps = ac.retrain.steps > 0
                          ? ac.retrain.steps
                          : static_cast<int64_t>(std::ceil(ac.retrain.epochs * n_train / ac.retrain.batch_size));
  retrain.keep_best = false;
  retrain.progress = false;
  retrain.log_epochs = false;
  retrain.label = "retrain";
  const bool retraining = ac.retrain_every > 0 && retrain.max_steps > 0;
  // One device copy of the training images for every retraining (not one per retraining).
  Split train_on_device;
  if (device.is_cuda() && retraining) {
    train_on_device = Split{data.train.x.to(device), data.train.y.to(device)};
    retrain.device_train = &train_on_device;
  }

  std::string trace;
  int64_t batches = 0, failing_total = 0, adjusted_total = 0, accepted = 0, accepted_retrain = 0, rejected_nonfinite = 0;
  int64_t since_improvement = 0, retrains = 0;
  std::string stopped_by = "passes";

  // Resumable state, saved at batch boundaries, where the model holds the best weights so far.
  int64_t start_pass = 0, start_b = 0;
  double elapsed_before = 0;
  torch::Tensor resumed_perm;
  const json state_key = {{"phase", "adapt"}, {"strategy", to_string(req.strategy)}, {"provenance", prov},
                          {"device", device.str()}};
  auto save = [&](int64_t pass, int64_t next_b, const torch::Tensor& perm) {
    torch::serialize::OutputArchive a;
    write_module(a, "model", model);
    write_generator(a, "gen", gen);
    a.write("perm", perm);
    json meta = {{"format", "apricot-adapt-state"}, {"key", state_key}, {"pass", pass}, {"next_batch", next_b},
                 {"batches", batches}, {"failing_total", failing_total}, {"adjusted_total", adjusted_total},
                 {"accepted", accepted}, {"accepted_retrain", accepted_retrain},
                 {"rejected_nonfinite", rejected_nonfinite}, {"since_improvement", since_improvement},
                 {"retrains", retrains}, {"best_acc", best_acc}, {"base_val", base_val}, {"base_test", base_test},
                 {"target_before", target_before}, {"trace", trace},
                 {"time", {t_adjust, t_predict, t_eval, t_retrain}}, {"elapsed", elapsed_before + since(t_start)}};
    save_state(state_path, a, meta);
    if (cache) {
      try {
        cache->save();
      } catch (const Error& e) {
        spdlog::warn("could not save the rDLM correctness cache ({}); it is only an optimisation", e.what());
      }
    }
  };
  install_interrupt_handlers();  // from here on SIGINT/SIGTERM save the state and exit 130
  {
    LoadedState st = load_state(state_path, "delete it (or rerun with --force) to start this strategy over");
    if (st.archive && st.meta.value("key", json()) != state_key) {
      spdlog::warn("adapt-{}: saved state {} belongs to another base model, rDLMs or configuration; starting over",
                   to_string(req.strategy), meta_path_for(state_path));
      remove_state(state_path);
    } else if (st.archive) {
      try {
        auto& a = *st.archive;
        read_module(a, "model", model);
        read_generator(a, "gen", gen);
        a.read("perm", resumed_perm);
        const json& m = st.meta;
        start_pass = m.at("pass"), start_b = m.at("next_batch"), batches = m.at("batches");
        failing_total = m.at("failing_total"), adjusted_total = m.at("adjusted_total"), accepted = m.at("accepted");
        accepted_retrain = m.at("accepted_retrain"), rejected_nonfinite = m.at("rejected_nonfinite");
        since_improvement = m.at("since_improvement"), retrains = m.at("retrains");
        best_acc = m.at("best_acc"), base_val = m.at("base_val"), base_test = m.at("base_test");
        target_before = m.at("target_before");
        trace = m.at("trace");
        t_adjust = m.at("time")[0], t_predict = m.at("time")[1], t_eval = m.at("time")[2];
        t_retrain = m.at("time")[3], elapsed_before = m.at("elapsed");
      } catch (const std::exception& e) {
        state_error("adapt-" + to_string(req.strategy) + ": saved state '" + state_path + "' is unusable: " + e.what(),
                    "delete it (or rerun with --force) to start this strategy over");
      }
      spdlog::info("adapt-{}: resuming from saved state after batch {} ({})", to_string(req.strategy), batches,
                   meta_path_for(state_path));
    }
  }
  // Invariant: at the start of every batch the model holds the best weights so far.
  auto best = snapshot_state(model);
  Progress progress("adapt-" + to_string(req.strategy), req.progress);
  const int64_t batches_at_start = batches;
  auto elapsed = [&] { return elapsed_before + since(t_start); };

  for (int64_t pass = start_pass; pass < ac.passes && batches < total_batches; ++pass) {
    const bool continuing = pass == start_pass && resumed_perm.defined();
    auto perm = continuing ? resumed_perm : torch::randperm(n_train, gen, torch::kInt64);
    for (int64_t b = continuing ? start_b : 0; b < batches_per_pass && batches < total_batches; ++b) {
      const auto t_batch = Clock::now();
      auto idx = perm.slice(0, b * ac.batch_size, std::min(n_train, (b + 1) * ac.batch_size));
      // digest: identifies the batch's inputs, so traces of different arms can be compared.
      json line = {{"batch", batches}, {"pass", pass}, {"digest", (idx * 1000003 + 17).sum().item<int64_t>()}};
      torch::Tensor failing;
      {
        Timer t{t_predict};
        auto pred = predict(model, data.train.x.index_select(0, idx), data.norm, device, eb);
        auto labels = data.train.y.index_select(0, idx);
        auto wrong = pred.ne(labels);
        if (targeted) wrong &= labels.eq(target_src) & pred.eq(target_dst);
        failing = idx.index_select(0, wrong.nonzero().flatten());
      }
      const int64_t F = failing.size(0);
      failing_total += F;
      line["failing"] = F;
      bool improved = false;
      int64_t adjusted = 0;
      double acc_adjusted = -1, acc_retrained = -1;
      if (adjusting && F > 0) {
        torch::Tensor mask;
        {
          Timer t{t_predict};
          mask = cache->rows(failing);  // (F, n)
        }
        AffineUpdate upd;
        bool finite = true;
        {
          Timer t{t_adjust};
          upd = compose_updates(mask, req.strategy, direction, ac.step);
          adjusted = upd.adjusted;
          if (adjusted > 0) {
            auto w = apply_update(flatten_weights(model, layout), R, upd);
            finite = all_finite(w);
            if (finite) assign_weights(model, layout, w);
          }
        }
        if (adjusted > 0 && !finite) {
          ++rejected_nonfinite;
          restore_state(model, best);
          spdlog::warn("batch {}: adjusted weights are not finite; rejected", batches);
        } else if (adjusted > 0) {
          Timer t{t_eval};
          acc_adjusted = accuracy(model, sel, data.norm, device, eb);
          if (acc_adjusted > best_acc) {
            best_acc = acc_adjusted, best = snapshot_state(model), improved = true, ++accepted;
          } else {
            restore_state(model, best);
          }
        }
      }
      adjusted_total += adjusted;
      line["adjusted"] = adjusted;
      line["acc_adjusted"] = acc_adjusted;
      if (retraining && (batches + 1) % ac.retrain_every == 0) {
        bool diverged = false;
        {
          Timer t{t_retrain};
          try {
            train_model(model, data, torch::Tensor(), retrain, device,
                        cfg.seed * 31ULL + static_cast<uint64_t>(batches));
          } catch (const TrainingDiverged& e) {
            spdlog::warn("batch {}: retraining diverged ({}); rejected", batches, e.what());
            diverged = true;
          }
          ++retrains;
        }
        Timer t{t_eval};
        if (diverged || !all_finite(flatten_weights(model, layout))) {
          ++rejected_nonfinite;
          restore_state(model, best);
        } else {
          acc_retrained = accuracy(model, sel, data.norm, device, eb);
          if (acc_retrained > best_acc) {
            best_acc = acc_retrained, best = snapshot_state(model), improved = true, ++accepted_retrain;
          } else {
            restore_state(model, best);
          }
        }
      }
      line["acc_retrained"] = acc_retrained;
      line["accepted"] = improved;
      line["best_acc"] = best_acc;
      line["seconds"] = since(t_batch);
      trace += line.dump() + "\n";
      ++batches;
      since_improvement = improved ? 0 : since_improvement + 1;
      if (ac.patience > 0 && since_improvement >= ac.patience) {
        stopped_by = "patience";
        break;
      }
      if (ac.time_budget > 0 && elapsed() >= ac.time_budget) {
        stopped_by = "time_budget";
        break;
      }
      const bool stop_now = interrupt_requested();
      if (stop_now || (cfg.resume.every_batches > 0 && batches % cfg.resume.every_batches == 0)) {
        if (b + 1 < batches_per_pass) {
          save(pass, b + 1, perm);
        } else {  // the next batch starts a new pass: its permutation is drawn then
          save(pass, batches_per_pass, perm);
        }
      }
      if (stop_now) {
        progress.finish();
        throw_interrupted("adapt-" + to_string(req.strategy) + ": state saved to " + meta_path_for(state_path) + " after batch " +
                              std::to_string(batches),
                          "rerun the same command to resume");
      }
      if (progress.should_draw()) {
        double el = since(t_start);
        char buf[200];
        std::snprintf(buf, sizeof buf, "batch %lld/%lld  best %s %.2f%%  accepted %lld+%lld  ETA %s",
                      static_cast<long long>(batches), static_cast<long long>(total_batches),
                      select_on_test ? "test" : "val", 100 * best_acc, static_cast<long long>(accepted),
                      static_cast<long long>(accepted_retrain),
                      format_duration(el / std::max<int64_t>(1, batches - batches_at_start) *
                                      (total_batches - batches))
                          .c_str());
        progress.draw(buf);
      }
    }
    if (stopped_by != "passes") break;
  }
  if (stopped_by == "passes" && ac.max_batches > 0 && batches >= ac.max_batches &&
      batches < ac.passes * batches_per_pass)
    stopped_by = "max_batches";
  progress.finish();
  write_file_atomic((fs::path(out_dir) / "trace.jsonl").string(), trace);

  restore_state(model, best);
  double final_val, final_test;
  {
    Timer t{t_eval};
    final_val = accuracy(model, data.val, data.norm, device, eb);
    final_test = accuracy(model, data.test, data.norm, device, eb);
  }
  const double seconds = elapsed();
  json result = {
      {"strategy", to_string(req.strategy)},
      {"direction", to_string(direction)},
      {"seed", cfg.seed},
      {"selection", ac.selection},
      {"base", {{"val_acc", base_val}, {"test_acc", base_test}}},
      {"final", {{"val_acc", final_val}, {"test_acc", final_test}}},
      {"gain_test", final_test - base_test},
      {"gain_val", final_val - base_val},
      {"batches", batches},
      {"failing_inputs", failing_total},
      {"adjusted_inputs", adjusted_total},
      {"accepted", accepted + accepted_retrain},
      {"accepted_adjustments", accepted},
      {"accepted_retrains", accepted_retrain},
      {"retrains", retrains},
      {"rejected_nonfinite", rejected_nonfinite},
      {"stopped_by", stopped_by},
      {"seconds", seconds},
      {"time", {{"adjustment", t_adjust}, {"prediction", t_predict}, {"evaluation", t_eval},
                {"retraining", t_retrain}, {"other", seconds - t_adjust - t_predict - t_eval - t_retrain}}},
      {"rdlm_predictions", cache ? cache->predicted() : 0},
      {"weights", layout.total},
      {"device", device.str()},
      {"provenance", prov},
  };
  if (targeted) {
    json after = {{"val", pair_errors(data.val)}, {"test", pair_errors(data.test)}};
    result["target"] = {{"pair", {target_src, target_dst}}, {"errors_before", target_before}, {"errors_after", after}};
    spdlog::info("adapt-{}: target pair {} -> {}: test errors {} -> {}, val errors {} -> {}", to_string(req.strategy),
                 target_src, target_dst, target_before["test"].get<int64_t>(), after["test"].get<int64_t>(),
                 target_before["val"].get<int64_t>(), after["val"].get<int64_t>());
  }
  json meta = checkpoint_meta(spec, data);
  meta["role"] = "adapt";
  meta["seed"] = cfg.seed;
  meta["config"] = to_json(cfg);
  meta["metrics"] = {{"val_acc", final_val}, {"test_acc", final_test}};
  meta["result"] = result;
  save_checkpoint((fs::path(out_dir) / "model.pt").string(), model, meta);
  write_json_atomic(result_path, result);
  remove_state(state_path);  // the result is safe on disk
  if (cache) {
    try {
      cache->save();
    } catch (const Error& e) {
      spdlog::warn("could not save the rDLM correctness cache ({}); it is only an optimisation", e.what());
    }
  }
  spdlog::info("adapt-{}: val {:.2f}% -> {:.2f}%  test {:.2f}% -> {:.2f}%  ({} batches, {} failing, {} adjusted, "
               "{} accepted, stopped by {}, {:.1f}s)",
               to_string(req.strategy), 100 * base_val, 100 * final_val, 100 * base_test, 100 * final_test, batches,
               failing_total, adjusted_total, accepted + accepted_retrain, stopped_by, seconds);
  return result;
}

}  // namespace apricot
