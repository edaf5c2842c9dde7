// One adaptation batch (adapt_step) driven by hand: rDLM weights and a correctness table made in the
// test, the expected weights derived with the engine's public functions (as test_adjustment.cpp
// derives the engine), and the acceptance rule checked against the selection counts.
#include <gtest/gtest.h>

#include "../../src/method/adapt/arm.hpp"  // adapt_step and its Arm: private to the loop
#include "apricot/pipeline/validate.hpp"

using namespace apricot;
namespace ad = apricot::adapt_detail;  // not a using-directive: the tests build as one unity source

namespace {

const torch::Device kStepDevice(torch::kCPU);

struct StepSetup {
  Config cfg;
  Dataset data;
  Net model;
  torch::Tensor w0;  // the base's weights in the arm's layout
};

StepSetup step_setup(Strategy s, double step) {
  StepSetup t;
  t.cfg.data.synthetic_train = 300, t.cfg.data.synthetic_test = 100, t.cfg.data.val_size = 60;
  t.cfg.data.synthetic_shape = {1, 8, 8};
  t.cfg.adapt.strategies = {to_string(s)};
  t.cfg.adapt.retrain_every = 0;  // this batch: the adjustment only
  t.cfg.adapt.step_mode = "per-batch";
  t.cfg.adapt.step = step;
  t.cfg.train.epochs = 3, t.cfg.train.batch_size = 32, t.cfg.train.optimizer = "adam", t.cfg.train.lr = 0.003;
  validate(t.cfg);
  t.data = load_dataset(t.cfg.data, t.cfg.seed);
  torch::manual_seed(0);
  t.model = make_model(model_spec(t.cfg.model, t.data));
  t.w0 = flatten_weights(*t.model, weight_layout(*t.model, false));
  return t;
}

// A trained copy's weights: rDLM rows that classify better than the untrained base.
torch::Tensor trained_weights(const StepSetup& t) {
  torch::manual_seed(0);
  Net copy = make_model(model_spec(t.cfg.model, t.data));
  TrainOptions o;
  o.recipe = t.cfg.train;
  o.progress = false, o.log_epochs = false;
  train_model(*copy, t.data, torch::Tensor(), o, kStepDevice, 1);
  return flatten_weights(*copy, weight_layout(*copy, false));
}

torch::Tensor failing_of(const StepSetup& t, const torch::Tensor& idx) {
  auto pred = predict(*t.model, t.data.train.x.index_select(0, idx), t.data.norm, kStepDevice, 1000);
  return idx.index_select(0, pred.ne(t.data.train.y.index_select(0, idx)).nonzero().flatten());
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && torch::equal(a.view(torch::kInt32), b.view(torch::kInt32));
}

}  // namespace

// Strategy 2, per-batch step 1: the failing inputs' correct rDLMs pull w all the way to their
// weighted mean. The rows are a trained model's weights with a little noise, so the candidate beats
// the untrained base on the selection split and the step keeps it, bit for bit as the engine gives it.
TEST(AdaptStep, Strategy2MovesToTheCorrectRdlmsAndKeepsABetterCandidate) {
  StepSetup t = step_setup(Strategy::k2, 1.0);
  const torch::Tensor good = trained_weights(t);
  auto gen = at::detail::createCPUGenerator(7);
  const int64_t n = 3;
  torch::Tensor R = good.unsqueeze(0).repeat({n, 1}) + 1e-3 * torch::randn({n, good.size(0)}, gen);
  torch::Tensor table = torch::randint(0, 2, {t.data.train.size(), n}, gen, torch::kInt64).to(torch::kInt8);
  table.select(1, 0).fill_(1);  // rDLM 0 is right everywhere: every failing input adjusts

  auto arm = ad::arm_from_parts(t.cfg, t.data, *t.model, Strategy::k2, R, table);
  AdaptState st = ad::initial_state(*arm);
  ad::Best best{snapshot_state(*t.model)};
  const torch::Tensor idx = torch::arange(0, 20, torch::kInt64);

  // What the step must do, from the engine's public functions.
  const torch::Tensor failing = failing_of(t, idx);
  ASSERT_GT(failing.size(0), 0) << "the untrained base gets every input of the batch right";
  const AffineUpdate upd = compose_updates(table.index_select(0, failing).to(torch::kBool), Strategy::k2,
                                           Direction::kIntent, 1.0, StepMode::kPerBatch);
  const torch::Tensor expected = apply_update(t.w0, R, upd);
  assign_weights(*t.model, arm->layout, expected);
  const CorrectCount candidate = count_all(*t.model, *arm->sel, t.data.norm, kStepDevice, 1000);
  assign_weights(*t.model, arm->layout, t.w0);
  ASSERT_GT(candidate.correct, arm->base_sel.correct) << "the trained rows should beat the untrained base";

  const nlohmann::json line = ad::adapt_step(*arm, *t.model, st, best, idx);
  EXPECT_EQ(line["failing"].get<int64_t>(), failing.size(0));
  EXPECT_EQ(line["adjusted"].get<int64_t>(), upd.adjusted);
  EXPECT_EQ(upd.adjusted, failing.size(0));
  EXPECT_TRUE(line["accepted"].get<bool>());
  EXPECT_EQ(st.accepted_adjustments, 1);
  EXPECT_EQ(st.best_correct, candidate.correct);
  EXPECT_TRUE(same_bits(flatten_weights(*t.model, arm->layout), expected));
}

