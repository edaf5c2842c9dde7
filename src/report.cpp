// `apricot report`: the paper's Tables II-V and Figures 2-3 from finished work directories, as
// Markdown, JSON and one self-contained HTML page (inline CSS and SVG, no script, no network).
// Reads only the JSON files the phases write; never loads a model, never re-evaluates anything.
#include "apricot/report.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include "apricot/errors.hpp"
#include "apricot/fsutil.hpp"
#include "apricot/stats.hpp"

namespace apricot {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const std::vector<std::string> kStrategyOrder = {"1", "2", "3", "none"};

std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}
}  // namespace

// ---------------------------------------------------------------------------------------------------
// Loading a work directory

namespace {

std::optional<json> read_json_file(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return std::nullopt;
  try {
    return json::parse(read_file(p.string()));
  } catch (const json::parse_error& e) {
    data_error("'" + p.string() + "' is not valid JSON (" + e.what() + ")",
               "the file is damaged or half-copied; rerun the phase that writes it with --force");
  }
}

// A nested key as a double, or NaN when any part is missing or not a number.
double num(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object() || !cur->contains(k)) return kNaN;
    cur = &(*cur)[k];
  }
  return cur->is_number() ? cur->get<double>() : kNaN;
}

std::string str(const json& j, std::initializer_list<const char*> path, const std::string& fallback = "") {
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object() || !cur->contains(k)) return fallback;
    cur = &(*cur)[k];
  }
  return cur->is_string() ? cur->get<std::string>() : fallback;
}

}  // namespace

RunData load_run(const std::string& workdir) {
  const fs::path w(workdir);
  std::error_code ec;
  if (!fs::is_directory(w, ec))
    data_error("'" + workdir + "' is not a directory",
               "pass work directories written by apricot run or sweep (their -w/--workdir)");
  RunData r;
  r.workdir = workdir;
  auto config = read_json_file(w / "config.json");
  r.base = read_json_file(w / "base" / "model.json");
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
  r.rdlm_summary = read_json_file(w / "rdlms" / "summary.json");
  if (fs::is_directory(w / "rdlms", ec)) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(w / "rdlms", ec)) {
      const std::string name = e.path().filename().string();  // rdlm-NN with NN < rdlm.count
      if (!e.is_directory() || name.size() < 6 || name.rfind("rdlm-", 0) != 0 ||
          name.find_first_not_of("0123456789", 5) != std::string::npos)
        continue;
      if (r.rdlm_count == 0 || std::stoll(name.substr(5)) < r.rdlm_count) dirs.push_back(e.path());
    }
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) {
      auto meta = read_json_file(d / "model.json");
      if (meta && meta->contains("metrics")) r.rdlms.push_back((*meta)["metrics"]);
    }
  }
  for (const auto& s : kStrategyOrder) {
    const fs::path dir = w / ("adapt-" + s);
    auto res = read_json_file(dir / "result.json");
    if (!res) continue;
    r.results[s] = *res;
    std::error_code ec2;
    if (!fs::is_regular_file(dir / "trace.jsonl", ec2)) continue;
    std::istringstream in(read_file((dir / "trace.jsonl").string()));
    std::string line;
    int64_t lineno = 0;
    auto& tr = r.traces[s];
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty()) continue;
      try {
        tr.push_back(json::parse(line));
      } catch (const json::parse_error& e) {
        data_error("'" + (dir / "trace.jsonl").string() + "' line " + std::to_string(lineno) + " is not valid JSON",
                   "the file is damaged; rerun apricot adapt --strategy " + s + " --force");
      }
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Building the report document

namespace {

// {"n", "mean", "std", "values"}; mean and std null where mean_std gives NaN.
json stat_json(const std::vector<double>& v) {
  const MeanStd ms = mean_std(v);
  auto nn = [](double x) { return std::isnan(x) ? json(nullptr) : json(x); };
  return {{"n", v.size()}, {"mean", nn(ms.mean)}, {"std", nn(ms.std)}, {"values", v}};
}

void push_if(std::vector<double>& v, double x) {
  if (!std::isnan(x)) v.push_back(x);
}

// The configuration that defines a group: everything but what only says where or how fast it ran
// (and how often it saved its state).
json group_config(const json& config) {
  json c = config;
  for (const char* k : {"seed", "workdir", "device", "threads", "resume"}) c.erase(k);
  if (c.contains("adapt") && c["adapt"].is_object()) c["adapt"].erase("strategies");
  return c;
}

void flatten(const json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

// Initial selection accuracy of an adaptation run (the base model on the selection split).
double start_acc(const json& result) {
  return str(result, {"selection"}) == "test" ? num(result, {"base", "test_acc"}) : num(result, {"base", "val_acc"});
}

}  // namespace

json build_report(const std::vector<RunData>& runs) {
  // Group the runs by configuration, in order of first appearance.
  std::vector<std::string> keys;
  std::map<std::string, std::vector<size_t>> members;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string k = group_config(runs[i].config).dump();
    if (!members.count(k)) keys.push_back(k);
    members[k].push_back(i);
  }
  // Labels: the arch, plus the keys that set a group apart from the other groups of its arch.
  std::vector<std::string> labels;
  for (const auto& k : keys) {
    const RunData& first = runs[members[k][0]];
    std::map<std::string, std::string> mine;
    flatten(json::parse(k), "", mine);
    std::set<std::string> differing;
    for (const auto& k2 : keys) {
      if (k2 == k || runs[members[k2][0]].arch != first.arch) continue;
      std::map<std::string, std::string> other;
      flatten(json::parse(k2), "", other);
      for (const auto& [key, v] : mine)
        if (!other.count(key) || other[key] != v) differing.insert(key);
    }
    std::string label = first.arch;
    if (!differing.empty()) {
      std::string extra;
      int shown = 0;
      for (const auto& key : differing) {
        if (shown++ == 3) {
          extra += ", …";
          break;
        }
        extra += (extra.empty() ? "" : ", ") + key + "=" + mine[key];
      }
      label += " (" + extra + ")";
    }
    labels.push_back(label);
  }

