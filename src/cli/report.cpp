// `apricot report WORKDIR...`: the paper's tables and figures over finished work directories (several
// seeds, strategies, models) into DIR/report.md, report.json and report.html; Markdown on stdout.
// It only reads the JSON the phases wrote: no model is loaded and nothing is recomputed. An existing
// report is replaced only with --force, as every command treats its outputs (sweep always rewrites
// the report it owns in ROOT/report).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "apricot/core/errors.hpp"
#include "apricot/report/report.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct ReportOptions {
  std::vector<std::string> workdirs;
  std::string out = "report";
  std::string log_level = "info";
  bool json = false;
  bool force = false;
};

int run_report(const ReportOptions& o) {
  configure_logging(o.log_level);
  const ReportFiles files = report_files(o.out);
  for (const std::string& existing : files.all()) {
    if (std::filesystem::exists(existing) && !o.force)
      config_error("--out '" + o.out + "' already holds a report ('" + existing + "' exists)",
                   "pass --force to replace it, or choose another directory with --out");
  }
  auto rep = write_report(o.workdirs, o.out);
  for (const auto& n : rep["notes"]) spdlog::warn("{}", n.get<std::string>());
  spdlog::info("wrote {}, {} and {}", files.markdown, files.json, files.html);
  if (o.json) {
    print_json(rep);
  } else {
    std::fputs(render_markdown(rep).c_str(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

CLI::App* setup_report(CLI::App& app, Action& action) {
  auto o = std::make_shared<ReportOptions>();
  auto* sub = app.add_subcommand(
      "report",
      "tables (paper II-V) and charts (Fig. 2-3, adaptation curves) over work directories: DIR/report.{md,json,html}");
  sub->add_option("workdirs", o->workdirs,
                  "work directories of apricot run / sweep (several seeds, strategies or models); runs of one "
                  "configuration that differ only in the seed are aggregated")
      ->required();
  sub->add_option("-o,--out", o->out, "output directory for report.md, report.json and report.html")
      ->capture_default_str();
  sub->add_option("--log-level", o->log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember(kLogLevels));
  sub->add_flag("--json", o->json, "print the report document (report.json) on stdout instead of the Markdown");
  sub->add_flag("--force", o->force, "replace a report that exists in the output directory");
  sub->callback([o, &action] { action = [o] { return run_report(*o); }; });
  return sub;
}

}  // namespace apricot::cli
