// Tests for the weight engine: the composed affine update against the naive per-input reference on
// random data, hand-computed small cases, the literal/intent sign relation, skips and counts, and the
// flatten/assign round trip on small modules with BatchNorm. CPU only, deterministic, no timing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <tuple>
#include <vector>

#include "apricot/core/errors.hpp"
#include "apricot/method/adjustment.hpp"

namespace apricot {
namespace {

torch::Tensor t1d(std::vector<double> v) { return torch::tensor(v, torch::kDouble); }

// max |a - b| / max |b|: one number that is small only if the whole vector agrees.
double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const double denom = b.abs().max().item<double>();
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>() /
         (denom > 0 ? denom : 1.0);
}

torch::Tensor mask_of(std::vector<std::vector<int>> rows) {
  const int64_t f = static_cast<int64_t>(rows.size());
  const int64_t n = f > 0 ? static_cast<int64_t>(rows[0].size()) : 0;
  auto m = torch::zeros({f, n}, torch::kBool);
  for (int64_t i = 0; i < f; ++i)
    for (int64_t j = 0; j < n; ++j) m.index_put_({i, j}, rows[i][j] != 0);
  return m;
}

// Random (F, n) mask with some all-false rows (skipped) and some all-true rows (b == 0) mixed in.
torch::Tensor random_mask(int64_t f, int64_t n, torch::Generator& gen) {
  auto m = torch::rand({f, n}, gen, torch::kDouble) < 0.6;  // (F, n)
  if (f >= 3) {
    m.index_put_({1}, false);
    m.index_put_({2}, true);
  }
  return m;
}

constexpr Strategy kAllStrategies[] = {Strategy::k1, Strategy::k2, Strategy::k3, Strategy::kNone};
constexpr Direction kAllDirections[] = {Direction::kIntent, Direction::kLiteral};

// ---------------------------------------------------------------------------------------------
// Hand-checked: n = 2 rDLMs, P = 2 weights, R = [[1, 2], [3, 4]], w = [1, 1], r = 0.5.
// Input 1, mask [1, 0]: a = b = 1, p_c = p_i = 1/2, cbar = [1, 2], ibar = [3, 4].
//   intent:  w + 0.5*(0.5*([1,2]-[1,1]) - 0.5*([3,4]-[1,1])) = [1,1] + 0.5*([0,0.5]-[1,1.5])
//            = [1,1] + 0.5*[-1,-1] = [0.5, 0.5]
//            affine: alpha = 1 - 0.5*0.5 + 0.5*0.5 = 1, v = r/n*[+1, -1] = [0.25, -0.25]
// Input 2, mask [1, 1]: a = 2, b = 0, p_c = 1, cbar = [2, 3], no incorrect term.
//   intent:  [0.5,0.5] + 0.5*1*([2,3]-[0.5,0.5]) = [0.5,0.5] + [0.75,1.25] = [1.25, 1.75]
//            affine: alpha = 1 - 0.5*1 = 0.5, v = [0.25, 0.25]
// Input 3, mask [0, 0]: a = 0, skipped.
// Composed: s = 1*0.5 = 0.5, u = 0.5*[0.25,-0.25] + [0.25,0.25] = [0.375, 0.125];
//   s*w + R^T u = [0.5,0.5] + [1*0.375 + 3*0.125, 2*0.375 + 4*0.125] = [1.25, 1.75]. adjusted = 2.
// ---------------------------------------------------------------------------------------------
TEST(Weights, HandCheckedStrategy1Intent) {
  const auto R = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble).view({2, 2});
  const auto w = t1d({1.0, 1.0});
  const auto mask = mask_of({{1, 0}, {1, 1}, {0, 0}});

  const auto upd = compose_updates(mask, Strategy::k1, Direction::kIntent, 0.5);
  EXPECT_DOUBLE_EQ(upd.s, 0.5);
  ASSERT_EQ(upd.u.sizes(), torch::IntArrayRef({2}));
  EXPECT_EQ(upd.u.scalar_type(), torch::kDouble);
  EXPECT_DOUBLE_EQ(upd.u[0].item<double>(), 0.375);
  EXPECT_DOUBLE_EQ(upd.u[1].item<double>(), 0.125);
  EXPECT_EQ(upd.adjusted, 2);