  json report = {{"tool", "apricot report"}, {"version", APRICOT_VERSION}, {"groups", json::array()},
                 {"notes", json::array()}};
  std::set<std::string> strategies_seen;
  for (size_t g = 0; g < keys.size(); ++g) {
    std::vector<size_t> idx = members[keys[g]];
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return runs[a].seed < runs[b].seed; });
    const RunData& first = runs[idx[0]];
    json group = {{"label", labels[g]}, {"arch", first.arch}, {"dataset", first.dataset}, {"runs", json::array()}};

    std::vector<double> train_acc, val_acc, test_acc, base_s, rdlm_total_s, rdlm_mean_s, rd_acc_mean, rd_acc_std,
        rd_coverage, rd_share, rd_trained;
    json params = nullptr;
    std::map<std::string, std::vector<double>> adapt_s, base_test, final_val, final_test, gain, vs_control, accepted,
      target_before, target_after;
  std::set<std::string> target_pairs;
    std::map<std::string, int64_t> runs_with;
    std::set<int64_t> seeds;
    for (size_t i : idx) {
      const RunData& r = runs[i];
      seeds.insert(r.seed);
      json phases = {{"base", r.base.has_value()},
                     {"rdlms_trained", r.rdlms.size()},
                     {"rdlms_configured", r.rdlm_count},
                     {"rdlm_summary", r.rdlm_summary.has_value()},
                     {"adapt", json::array()}};
      for (const auto& [s, _] : r.results) phases["adapt"].push_back(s);
      group["runs"].push_back({{"workdir", r.workdir}, {"seed", r.seed}, {"phases", phases}});
      if (!r.base) report["notes"].push_back(r.workdir + ": no base model (base/model.json) yet");
      if (r.base) {
        const json& b = *r.base;
        push_if(train_acc, num(b, {"metrics", "train_acc"}));
        push_if(val_acc, num(b, {"metrics", "val_acc"}));
        push_if(test_acc, num(b, {"metrics", "test_acc"}));
        double s = num(b, {"seconds"});
        push_if(base_s, std::isnan(s) ? num(b, {"metrics", "train_seconds"}) : s);
        if (params.is_null() && !std::isnan(num(b, {"params", "total"}))) params = b["params"]["total"];
      }
      // Table III/IV: rDLMs. Times from each rDLM's metadata; the rest from the summary.
      if (!r.rdlms.empty()) {
        std::vector<double> secs;
        for (const auto& m : r.rdlms) push_if(secs, num(m, {"train_seconds"}));
        if (!secs.empty()) {
          double tot = 0;
          for (double x : secs) tot += x;
          rdlm_total_s.push_back(tot);
          rdlm_mean_s.push_back(tot / static_cast<double>(secs.size()));
        }
      }
      rd_trained.push_back(static_cast<double>(r.rdlms.size()));
      if (r.rdlm_summary) {
        const json& sm = *r.rdlm_summary;
        push_if(rd_acc_mean, num(sm, {"test_acc", "mean"}));
        push_if(rd_acc_std, num(sm, {"test_acc", "std"}));
        push_if(rd_coverage, num(sm, {"coverage"}));
        push_if(rd_share, num(sm, {"base_failures_some_rdlm_right_share"}));
      } else if (r.rdlm_count > 0 && r.results.size() > (r.results.count("none") ? 1u : 0u)) {
        report["notes"].push_back(r.workdir + ": adaptation results but no rdlms/summary.json");
      } else if (r.base && r.rdlm_count > 0) {
        report["notes"].push_back(r.workdir + ": rDLMs incomplete (" + std::to_string(r.rdlms.size()) + "/" +
                                  std::to_string(r.rdlm_count) + " trained, no summary.json)");
      }
      // Table V.
      const json* control = r.results.count("none") ? &r.results.at("none") : nullptr;
      for (const auto& [s, res] : r.results) {
        strategies_seen.insert(s);
        ++runs_with[s];
        push_if(adapt_s[s], num(res, {"seconds"}));
        push_if(base_test[s], num(res, {"base", "test_acc"}));
        push_if(final_val[s], num(res, {"final", "val_acc"}));
        push_if(final_test[s], num(res, {"final", "test_acc"}));
        push_if(gain[s], num(res, {"gain_test"}));
        push_if(accepted[s], num(res, {"accepted"}));
        if (res.contains("target")) {  // targeted repair (adapt.target): the pair's test errors
          push_if(target_before[s], num(res, {"target", "errors_before", "test"}));
          push_if(target_after[s], num(res, {"target", "errors_after", "test"}));
          target_pairs.insert(res["target"].value("pair", json::array()).dump());
        }
        if (control && s != "none") {
          double d = num(res, {"final", "test_acc"}) - num(*control, {"final", "test_acc"});
          push_if(vs_control[s], d);
        }
      }
    }
    group["seeds"] = seeds;
    if (seeds.size() < idx.size())
      report["notes"].push_back(labels[g] + ": " + std::to_string(idx.size()) + " runs but only " +
                                std::to_string(seeds.size()) + " distinct seeds (repeated seeds are not independent)");
    group["models"] = {{"params", params},
                       {"train_acc", stat_json(train_acc)},
                       {"val_acc", stat_json(val_acc)},
                       {"test_acc", stat_json(test_acc)}};
    json adapt_times = json::object();
    for (const auto& [s, v] : adapt_s) adapt_times[s] = stat_json(v);
    group["times"] = {{"base_seconds", stat_json(base_s)},
                      {"rdlms_total_seconds", stat_json(rdlm_total_s)},
                      {"rdlm_mean_seconds", stat_json(rdlm_mean_s)},
                      {"adapt_seconds", adapt_times}};
    group["rdlms"] = {{"configured", first.rdlm_count},
                      {"trained", stat_json(rd_trained)},
                      {"test_acc_mean", stat_json(rd_acc_mean)},
                      {"test_acc_std", stat_json(rd_acc_std)},
                      {"coverage", stat_json(rd_coverage)},
                      {"base_failures_some_rdlm_right_share", stat_json(rd_share)}};
    json per = json::object();
    for (const auto& [s, n] : runs_with) {
      json e = {{"runs", n},
                {"base_test_acc", stat_json(base_test[s])},
                {"final_val_acc", stat_json(final_val[s])},
                {"final_test_acc", stat_json(final_test[s])},
                {"gain_test", stat_json(gain[s])},
                {"max_gain_test", gain[s].empty() ? json(nullptr)
                                                  : json(*std::max_element(gain[s].begin(), gain[s].end()))},
                {"accepted", stat_json(accepted[s])}};
      if (!target_before[s].empty())
        e["target_test_errors"] = {{"before", stat_json(target_before[s])}, {"after", stat_json(target_after[s])}};
      if (s != "none") {
        e["vs_control"] = stat_json(vs_control[s]);
        PairedStats ps = paired_stats(vs_control[s]);
        e["paired"] = {{"n", ps.n},
                       {"mean", ps.n ? json(ps.mean) : json(nullptr)},
                       {"std", std::isnan(ps.std) ? json(nullptr) : json(ps.std)},
                       {"wins", ps.wins},
                       {"ties", ps.ties},
                       {"losses", ps.losses},
                       {"t", ps.t ? json(*ps.t) : json(nullptr)},
                       {"df", ps.n >= 2 ? json(ps.n - 1) : json(nullptr)},
                       {"p_two_sided", ps.p ? json(*ps.p) : json(nullptr)}};
      }
      per[s] = e;
    }
    group["adaptation"] = per;
    if (!target_pairs.empty()) {
      group["target_pairs"] = json::array();
      for (const auto& p : target_pairs) group["target_pairs"].push_back(json::parse(p));
    }
    report["groups"].push_back(group);
  }
  // The paper's "overall average gain": per strategy, the mean over groups of each group's mean gain.
  json overall = json::object();
  for (const auto& s : kStrategyOrder) {
    if (!strategies_seen.count(s)) continue;
    std::vector<double> g_gain, g_vs;
    for (const auto& grp : report["groups"]) {
      if (!grp["adaptation"].contains(s)) continue;
      const json& e = grp["adaptation"][s];
      if (e["gain_test"]["mean"].is_number()) g_gain.push_back(e["gain_test"]["mean"].get<double>());
      if (e.contains("vs_control") && e["vs_control"]["mean"].is_number())
        g_vs.push_back(e["vs_control"]["mean"].get<double>());
    }
    overall[s] = {{"groups", g_gain.size()}, {"gain_test", stat_json(g_gain)}};
    if (s != "none") overall[s]["vs_control"] = stat_json(g_vs);
  }
  report["overall"] = overall;
  std::vector<std::string> order;
  for (const auto& s : kStrategyOrder)
    if (strategies_seen.count(s)) order.push_back(s);
  report["strategies"] = order;
  return report;
}

