// The report as Markdown (render_markdown): the list of runs per group, every table with text columns
// left-aligned and numbers right-aligned, then the notes. No charts: those are in the HTML page only.
#include <sstream>
#include <string>

#include "apricot/report/report.hpp"
#include "internal.hpp"

namespace apricot {

using namespace report_detail;

namespace {

std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::string render_markdown(const json& rep) {
  std::ostringstream o;
  o << "# Apricot report\n\n";
  size_t n_runs = 0;
  for (const auto& g : rep["groups"]) n_runs += g["runs"].size();
  o << n_runs << (n_runs == 1 ? " work directory" : " work directories") << " in " << rep["groups"].size()
    << (rep["groups"].size() == 1 ? " group" : " groups")
    << " (one per configuration; the runs of a group differ only in the seed):\n\n";
  for (const auto& g : rep["groups"]) {
    o << "- " << g["label"].get<std::string>() << ":";
    for (const auto& r : g["runs"]) o << " `" << r["workdir"].get<std::string>() << "` (seed " << r["seed"] << ")";
    o << "\n";
  }
  for (const auto& t : make_tables(rep)) {
    o << "\n## " << t.title << "\n\n" << t.note << "\n\n|";
    for (const auto& h : t.header) o << " " << md_cell(h) << " |";
    o << "\n|";
    for (size_t i = 0; i < t.header.size(); ++i) {
      const std::string& h = t.header[i];  // text columns left, numbers right
      o << (i == 0 || h == "data" || h == "seeds" || h == "strategy" ? "---|" : "---:|");
    }
    o << "\n";
    for (const auto& row : t.rows) {
      o << "|";
      for (const auto& c : row) o << " " << md_cell(c) << " |";
      o << "\n";
    }
  }
  if (!rep["notes"].empty()) {
    o << "\n## Notes\n\n";
    for (const auto& n : rep["notes"]) o << "- " << n.get<std::string>() << "\n";
  }
  return o.str();
}

}  // namespace apricot
