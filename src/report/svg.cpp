// The SVG charts of the HTML page: Figure 2 (histogram of rDLM accuracies), Figure 3 (box plots of
// final accuracies) and the adaptation curves, each a self-contained <svg> string drawn from plain
// numbers. They choose no data (html.cpp picks it from the runs) and use no script. Elements
// that draw data (bars, boxes, whiskers, points, curves and their markers) have class "d": the
// browser test (tests/browser/layout_check.js) checks that no label overlaps them.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "apricot/core/stats.hpp"
#include "internal.hpp"

namespace apricot::report_detail {

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

namespace {

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

// The width of a label in the charts' 11 px font, generously (6.5 px a character; the page's
// system-ui font measures about 6): for layout decisions, not for drawing.
double text_width(const std::string& text) { return 6.5 * static_cast<double>(text.size()); }

// A plot frame mapping data to pixels, with axes, ticks and labels.
struct Frame {
  double w = 560, h = 280, left = 72, right = 16, top = 28, bottom = 44;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (w - left - right); }
  double py(double y) const { return h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom); }
};

// A frame with a legend right of a 368 px plot, as wide as the longest of `labels` needs.
Frame legend_frame(std::initializer_list<std::string> fixed, const std::vector<std::string>& labels) {
  Frame f;
  double longest = 0;
  for (const auto& t : fixed) longest = std::max(longest, text_width(t));
  for (const auto& t : labels) longest = std::max(longest, text_width(t));
  f.right = std::max(120.0, 35 + longest + 6);
  f.w = f.left + 368 + f.right;
  return f;
}

// One legend entry: a short line in `color` (dashed when `dash`) and the label, at height y.
std::string legend_line(const Frame& f, double y, const std::string& color, const std::string& label,
                        const char* dash = "") {
  return strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>",
              f.w - f.right + 10, f.w - f.right + 30, y, y, color.c_str(), dash) +
         strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">", f.w - f.right + 35, y + 4) + html_escape(label) + "</text>";
}

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
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"yl\" text-anchor=\"end\">", f.left - 5, f.py(v) + 4) +
         strf(fmt, v * scale + 0.0) + "</text>";
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
    // A label that would reach under the y axis's labels (or off the chart) is left out: its tick stays.
    const std::string text = strf(fmt, v * scale + 0.0);
    const double half = text_width(text) / 2;
    if (f.px(v) - half < f.left - 2 || f.px(v) + half > f.w - 2) continue;
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"xl\" text-anchor=\"middle\">", f.px(v), f.h - f.bottom + 16) + text +
         "</text>";
  }
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"al\">", (f.left + f.w - f.right) / 2, f.h - 6) + html_escape(label) +
       "</text>";
  return s;
}

}  // namespace

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
  f.y0 = 0, f.y1 = std::max(cmax + 0.5, cmax / 0.88);  // headroom for the base model's label
  std::string s = svg_open(f, title);
  std::vector<double> yt;
  for (double v : nice_ticks(0, cmax, std::min(cmax, 5)))
    if (std::fabs(v - std::round(v)) < 1e-9) yt.push_back(v);
  s += y_axis(f, yt, "%.0f", 1, "rDLMs");
  s += x_axis(f, nice_ticks(f.x0, f.x1, 6), "%.1f%%", 100, "test accuracy");
  for (int b = 0; b <= bins; ++b) {
    if (!count[b]) continue;
    double xa = f.px(lo + b * width), xb = f.px(lo + (b + 1) * width);
    s += strf("<rect class=\"d\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#1f77b4\" fill-opacity=\"0.75\" "
              "stroke=\"#fff\"><title>%d rDLMs in [%.2f%%, %.2f%%)</title></rect>",
              xa, f.py(count[b]), xb - xa, f.py(0) - f.py(count[b]), count[b], 100 * (lo + b * width),
              100 * (lo + (b + 1) * width));
  }
  if (!std::isnan(base_mean)) {
    s += strf("<line class=\"d\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-width=\"2\" "
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
    const std::string color = colour_of(key);
    const std::string name = key == "base" ? "base" : display_name(key);
    double cx = f.px(i + 0.5), bw = std::min(50.0, (f.px(1) - f.px(0)) * 0.5);
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">", cx, f.h - f.bottom + 16) + html_escape(name) + "</text>";
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"xl sm\">n=%zu</text>", cx, f.h - f.bottom + 30, v.size());
    if (v.empty()) continue;
    double q1 = quantile(v, 0.25), q2 = quantile(v, 0.5), q3 = quantile(v, 0.75);
    double mn = *std::min_element(v.begin(), v.end()), mx = *std::max_element(v.begin(), v.end());
    s += strf("<line class=\"d\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", cx, cx, f.py(mn), f.py(mx),
              color.c_str());
    for (double e : {mn, mx})
      s += strf("<line class=\"d\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", cx - bw / 4, cx + bw / 4,
                f.py(e), f.py(e), color.c_str());
    s += strf("<rect class=\"d\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.25\" "
              "stroke=\"%s\"><title>%s: median %.2f%%, quartiles %.2f%%-%.2f%%, range %.2f%%-%.2f%%</title></rect>",
              cx - bw / 2, f.py(q3), bw, std::max(1.0, f.py(q1) - f.py(q3)), color.c_str(), color.c_str(),
              html_escape(name).c_str(), 100 * q2, 100 * q1, 100 * q3, 100 * mn, 100 * mx);
    s += strf("<line class=\"d\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>", cx - bw / 2,
              cx + bw / 2, f.py(q2), f.py(q2), color.c_str());
    for (size_t j = 0; j < v.size(); ++j) {
      double jitter = v.size() == 1 ? 0 : (static_cast<double>(j) / (v.size() - 1) - 0.5) * bw * 0.6;
      s += strf("<circle class=\"d\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.8\"/>",
                cx + jitter, f.py(v[j]), color.c_str());
    }
  }
  return s + "</svg>";
}

