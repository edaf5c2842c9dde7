// Statistics over plain vectors of doubles: mean and sample std (the tool's one implementation),
// quantiles, and the paired t-test that compares an arm with the control. No tensors, no I/O; the
// report uses all of it, and any other place that needs a mean/std should call mean_std.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace apricot {

// Mean and sample standard deviation (n-1 denominator) of `v`, summed in order. mean is NaN when `v`
// is empty and std NaN when n < 2, so that a missing figure cannot pass for a zero.
struct MeanStd {
  double mean = 0, std = 0;
  int64_t n = 0;
};
MeanStd mean_std(const std::vector<double>& v);

double quantile(std::vector<double> v, double q);     // linear interpolation (R type 7); NaN when empty
double log_gamma(double x);                           // ln Γ(x), x > 0
double incomplete_beta(double a, double b, double x);  // regularized I_x(a, b), a, b > 0, 0 <= x <= 1
double student_t_two_sided_p(double t, double df);   // P(|T| >= |t|) for Student's t with df > 0

// Paired comparison of a strategy with the control arm over runs: d_i = strategy_i - control_i.
struct PairedStats {
  int64_t n = 0;
  double mean = 0, std = 0;       // of d (std NaN when n < 2)
  int64_t wins = 0, ties = 0, losses = 0;
  std::optional<double> t, p;     // absent when n < 2 or d has no variation
};
PairedStats paired_stats(const std::vector<double>& diffs, double tie_tolerance = 1e-9);

}  // namespace apricot
