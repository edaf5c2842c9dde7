// Reading one work directory for the report (load_run): the JSON files the phases wrote, found
// through WorkDir. It keeps them as parsed JSON and interprets nothing beyond the run's identity
// (arch, dataset, seed, rDLM count); missing phases stay empty, damaged files are data errors.
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/report/report.hpp"
#include "apricot/method/arms.hpp"
#include "apricot/io/workdir.hpp"
#include "internal.hpp"

namespace apricot {

namespace fs = std::filesystem;
using namespace report_detail;

namespace {

// The file parsed, or nothing when it does not exist; data_error naming it when it is not JSON.
std::optional<json> read_json_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  try {
    return json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    data_error("'" + path + "' is not valid JSON (" + e.what() + ")",
               "the file is damaged or half-copied; rerun the phase that writes it with --force");
  }
}

// A JSON-lines file (trace.jsonl, metrics.jsonl), one document a line (blank lines skipped); a
// damaged line is a data error with `hint`.
std::vector<json> read_jsonl(const std::string& path, const std::string& hint) {
  std::vector<json> out;
  std::istringstream in(read_file(path));
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const json::parse_error& e) {
      data_error("'" + path + "' line " + std::to_string(lineno) + " is not valid JSON", hint);
    }
  }
  return out;
}

}  // namespace

RunData load_run(const std::string& workdir) {
  const WorkDir wd(workdir);
  std::error_code ec;
  if (!fs::is_directory(workdir, ec))
    data_error("'" + workdir + "' is not a directory",
               "pass work directories written by apricot run or sweep (their -w/--workdir)");
  RunData r;
  r.workdir = workdir;
  auto config = read_json_file(wd.config());
  r.base = read_json_file(wd.base_meta());
  if (r.base && fs::is_regular_file(wd.base_metrics(), ec))
    r.base_curve = read_jsonl(wd.base_metrics(), "the file is damaged; rerun apricot train-base --force");
  if (!config && r.base && r.base->contains("config")) config = (*r.base)["config"];
  if (!config || !config->is_object())
    data_error("'" + workdir + "' is not an apricot work directory: it has neither config.json nor base/model.json",
               "pass the directory given to -w/--workdir of apricot run, train-base or sweep");
  r.config = *config;
  r.arch = str(r.config, {"model", "arch"}, r.base ? str(*r.base, {"arch"}, "?") : "?");
  r.dataset = r.base ? str(*r.base, {"dataset", "name"}) : "";
  if (r.dataset.empty()) r.dataset = str(r.config, {"data", "format"}, "?");
  double seed = num(r.config, {"seed"});
  r.seed = std::isnan(seed) ? 0 : static_cast<int64_t>(seed);
  double count = num(r.config, {"rdlm", "count"});
  r.rdlm_count = std::isnan(count) ? 0 : static_cast<int64_t>(count);
  r.rdlm_summary = read_json_file(wd.rdlm_summary());
  // The rDLMs' metadata in index order, for the indices below rdlm.count (a directory left over from
  // an earlier, larger count is not this run's).
  std::set<int64_t> indices;
  if (fs::is_directory(wd.rdlms_dir(), ec)) {
    for (const auto& e : fs::directory_iterator(wd.rdlms_dir(), ec)) {
      const auto k = WorkDir::rdlm_index(e.path().filename().string());
      if (!e.is_directory() || !k) continue;
      if (r.rdlm_count == 0 || *k < r.rdlm_count) indices.insert(*k);
    }
  }
  for (int64_t k : indices) {
    auto meta = read_json_file(wd.rdlm_meta(k));
    if (meta && meta->contains("metrics")) r.rdlms.push_back((*meta)["metrics"]);
  }
  for (const auto& s : strategy_names()) {
    auto res = read_json_file(wd.adapt_result(s));
    if (!res) continue;
    r.results[s] = *res;
    const std::string trace = wd.adapt_trace(s);
    if (!fs::is_regular_file(trace, ec)) continue;
    r.traces[s] = read_jsonl(trace, "the file is damaged; rerun apricot adapt --strategy " + s + " --force");
  }
  return r;
}

}  // namespace apricot