// ---------------------------------------------------------------------------------------------------
// Rendering

namespace {

const char* kDash = "—";

std::string strategy_name(const std::string& s) { return s == "none" ? "control" : "strategy " + s; }

bool has_mean(const json& st) { return st.is_object() && st.contains("mean") && st["mean"].is_number(); }

// "89.26% ± 0.31" (percent of a fraction), std only when there are two or more values.
std::string pct(const json& st) {
  if (!has_mean(st)) return kDash;
  std::string out = strf("%.2f%%", 100 * st["mean"].get<double>());
  if (st["std"].is_number()) out += strf(" ± %.2f", 100 * st["std"].get<double>());
  return out;
}
// "+1.24 ± 0.50 pp" (percentage points of a difference of fractions).
std::string pp(const json& st) {
  if (!has_mean(st)) return kDash;
  std::string out = strf("%+.2f", 100 * st["mean"].get<double>());
  if (st["std"].is_number()) out += strf(" ± %.2f", 100 * st["std"].get<double>());
  return out + " pp";
}
std::string pp_value(const json& v) { return v.is_number() ? strf("%+.2f pp", 100 * v.get<double>()) : kDash; }
std::string secs(const json& st) {
  if (!has_mean(st)) return kDash;
  std::string out = strf("%.1f", st["mean"].get<double>());
  if (st["std"].is_number()) out += strf(" ± %.1f", st["std"].get<double>());
  return out;
}
std::string plain(const json& st, const char* f) { return has_mean(st) ? strf(f, st["mean"].get<double>()) : kDash; }

// One table as header + rows of cells; rendered to Markdown or HTML.
struct Table {
  std::string title, note;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

std::vector<Table> make_tables(const json& rep) {
  std::vector<Table> out;
  const auto strategies = rep["strategies"].get<std::vector<std::string>>();
  auto runs_of = [](const json& g) { return std::to_string(g["runs"].size()); };
  auto seeds_of = [](const json& g) {
    std::string s;
    for (const auto& x : g["seeds"]) s += (s.empty() ? "" : ",") + std::to_string(x.get<int64_t>());
    return s;
  };

  Table t2{"Table II: models", "Base model accuracy, mean ± std over runs (seeds).",
           {"model", "data", "runs", "seeds", "params", "train acc", "val acc", "test acc"}, {}};
  for (const auto& g : rep["groups"]) {
    const json& m = g["models"];
    t2.rows.push_back({g["label"], g["dataset"], runs_of(g), seeds_of(g),
                       m["params"].is_number() ? std::to_string(m["params"].get<int64_t>()) : kDash,
                       pct(m["train_acc"]), pct(m["val_acc"]), pct(m["test_acc"])});
  }
  out.push_back(t2);

  Table t3{"Table III: training times (seconds)",
           "Wall-clock seconds per run, mean ± std over runs: base training (with its evaluation), all rDLMs "
           "together and per rDLM (training only), and each adaptation arm.",
           {"model", "runs", "base", "rDLMs total", "per rDLM"},
           {}};
  for (const auto& s : strategies) t3.header.push_back("adapt " + (s == "none" ? std::string("control") : s));
  for (const auto& g : rep["groups"]) {
    const json& t = g["times"];
    std::vector<std::string> row = {g["label"], runs_of(g), secs(t["base_seconds"]), secs(t["rdlms_total_seconds"]),
                                    secs(t["rdlm_mean_seconds"])};
    for (const auto& s : strategies) row.push_back(t["adapt_seconds"].contains(s) ? secs(t["adapt_seconds"][s]) : kDash);
    t3.rows.push_back(row);
  }
  out.push_back(t3);

  Table t4{"Table IV: rDLMs",
           "Per run from rdlms/summary.json, then mean ± std over runs: the rDLMs' mean and std of test accuracy, "
           "the share of training images in some rDLM's subset, and the share of the base model's test "
           "failures that at least one rDLM classifies correctly.",
           {"model", "runs", "rDLMs", "test acc (mean)", "test acc (std)", "coverage", "base failures some rDLM gets right"},
           {}};
  for (const auto& g : rep["groups"]) {
    const json& r = g["rdlms"];
    std::string count = has_mean(r["trained"])
                            ? strf("%.0f/%lld", r["trained"]["mean"].get<double>(),
                                   static_cast<long long>(r["configured"].get<int64_t>()))
                            : kDash;
    t4.rows.push_back({g["label"], runs_of(g), count, pct(r["test_acc_mean"]), pct(r["test_acc_std"]),
                       pct(r["coverage"]), pct(r["base_failures_some_rdlm_right_share"])});
  }
  out.push_back(t4);

  for (const auto& g : rep["groups"]) {
    Table t5{"Table V: adaptation, " + g["label"].get<std::string>(),
             "Test accuracy of the base and the final model, mean ± std over runs; gains in percentage points. "
             "The control arm runs the same loop without weight adjustment: the gain over the control is what "
             "the rDLMs add.",
             {"", }, {}};
    for (const auto& s : strategies) t5.header.push_back(strategy_name(s));
    const json& a = g["adaptation"];
    auto row = [&](const std::string& name, auto cell) {
      std::vector<std::string> r = {name};
      for (const auto& s : strategies) r.push_back(a.contains(s) ? cell(a[s], s) : kDash);
      t5.rows.push_back(r);
    };
    row("runs", [](const json& e, const std::string&) { return std::to_string(e["runs"].get<int64_t>()); });
    row("base test acc", [](const json& e, const std::string&) { return pct(e["base_test_acc"]); });
    row("final val acc", [](const json& e, const std::string&) { return pct(e["final_val_acc"]); });
    row("final test acc", [](const json& e, const std::string&) { return pct(e["final_test_acc"]); });
    row("gain over base", [](const json& e, const std::string&) { return pp(e["gain_test"]); });
    row("max gain over base", [](const json& e, const std::string&) { return pp_value(e["max_gain_test"]); });
    row("gain over control", [](const json& e, const std::string& s) {
      return s == "none" ? std::string(kDash) : pp(e["vs_control"]);
    });
    row("accepted (mean)", [](const json& e, const std::string&) { return plain(e["accepted"], "%.1f"); });
    if (g.contains("target_pairs"))
      row("target pair " + g["target_pairs"][0].dump() + ": test errors", [](const json& e, const std::string&) {
        if (!e.contains("target_test_errors")) return std::string(kDash);
        return plain(e["target_test_errors"]["before"], "%.1f") + " → " + plain(e["target_test_errors"]["after"], "%.1f");
      });
    t5.header[0] = "";
    out.push_back(t5);
  }

  Table ov{"Table V (overall): average gain over all models",
           "Per strategy, the mean over models of each model's mean gain (± std over models when there are several).",
           {"", }, {}};
  for (const auto& s : strategies) ov.header.push_back(strategy_name(s));
  std::vector<std::string> r1 = {"average gain over base"}, r2 = {"average gain over control"};
  for (const auto& s : strategies) {
    const json& e = rep["overall"][s];
    r1.push_back(pp(e["gain_test"]));
    r2.push_back(s == "none" ? kDash : pp(e["vs_control"]));
  }
  ov.rows = {r1, r2};
  out.push_back(ov);

  Table pc{"Paired comparison with the control arm",
           "Per run, the strategy's final test accuracy minus the control arm's on the same seed and work directory; "
           "mean and std of these differences, wins/ties/losses, the paired t statistic and its two-sided p-value "
           "(Student's t with n−1 degrees of freedom; none when n < 2 or the differences do not vary).",
           {"model", "strategy", "n", "mean diff", "std", "wins/ties/losses", "t (df)", "p"},
           {}};
  for (const auto& g : rep["groups"])
    for (const auto& s : strategies) {
      if (s == "none" || !g["adaptation"].contains(s)) continue;
      const json& p = g["adaptation"][s]["paired"];
      if (p["n"].get<int64_t>() == 0) continue;
      pc.rows.push_back({g["label"], s, std::to_string(p["n"].get<int64_t>()), pp_value(p["mean"]),
                         p["std"].is_number() ? strf("%.2f pp", 100 * p["std"].get<double>()) : kDash,
                         strf("%lld/%lld/%lld", static_cast<long long>(p["wins"].get<int64_t>()),
                              static_cast<long long>(p["ties"].get<int64_t>()),
                              static_cast<long long>(p["losses"].get<int64_t>())),
                         p["t"].is_number() ? strf("%.2f (%lld)", p["t"].get<double>(),
                                                   static_cast<long long>(p["df"].get<int64_t>()))
                                            : kDash,
                         p["p_two_sided"].is_number() ? strf("%.3g", p["p_two_sided"].get<double>()) : kDash});
    }
  if (pc.rows.empty()) pc.note += " No run has both a strategy and the control arm yet.";
  out.push_back(pc);
  return out;
}

std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
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

// ---- SVG charts ----
namespace {

const std::map<std::string, std::string> kColor = {
    {"base", "#8c8c8c"}, {"1", "#1f77b4"}, {"2", "#d62728"}, {"3", "#2ca02c"}, {"none", "#444444"}};

// About `target` round tick values covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  if (!(hi > lo)) hi = lo + 1e-3;
  double raw = (hi - lo) / target, mag = std::pow(10, std::floor(std::log10(raw))), step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) t.push_back(v);
  return t;
}

// A plot frame mapping data to pixels, with axes, ticks and labels.
struct Frame {
  double w = 560, h = 280, left = 72, right = 16, top = 28, bottom = 44;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (w - left - right); }
  double py(double y) const { return h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom); }
};

