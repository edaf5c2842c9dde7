// The tables as rows of cells (make_tables): Tables II-IV, one Table V per group, Table V overall and
// the paired comparison, each cell formatted from the report document (percent, pp, seconds). It
// computes no statistic (document.cpp does) and knows neither Markdown nor HTML.
#include <string>
#include <vector>

#include "internal.hpp"

namespace apricot::report_detail {

namespace {

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

std::string runs_of(const json& g) { return std::to_string(g["runs"].size()); }
std::string seeds_of(const json& g) {
  std::string s;
  for (const auto& x : g["seeds"]) {
    if (!s.empty()) s += ',';
    s += std::to_string(x.get<int64_t>());
  }
  return s;
}

Table models_table(const json& rep) {
  Table t2{"Table II: models",
           "Base model accuracy, mean ± std over runs (seeds). Converged: the epoch whose weights were kept "
           "(best validation accuracy) and the epochs run; the last column is how much the last three epochs "
           "raised the best validation accuracy (0 pp: a plateau).",
           {"model", "data", "runs", "seeds", "params", "train acc", "val acc", "test acc", "best epoch / run",
            "last 3 epochs' val gain"},
           {}};
  for (const auto& g : rep["groups"]) {
    const json& m = g["models"];
    const std::string epochs = has_mean(m["best_epoch"]) && has_mean(m["epochs_run"])
                                   ? strf("%.1f / %.1f", m["best_epoch"]["mean"].get<double>(),
                                          m["epochs_run"]["mean"].get<double>())
                                   : kDash;
    t2.rows.push_back({g["label"], g["dataset"], runs_of(g), seeds_of(g),
                       m["params"].is_number() ? std::to_string(m["params"].get<int64_t>()) : kDash,
                       pct(m["train_acc"]), pct(m["val_acc"]), pct(m["test_acc"]), epochs, pp(m["last3_gain"])});
  }
  return t2;
}

Table times_table(const json& rep, const std::vector<std::string>& strategies) {
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
  return t3;
}

Table rdlms_table(const json& rep) {
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
  return t4;
}

// Table V of one group: a column per arm.
Table adaptation_table(const json& g, const std::vector<std::string>& strategies) {
  Table t5{"Table V: adaptation, " + g["label"].get<std::string>(),
           "Test accuracy of the base and the final model, mean ± std over runs; gains in percentage points. "
           "The control arm runs the same loop without weight adjustment: the gain over the control is what "
           "the rDLMs add.",
           {"", }, {}};
  for (const auto& s : strategies) t5.header.push_back(display_name(s));
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
  bool any_matched = false, any_images = false;
  for (const auto& s : strategies)
    if (a.contains(s)) any_matched |= a[s].contains("vs_matched"), any_images |= has_mean(a[s]["images_total"]);
  if (any_matched)
    row("gain over matched control", [](const json& e, const std::string&) {
      return e.contains("vs_matched") ? pp(e["vs_matched"]) : std::string(kDash);
    });
  bool any_changes = false;
  for (const auto& s : strategies) any_changes |= a.contains(s) && has_mean(a[s]["repaired_rate"]);
  if (any_changes) {
    row("repaired (test, of the base's failures)", [](const json& e, const std::string&) {
      return has_mean(e["repaired_rate"]) ? pct(e["repaired_rate"]) + " (" + plain(e["repaired_count"], "%.1f") + ")"
                                          : std::string(kDash);
    });
    row("broken (test, of the base's right answers)", [](const json& e, const std::string&) {
      return has_mean(e["broken_rate"]) ? pct(e["broken_rate"]) + " (" + plain(e["broken_count"], "%.1f") + ")"
                                        : std::string(kDash);
    });
  }
  if (any_images)
    row("training images beyond the base", [](const json& e, const std::string&) {
      return has_mean(e["images_total"]) ? image_count(e["images_total"]["mean"].get<double>()) : std::string(kDash);
    });
  if (g.contains("target_pairs"))
    row("target pair " + g["target_pairs"][0].dump() + ": test errors", [](const json& e, const std::string&) {
      if (!e.contains("target_test_errors")) return std::string(kDash);
      return plain(e["target_test_errors"]["before"], "%.1f") + " → " + plain(e["target_test_errors"]["after"], "%.1f");
    });
  t5.header[0] = "";
  return t5;
}

Table overall_table(const json& rep, const std::vector<std::string>& strategies) {
  Table ov{"Table V (overall): average gain over all models",
           "Per strategy, the mean over models of each model's mean gain (± std over models when there are several).",
           {"", }, {}};
  for (const auto& s : strategies) ov.header.push_back(display_name(s));
  std::vector<std::string> r1 = {"average gain over base"}, r2 = {"average gain over control"};
  for (const auto& s : strategies) {
    const json& e = rep["overall"][s];
    r1.push_back(pp(e["gain_test"]));
    r2.push_back(s == "none" ? kDash : pp(e["vs_control"]));
  }
  ov.rows = {r1, r2};
  return ov;
}

// The paired comparisons of every group's arms with a reference arm (`key`: the report's paired entry).
Table paired_table(const json& rep, const std::vector<std::string>& strategies, const char* title,
                   const char* ref_name, const char* key, const std::string& skip) {
  Table pc{title,
           std::string("Per run, the arm's final test accuracy minus the ") + ref_name +
               "'s on the same seed and work directory; mean and std of these differences, wins/ties/losses, the "
               "paired t statistic and its two-sided p-value (Student's t with n−1 degrees of freedom; none when "
               "n < 2 or the differences do not vary).",
           {"model", "strategy", "n", "mean diff", "std", "wins/ties/losses", "t (df)", "p"},
           {}};
  for (const auto& g : rep["groups"])
    for (const auto& s : strategies) {
      if (s == "none" || s == skip || !g["adaptation"].contains(s) || !g["adaptation"][s].contains(key)) continue;
      const json& p = g["adaptation"][s][key];
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
  return pc;
}

// The field arms of one group (docs/FIELD.md): the field hold-out before and after, the share of the
// base's hold-out failures repaired and of its right answers broken, the clean test split's breaks.
Table field_table(const json& g, const std::vector<std::string>& strategies) {
  Table t{"Field repair: " + g["label"].get<std::string>(),
          "Mean ± std over runs. Hold-out: the field images kept out of fine-tuning and selection; repaired: "
          "share of the base's hold-out failures now right; broken: share of its right hold-out answers now "
          "wrong; test broken: the same on the clean test split. Every arm's fine-tunes spend the same training "
          "images (gated adds its gates', gated-distilled its distillation's: the images column) and every arm "
          "is chosen by the same rule (the field set's pick part, never trained on, and the validation split; "
          "at most adapt.max_break_rate of the base's right validation answers broken).",
          {"arm", "runs", "hold-out before", "hold-out after", "repaired", "broken", "test broken", "test gain",
           "images"},
          {}};
  for (const auto& s : strategies) {
    if (!g["adaptation"].contains(s) || !g["adaptation"][s].contains("field")) continue;
    const json& e = g["adaptation"][s];
    const json& f = e["field"];
    t.rows.push_back({display_name(s), std::to_string(e["runs"].get<int64_t>()), pct(f["holdout_acc_before"]),
                      pct(f["holdout_acc_after"]), pct(f["holdout_repaired_rate"]), pct(f["holdout_broken_rate"]),
                      pct(e["broken_rate"]), pp(e["gain_test"]),
                      has_mean(e["images_total"]) ? image_count(e["images_total"]["mean"].get<double>()) : kDash});
  }
  return t;
}

}  // namespace

std::vector<Table> make_tables(const json& rep) {
  const auto strategies = rep["strategies"].get<std::vector<std::string>>();
  std::vector<Table> out = {models_table(rep), times_table(rep, strategies), rdlms_table(rep)};
  for (const auto& g : rep["groups"]) out.push_back(adaptation_table(g, strategies));
  for (const auto& g : rep["groups"]) {
    Table f = field_table(g, strategies);
    if (!f.rows.empty()) out.push_back(f);
  }
  out.push_back(overall_table(rep, strategies));
  // The paired comparisons: with the control arm, and with the budget-matched control where it ran.
  Table pc = paired_table(rep, strategies, "Paired comparison with the control arm", "control arm", "paired", "");
  if (pc.rows.empty()) pc.note += " No run has both a strategy and the control arm yet.";
  out.push_back(pc);
  Table pm = paired_table(rep, strategies, "Paired comparison with the budget-matched control", "budget-matched control",
                          "paired_matched", "none-matched");
  if (!pm.rows.empty()) out.push_back(pm);
  return out;
}

}  // namespace apricot::report_detail