  const auto expected = t1d({1.25, 1.75});
  EXPECT_LT(rel_diff(apply_update(w, R, upd), expected), 1e-12);
  EXPECT_LT(rel_diff(naive_adjust(w, R, mask, Strategy::k1, Direction::kIntent, 0.5), expected), 1e-12);

  // After input 1 alone: [0.5, 0.5].
  const auto first = mask_of({{1, 0}});
  EXPECT_LT(rel_diff(naive_adjust(w, R, first, Strategy::k1, Direction::kIntent, 0.5), t1d({0.5, 0.5})),
            1e-12);
}

// Same data, literal equations with corrDiff = w - cbar, incorrDiff = w - ibar:
// Input 1: corrDiff = [0,-1], incorrDiff = [-2,-3];
//          w + 0.5*(0.5*[0,-1] - 0.5*[-2,-3]) = [1,1] + 0.5*[1,1] = [1.5, 1.5]
// Input 2: corrDiff = [1.5,1.5] - [2,3] = [-0.5,-1.5]; w + 0.5*1*[-0.5,-1.5] = [1.25, 0.75]
// Composed: input 1 alpha = 1, v = [-0.25, 0.25]; input 2 alpha = 1 + 0.5 = 1.5, v = [-0.25, -0.25]
//          s = 1.5, u = 1.5*[-0.25,0.25] + [-0.25,-0.25] = [-0.625, 0.125]
//          1.5*[1,1] + [-0.625 + 0.375, -1.25 + 0.5] = [1.25, 0.75].
TEST(Weights, HandCheckedStrategy1Literal) {
  const auto R = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble).view({2, 2});
  const auto w = t1d({1.0, 1.0});
  const auto mask = mask_of({{1, 0}, {1, 1}, {0, 0}});

  const auto upd = compose_updates(mask, Strategy::k1, Direction::kLiteral, 0.5);
  EXPECT_DOUBLE_EQ(upd.s, 1.5);
  EXPECT_DOUBLE_EQ(upd.u[0].item<double>(), -0.625);
  EXPECT_DOUBLE_EQ(upd.u[1].item<double>(), 0.125);
  EXPECT_EQ(upd.adjusted, 2);

  const auto expected = t1d({1.25, 0.75});
  EXPECT_LT(rel_diff(apply_update(w, R, upd), expected), 1e-12);
  EXPECT_LT(rel_diff(naive_adjust(w, R, mask, Strategy::k1, Direction::kLiteral, 0.5), expected), 1e-12);
  EXPECT_LT(rel_diff(naive_adjust(w, R, mask_of({{1, 0}}), Strategy::k1, Direction::kLiteral, 0.5),
                     t1d({1.5, 1.5})),
            1e-12);
}

// Strategies 2 and 3 by hand on the first input alone (mask [1, 0], r = 0.5, w = [1, 1]):
//   s2 intent:  w + 0.5*0.5*([1,2]-[1,1]) = [1, 1.25]
//   s3 intent:  w - 0.5*0.5*([3,4]-[1,1]) = [0.5, 0.25]
TEST(Weights, HandCheckedStrategies2And3) {
  const auto R = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble).view({2, 2});
  const auto w = t1d({1.0, 1.0});
  const auto mask = mask_of({{1, 0}});
  for (const bool engine : {false, true}) {
    auto run = [&](Strategy s) {
      return engine ? apply_update(w, R, compose_updates(mask, s, Direction::kIntent, 0.5))
                    : naive_adjust(w, R, mask, s, Direction::kIntent, 0.5);
    };
    EXPECT_LT(rel_diff(run(Strategy::k2), t1d({1.0, 1.25})), 1e-12) << "engine=" << engine;
    EXPECT_LT(rel_diff(run(Strategy::k3), t1d({0.5, 0.25})), 1e-12) << "engine=" << engine;
  }
}