std::string svg_open(const Frame& f, const std::string& title) {
  return strf("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
              "role=\"img\">",
              f.w, f.h, f.w, f.h) +
         "<title>" + html_escape(title) + "</title>" +
         strf("<text x=\"%.0f\" y=\"16\" class=\"t\">", f.left) + html_escape(title) + "</text>";
}

std::string y_axis(const Frame& f, const std::vector<double>& ticks, const char* fmt, double scale,
                   const std::string& label) {
  std::string s;
  for (double v : ticks) {
    if (v < f.y0 - 1e-12 || v > f.y1 + 1e-12) continue;
    s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>", f.left, f.w - f.right, f.py(v),
              f.py(v));
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"yl\">", f.left - 5, f.py(v) + 4) + strf(fmt, v * scale + 0.0) + "</text>";
  }
  s += strf("<text transform=\"translate(13,%.1f) rotate(-90)\" class=\"al\">", (f.top + f.h - f.bottom) / 2) +
       html_escape(label) + "</text>";
  s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", f.left, f.left, f.top,
            f.h - f.bottom);
  s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", f.left, f.w - f.right,
            f.h - f.bottom, f.h - f.bottom);
  return s;
}

std::string x_axis(const Frame& f, const std::vector<double>& ticks, const char* fmt, double scale,
                   const std::string& label) {
  std::string s;
  for (double v : ticks) {
    if (v < f.x0 - 1e-12 || v > f.x1 + 1e-12) continue;
    s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", f.px(v), f.px(v),
              f.h - f.bottom, f.h - f.bottom + 4);
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">", f.px(v), f.h - f.bottom + 16) + strf(fmt, v * scale + 0.0) +
         "</text>";
  }
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"al\">", (f.left + f.w - f.right) / 2, f.h - 6) + html_escape(label) +
       "</text>";
  return s;
}

