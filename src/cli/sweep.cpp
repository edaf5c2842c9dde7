// `apricot sweep`: the paper's repeated-runs protocol in one command. One work directory per seed
// (ROOT/seed-N), each running every phase as `apricot run` does (same code, same skipping of finished
// phases, so an interrupted sweep resumes), then the report over all of them into ROOT/report/.
// Seeds run one after another in this process; to spread them over machines see scripts/slurm/.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "apricot/core/errors.hpp"
#include "apricot/io/workdir.hpp"
#include "apricot/report/report.hpp"
#include "apricot/method/adjustment.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "apricot/pipeline/validate.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct SweepOptions {
  CommonOptions common;    // -w/--workdir is the sweep's ROOT
  std::string seeds;       // "1-5", "1,3,7"
  std::string strategies;  // "1,2,3,none"; empty: the config's adapt.strategies
};

// "1,2,none" -> the --set override of adapt.strategies; each name checked.
std::string strategies_override(const std::string& list) {
  json arr = json::array();
  size_t start = 0;
  while (true) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    arr.push_back(to_string(parse_strategy(item)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return "adapt.strategies=" + arr.dump();
}

int run_sweep(const SweepOptions& o) {
  configure_logging(o.common.log_level);
  const std::vector<int64_t> seeds = parse_seed_list(o.seeds);
  std::vector<std::string> sets = o.common.sets;
  if (!o.strategies.empty()) sets.push_back(strategies_override(o.strategies));
  // ROOT: --workdir, else the config's workdir (validates the config before any seed starts).
  const std::string root = o.common.workdir.empty() ? load_config(o.common.config, sets).workdir : o.common.workdir;
  spdlog::info("sweep: {} seed(s) under {}", seeds.size(), root);

  std::vector<std::string> dirs;
  json runs = json::array();
  for (size_t i = 0; i < seeds.size(); ++i) {
    CommonOptions c = o.common;
    c.sets = sets;
    c.seed = std::to_string(seeds[i]);
    c.workdir = (fs::path(root) / ("seed-" + std::to_string(seeds[i]))).string();
    spdlog::info("sweep: seed {} ({}/{}) in {}", seeds[i], i + 1, seeds.size(), c.workdir);
    Session s = open_session(c, /*write_config=*/true);
    json run = run_pipeline(s.cfg, s.workdir, s.device, o.common.force);
    if (!o.common.json) {
      std::printf("\nseed %lld (%s):", static_cast<long long>(seeds[i]), s.workdir.c_str());
      print_results_table(run);
    }
    runs.push_back({{"seed", seeds[i]}, {"workdir", s.workdir}, {"seconds", run["seconds"]}});
    dirs.push_back(s.workdir);
  }
  const std::string out = WorkDir(root).report_dir();
  json rep = write_report(dirs, out);
  for (const auto& n : rep["notes"]) spdlog::warn("{}", n.get<std::string>());
  const ReportFiles files = report_files(out);
  spdlog::info("sweep: report in {}, {}, {}", files.markdown, files.json, files.html);
  if (o.common.json) {
    print_json({{"root", root}, {"runs", runs}, {"report_dir", out}, {"report", rep}});
  } else {
    std::printf("\n%s", render_markdown(rep).c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

CLI::App* setup_sweep(CLI::App& app, Action& action) {
  auto o = std::make_shared<SweepOptions>();
  auto* sub = app.add_subcommand(
      "sweep", "every phase for each of several seeds (ROOT/seed-N, as `run` does), then the report in ROOT/report/");
  add_common_options(sub, o->common, /*with_force=*/true);
  add_rdlm_options(sub, o->common);
  add_arms_option(sub, o->common);
  sub->get_option("--workdir")
      ->description("ROOT: one work directory per seed under it (ROOT/seed-N) and the report in ROOT/report "
                    "(default: the config key workdir)");
  sub->remove_option(sub->get_option("--seed"));  // each run's seed comes from --seeds
  sub->add_option("--seeds", o->seeds, "seeds as a range or list: 1-5, 1,3,7, 0-2,9")->required();
  sub->add_option("--strategies", o->strategies, "arms to run, e.g. 1,2,3,none (default: the config's adapt.strategies)");
  sub->callback([o, &action] { action = [o] { return run_sweep(*o); }; });
  return sub;
}

}  // namespace apricot::cli