// The optimised path against the reference, every strategy x direction, several F and n.
// In float64 the updates themselves (w_final - w) must agree, with a step large enough that a wrong
// coefficient shows; in float32 the final weights must agree to 1e-5 at the paper's step.
TEST(Weights, EngineMatchesNaive) {
  auto gen = at::detail::createCPUGenerator(1234);
  const int64_t P = 777;
  for (const int64_t n : {5, 20}) {
    for (const int64_t f : {1, 5, 20}) {
      const auto R64 = torch::randn({n, P}, gen, torch::kDouble);  // (n, P)
      const auto w64 = torch::randn({P}, gen, torch::kDouble);     // (P)
      const auto mask = random_mask(f, n, gen);                    // (F, n)
      for (const Strategy s : kAllStrategies) {
        for (const Direction d : kAllDirections) {
          SCOPED_TRACE("n=" + std::to_string(n) + " F=" + std::to_string(f) + " strategy=" + to_string(s) +
                       " direction=" + to_string(d));
          // float64, step 0.05: compare the change itself.
          const auto upd64 = compose_updates(mask, s, d, 0.05);
          const auto engine64 = apply_update(w64, R64, upd64);
          const auto naive64 = naive_adjust(w64, R64, mask, s, d, 0.05);
          EXPECT_EQ(engine64.scalar_type(), torch::kDouble);
          if (s == Strategy::kNone) {
            EXPECT_TRUE(torch::equal(naive64, w64));
            EXPECT_LT(rel_diff(engine64, w64), 1e-15);
          } else if (upd64.adjusted == 0) {  // e.g. strategy 3 on a row where every rDLM is right
            EXPECT_TRUE(torch::equal(naive64, w64));
            EXPECT_LT(rel_diff(engine64, w64), 1e-15);
          } else {
            EXPECT_GT((naive64 - w64).abs().max().item<double>(), 1e-4);  // something did change
            EXPECT_LT(rel_diff(engine64 - w64, naive64 - w64), 1e-9);
          }
          // float32, the paper's step 0.001: compare the weights.
          const auto R32 = R64.to(torch::kFloat);
          const auto w32 = w64.to(torch::kFloat);
          const auto upd32 = compose_updates(mask, s, d, 0.001);
          const auto engine32 = apply_update(w32, R32, upd32);
          const auto naive32 = naive_adjust(w32, R32, mask, s, d, 0.001);
          EXPECT_EQ(engine32.scalar_type(), torch::kFloat);
          EXPECT_EQ(naive32.scalar_type(), torch::kFloat);
          EXPECT_LT(rel_diff(engine32, naive32), 1e-5);
          // The float32 engine against the exact (float64) reference on the same float32 inputs: within
          // a few float32 roundings of the largest weight (coefficients are composed in double).
          const auto naive_ref =
              naive_adjust(w32.to(torch::kDouble), R32.to(torch::kDouble), mask, s, d, 0.001);
          EXPECT_LT(rel_diff(engine32, naive_ref), 1e-6);
        }
      }
    }
  }
}

// Equations (2)-(4) with corrDiff = w - cbar and incorrDiff = w - ibar are the intended updates with
// the step negated: w + r*p_c*(w - cbar) = w + (-r)*p_c*(cbar - w), and so on for each strategy.
TEST(Weights, LiteralIsIntentWithNegatedStep) {
  auto gen = at::detail::createCPUGenerator(7);
  const int64_t n = 8, P = 101, f = 6;
  const auto R = torch::randn({n, P}, gen, torch::kDouble);
  const auto w = torch::randn({P}, gen, torch::kDouble);
  const auto mask = random_mask(f, n, gen);
  for (const Strategy s : {Strategy::k1, Strategy::k2, Strategy::k3}) {
    SCOPED_TRACE("strategy=" + to_string(s));
    const auto lit = naive_adjust(w, R, mask, s, Direction::kLiteral, 0.03);
    const auto neg = naive_adjust(w, R, mask, s, Direction::kIntent, -0.03);
    const auto intent = naive_adjust(w, R, mask, s, Direction::kIntent, 0.03);
    EXPECT_LT(rel_diff(lit - w, neg - w), 1e-12);
    EXPECT_GT(rel_diff(lit - w, intent - w), 0.5);  // the two directions really differ

    const auto a = compose_updates(mask, s, Direction::kLiteral, 0.03);
    const auto b = compose_updates(mask, s, Direction::kIntent, -0.03);
    EXPECT_DOUBLE_EQ(a.s, b.s);
    EXPECT_TRUE(torch::allclose(a.u, b.u, 0.0, 1e-15));
    EXPECT_EQ(a.adjusted, b.adjusted);
  }
}