// Figure 2: histogram of the rDLMs' test accuracies (all runs of a group), base test accuracy marked.
std::string histogram_svg(const std::string& title, const std::vector<double>& acc, double base_mean) {
  Frame f;
  // Bins over the rDLMs' range (at least 0.1 pp wide); the axis also reaches the base model's line.
  double lo = *std::min_element(acc.begin(), acc.end()), hi = *std::max_element(acc.begin(), acc.end());
  const int bins = std::clamp(static_cast<int>(std::ceil(std::sqrt(static_cast<double>(acc.size())))) + 2, 6, 20);
  const double width = std::max((hi - lo) / bins, 0.001);
  lo -= width / 2;
  std::vector<int> count(bins + 1, 0);
  for (double a : acc) count[std::clamp(static_cast<int>((a - lo) / width), 0, bins)]++;
  const int cmax = *std::max_element(count.begin(), count.end());
  f.x0 = lo, f.x1 = lo + width * (bins + 1);
  if (!std::isnan(base_mean)) f.x0 = std::min(f.x0, base_mean - width), f.x1 = std::max(f.x1, base_mean + width);
  f.y0 = 0, f.y1 = cmax + 0.5;
  std::string s = svg_open(f, title);
  std::vector<double> yt;
  for (double v : nice_ticks(0, cmax, std::min(cmax, 5)))
    if (std::fabs(v - std::round(v)) < 1e-9) yt.push_back(v);
  s += y_axis(f, yt, "%.0f", 1, "rDLMs");
  s += x_axis(f, nice_ticks(f.x0, f.x1, 6), "%.1f%%", 100, "test accuracy");
  for (int b = 0; b <= bins; ++b) {
    if (!count[b]) continue;
    double xa = f.px(lo + b * width), xb = f.px(lo + (b + 1) * width);
    s += strf("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#1f77b4\" fill-opacity=\"0.75\" "
              "stroke=\"#fff\"><title>%d rDLMs in [%.2f%%, %.2f%%)</title></rect>",
              xa, f.py(count[b]), xb - xa, f.py(0) - f.py(count[b]), count[b], 100 * (lo + b * width),
              100 * (lo + (b + 1) * width));
  }
  if (!std::isnan(base_mean)) {
    s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-width=\"2\" "
              "stroke-dasharray=\"5,3\"/>",
              f.px(base_mean), f.px(base_mean), f.top, f.h - f.bottom);
    const bool right_half = f.px(base_mean) > (f.left + f.w - f.right) / 2;  // label on the roomier side
    s += strf("<text x=\"%.1f\" y=\"%.1f\" style=\"fill:#d62728;text-anchor:%s\">base %.2f%%</text>",
              f.px(base_mean) + (right_half ? -4 : 4), f.top + 10, right_half ? "end" : "start", 100 * base_mean);
  }
  return s + "</svg>";
}