// Per-class change of test accuracy (final minus base, mean over runs), one bar per arm in each
// class's group: which classes paid for a gain.
std::string class_change_svg(const std::string& title,
                             const std::vector<std::pair<std::string, std::vector<double>>>& arms) {
  Frame f;
  size_t classes = 0;
  double lo = 0, hi = 0;
  for (const auto& [_, v] : arms) {
    classes = std::max(classes, v.size());
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  }
  // Wide enough for the bars and for the legend's one row (120 px an arm).
  f.w = std::max({420.0, 13.0 * classes * arms.size() + 140, f.left + 120.0 * arms.size() + 8});
  const double pad = std::max((hi - lo) * 0.1, 0.002);
  f.y0 = lo - pad, f.y1 = hi + pad, f.x0 = 0, f.x1 = static_cast<double>(std::max<size_t>(classes, 1));
  f.bottom = 58;  // room for the legend under the class labels
  std::string s = svg_open(f, title);
  s += y_axis(f, nice_ticks(f.y0, f.y1, 6), "%+.1f", 100, "change (pp)");
  s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" stroke-width=\"0.8\"/>", f.left,
            f.w - f.right, f.py(0), f.py(0));
  const double group = f.px(1) - f.px(0), bw = group * 0.8 / std::max<size_t>(arms.size(), 1);
  for (size_t k = 0; k < classes; ++k)
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">%zu</text>", f.px(k + 0.5), f.h - f.bottom + 16, k);
  for (size_t a = 0; a < arms.size(); ++a) {
    const auto& [key, v] = arms[a];
    const std::string color = colour_of(key);
    for (size_t k = 0; k < v.size(); ++k) {
      const double x = f.px(k) + group * 0.1 + a * bw, y = f.py(std::max(v[k], 0.0));
      s += strf("<rect class=\"d\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s, class %zu: "
                "%+.2f pp</title></rect>",
                x, y, std::max(bw - 1, 1.0), std::max(std::fabs(f.py(v[k]) - f.py(0)), 0.5), color.c_str(),
                html_escape(display_name(key)).c_str(), k, 100 * v[k]);
    }
    // Legend: one swatch and name per arm, in a row under the axis.
    const double lx = f.left + a * 120.0;
    s += strf("<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>", lx, f.h - 22, color.c_str());
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">", lx + 14, f.h - 13) + html_escape(display_name(key)) +
         "</text>";
  }
  return s + "</svg>";
}

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
  std::vector<std::string> names;
  for (const auto& c : curves) names.push_back(display_name(c.strategy));
  Frame f = legend_frame({"retraining"}, names);
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
    const std::string color = colour_of(c.strategy);
    const char* dash = is_control(c.strategy) ? " stroke-dasharray=\"6,3\"" : "";
    std::string pts;
    double prev_y = kNaN;
    for (const auto& [x, y] : c.points) {  // a step function: the best only changes at a batch
      if (!std::isnan(prev_y)) pts += strf("%.1f,%.1f ", f.px(x), f.py(prev_y));
      pts += strf("%.1f,%.1f ", f.px(x), f.py(y));
      prev_y = y;
    }
    s += "<polyline class=\"d\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.8\"" + dash + " points=\"" + pts + "\"/>";
    for (const auto& [x, y] : c.adjust_marks)
      s += strf("<circle class=\"d\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>batch %.0f: accepted adjustment, "
                "%.2f%%</title></circle>",
                f.px(x), f.py(y), color.c_str(), x, 100 * y);
    for (const auto& [x, y] : c.retrain_marks)
      s += strf("<rect class=\"d\" x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"#fff\" stroke=\"%s\" stroke-width=\"1.5\">"
                "<title>batch %.0f: accepted retraining, %.2f%%</title></rect>",
                f.px(x) - 3.5, f.py(y) - 3.5, color.c_str(), x, 100 * y);
    s += legend_line(f, ly, color, display_name(c.strategy), dash);
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

