// Reports over finished work directories: reads what the phases wrote (config.json, base/model.json,
// rdlms/summary.json, rdlms/rdlm-NN/model.json, adapt-S/result.json and trace.jsonl), groups runs of
// one configuration that differ only in the seed, and renders the paper's Tables II-V (Markdown and
// JSON) and one self-contained HTML page with inline SVG charts (Figures 2 and 3, adaptation curves).
// It never loads a model or a dataset: every figure comes from the JSON files.
#pragma once
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace apricot {

// ---- statistics (exposed for the tests) ----
double stat_mean(const std::vector<double>& v);       // NaN when empty
double stat_std(const std::vector<double>& v);        // sample std (n-1 denominator); NaN when n < 2
double quantile(std::vector<double> v, double q);     // linear interpolation (R type 7); NaN when empty
double log_gamma(double x);                           // ln Γ(x), x > 0
double incomplete_beta(double a, double b, double x);  // regularized I_x(a, b), a, b > 0, 0 <= x <= 1
double student_t_two_sided_p(double t, double df);   // P(|T| >= |t|) for Student's t with df > 0

// Paired comparison of a strategy with the control arm over runs: d_i = strategy_i - control_i.
struct PairedStats {
  int64_t n = 0;
  double mean = 0, std = 0;       // of d (std NaN when n < 2)
  int64_t wins = 0, ties = 0, losses = 0;
  std::optional<double> t, p;     // absent when n < 2 or d has no variation
};
PairedStats paired_stats(const std::vector<double>& diffs, double tie_tolerance = 1e-9);

// ---- one work directory ----
struct RunData {
  std::string workdir;                       // as given
  nlohmann::json config;                     // WORKDIR/config.json (or base/model.json "config")
  std::string arch, dataset;                 // model.arch, dataset name
  int64_t seed = 0;
  std::optional<nlohmann::json> base;        // base/model.json
  std::optional<nlohmann::json> rdlm_summary;  // rdlms/summary.json
  std::vector<nlohmann::json> rdlms;         // rdlms/rdlm-NN/model.json "metrics", in index order
  int64_t rdlm_count = 0;                    // config rdlm.count
  std::map<std::string, nlohmann::json> results;                // strategy ("1","2","3","none") -> result.json
  std::map<std::string, std::vector<nlohmann::json>> traces;    // strategy -> trace.jsonl lines
};

// Reads one work directory. data_error (exit 3) when `workdir` is not one (no config.json and no
// base/model.json) or a file in it is not valid JSON, naming the file. Missing phases are left empty.
RunData load_run(const std::string& workdir);

// ---- the report ----
// Builds the report document (tables as data) from loaded runs. Runs are grouped by configuration
// without seed, work directory, device, threads, resume and adapt.strategies; a group is labelled by its model
// arch, plus the keys that tell it apart from other groups of the same arch.
nlohmann::json build_report(const std::vector<RunData>& runs);

std::string render_markdown(const nlohmann::json& report);
std::string render_html(const nlohmann::json& report, const std::vector<RunData>& runs);

// Loads the work directories, writes DIR/report.md, report.json, report.html (each atomically,
// replacing older ones) and returns the report document.
nlohmann::json write_report(const std::vector<std::string>& workdirs, const std::string& out_dir);

// `apricot sweep --seeds`: "1-5" -> {1..5}, "1,3,7", "0-2,9"; ascending, no duplicates. config_error
// (exit 2) for anything else (empty items, a range that runs backwards, negative or non-numeric seeds).
std::vector<int64_t> parse_seed_list(const std::string& text);

}  // namespace apricot