// Figure 3: box plots of test accuracy over runs, one box per arm (base first), points overlaid.
std::string boxplot_svg(const std::string& title, const std::vector<std::pair<std::string, std::vector<double>>>& boxes) {
  Frame f;
  f.w = std::max(360.0, 110.0 * boxes.size() + 80);
  double lo = 1, hi = 0;
  for (const auto& [_, v] : boxes)
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  double pad = std::max((hi - lo) * 0.12, 0.002);
  f.y0 = lo - pad, f.y1 = hi + pad, f.x0 = 0, f.x1 = static_cast<double>(boxes.size());
  std::string s = svg_open(f, title);
  s += y_axis(f, nice_ticks(f.y0, f.y1, 6), "%.2f%%", 100, "test accuracy");
  for (size_t i = 0; i < boxes.size(); ++i) {
    const auto& [key, v] = boxes[i];
    const std::string color = kColor.count(key) ? kColor.at(key) : "#333";
    const std::string name = key == "base" ? "base" : strategy_name(key);
    double cx = f.px(i + 0.5), bw = std::min(50.0, (f.px(1) - f.px(0)) * 0.5);
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">", cx, f.h - f.bottom + 16) + html_escape(name) + "</text>";
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"xl sm\">n=%zu</text>", cx, f.h - f.bottom + 30, v.size());
    if (v.empty()) continue;
    double q1 = quantile(v, 0.25), q2 = quantile(v, 0.5), q3 = quantile(v, 0.75);
    double mn = *std::min_element(v.begin(), v.end()), mx = *std::max_element(v.begin(), v.end());
    s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", cx, cx, f.py(mn), f.py(mx),
              color.c_str());
    for (double e : {mn, mx})
      s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", cx - bw / 4, cx + bw / 4,
                f.py(e), f.py(e), color.c_str());
    s += strf("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.25\" "
              "stroke=\"%s\"><title>%s: median %.2f%%, quartiles %.2f%%-%.2f%%, range %.2f%%-%.2f%%</title></rect>",
              cx - bw / 2, f.py(q3), bw, std::max(1.0, f.py(q1) - f.py(q3)), color.c_str(), color.c_str(),
              html_escape(name).c_str(), 100 * q2, 100 * q1, 100 * q3, 100 * mn, 100 * mx);
    s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>", cx - bw / 2,
              cx + bw / 2, f.py(q2), f.py(q2), color.c_str());
    for (size_t j = 0; j < v.size(); ++j) {
      double jitter = v.size() == 1 ? 0 : (static_cast<double>(j) / (v.size() - 1) - 0.5) * bw * 0.6;
      s += strf("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.8\"/>",
                cx + jitter, f.py(v[j]), color.c_str());
    }
  }
  return s + "</svg>";
}

struct Curve {
  std::string strategy;
  std::vector<std::pair<double, double>> points;  // (batches done, best selection accuracy)
  std::vector<std::pair<double, double>> adjust_marks, retrain_marks;
};

