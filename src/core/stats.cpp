// Statistics (see stats.hpp): mean/std, quantiles, the regularized incomplete beta function and the
// paired t-test built on it. Plain doubles only; it knows nothing of runs, files or the report's layout.
#include "apricot/core/stats.hpp"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace apricot {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

MeanStd mean_std(const std::vector<double>& v) {
  MeanStd r;
  r.n = static_cast<int64_t>(v.size());
  r.mean = r.std = kNaN;
  if (v.empty()) return r;
  double s = 0;
  for (double x : v) s += x;
  r.mean = s / static_cast<double>(v.size());
  if (v.size() < 2) return r;
  double ss = 0;
  for (double x : v) ss += (x - r.mean) * (x - r.mean);
  r.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  return r;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  double h = (static_cast<double>(v.size()) - 1) * q;
  auto lo = static_cast<size_t>(std::floor(h));
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (h - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

double log_gamma(double x) { return std::lgamma(x); }

namespace {
// Continued fraction of the incomplete beta function (modified Lentz), converging for
// x < (a+1)/(a+b+2); the caller uses the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) otherwise.
double beta_continued_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300, kEps = 1e-15;
  double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 500; ++m) {
    double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) break;
  }
  return h;
}
}  // namespace

double incomplete_beta(double a, double b, double x) {
  TORCH_CHECK(a > 0 && b > 0 && x >= 0 && x <= 1, "incomplete_beta: a, b > 0 and 0 <= x <= 1");
  if (x == 0) return 0;
  if (x == 1) return 1;
  double front = std::exp(log_gamma(a + b) - log_gamma(a) - log_gamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_continued_fraction(a, b, x) / a;
  return 1 - front * beta_continued_fraction(b, a, 1 - x) / b;
}

double student_t_two_sided_p(double t, double df) {
  TORCH_CHECK(df > 0, "student_t_two_sided_p: df > 0");
  if (std::isinf(t)) return 0;
  return incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

PairedStats paired_stats(const std::vector<double>& diffs, double tie_tolerance) {
  PairedStats s;
  const MeanStd d = mean_std(diffs);
  s.n = d.n;
  s.mean = d.mean;
  s.std = d.std;
  for (double x : diffs) {
    if (std::fabs(x) <= tie_tolerance) ++s.ties;
    else if (x > 0) ++s.wins;
    else ++s.losses;
  }
  if (s.n >= 2 && s.std > 0) {
    s.t = s.mean / (s.std / std::sqrt(static_cast<double>(s.n)));
    s.p = student_t_two_sided_p(*s.t, static_cast<double>(s.n - 1));
  }
  return s;
}

}  // namespace apricot
