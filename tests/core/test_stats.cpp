// Statistics (stats.hpp): mean/std and quantiles against hand-computed values, the incomplete beta
// function and Student's t against closed forms, and the paired comparison the report makes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "apricot/core/stats.hpp"

using namespace apricot;

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

TEST(Stats, MeanStdQuantile) {
  std::vector<double> v = {1, 2, 3, 4};
  const MeanStd ms = mean_std(v);
  EXPECT_EQ(ms.n, 4);
  EXPECT_DOUBLE_EQ(ms.mean, 2.5);
  EXPECT_NEAR(ms.std, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_DOUBLE_EQ(quantile(v, 0.25), 1.75);
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 1.0), 4);
  // Missing figures are NaN, not zero: no values, and no spread from a single value.
  EXPECT_EQ(mean_std({}).n, 0);
  EXPECT_TRUE(std::isnan(mean_std({}).mean));
  EXPECT_TRUE(std::isnan(mean_std({}).std));
  EXPECT_DOUBLE_EQ(mean_std({7}).mean, 7);
  EXPECT_TRUE(std::isnan(mean_std({7}).std));
}

TEST(Stats, IncompleteBetaClosedForms) {
  EXPECT_NEAR(incomplete_beta(2, 3, 0.5), 11.0 / 16.0, 1e-12);  // binomial sum
  EXPECT_NEAR(incomplete_beta(1, 1, 0.37), 0.37, 1e-12);
  EXPECT_NEAR(incomplete_beta(1, 3, 0.3), 1 - std::pow(0.7, 3), 1e-12);
  EXPECT_NEAR(incomplete_beta(4.5, 1, 0.8), std::pow(0.8, 4.5), 1e-12);
  EXPECT_NEAR(incomplete_beta(0.5, 0.5, 0.25), 2 / kPi * std::asin(0.5), 1e-10);  // arcsine law
  EXPECT_NEAR(incomplete_beta(30, 40, 0.6) + incomplete_beta(40, 30, 0.4), 1.0, 1e-12);
  EXPECT_EQ(incomplete_beta(2, 2, 0), 0);
  EXPECT_EQ(incomplete_beta(2, 2, 1), 1);
}

TEST(Stats, StudentTClosedForms) {
  EXPECT_NEAR(student_t_two_sided_p(1.0, 1), 0.5, 1e-12);  // Cauchy: 1 - 2 atan|t| / pi
  EXPECT_NEAR(student_t_two_sided_p(-3.0, 1), 1 - 2 * std::atan(3.0) / kPi, 1e-12);
  EXPECT_NEAR(student_t_two_sided_p(2.0, 2), 1 - 2.0 / std::sqrt(6.0), 1e-12);  // 1 - |t|/sqrt(t^2+2)
  const double t = 1.3, u = t / std::sqrt(3.0);  // df 3: 1 - 2/pi (atan u + u/(1+u^2))
  EXPECT_NEAR(student_t_two_sided_p(t, 3), 1 - 2 / kPi * (std::atan(u) + u / (1 + u * u)), 1e-12);
  EXPECT_NEAR(student_t_two_sided_p(2.776445105, 4), 0.05, 1e-8);  // tabulated critical value
  EXPECT_NEAR(student_t_two_sided_p(1.959963985, 1e7), 0.05, 1e-6);  // normal limit
  EXPECT_NEAR(student_t_two_sided_p(0, 5), 1.0, 1e-12);
  EXPECT_EQ(student_t_two_sided_p(INFINITY, 5), 0);
}

TEST(Stats, PairedStats) {
  auto ps = paired_stats({0.01, 0.02, 0.0, -0.01});
  EXPECT_EQ(ps.n, 4);
  EXPECT_NEAR(ps.mean, 0.005, 1e-15);
  EXPECT_NEAR(ps.std, std::sqrt(500e-6 / 3), 1e-12);
  EXPECT_EQ(ps.wins, 2);
  EXPECT_EQ(ps.ties, 1);
  EXPECT_EQ(ps.losses, 1);
  ASSERT_TRUE(ps.t && ps.p);
  const double t = 0.005 / (std::sqrt(500e-6 / 3) / 2), u = t / std::sqrt(3.0);
  EXPECT_NEAR(*ps.t, t, 1e-9);
  EXPECT_NEAR(*ps.p, 1 - 2 / kPi * (std::atan(u) + u / (1 + u * u)), 1e-9);
  // No variation or a single pair: no t, no p (rather than a division by zero).
  auto same = paired_stats({0.01, 0.01});
  EXPECT_FALSE(same.t.has_value());
  EXPECT_FALSE(same.p.has_value());
  EXPECT_EQ(same.wins, 2);
  auto one = paired_stats({0.02});
  EXPECT_EQ(one.n, 1);
  EXPECT_FALSE(one.t.has_value());
}