// Best selection accuracy over batches, from trace.jsonl: the base's accuracy before batch 1, then
// best_acc after each batch; an accepted adjustment is a filled circle, an accepted retraining a square.
Curve curve_of(const std::string& s, const json& result, const std::vector<json>& trace) {
  Curve c;
  c.strategy = s;
  double best = start_acc(result);
  if (!std::isnan(best)) c.points.push_back({0, best});
  for (const auto& line : trace) {
    double x = num(line, {"batch"}) + 1, b = num(line, {"best_acc"});
    if (std::isnan(x) || std::isnan(b)) continue;
    if (line.value("accepted", false)) {
      double prev = std::isnan(best) ? -1 : best;
      double adj = num(line, {"acc_adjusted"}), ret = num(line, {"acc_retrained"});
      if (!std::isnan(adj) && adj >= 0 && adj > prev) c.adjust_marks.push_back({x, adj}), prev = adj;
      if (!std::isnan(ret) && ret >= 0 && ret > prev) c.retrain_marks.push_back({x, ret});
    }
    c.points.push_back({x, b});
    best = b;
  }
  return c;
}

std::string curves_svg(const std::string& title, const std::vector<Curve>& curves, const std::string& selection) {
  Frame f;
  f.w = 560, f.right = 120;
  double xmax = 1, lo = 1, hi = 0;
  for (const auto& c : curves)
    for (const auto& [x, y] : c.points) xmax = std::max(xmax, x), lo = std::min(lo, y), hi = std::max(hi, y);
  double pad = std::max((hi - lo) * 0.1, 0.001);
  f.x0 = 0, f.x1 = xmax, f.y0 = lo - pad, f.y1 = hi + pad;
  std::string s = svg_open(f, title);
  s += y_axis(f, nice_ticks(f.y0, f.y1, 5), "%.2f%%", 100, "best " + selection + " accuracy");
  std::vector<double> xt;  // whole batches only
  for (double v : nice_ticks(0, xmax, 6))
    if (std::fabs(v - std::round(v)) < 1e-9) xt.push_back(v);
  s += x_axis(f, xt, "%.0f", 1, "batches");
  double ly = f.top + 6;
  for (const auto& c : curves) {
    const std::string color = kColor.count(c.strategy) ? kColor.at(c.strategy) : "#333";
    const char* dash = c.strategy == "none" ? " stroke-dasharray=\"6,3\"" : "";
    std::string pts;
    double prev_y = kNaN;
    for (const auto& [x, y] : c.points) {  // a step function: the best only changes at a batch
      if (!std::isnan(prev_y)) pts += strf("%.1f,%.1f ", f.px(x), f.py(prev_y));
      pts += strf("%.1f,%.1f ", f.px(x), f.py(y));
      prev_y = y;
    }
    s += "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.8\"" + dash + " points=\"" + pts + "\"/>";
    for (const auto& [x, y] : c.adjust_marks)
      s += strf("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>batch %.0f: accepted adjustment, "
                "%.2f%%</title></circle>",
                f.px(x), f.py(y), color.c_str(), x, 100 * y);
    for (const auto& [x, y] : c.retrain_marks)
      s += strf("<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"#fff\" stroke=\"%s\" stroke-width=\"1.5\">"
                "<title>batch %.0f: accepted retraining, %.2f%%</title></rect>",
                f.px(x) - 3.5, f.py(y) - 3.5, color.c_str(), x, 100 * y);
    s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>",
              f.w - f.right + 10, f.w - f.right + 30, ly, ly, color.c_str(), dash);
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">", f.w - f.right + 35, ly + 4) + strategy_name(c.strategy) +
         "</text>";
    ly += 16;
  }
  ly += 6;
  s += strf("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#555\"/>", f.w - f.right + 20, ly);
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">adjustment</text>", f.w - f.right + 35, ly + 4);
  ly += 16;
  s += strf("<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"#fff\" stroke=\"#555\" stroke-width=\"1.5\"/>",
            f.w - f.right + 16.5, ly - 3.5);
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">retraining</text>", f.w - f.right + 35, ly + 4);
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg sm\">(accepted)</text>", f.w - f.right + 35, ly + 18);
  return s + "</svg>";
}

