// The report document (build_report): groups the loaded runs by configuration, collects each group's
// values over its runs and turns them into statistics, the numbers behind Tables II-V as JSON. It
// formats nothing for reading (tables.cpp does) and reads no file (load.cpp does).
#include <algorithm>
#include <map>
#include <set>

#include "apricot/core/config.hpp"
#include "apricot/report/report.hpp"
#include "apricot/core/stats.hpp"
#include "internal.hpp"

namespace apricot {

using namespace report_detail;

namespace {

// {"n", "mean", "std", "values"}; mean and std null where mean_std gives NaN.
json stat_json(const std::vector<double>& v) {
  const MeanStd ms = mean_std(v);
  auto nn = [](double x) { return std::isnan(x) ? json(nullptr) : json(x); };
  return {{"n", v.size()}, {"mean", nn(ms.mean)}, {"std", nn(ms.std)}, {"values", v}};
}

// A number copied from one file of each run into one statistic of the report: its key in the report
// and its path in the file. A new column of this kind is one line in one of the lists below.
struct Field {
  const char* key;
  std::initializer_list<const char*> path;
};
// base/model.json -> group "models" (Table II)
const Field kBaseFields[] = {{"train_acc", {"metrics", "train_acc"}},
                             {"val_acc", {"metrics", "val_acc"}},
                             {"test_acc", {"metrics", "test_acc"}},
                             {"best_epoch", {"metrics", "best_epoch"}},
                             {"epochs_run", {"metrics", "epochs_run"}}};

// How far from a plateau a base's training ended: the best validation accuracy of all its epochs
// minus the best of all but the last three (0 when the last three epochs found nothing better). NaN
// without a learning curve of more than three epochs with validation.
double last3_gain(const std::vector<json>& curve) {
  std::vector<double> val;
  for (const auto& e : curve) push_if(val, num(e, {"val_acc"}));
  if (val.size() <= 3 || val.size() != curve.size()) return kNaN;
  const double before = *std::max_element(val.begin(), val.end() - 3);
  return std::max(before, *std::max_element(val.end() - 3, val.end())) - before;
}
// rdlms/summary.json -> group "rdlms" (Table IV)
const Field kSummaryFields[] = {{"test_acc_mean", {"test_acc", "mean"}},
                                {"test_acc_std", {"test_acc", "std"}},
                                {"coverage", {"coverage"}},
                                {"base_failures_some_rdlm_right_share", {"base_failures_some_rdlm_right_share"}}};
// adapt-S/result.json -> group "adaptation"/S (Table V)
const Field kResultFields[] = {{"base_test_acc", {"base", "test_acc"}},
                               {"final_val_acc", {"final", "val_acc"}},
                               {"final_test_acc", {"final", "test_acc"}},
                               {"gain_test", {"gain_test"}},
                               {"accepted", {"accepted"}},
                               {"images_total", {"images", "total"}},
                               {"repaired_rate", {"changes", "test", "repaired", "rate"}},
                               {"broken_rate", {"changes", "test", "broken", "rate"}},
                               {"repaired_count", {"changes", "test", "repaired", "count"}},
                               {"broken_count", {"changes", "test", "broken", "count"}}};

// adapt-S/result.json of a field arm -> group "adaptation"/S/"field" (the field-repair table)
const Field kFieldFields[] = {{"holdout_acc_before", {"field", "holdout", "accuracy_before"}},
                              {"holdout_acc_after", {"field", "holdout", "accuracy_after"}},
                              {"holdout_repaired_rate", {"field", "holdout", "repaired", "rate"}},
                              {"holdout_broken_rate", {"field", "holdout", "broken", "rate"}},
                              {"max_break_rate", {"max_break_rate"}}};

// Values over the runs of a group: one entry per run that has the value (a missing one is skipped,
// so each statistic's n says how many runs it covers).
using Values = std::map<std::string, std::vector<double>>;  // report key -> values

template <size_t N>
void collect(const Field (&fields)[N], const json& file, Values& into) {
  for (const Field& f : fields) push_if(into[f.key], num(file, f.path));
}

template <size_t N>
json stats_of(const Field (&fields)[N], const Values& values) {
  json out = json::object();
  for (const Field& f : fields) {
    auto it = values.find(f.key);
    out[f.key] = stat_json(it == values.end() ? std::vector<double>{} : it->second);
  }
  return out;
}

// One adaptation arm of a group (Table V and its column of Table III).
struct ArmValues {
  int64_t runs = 0;
  Values results;                          // kResultFields
  std::vector<double> seconds;             // adaptation wall time
  std::vector<double> vs_control;          // final test accuracy minus the control's, same run
  std::vector<double> vs_matched;          // ... minus the budget-matched control's, same run
  std::vector<double> target_before, target_after;  // adapt.target: the pair's test errors
  std::vector<std::vector<double>> class_change;     // per run: test accuracy after minus before, per class
  Values field;                                      // kFieldFields (field arms)
  // Field arms with a line (interpolation): per coefficient, each run's clean test break rate and
  // field hold-out accuracy gain; and each run's chosen point.
  std::map<double, std::pair<std::vector<double>, std::vector<double>>> path;
};

// One group: everything its tables need, collected run by run.
struct GroupValues {
  std::set<int64_t> seeds;
  json params = nullptr;                   // the first base model's parameter count
  Values models;                           // kBaseFields
  std::vector<double> base_seconds, rdlms_total_seconds, rdlm_mean_seconds;  // Table III
  std::vector<double> rdlms_trained;       // rDLM model.json files found
  Values rdlms;                            // kSummaryFields
  std::map<std::string, ArmValues> arms;   // by strategy
  std::set<std::string> target_pairs;      // adapt.target pairs seen, as JSON text
};

// Adds one run's values to its group; what is missing or inconsistent goes to `notes`.
void add_run(GroupValues& g, const RunData& r, json& notes) {
  g.seeds.insert(r.seed);
  if (!r.base) notes.push_back(r.workdir + ": no base model (base/model.json) yet");
  if (r.base) {
    const json& b = *r.base;
    collect(kBaseFields, b, g.models);
    push_if(g.models["last3_gain"], last3_gain(r.base_curve));
    double s = num(b, {"seconds"});
    push_if(g.base_seconds, std::isnan(s) ? num(b, {"metrics", "train_seconds"}) : s);
    if (g.params.is_null() && !std::isnan(num(b, {"params", "total"}))) g.params = b["params"]["total"];
  }
  // Table III/IV: rDLMs. Times from each rDLM's metadata; the rest from the summary.
  if (!r.rdlms.empty()) {
    std::vector<double> secs;
    for (const auto& m : r.rdlms) push_if(secs, num(m, {"train_seconds"}));
    if (!secs.empty()) {
      double tot = 0;
      for (double x : secs) tot += x;
      g.rdlms_total_seconds.push_back(tot);
      g.rdlm_mean_seconds.push_back(tot / static_cast<double>(secs.size()));
    }
  }
  g.rdlms_trained.push_back(static_cast<double>(r.rdlms.size()));
  if (r.rdlm_summary) {
    collect(kSummaryFields, *r.rdlm_summary, g.rdlms);
  } else if (r.rdlm_count > 0 && std::any_of(r.results.begin(), r.results.end(),
                                             [](const auto& kv) {  // an arm that needed rDLMs
                                               const ArmInfo* a = find_arm(kv.first);
                                               return a && a->uses_rdlms;
                                             })) {
    notes.push_back(r.workdir + ": adaptation results but no rdlms/summary.json");
  } else if (r.base && r.rdlm_count > 0 &&
             (r.results.empty() || std::any_of(r.results.begin(), r.results.end(), [](const auto& kv) {
               const ArmInfo* a = find_arm(kv.first);
               return a && a->uses_rdlms;
             }))) {  // field arms alone need no rDLMs
    notes.push_back(r.workdir + ": rDLMs incomplete (" + std::to_string(r.rdlms.size()) + "/" +
                    std::to_string(r.rdlm_count) + " trained, no summary.json)");
  }
  // Table V.
  const json* control = r.results.count("none") ? &r.results.at("none") : nullptr;
  const json* matched = r.results.count("none-matched") ? &r.results.at("none-matched") : nullptr;
  for (const auto& [s, res] : r.results) {
    ArmValues& arm = g.arms[s];
    ++arm.runs;
    push_if(arm.seconds, num(res, {"seconds"}));
    collect(kResultFields, res, arm.results);
    if (res.contains("changes")) {
      const json& pc = res["changes"]["test"]["per_class"];
      std::vector<double> d;
      for (size_t k = 0; k < pc["after"].size() && k < pc["before"].size(); ++k)
        d.push_back(pc["after"][k].get<double>() - pc["before"][k].get<double>());
      arm.class_change.push_back(d);
    }
    if (res.contains("field")) {  // a field arm: the hold-out's repairs and breaks, the measured line
      collect(kFieldFields, res, arm.field);
      const double before = num(res, {"field", "holdout", "accuracy_before"});
      for (const auto& p : res["field"].value("path", json::array())) {
        auto& [breaks, gains] = arm.path[num(p, {"alpha"})];
        push_if(breaks, num(p, {"test_broken_rate"}));
        push_if(gains, num(p, {"holdout_acc"}) - before);
      }
    }
    if (res.contains("target")) {  // targeted repair (adapt.target): the pair's test errors
      push_if(arm.target_before, num(res, {"target", "errors_before", "test"}));
      push_if(arm.target_after, num(res, {"target", "errors_after", "test"}));
      g.target_pairs.insert(res["target"].value("pair", json::array()).dump());
    }
    if (control && s != "none")
      push_if(arm.vs_control, num(res, {"final", "test_acc"}) - num(*control, {"final", "test_acc"}));
    if (matched && !is_control(s))
      push_if(arm.vs_matched, num(res, {"final", "test_acc"}) - num(*matched, {"final", "test_acc"}));
  }
}

json paired_json(const std::vector<double>& diffs) {
  const PairedStats ps = paired_stats(diffs);
  return {{"n", ps.n},
          {"mean", ps.n ? json(ps.mean) : json(nullptr)},
          {"std", std::isnan(ps.std) ? json(nullptr) : json(ps.std)},
          {"wins", ps.wins},
          {"ties", ps.ties},
          {"losses", ps.losses},
          {"t", ps.t ? json(*ps.t) : json(nullptr)},
          {"df", ps.n >= 2 ? json(ps.n - 1) : json(nullptr)},
          {"p_two_sided", ps.p ? json(*ps.p) : json(nullptr)}};
}

json arm_json(const std::string& s, const ArmValues& arm) {
  json e = stats_of(kResultFields, arm.results);
  e["runs"] = arm.runs;
  const std::vector<double>& gain = arm.results.at("gain_test");
  e["max_gain_test"] = gain.empty() ? json(nullptr) : json(*std::max_element(gain.begin(), gain.end()));
  if (!arm.target_before.empty())
    e["target_test_errors"] = {{"before", stat_json(arm.target_before)}, {"after", stat_json(arm.target_after)}};
  if (s != "none") {
    e["vs_control"] = stat_json(arm.vs_control);
    e["paired"] = paired_json(arm.vs_control);
  }
  if (!arm.class_change.empty()) {  // mean over runs of each class's test accuracy change
    std::vector<double> mean(arm.class_change[0].size(), 0.0);
    size_t n = 0;
    for (const auto& d : arm.class_change)
      if (d.size() == mean.size()) {
        for (size_t k = 0; k < d.size(); ++k) mean[k] += d[k];
        ++n;
      }
    for (double& m : mean) m /= static_cast<double>(std::max<size_t>(n, 1));
    e["class_change_test"] = mean;
  }
  if (!arm.field.empty()) {
    e["field"] = stats_of(kFieldFields, arm.field);
    json path = json::array();
    for (const auto& [alpha, v] : arm.path) {
      const MeanStd b = mean_std(v.first), g = mean_std(v.second);
      if (!std::isnan(b.mean) && !std::isnan(g.mean))
        path.push_back({{"alpha", alpha}, {"test_broken_rate", b.mean}, {"holdout_gain", g.mean}, {"n", v.first.size()}});
    }
    e["field"]["path"] = path;
  }
  if (!arm.vs_matched.empty()) {
    e["vs_matched"] = stat_json(arm.vs_matched);
    e["paired_matched"] = paired_json(arm.vs_matched);
  }
  return e;
}

// Fills `group` (label, arch, dataset, runs already there) from its collected values.
void put_values(json& group, const GroupValues& g, int64_t rdlm_count) {
  group["seeds"] = g.seeds;
  group["models"] = stats_of(kBaseFields, g.models);
  group["models"]["last3_gain"] = stat_json(g.models.count("last3_gain") ? g.models.at("last3_gain") : std::vector<double>{});
  group["models"]["params"] = g.params;
  json adapt_times = json::object();
  for (const auto& [s, arm] : g.arms) adapt_times[s] = stat_json(arm.seconds);
  group["times"] = {{"base_seconds", stat_json(g.base_seconds)},
                    {"rdlms_total_seconds", stat_json(g.rdlms_total_seconds)},
                    {"rdlm_mean_seconds", stat_json(g.rdlm_mean_seconds)},
                    {"adapt_seconds", adapt_times}};
  group["rdlms"] = stats_of(kSummaryFields, g.rdlms);
  group["rdlms"]["configured"] = rdlm_count;
  group["rdlms"]["trained"] = stat_json(g.rdlms_trained);
  json per = json::object();
  for (const auto& [s, arm] : g.arms) per[s] = arm_json(s, arm);
  group["adaptation"] = per;
  if (!g.target_pairs.empty()) {
    group["target_pairs"] = json::array();
    for (const auto& p : g.target_pairs) group["target_pairs"].push_back(json::parse(p));
  }
}

// The configuration that defines a group: everything but what only says where or how fast it ran
// (and how often it saved its state).
json group_config(const json& config) {
  json c = config;
  for (const char* k : {"seed", "workdir", "device", "threads", "resume"}) c.erase(k);
  if (c.contains("adapt") && c["adapt"].is_object()) c["adapt"].erase("strategies");
  drop_added_defaults(c);  // runs from before a key existed group with runs that leave it at its default
  return c;
}

void flatten(const json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

// Labels: the arch, plus (up to three of) the keys that set a group apart from the other groups of
// its arch. `keys` are the groups' configurations as JSON text, `arch` their archs.
std::vector<std::string> group_labels(const std::vector<std::string>& keys, const std::vector<std::string>& arch) {
  std::vector<std::string> labels;
  for (size_t g = 0; g < keys.size(); ++g) {
    std::map<std::string, std::string> mine;
    flatten(json::parse(keys[g]), "", mine);
    std::set<std::string> differing;
    for (size_t g2 = 0; g2 < keys.size(); ++g2) {
      if (g2 == g || arch[g2] != arch[g]) continue;
      std::map<std::string, std::string> other;
      flatten(json::parse(keys[g2]), "", other);
      for (const auto& [key, v] : mine)
        if (!other.count(key) || other[key] != v) differing.insert(key);
    }
    std::string label = arch[g];
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
  return labels;
}

// The paper's "overall average gain": per strategy, the mean over groups of each group's mean gain.
json overall_json(const json& groups, const std::set<std::string>& strategies) {
  json overall = json::object();
  for (const auto& s : strategy_names()) {
    if (!strategies.count(s)) continue;
    std::vector<double> g_gain, g_vs;
    for (const auto& grp : groups) {
      if (!grp["adaptation"].contains(s)) continue;
      const json& e = grp["adaptation"][s];
      if (e["gain_test"]["mean"].is_number()) g_gain.push_back(e["gain_test"]["mean"].get<double>());
      if (e.contains("vs_control") && e["vs_control"]["mean"].is_number())
        g_vs.push_back(e["vs_control"]["mean"].get<double>());
    }
    overall[s] = {{"groups", g_gain.size()}, {"gain_test", stat_json(g_gain)}};
    if (s != "none") overall[s]["vs_control"] = stat_json(g_vs);
  }
  return overall;
}

}  // namespace

json build_report(const std::vector<RunData>& runs) {
  // Group the runs by configuration, in order of first appearance.
  std::vector<std::string> keys, arch;
  std::map<std::string, std::vector<size_t>> members;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string k = group_config(runs[i].config).dump();
    if (!members.count(k)) {
      keys.push_back(k);
      arch.push_back(runs[i].arch);
    }
    members[k].push_back(i);
  }
  const std::vector<std::string> labels = group_labels(keys, arch);

  json report = {{"tool", "apricot report"}, {"version", APRICOT_VERSION}, {"groups", json::array()},
                 {"notes", json::array()}};
  std::set<std::string> strategies_seen;
  for (size_t g = 0; g < keys.size(); ++g) {
    std::vector<size_t> idx = members[keys[g]];
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return runs[a].seed < runs[b].seed; });
    const RunData& first = runs[idx[0]];
    json group = {{"label", labels[g]}, {"arch", first.arch}, {"dataset", first.dataset}, {"runs", json::array()}};
    GroupValues values;
    for (size_t i : idx) {
      const RunData& r = runs[i];
      json phases = {{"base", r.base.has_value()},
                     {"rdlms_trained", r.rdlms.size()},
                     {"rdlms_configured", r.rdlm_count},
                     {"rdlm_summary", r.rdlm_summary.has_value()},
                     {"adapt", json::array()}};
      for (const auto& [s, _] : r.results) {
        phases["adapt"].push_back(s);
        strategies_seen.insert(s);
      }
      group["runs"].push_back({{"workdir", r.workdir}, {"seed", r.seed}, {"phases", phases}});
      add_run(values, r, report["notes"]);
    }
    if (values.seeds.size() < idx.size())
      report["notes"].push_back(labels[g] + ": " + std::to_string(idx.size()) + " runs but only " +
                                std::to_string(values.seeds.size()) +
                                " distinct seeds (repeated seeds are not independent)");
    put_values(group, values, first.rdlm_count);
    report["groups"].push_back(group);
  }
  report["overall"] = overall_json(report["groups"], strategies_seen);
  std::vector<std::string> order;
  for (const auto& s : strategy_names())
    if (strategies_seen.count(s)) order.push_back(s);
  report["strategies"] = order;
  return report;
}

}  // namespace apricot