// Intent moves toward the correct rDLMs' mean (strategy 2) and away from the incorrect ones' mean
// (strategy 3); literal does the opposite. One input, so the means are fixed.
TEST(Weights, DirectionMovesTowardCorrectMean) {
  auto gen = at::detail::createCPUGenerator(11);
  const int64_t n = 6, P = 50;
  const auto R = torch::randn({n, P}, gen, torch::kDouble);
  const auto w = torch::randn({P}, gen, torch::kDouble);
  const auto mask = mask_of({{1, 1, 0, 1, 0, 0}});
  const auto cbar = R.index_select(0, torch::tensor({0, 1, 3})).mean(0);
  const auto ibar = R.index_select(0, torch::tensor({2, 4, 5})).mean(0);
  auto dist = [](const torch::Tensor& a, const torch::Tensor& b) { return (a - b).norm().item<double>(); };
  for (const bool engine : {false, true}) {
    auto run = [&](Strategy s, Direction d) {
      return engine ? apply_update(w, R, compose_updates(mask, s, d, 0.1)) : naive_adjust(w, R, mask, s, d, 0.1);
    };
    EXPECT_LT(dist(run(Strategy::k2, Direction::kIntent), cbar), dist(w, cbar));
    EXPECT_GT(dist(run(Strategy::k2, Direction::kLiteral), cbar), dist(w, cbar));
    EXPECT_GT(dist(run(Strategy::k3, Direction::kIntent), ibar), dist(w, ibar));
    EXPECT_LT(dist(run(Strategy::k3, Direction::kLiteral), ibar), dist(w, ibar));
  }
}

TEST(Weights, NoneIsIdentity) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto R = torch::randn({4, 30}, gen, torch::kFloat);
  const auto w = torch::randn({30}, gen, torch::kFloat);
  const auto mask = mask_of({{1, 0, 0, 1}, {1, 1, 1, 1}, {0, 1, 0, 0}});
  for (const Direction d : kAllDirections) {
    const auto upd = compose_updates(mask, Strategy::kNone, d, 0.5);
    EXPECT_EQ(upd.s, 1.0);
    ASSERT_EQ(upd.u.numel(), 4);
    EXPECT_TRUE(torch::equal(upd.u, torch::zeros({4}, torch::kDouble)));
    EXPECT_EQ(upd.adjusted, 0);
    EXPECT_TRUE(torch::equal(apply_update(w, R, upd), w));
    EXPECT_TRUE(torch::equal(naive_adjust(w, R, mask, Strategy::kNone, d, 0.5), w));
  }
}