// A candidate that does not beat the best is dropped: the weights go back to the base's bits. The
// base here is trained, the rDLM rows are noise: the candidate must lose.
TEST(AdaptStep, ACandidateThatDoesNotWinIsRestored) {
  StepSetup t = step_setup(Strategy::k1, 1.0);
  t.w0 = trained_weights(t);
  assign_weights(*t.model, weight_layout(*t.model, false), t.w0);
  auto gen = at::detail::createCPUGenerator(3);
  const int64_t n = 4;
  // Rows far from anything useful: the candidate classifies no better than chance.
  torch::Tensor R = 5.0 * torch::randn({n, t.w0.size(0)}, gen);
  torch::Tensor table = torch::randint(0, 2, {t.data.train.size(), n}, gen, torch::kInt64).to(torch::kInt8);
  table.select(1, 0).fill_(1), table.select(1, 1).fill_(0);

  auto arm = ad::arm_from_parts(t.cfg, t.data, *t.model, Strategy::k1, R, table);
  AdaptState st = ad::initial_state(*arm);
  ad::Best best{snapshot_state(*t.model)};
  const torch::Tensor idx = torch::arange(20, 40, torch::kInt64);
  const torch::Tensor failing = failing_of(t, idx);
  ASSERT_GT(failing.size(0), 0);
  const AffineUpdate upd = compose_updates(table.index_select(0, failing).to(torch::kBool), Strategy::k1,
                                           Direction::kIntent, 1.0, StepMode::kPerBatch);
  assign_weights(*t.model, arm->layout, apply_update(t.w0, R, upd));
  const CorrectCount candidate = count_all(*t.model, *arm->sel, t.data.norm, kStepDevice, 1000);
  assign_weights(*t.model, arm->layout, t.w0);

  ASSERT_LE(candidate.correct, arm->base_sel.correct) << "noise rows should not beat a trained base";

  const nlohmann::json line = ad::adapt_step(*arm, *t.model, st, best, idx);
  EXPECT_EQ(line["adjusted"].get<int64_t>(), upd.adjusted);
  EXPECT_GT(upd.adjusted, 0);
  EXPECT_FALSE(line["accepted"].get<bool>());
  EXPECT_EQ(st.accepted_adjustments, 0);
  EXPECT_EQ(st.best_correct, arm->base_sel.correct);
  EXPECT_TRUE(same_bits(flatten_weights(*t.model, arm->layout), t.w0));
}

// Strategy 2 with no rDLM right on any input, strategy 3 with none wrong: nothing to move toward /
// away from, so no input adjusts and the weights keep their bits.
TEST(AdaptStep, NoCorrectRdlmForStrategy2AndNoIncorrectForStrategy3LeaveTheWeights) {
  for (auto [s, right] : {std::pair{Strategy::k2, 0}, std::pair{Strategy::k3, 1}}) {
    StepSetup t = step_setup(s, 1.0);
    auto gen = at::detail::createCPUGenerator(5);
    torch::Tensor R = t.w0.unsqueeze(0).repeat({3, 1}) + 0.1 * torch::randn({3, t.w0.size(0)}, gen);
    torch::Tensor table = torch::full({t.data.train.size(), 3}, right, torch::kInt8);
    auto arm = ad::arm_from_parts(t.cfg, t.data, *t.model, s, R, table);
    AdaptState st = ad::initial_state(*arm);
    ad::Best best{snapshot_state(*t.model)};
    const nlohmann::json line = ad::adapt_step(*arm, *t.model, st, best, torch::arange(0, 20, torch::kInt64));
    EXPECT_GT(line["failing"].get<int64_t>(), 0) << to_string(s);
    EXPECT_EQ(line["adjusted"].get<int64_t>(), 0) << to_string(s);
    EXPECT_FALSE(line["accepted"].get<bool>()) << to_string(s);
    EXPECT_TRUE(same_bits(flatten_weights(*t.model, arm->layout), t.w0)) << to_string(s);
  }
}