std::string pareto_svg(const std::string& title, const std::vector<ParetoArm>& arms, double bound) {
  std::vector<std::string> names;
  for (const auto& a : arms) names.push_back(display_name(a.strategy));
  Frame f = legend_frame({"break bound"}, names);
  double xmax = 0, lo = 0, hi = 0;
  auto see = [&](double x, double y) {
    if (std::isnan(x) || std::isnan(y)) return;
    xmax = std::max(xmax, x), lo = std::min(lo, y), hi = std::max(hi, y);
  };
  for (const auto& a : arms) {
    for (const auto& [x, y] : a.line) see(x, y);
    see(a.chosen_break, a.chosen_gain);
  }
  if (!std::isnan(bound) && bound < 1) xmax = std::max(xmax, bound * 1.15);
  const double pad = std::max((hi - lo) * 0.08, 0.002);
  f.x0 = 0, f.x1 = std::max(xmax * 1.05, 1e-3), f.y0 = lo - pad, f.y1 = hi + pad;
  std::string s = svg_open(f, title);
  s += y_axis(f, nice_ticks(f.y0, f.y1, 5), "%+.1f", 100, "field hold-out gain (pp)");
  s += x_axis(f, nice_ticks(f.x0, f.x1, 6), "%.1f%%", 100, "clean test answers broken");
  if (!std::isnan(bound) && bound < 1 && bound <= f.x1) {
    s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-width=\"1.2\" "
              "stroke-dasharray=\"4,3\"><title>adapt.max_break_rate %.1f%% (enforced on the validation split)</title></line>",
              f.px(bound), f.px(bound), f.top, f.h - f.bottom, 100 * bound);
  }
  double ly = f.top + 6;
  for (const auto& a : arms) {
    const std::string color = colour_of(a.strategy);
    if (!a.line.empty()) {
      std::string pts;
      for (const auto& [x, y] : a.line) pts += strf("%.1f,%.1f ", f.px(x), f.py(y));
      s += "<polyline class=\"d\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.6\" points=\"" + pts + "\"/>";
      for (const auto& [x, y] : a.line)
        s += strf("<circle class=\"d\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\"/>", f.px(x), f.py(y), color.c_str());
    }
    if (!std::isnan(a.chosen_break) && !std::isnan(a.chosen_gain))
      s += strf("<rect class=\"d\" x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\" stroke=\"#222\">"
                "<title>%s chosen: %+.2f pp hold-out, %.2f%% test broken</title></rect>",
                f.px(a.chosen_break) - 4, f.py(a.chosen_gain) - 4, color.c_str(), display_name(a.strategy).c_str(),
                100 * a.chosen_gain, 100 * a.chosen_break);
    s += legend_line(f, ly, color, display_name(a.strategy));
    ly += 16;
  }
  ly += 6;
  s += strf("<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"#fff\" stroke=\"#222\"/>", f.w - f.right + 16,
            ly - 4);
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">chosen</text>", f.w - f.right + 35, ly + 4);
  ly += 16;
  s += strf("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-dasharray=\"4,3\"/>",
            f.w - f.right + 10, f.w - f.right + 30, ly, ly);
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">break bound</text>", f.w - f.right + 35, ly + 4);
  return s + "</svg>";
}