TEST(Weights, EmptyBatchIsIdentity) {
  const auto mask = torch::zeros({0, 3}, torch::kBool);
  const auto upd = compose_updates(mask, Strategy::k1, Direction::kIntent, 0.1);
  EXPECT_EQ(upd.s, 1.0);
  EXPECT_EQ(upd.u.numel(), 3);
  EXPECT_EQ(upd.u.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(upd.adjusted, 0);
}

// An input no rDLM gets right changes nothing, wherever it sits in the batch.
TEST(Weights, RowsWithNoCorrectRDLMAreSkipped) {
  auto gen = at::detail::createCPUGenerator(5);
  const auto R = torch::randn({3, 40}, gen, torch::kDouble);
  const auto w = torch::randn({40}, gen, torch::kDouble);
  const auto with_skips = mask_of({{0, 0, 0}, {1, 0, 1}, {0, 0, 0}, {0, 1, 0}, {0, 0, 0}});
  const auto without = mask_of({{1, 0, 1}, {0, 1, 0}});
  const auto only_skips = mask_of({{0, 0, 0}, {0, 0, 0}});
  for (const Strategy s : {Strategy::k1, Strategy::k2, Strategy::k3}) {
    for (const Direction d : kAllDirections) {
      const auto a = compose_updates(with_skips, s, d, 0.2);
      const auto b = compose_updates(without, s, d, 0.2);
      EXPECT_DOUBLE_EQ(a.s, b.s);
      EXPECT_TRUE(torch::equal(a.u, b.u));
      EXPECT_EQ(a.adjusted, 2);
      EXPECT_TRUE(torch::equal(naive_adjust(w, R, with_skips, s, d, 0.2), naive_adjust(w, R, without, s, d, 0.2)));
      const auto c = compose_updates(only_skips, s, d, 0.2);
      EXPECT_EQ(c.s, 1.0);
      EXPECT_EQ(c.adjusted, 0);
      EXPECT_TRUE(torch::equal(naive_adjust(w, R, only_skips, s, d, 0.2), w));
    }
  }
}

// adjusted: a > 0 for strategies 1 and 2; a > 0 and b > 0 for strategy 3; 0 for none.
TEST(Weights, AdjustedCounts) {
  const auto mask = mask_of({{0, 0, 0, 0},    // a = 0: skipped by all
                             {1, 1, 1, 1},    // b = 0: strategies 1, 2 only
                             {1, 0, 0, 0},    // all
                             {0, 1, 1, 0},    // all
                             {1, 1, 1, 1}});  // strategies 1, 2 only
  for (const Direction d : kAllDirections) {
    EXPECT_EQ(compose_updates(mask, Strategy::k1, d, 0.001).adjusted, 4);
    EXPECT_EQ(compose_updates(mask, Strategy::k2, d, 0.001).adjusted, 4);
    EXPECT_EQ(compose_updates(mask, Strategy::k3, d, 0.001).adjusted, 2);
    EXPECT_EQ(compose_updates(mask, Strategy::kNone, d, 0.001).adjusted, 0);
  }
  // Strategy 3 with every rDLM correct leaves w exactly as it was.
  const auto upd = compose_updates(mask_of({{1, 1}, {1, 1}}), Strategy::k3, Direction::kIntent, 0.3);
  EXPECT_EQ(upd.s, 1.0);
  EXPECT_EQ(upd.u.abs().sum().item<double>(), 0.0);
}

TEST(Weights, RejectsMismatchedInputs) {
  const auto R = torch::randn({3, 10});
  const auto w = torch::randn({10});
  const auto upd = compose_updates(mask_of({{1, 0, 1}}), Strategy::k1, Direction::kIntent, 0.1);
  EXPECT_THROW(apply_update(torch::randn({11}), R, upd), c10::Error);
  EXPECT_THROW(apply_update(w.to(torch::kDouble), R, upd), c10::Error);
  EXPECT_THROW(apply_update(w, torch::randn({4, 10}), upd), c10::Error);
  EXPECT_THROW(naive_adjust(w, R, mask_of({{1, 0}}), Strategy::k1, Direction::kIntent, 0.1), c10::Error);
  EXPECT_THROW(compose_updates(torch::ones({2, 3}), Strategy::k1, Direction::kIntent, 0.1), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// Layout, flatten, assign.
// ---------------------------------------------------------------------------------------------
struct SmallNetImpl : torch::nn::Module {
  SmallNetImpl()
      : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3).bias(false)))),
        bn(register_module("bn", torch::nn::BatchNorm2d(3))),
        head(register_module("head", torch::nn::Sequential(torch::nn::Flatten(), torch::nn::Linear(12, 4)))) {}
  torch::Tensor forward(torch::Tensor x) { return head->forward(bn(conv(x))); }  // (B,2,4,4) -> (B,4)
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d bn;
  torch::nn::Sequential head;
};
TORCH_MODULE(SmallNet);

