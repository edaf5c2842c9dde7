// What the pieces of the report (src/report*.cpp) share: JSON lookups that tolerate missing keys,
// printf into a string, the arms' order and names, the tables as rows of cells, and the SVG charts.
// Internal to src/report/: the public interface is apricot/report/report.hpp, and nothing else
// includes this file.
#pragma once
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "apricot/method/arms.hpp"

namespace apricot::report_detail {

using nlohmann::json;

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline const char* const kDash = "—";                                            // an empty cell

std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));
inline std::string strf(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

// A nested key as a double, or NaN when any part is missing or not a number.
inline double num(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object() || !cur->contains(k)) return kNaN;
    cur = &(*cur)[k];
  }
  return cur->is_number() ? cur->get<double>() : kNaN;
}

// A nested key as a string, or `fallback` when any part is missing or not a string.
inline std::string str(const json& j, std::initializer_list<const char*> path, const std::string& fallback = "") {
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object() || !cur->contains(k)) return fallback;
    cur = &(*cur)[k];
  }
  return cur->is_string() ? cur->get<std::string>() : fallback;
}

inline void push_if(std::vector<double>& v, double x) {
  if (!std::isnan(x)) v.push_back(x);
}

// Initial selection accuracy of an adaptation run (the base model on the selection split).
inline double start_acc(const json& result) {
  return str(result, {"selection"}) == "test" ? num(result, {"base", "test_acc"}) : num(result, {"base", "val_acc"});
}

// A count of training images, short: "840", "12.3k", "1.54M".
inline std::string image_count(double n) {
  if (n < 1e3) return strf("%.0f", n);
  if (n < 1e6) return strf("%.1fk", n / 1e3);
  return strf("%.2fM", n / 1e6);
}
// Whether an arm is one of the controls (compared with nothing).
inline bool is_control(const std::string& s) {
  const ArmInfo* a = find_arm(s);
  return a && a->control;
}
// An arm's colour in charts (the registry's); the base grey.
inline std::string colour_of(const std::string& s) {
  if (s == "base") return "#8c8c8c";
  const ArmInfo* a = find_arm(s);
  return a ? a->colour : "#333";
}

// Whether a statistic of the report document ({"n", "mean", "std", "values"}) has a mean.
inline bool has_mean(const json& st) { return st.is_object() && st.contains("mean") && st["mean"].is_number(); }

// ---- tables.cpp ----
// One table as header + rows of cells; rendered to Markdown or HTML.
struct Table {
  std::string title, note;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};
// Tables II, III, IV, V (one per group), V overall and the paired comparison, in that order.
std::vector<Table> make_tables(const json& report);

// ---- svg.cpp ----
std::string html_escape(const std::string& s);

// Figure 2: histogram of the rDLMs' test accuracies, the base model's mean marked (NaN: no mark).
std::string histogram_svg(const std::string& title, const std::vector<double>& acc, double base_mean);
// Figure 3: one box per arm ("base", then strategies) over the runs' final test accuracies.
std::string boxplot_svg(const std::string& title, const std::vector<std::pair<std::string, std::vector<double>>>& boxes);

// One arm's adaptation curve: the best selection accuracy over batches and the accepted changes.
struct Curve {
  std::string strategy;
  std::vector<std::pair<double, double>> points;  // (batches done, best selection accuracy)
  std::vector<std::pair<double, double>> adjust_marks, retrain_marks;
};
Curve curve_of(const std::string& strategy, const json& result, const std::vector<json>& trace);
std::string class_change_svg(const std::string& title,
                             const std::vector<std::pair<std::string, std::vector<double>>>& arms);
std::string curves_svg(const std::string& title, const std::vector<Curve>& curves, const std::string& selection);

// A field arm on the Pareto chart: its line (mean over runs, per coefficient: clean test break rate,
// field hold-out accuracy gain), empty for arms without one, and its chosen point (means over runs).
struct ParetoArm {
  std::string strategy;
  std::vector<std::pair<double, double>> line;
  double chosen_break = kNaN, chosen_gain = kNaN;
};
// Field gain against clean breaks, with the break bound (adapt.max_break_rate) as a vertical line.
std::string pareto_svg(const std::string& title, const std::vector<ParetoArm>& arms, double bound);

// One base training's validation accuracy per epoch, and the epoch whose weights were kept.
struct LearningCurve {
  std::string label;                              // e.g. "seed 3"
  std::vector<std::pair<double, double>> points;  // (epoch, validation accuracy)
  double kept_epoch = kNaN;
};
// The base models' learning curves of one group, one line per run.
std::string learning_curves_svg(const std::string& title, const std::vector<LearningCurve>& runs);

}  // namespace apricot::report_detail