std::string learning_curves_svg(const std::string& title, const std::vector<LearningCurve>& runs) {
  static const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
                                         "#393b79", "#ad494a", "#8ca252", "#bd9e39", "#a55194",
                                         "#6b6ecf", "#e7969c", "#637939", "#e7ba52", "#ce6dbd"};
  std::vector<std::string> names;
  for (const auto& r : runs) names.push_back(r.label);
  Frame f = legend_frame({"kept epoch"}, names);
  double xmax = 1, lo = 1, hi = 0;
  for (const auto& r : runs)
    for (const auto& [x, y] : r.points) xmax = std::max(xmax, x), lo = std::min(lo, y), hi = std::max(hi, y);
  if (hi < lo) lo = 0, hi = 1;
  const double pad = std::max((hi - lo) * 0.08, 0.001);
  f.x0 = 0, f.x1 = xmax, f.y0 = lo - pad, f.y1 = hi + pad;
  std::string s = svg_open(f, title);
  s += y_axis(f, nice_ticks(f.y0, f.y1, 5), "%.1f%%", 100, "validation accuracy");
  std::vector<double> xt;  // whole epochs only
  for (double v : nice_ticks(0, xmax, 6))
    if (std::fabs(v - std::round(v)) < 1e-9) xt.push_back(v);
  s += x_axis(f, xt, "%.0f", 1, "epoch");
  double ly = f.top + 6;
  const size_t shown = std::min<size_t>(runs.size(), 12);  // the legend's room; every line is drawn
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    const std::string color = kColours[i % 20];
    std::string pts;
    for (const auto& [x, y] : r.points) pts += strf("%.1f,%.1f ", f.px(x), f.py(y));
    s += "<polyline class=\"d\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.5\" points=\"" + pts + "\"/>";
    for (const auto& [x, y] : r.points)
      if (x == r.kept_epoch)
        s += strf("<circle class=\"d\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s: epoch %.0f kept, "
                  "%.2f%%</title></circle>",
                  f.px(x), f.py(y), color.c_str(), html_escape(r.label).c_str(), x, 100 * y);
    if (i < shown) s += legend_line(f, ly, color, r.label), ly += 16;
  }
  if (runs.size() > shown)
    s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg sm\">and %zu more</text>", f.w - f.right + 35, ly + 4,
              runs.size() - shown),
        ly += 16;
  ly += 6;
  s += strf("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#555\"/>", f.w - f.right + 20, ly);
  s += strf("<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">kept epoch</text>", f.w - f.right + 35, ly + 4);
  return s + "</svg>";
}

}  // namespace apricot::report_detail
