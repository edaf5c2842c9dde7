// `apricot adapt` (one strategy or each of adapt.strategies) and `apricot run` (every phase in
// order, skipping complete ones, then the comparison table); run_phases is shared with `sweep`.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "apricot/adapt.hpp"
#include "apricot/checkpoint.hpp"
#include "apricot/errors.hpp"
#include "apricot/parallel.hpp"
#include "apricot/rdlm.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct AdaptOptions {
  CommonOptions common;
  std::string strategy;  // empty: each of adapt.strategies
};

std::vector<Strategy> strategies_of(const Config& cfg, const std::string& flag) {
  std::vector<Strategy> out;
  if (!flag.empty()) return {parse_strategy(flag)};
  for (const auto& s : cfg.adapt.strategies) out.push_back(parse_strategy(s));
  return out;
}

bool needs_rdlms(const std::vector<Strategy>& ss) {
  for (auto s : ss)
    if (s != Strategy::kNone) return true;
  return false;
}

// The comparison table on stdout: base, each strategy, the control arm.
void print_table(const json& base, const std::vector<json>& results) {
  const json* control = nullptr;
  for (const auto& r : results)
    if (r["strategy"] == "none") control = &r;
  std::printf("\n%-12s %9s %9s %10s %12s %9s %9s\n", "model", "val acc", "test acc", "test gain", "vs control",
              "accepted", "time");
  std::printf("%-12s %8.2f%% %8.2f%% %10s %12s %9s %9s\n", "base", 100 * base["val_acc"].get<double>(),
              100 * base["test_acc"].get<double>(), "", "", "", "");
  for (const auto& r : results) {
    std::string name = r["strategy"] == "none" ? "control" : "strategy " + r["strategy"].get<std::string>();
    char vs[32] = "";
    if (control && &r != control)
      std::snprintf(vs, sizeof vs, "%+.2f pp",
                    100 * (r["final"]["test_acc"].get<double>() - (*control)["final"]["test_acc"].get<double>()));
    std::printf("%-12s %8.2f%% %8.2f%% %+7.2f pp %12s %9lld %8.0fs\n", name.c_str(),
                100 * r["final"]["val_acc"].get<double>(), 100 * r["final"]["test_acc"].get<double>(),
                100 * r["gain_test"].get<double>(), vs, static_cast<long long>(r["accepted"].get<int64_t>()),
                r["seconds"].get<double>());
  }
  std::printf("\nselection on the %s split; gains in percentage points of test accuracy; the control arm runs the\n"
              "same loop without weight adjustment, so 'vs control' is what the rDLMs add.\n",
              results.empty() ? "validation" : results[0]["selection"] == "test" ? "TEST (paper protocol)" : "validation");
  std::fflush(stdout);
}

// Adapts each strategy, adapt.parallel of them at once (a CUDA stream each; on the CPU a share of
// the threads each); results in the order of `strategies`.
std::vector<json> adapt_arms(const Session& s, const Dataset& data, const std::vector<Strategy>& strategies,
                             bool force) {
  std::vector<json> results(strategies.size());
  std::vector<int64_t> jobs;
  for (size_t i = 0; i < strategies.size(); ++i) jobs.push_back(static_cast<int64_t>(i));
  const ParallelPlan plan = make_parallel_plan(s.cfg.adapt.parallel, {s.device}, torch::get_num_threads());
  if (plan.workers > 1)
    spdlog::info("adapting {} arms, up to {} at once on {} ({} CPU threads each)", jobs.size(), plan.workers,
                 s.device.str(), plan.threads_per_worker);
  run_parallel(jobs, plan, [&](int64_t i, const torch::Device& device) {
    spdlog::info("adaptation, strategy {}", to_string(strategies[i]));
    AdaptRequest req;
    req.strategy = strategies[i];
    req.force = force;
    req.progress = plan.workers <= 1;
    results[i] = run_adapt(s.cfg, data, s.workdir, device, req);
  });
  return results;
}

int run_adapt_cmd(const AdaptOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  auto strategies = strategies_of(s.cfg, o.strategy);
  Dataset data = load_dataset(s.cfg.data, s.cfg.seed);
  json all = adapt_arms(s, data, strategies, o.common.force);
  if (o.common.json) print_json(strategies.size() == 1 ? all[0] : all);
  return 0;
}

struct RunOptions {
  CommonOptions common;
};

int run_all(const RunOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  json out = run_phases(s, o.common.force);
  if (o.common.json) {
    print_json(out);
  } else {
    print_table(out["base"], out["results"].get<std::vector<json>>());
    std::printf("work directory %s, %.0f s in all\n", s.workdir.c_str(), out["seconds"].get<double>());
  }
  return 0;
}

}  // namespace

json run_phases(const Session& s, bool force) {
  auto strategies = strategies_of(s.cfg, "");
  resolve_devices(s.cfg.rdlm.devices);  // fail before any data is loaded
  Dataset data = load_dataset(s.cfg.data, s.cfg.seed);
  spdlog::info("data {}: train {} val {} test {} | {}x{}x{} | {} classes", data.name, data.train.size(),
               data.val.size(), data.test.size(), data.channels, data.height, data.width, data.classes);
  const std::string base_pt = (fs::path(s.workdir) / "base" / "model.pt").string();
  auto t0 = std::chrono::steady_clock::now();
  // Phase 0: the base model, through the train-base subcommand's code path.
  if (!checkpoint_exists(base_pt) || force) {
    spdlog::info("phase 1/3: training the base model");
    int rc = train_base_phase(s, force, /*json_out=*/false, &data);
    if (rc != 0) throw Error(static_cast<ExitCode>(rc), "training the base model in '" + s.workdir + "' failed");
  } else {
    spdlog::info("phase 1/3: base model exists ({}), skipped", base_pt);
  }
  if (needs_rdlms(strategies)) {
    spdlog::info("phase 2/3: rDLMs");
    RdlmTrainRequest req;
    req.force = force;
    train_rdlms(s.cfg, data, s.workdir, s.device, req);
  }
  spdlog::info("phase 3/3: adaptation");
  std::vector<json> results = adapt_arms(s, data, strategies, force);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {{"workdir", s.workdir}, {"base", results.at(0)["base"]}, {"results", results}, {"seconds", seconds}};
}

void print_results_table(const json& run) { print_table(run["base"], run["results"].get<std::vector<json>>()); }

CLI::App* setup_adapt(CLI::App& app, Action& action) {
  auto o = std::make_shared<AdaptOptions>();
  auto* sub = app.add_subcommand("adapt", "adapt the base model's weights guided by the rDLMs (WORKDIR/adapt-S/)");
  add_common_options(sub, o->common, /*with_force=*/true);
  add_arms_option(sub, o->common);
  sub->add_option("--strategy", o->strategy, "one arm (default: each of adapt.strategies)")->check(CLI::IsMember({"1", "2", "3", "none"}));
  sub->callback([o, &action] { action = [o] { return run_adapt_cmd(*o); }; });
  return sub;
}

CLI::App* setup_run(CLI::App& app, Action& action) {
  auto o = std::make_shared<RunOptions>();
  auto* sub = app.add_subcommand("run", "every phase in order (base, rDLMs, each strategy), then a results table");
  add_common_options(sub, o->common, /*with_force=*/true);
  add_rdlm_options(sub, o->common);
  add_arms_option(sub, o->common);
  sub->callback([o, &action] { action = [o] { return run_all(*o); }; });
  return sub;
}

}  // namespace apricot::cli
