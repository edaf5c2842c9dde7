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

// ---- one work directory ----
struct RunData {
  std::string workdir;                       // as given
  nlohmann::json config;                     // WORKDIR/config.json (or base/model.json "config")
  std::string arch, dataset;                 // model.arch, dataset name
  int64_t seed = 0;
  std::optional<nlohmann::json> base;        // base/model.json
  std::vector<nlohmann::json> base_curve;    // base/metrics.jsonl: one line per epoch
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

// The files a report writes into its directory, named here only.
struct ReportFiles {
  std::string markdown, json, html;  // DIR/report.md, DIR/report.json, DIR/report.html
  std::vector<std::string> all() const { return {markdown, json, html}; }
};
ReportFiles report_files(const std::string& dir);

// Loads the work directories, writes report_files(out_dir) (each atomically, replacing older ones)
// and returns the report document.
nlohmann::json write_report(const std::vector<std::string>& workdirs, const std::string& out_dir);

// `apricot sweep --seeds`: "1-5" -> {1..5}, "1,3,7", "0-2,9"; ascending, no duplicates. config_error
// (exit 2) for anything else (empty items, a range that runs backwards, negative or non-numeric seeds).
std::vector<int64_t> parse_seed_list(const std::string& text);

}  // namespace apricot