TEST(WeightLayoutTest, ParametersOnly) {
  SmallNet net;
  const auto layout = weight_layout(*net, /*include_buffers=*/false);
  const std::vector<std::string> names = {"conv.weight", "bn.weight", "bn.bias", "head.1.weight",
                                          "head.1.bias"};
  EXPECT_EQ(layout.names, names);
  EXPECT_FALSE(layout.include_buffers);
  EXPECT_EQ(layout.shapes[0], (std::vector<int64_t>{3, 2, 3, 3}));
  EXPECT_EQ(layout.offsets, (std::vector<int64_t>{0, 54, 57, 60, 108}));
  EXPECT_EQ(layout.total, 54 + 3 + 3 + 48 + 4);
}

TEST(WeightLayoutTest, FloatBuffersButNeverNumBatchesTracked) {
  SmallNet net;
  const auto layout = weight_layout(*net, /*include_buffers=*/true);
  const std::vector<std::string> names = {"conv.weight",     "bn.weight",       "bn.bias",
                                          "head.1.weight",   "head.1.bias",     "bn.running_mean",
                                          "bn.running_var"};
  EXPECT_EQ(layout.names, names);
  EXPECT_EQ(layout.total, 112 + 3 + 3);
  for (const auto& name : layout.names) EXPECT_EQ(name.find("num_batches_tracked"), std::string::npos);
}

TEST(WeightLayoutTest, FlattenMatchesTensorsInOrder) {
  SmallNet net;
  const auto layout = weight_layout(*net, true);
  {
    torch::NoGradGuard g;
    net->bn->running_mean.fill_(0.25);
    net->bn->running_var.fill_(2.0);
  }
  const auto flat = flatten_weights(*net, layout);
  ASSERT_EQ(flat.sizes(), torch::IntArrayRef({layout.total}));
  EXPECT_EQ(flat.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(flat.slice(0, 0, 54), net->conv->weight.detach().reshape(-1)));
  EXPECT_TRUE(torch::equal(flat.slice(0, 112, 115), torch::full({3}, 0.25f)));
  EXPECT_TRUE(torch::equal(flat.slice(0, 115, 118), torch::full({3}, 2.0f)));
}

TEST(WeightLayoutTest, AssignRoundTripWithBuffers) {
  SmallNet net;
  const auto layout = weight_layout(*net, true);
  const auto before = flatten_weights(*net, layout);
  const auto target = torch::arange(layout.total, torch::kFloat) * 0.01f - 0.5f;  // (P)
  assign_weights(*net, layout, target);
  EXPECT_TRUE(torch::equal(flatten_weights(*net, layout), target));
  // The model's own tensors changed, gradients still tracked, the counter untouched.
  EXPECT_FLOAT_EQ(net->conv->weight.view(-1)[1].item<float>(), 0.01f - 0.5f);
  EXPECT_FLOAT_EQ(net->bn->running_var[2].item<float>(), 117 * 0.01f - 0.5f);
  EXPECT_TRUE(net->conv->weight.requires_grad());
  EXPECT_EQ(net->bn->num_batches_tracked.item<int64_t>(), 0);
  EXPECT_FALSE(torch::equal(before, target));
  // And back: a float64 vector is accepted and converted.
  assign_weights(*net, layout, before.to(torch::kDouble));
  EXPECT_TRUE(torch::equal(flatten_weights(*net, layout), before));
}