const char* kCss = R"(body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:1180px;margin:24px auto;padding:0 16px}
h1{font-size:24px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:3px}h3{font-size:15px;margin:18px 0 4px}
p.note{color:#555;margin:4px 0 8px;max-width:900px}
table{border-collapse:collapse;margin:6px 0 14px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d8d8d8;padding:3px 8px;text-align:right;white-space:nowrap}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:14px}.fig{border:1px solid #e3e3e3;padding:4px;background:#fff}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .t{font-size:13px;font-weight:600}svg .yl{text-anchor:end}
svg .xl{text-anchor:middle}svg .al{text-anchor:middle;fill:#555}svg .sm{font-size:10px;fill:#777}
svg .g{stroke:#ececec}svg .ax{stroke:#888}
code{background:#f5f5f5;padding:0 3px}ul.notes li{color:#8a5a00})";

}  // namespace

std::string render_html(const json& rep, const std::vector<RunData>& runs) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Apricot report</title><style>" << kCss
    << "</style></head><body>\n<h1>Apricot report</h1>\n";
  o << "<p class=\"note\">Generated by " << html_escape(rep["tool"].get<std::string>()) << " "
    << html_escape(rep["version"].get<std::string>())
    << " from the work directories below; accuracies in percent, gains in percentage points (pp), mean ± "
       "std over runs.</p><ul>";
  for (const auto& g : rep["groups"]) {
    o << "<li><b>" << html_escape(g["label"]) << "</b>:";
    for (const auto& r : g["runs"])
      o << " <code>" << html_escape(r["workdir"]) << "</code> (seed " << r["seed"].get<int64_t>() << ")";
    o << "</li>";
  }
  o << "</ul>\n";
  const std::vector<Table> tables = make_tables(rep);  // II, III, IV, V per group, V overall, paired
  auto emit_table = [&](const Table& t) {
    o << "<h2>" << html_escape(t.title) << "</h2><p class=\"note\">" << html_escape(t.note) << "</p><table><tr>";
    for (const auto& h : t.header) o << "<th>" << html_escape(h) << "</th>";
    o << "</tr>";
    for (const auto& row : t.rows) {
      o << "<tr>";
      for (const auto& c : row) o << "<td>" << html_escape(c) << "</td>";
      o << "</tr>";
    }
    o << "</table>\n";
  };
  for (size_t i = 0; i < 3; ++i) emit_table(tables[i]);

  // Group runs as the report did (by label, in the report's order).
  std::map<std::string, std::vector<const RunData*>> by_dir;
  for (const auto& r : runs) by_dir[r.workdir].push_back(&r);
  auto group_runs = [&](const json& g) {
    std::vector<const RunData*> out;
    for (const auto& r : g["runs"]) {
      auto it = by_dir.find(r["workdir"].get<std::string>());
      if (it != by_dir.end()) out.push_back(it->second.front());
    }
    return out;
  };

  o << "<h2>Figure 2: rDLM test accuracy</h2><p class=\"note\">Histogram of the rDLMs' test accuracies over all "
       "runs of a model; the dashed line is the base model's mean test accuracy.</p><div class=\"figs\">";
  bool any = false;
  for (const auto& g : rep["groups"]) {
    std::vector<double> acc;
    for (const RunData* r : group_runs(g)) {
      if (r->rdlm_summary && (*r->rdlm_summary).contains("rdlms"))
        for (const auto& e : (*r->rdlm_summary)["rdlms"]) push_if(acc, num(e, {"test_acc"}));
      else
        for (const auto& m : r->rdlms) push_if(acc, num(m, {"test_acc"}));
    }
    if (acc.empty()) continue;
    any = true;
    const json& base = g["models"]["test_acc"];
    o << "<div class=\"fig\">"
      << histogram_svg(g["label"].get<std::string>() + " (" + std::to_string(acc.size()) + " rDLMs)", acc,
                       has_mean(base) ? base["mean"].get<double>() : kNaN)
      << "</div>";
  }
  o << "</div>" << (any ? "" : "<p class=\"note\">No rDLMs trained yet.</p>") << "\n";

  // Table V and the paired comparison, then the figures about the adaptation.
  for (size_t i = 3; i < tables.size(); ++i) emit_table(tables[i]);

  o << "<h2>Figure 3: final test accuracy per strategy</h2><p class=\"note\">Box plots over runs (median, "
       "quartiles, range; every run a dot) of the base model's and each arm's final test accuracy.</p><div "
       "class=\"figs\">";
  any = false;
  for (const auto& g : rep["groups"]) {
    std::vector<std::pair<std::string, std::vector<double>>> boxes;
    boxes.push_back({"base", g["models"]["test_acc"]["values"].get<std::vector<double>>()});
    bool has_arm = false;
    for (const auto& s : rep["strategies"]) {
      std::string key = s.get<std::string>();
      if (!g["adaptation"].contains(key)) continue;
      boxes.push_back({key, g["adaptation"][key]["final_test_acc"]["values"].get<std::vector<double>>()});
      has_arm = true;
    }
    if (!has_arm) continue;
    any = true;
    o << "<div class=\"fig\">" << boxplot_svg(g["label"].get<std::string>(), boxes) << "</div>";
  }
  o << "</div>" << (any ? "" : "<p class=\"note\">No adaptation results yet.</p>") << "\n";

  o << "<h2>Adaptation curves</h2><p class=\"note\">Per run, the best selection-split accuracy after each batch "
       "(from adapt-*/trace.jsonl), starting from the base model; filled circles mark accepted weight "
       "adjustments, squares accepted retrainings.</p>";
  any = false;
  for (const auto& g : rep["groups"]) {
    std::string block;
    for (const RunData* r : group_runs(g)) {
      std::vector<Curve> curves;
      std::string selection = "val";
      for (const auto& s : kStrategyOrder) {
        if (!r->results.count(s) || !r->traces.count(s)) continue;
        if (str(r->results.at(s), {"selection"}) == "test") selection = "test";
        curves.push_back(curve_of(s, r->results.at(s), r->traces.at(s)));
      }
      if (curves.empty()) continue;
      std::string name = r->workdir;  // long paths keep their end, which tells the runs apart
      if (name.size() > 48) name = "…" + name.substr(name.size() - 47);
      block += "<div class=\"fig\">" + curves_svg(name + " (seed " + std::to_string(r->seed) + ")", curves, selection) +
               "</div>";
    }
    if (block.empty()) continue;
    any = true;
    o << "<h3>" << html_escape(g["label"]) << "</h3><div class=\"figs\">" << block << "</div>\n";
  }
  if (!any) o << "<p class=\"note\">No adaptation traces yet.</p>\n";
  if (!rep["notes"].empty()) {
    o << "<h2>Notes</h2><ul class=\"notes\">";
    for (const auto& n : rep["notes"]) o << "<li>" << html_escape(n) << "</li>";
    o << "</ul>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

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
  const fs::path out(out_dir);
  write_file_atomic((out / "report.md").string(), render_markdown(rep));
  write_json_atomic((out / "report.json").string(), rep);
  write_file_atomic((out / "report.html").string(), render_html(rep, runs));
  return rep;
}

}  // namespace apricot
