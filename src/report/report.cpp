// `apricot report` and `apricot sweep` entry points: write_report loads the work directories, builds
// the document and writes report.md, report.json and report.html; parse_seed_list reads --seeds.
// The work itself is in load.cpp, document.cpp, tables.cpp, markdown.cpp,
// svg.cpp and html.cpp (shared declarations in internal.hpp).
#include "apricot/report/report.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"

namespace apricot {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<int64_t> parse_seed_list(const std::string& text) {
  auto bad = [&](const std::string& why) {
    config_error("--seeds '" + text + "': " + why, "write a range or a list: --seeds 1-5, --seeds 1,3,7, --seeds 0-2,9");
  };
  auto number = [&](const std::string& t) -> int64_t {
    if (t.empty() || t.size() > 18 || t.find_first_not_of("0123456789") != std::string::npos)
      bad("'" + t + "' is not a seed (a non-negative integer)");
    return std::stoll(t);
  };
  std::set<int64_t> seeds;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t dash = item.find('-');
    if (dash == std::string::npos) {
      seeds.insert(number(item));
    } else {
      int64_t a = number(item.substr(0, dash)), b = number(item.substr(dash + 1));
      if (b < a) bad("the range '" + item + "' runs backwards");
      if (b - a >= 10000) bad("the range '" + item + "' has more than 10000 seeds");
      for (int64_t k = a; k <= b; ++k) seeds.insert(k);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return {seeds.begin(), seeds.end()};
}

ReportFiles report_files(const std::string& dir) {
  const fs::path d(dir);
  return {(d / "report.md").string(), (d / "report.json").string(), (d / "report.html").string()};
}

json write_report(const std::vector<std::string>& workdirs, const std::string& out_dir) {
  if (workdirs.empty()) config_error("no work directory given", "apricot report WORKDIR... (for example runs/quickstart)");
  std::vector<RunData> runs;
  std::set<std::string> seen;
  for (const auto& w : workdirs) {
    std::error_code ec;
    std::string canon = fs::weakly_canonical(w, ec).string();
    if (!seen.insert(ec ? w : canon).second) {
      spdlog::warn("'{}' given twice; counted once", w);
      continue;
    }
    runs.push_back(load_run(w));
  }
  json rep = build_report(runs);
  const ReportFiles files = report_files(out_dir);
  write_file_atomic(files.markdown, render_markdown(rep));
  write_json_atomic(files.json, rep);
  write_file_atomic(files.html, render_html(rep, runs));
  return rep;
}

}  // namespace apricot
