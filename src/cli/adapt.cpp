// `apricot adapt`: one arm or each of adapt.strategies (the phases are pipeline.hpp's; `run` is
// in run.cpp). This file parses options and prints.
#include "apricot/method/arms.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "common.hpp"

namespace apricot::cli {

using nlohmann::json;

namespace {

struct AdaptOptions {
  CommonOptions common;
  std::string strategy;  // empty: each of adapt.strategies
};

int run_adapt_cmd(const AdaptOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  auto arms = arms_of(s.cfg, o.strategy);
  Dataset data = load_dataset(s.cfg.data, s.cfg.seed);
  json all = adapt_arms(s.cfg, data, s.workdir, s.device, arms, o.common.force);
  if (o.common.json) print_json(arms.size() == 1 ? all[0] : all);
  return 0;
}

}  // namespace

CLI::App* setup_adapt(CLI::App& app, Action& action) {
  auto o = std::make_shared<AdaptOptions>();
  auto* sub = app.add_subcommand("adapt", "adapt the base model's weights guided by the rDLMs (WORKDIR/adapt-S/)");
  add_common_options(sub, o->common, /*with_force=*/true);
  add_arms_option(sub, o->common);
  sub->add_option("--strategy", o->strategy, "one arm (default: each of adapt.strategies)")->check(CLI::IsMember(strategy_names()));
  sub->callback([o, &action] { action = [o] { return run_adapt_cmd(*o); }; });
  return sub;
}

}  // namespace apricot::cli