TEST(WeightLayoutTest, AssignWithoutBuffersLeavesRunningStats) {
  SmallNet net;
  const auto layout = weight_layout(*net, false);
  const auto mean_before = net->bn->running_mean.clone();
  const auto var_before = net->bn->running_var.clone();
  const auto target = torch::full({layout.total}, 3.0f);
  assign_weights(*net, layout, target);
  EXPECT_TRUE(torch::equal(flatten_weights(*net, layout), target));
  EXPECT_TRUE(torch::equal(net->bn->running_mean, mean_before));
  EXPECT_TRUE(torch::equal(net->bn->running_var, var_before));
  EXPECT_TRUE(torch::equal(net->bn->weight.detach(), torch::full({3}, 3.0f)));
}

TEST(WeightLayoutTest, SequentialRoundTripAndForwardUsesNewWeights) {
  torch::nn::Sequential seq(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2), torch::nn::ReLU(),
                            torch::nn::Linear(2, 1));
  const auto layout = weight_layout(*seq, true);
  const std::vector<std::string> names = {"0.weight", "0.bias",         "1.weight",      "1.bias",
                                          "3.weight", "3.bias",         "1.running_mean", "1.running_var"};
  EXPECT_EQ(layout.names, names);
  EXPECT_EQ(layout.total, 6 + 2 + 2 + 2 + 2 + 1 + 2 + 2);
  assign_weights(*seq, layout, torch::zeros({layout.total}));
  seq->eval();
  // Every weight zero, running_var zero: the output is the last bias, 0.
  EXPECT_EQ(seq->forward(torch::ones({2, 3})).abs().sum().item<float>(), 0.0f);
}

TEST(WeightLayoutTest, RejectsMismatches) {
  SmallNet net;
  const auto layout = weight_layout(*net, false);
  EXPECT_THROW(assign_weights(*net, layout, torch::zeros({layout.total + 1})), c10::Error);
  EXPECT_THROW(assign_weights(*net, layout, torch::zeros({1, layout.total})), c10::Error);
  // A layout from another architecture.
  torch::nn::Sequential other(torch::nn::Linear(3, 2));
  const auto other_layout = weight_layout(*other, false);
  EXPECT_THROW(flatten_weights(*net, other_layout), c10::Error);
  EXPECT_THROW(assign_weights(*net, other_layout, torch::zeros({other_layout.total})), c10::Error);
  // Same names, different shape.
  auto bad = layout;
  bad.shapes[0] = {3, 2, 9};
  EXPECT_THROW(flatten_weights(*net, bad), c10::Error);
  // A buffers layout used on a parameters-only walk and vice versa.
  auto with_buffers = weight_layout(*net, true);
  with_buffers.include_buffers = false;
  EXPECT_THROW(flatten_weights(*net, with_buffers), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// Parsing.
// ---------------------------------------------------------------------------------------------
TEST(WeightsParse, StrategyRoundTrip) {
  for (const Strategy s : kAllStrategies) EXPECT_EQ(parse_strategy(to_string(s)), s);
  EXPECT_EQ(parse_strategy("1"), Strategy::k1);
  EXPECT_EQ(parse_strategy("none"), Strategy::kNone);
  for (const Direction d : kAllDirections) EXPECT_EQ(parse_direction(to_string(d)), d);
  EXPECT_EQ(parse_direction("intent"), Direction::kIntent);
  EXPECT_EQ(parse_direction("literal"), Direction::kLiteral);
}

TEST(WeightsParse, UnknownValuesThrowListingValidOnes) {
  // A strategy comes from the user (--strategy, --strategies): a usage error.
  for (const std::string bad : {"4", "0", "", "None", "strategy1"}) {
    try {
      parse_strategy(bad);
      ADD_FAILURE() << "no throw for '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage);
      const std::string all = std::string(e.what()) + " " + e.hint();
      EXPECT_NE(all.find("'" + bad + "'"), std::string::npos) << all;
      for (const char* valid : {"1", "2", "3", "none"}) EXPECT_NE(all.find(valid), std::string::npos) << all;
    }
  }
  try {
    parse_direction("backwards");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kState);
    const std::string all = std::string(e.what()) + " " + e.hint();
    EXPECT_NE(all.find("intent"), std::string::npos);
    EXPECT_NE(all.find("literal"), std::string::npos);
  }
}

}  // namespace
}  // namespace apricot
