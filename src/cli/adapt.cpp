// `apricot adapt` (one strategy or each of adapt.strategies) and `apricot run` (every phase in
// order, skipping complete ones, then the comparison table). The phases are pipeline.hpp's; this
// file parses options and prints.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "apricot/pipeline.hpp"
#include "common.hpp"

namespace apricot::cli {

using nlohmann::json;

namespace {

struct AdaptOptions {
  CommonOptions common;
  std::string strategy;  // empty: each of adapt.strategies
};

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

int run_adapt_cmd(const AdaptOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  auto arms = arms_of(s.cfg, o.strategy);
  Dataset data = load_dataset(s.cfg.data, s.cfg.seed);
  json all = adapt_arms(s.cfg, data, s.workdir, s.device, arms, o.common.force);
  if (o.common.json) print_json(arms.size() == 1 ? all[0] : all);
  return 0;
}

struct RunOptions {
  CommonOptions common;
};

int run_all(const RunOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  json out = run_pipeline(s.cfg, s.workdir, s.device, o.common.force);
  if (o.common.json) {
    print_json(out);
  } else {
    print_table(out["base"], out["results"].get<std::vector<json>>());
    std::printf("work directory %s, %.0f s in all\n", s.workdir.c_str(), out["seconds"].get<double>());
  }
  return 0;
}

}  // namespace

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
