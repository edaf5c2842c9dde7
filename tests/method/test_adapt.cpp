// The adaptation loop's rules, in process, on synthetic data: a rejected adjustment is rolled back
// bit for bit, retrained weights that improve become the best, patience / max_batches / the time
// budget stop where they should, selection on test warns, non-finite updates are rejected, and the
// early-rejecting count changes no decision. Also the exact early-rejecting count itself.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "apricot/method/adapt.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/io/workdir.hpp"
#include "apricot/models/state.hpp"
#include "cli_util.hpp"

using namespace apricot;
using apricot::test::fresh_dir;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {


// A small synthetic problem: 600 training images (150 of them validation), 4 classes, 16x16, the
// `small` model trained briefly, so that both adjustments and retraining have room to act.
Config adapt_config() {
  Config c;
  c.seed = 3;
  c.device = "cpu";
  c.data.format = "synthetic";
  c.data.synthetic_train = 600;
  c.data.synthetic_test = 200;
  c.data.val_size = 150;
  c.model.arch = "small";
  c.train.epochs = 1;
  c.train.batch_size = 32;
  c.train.optimizer = "adam";
  c.train.lr = 0.002;
  c.train.momentum = 0;
  c.rdlm.count = 3;
  c.rdlm.size = 200;
  c.rdlm.stride = 150;
  c.rdlm.epochs = 2;
  c.adapt.strategies = {"1"};
  c.adapt.batch_size = 20;
  c.adapt.retrain_every = 0;
  c.adapt.max_batches = 8;
  c.adapt.step = 0.05;
  c.adapt.retrain.steps = 10;
  c.adapt.retrain.batch_size = 32;
  c.adapt.retrain.optimizer = "adam";
  c.adapt.retrain.lr = 0.002;
  c.adapt.retrain.momentum = 0;
  c.resume.every_batches = 0;
  return c;
}

const Dataset& data() {
  static Dataset d = load_dataset(adapt_config().data, adapt_config().seed);
  return d;
}

// The base model and rDLMs, trained once per process; each test adapts in a copy.
const fs::path& trained() {
  static fs::path dir = [] {
    auto d = fresh_dir("adapt-trained");
    const Config cfg = adapt_config();
    train_base(cfg, d.string(), torch::kCPU, false, &data());
    RdlmTrainRequest req;
    req.progress = false;
    train_rdlms(cfg, data(), d.string(), torch::kCPU, req);
    return d;
  }();
  return dir;
}

struct ArmRun {
  fs::path dir;
  json result;
  std::vector<json> trace;
};

ArmRun adapt(const std::string& name, const Config& cfg, Strategy s) {
  ArmRun r;
  r.dir = fresh_dir("adapt-" + name);
  fs::copy(trained() / "base", r.dir / "base", fs::copy_options::recursive);
  fs::copy(trained() / "rdlms", r.dir / "rdlms", fs::copy_options::recursive);
  AdaptRequest req;
  req.strategy = s;
  req.progress = false;
  r.result = run_adapt(cfg, data(), r.dir.string(), torch::kCPU, req);
  std::ifstream in(WorkDir(r.dir.string()).adapt_trace(to_string(s)));
  for (std::string line; std::getline(in, line);) r.trace.push_back(json::parse(line));
  return r;
}

std::vector<torch::Tensor> weights_of(const std::string& pt) {
  auto m = load_checkpoint(pt);
  return snapshot_state(*m.model);
}

bool bitwise_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!a[i].sizes().equals(b[i].sizes()) || !torch::equal(a[i], b[i])) return false;
  return true;
}

int64_t count_if(const std::vector<json>& trace, const std::function<bool(const json&)>& f) {
  int64_t n = 0;
  for (const auto& l : trace) n += f(l) ? 1 : 0;
  return n;
}

}  // namespace

TEST(CountCorrect, MatchesAccuracyAndStopsOnlyWhenTheCandidateCannotWin) {
  torch::manual_seed(1);
  Net model = make_model(model_spec(adapt_config().model, data()));
  const Split& val = data().val;
  const int64_t n = val.size();
  const auto all = torch::arange(n, torch::kInt64);
  CorrectCount full = count_correct(*model, val, {all}, -1, data().norm, torch::kCPU, 64);
  ASSERT_TRUE(full.complete);
  EXPECT_EQ(full.evaluated, n);
  EXPECT_DOUBLE_EQ(static_cast<double>(full.correct) / n, accuracy(*model, val, data().norm, torch::kCPU, 64));
  EXPECT_EQ(full.right.sum().item<int64_t>(), full.correct);
  // The margin (true-class logit minus the best other) is positive exactly where the answer is right
  // (barring exact ties, which random weights do not produce).
  EXPECT_TRUE(torch::equal(full.margin.gt(0), full.right));
  // reference_order: the wrong rows, then the right ones by rising margin, each row once.
  auto order = reference_order(full.right, full.margin);
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0].size(0) + order[1].size(0), n);
  auto m = full.margin.index_select(0, order[1]);
  EXPECT_TRUE(torch::equal(m, std::get<0>(m.sort())));
  ASSERT_GT(full.correct, 0);
  ASSERT_LT(full.correct, n);
  // The model against itself, its wrong answers first: it cannot beat its own count, which is
  // clear as soon as the wrong ones are counted (one chunk when they fit in it).
  const auto wrong = full.right.logical_not().nonzero().flatten(), right = full.right.nonzero().flatten();
  CorrectCount self = count_correct(*model, val, {wrong, right}, full.correct, data().norm, torch::kCPU, n);
  EXPECT_FALSE(self.complete);
  EXPECT_EQ(self.evaluated, wrong.size(0));
  EXPECT_FALSE(self.beats(full.correct));
  // Against a lower bar it must count everything and win, with the same answers as in order.
  CorrectCount wins = count_correct(*model, val, {wrong, right}, full.correct - 1, data().norm, torch::kCPU, 16);
  EXPECT_TRUE(wins.complete);
  EXPECT_TRUE(wins.beats(full.correct - 1));
  EXPECT_TRUE(torch::equal(wins.right, full.right));
}

TEST(AdaptLoop, RejectedAdjustmentsAreRolledBackBitForBit) {
  Config cfg = adapt_config();
  cfg.adapt.step = 3.0;  // a wild overshoot: every adjusted model is worse than the base
  ArmRun r = adapt("rollback", cfg, Strategy::k1);
  ASSERT_GT(r.result["adjusted_inputs"].get<int64_t>(), 0) << "the premise: adjustments happened";
  ASSERT_GT(count_if(r.trace, [](const json& l) { return l["adjusted"].get<int64_t>() > 0; }), 0);
  EXPECT_EQ(r.result["accepted"], 0);
  const WorkDir wd(r.dir.string());
  EXPECT_TRUE(bitwise_equal(weights_of(wd.adapt_model(to_string(Strategy::k1))), weights_of(wd.base_model())))
      << "with nothing accepted the output must be the base model, bit for bit";
  EXPECT_EQ(r.result["final"]["val_acc"], r.result["base"]["val_acc"]);
}

TEST(AdaptLoop, RetrainedWeightsThatImproveBecomeTheBest) {
  Config cfg = adapt_config();
  cfg.adapt.retrain_every = 1;
  cfg.adapt.max_batches = 4;
  ArmRun r = adapt("retrain", cfg, Strategy::kNone);
  EXPECT_EQ(r.result["retrains"], 4);
  ASSERT_GT(r.result["accepted_retrains"].get<int64_t>(), 0) << "retraining an under-trained base must help";
  EXPECT_EQ(r.result["accepted_adjustments"], 0);  // the control arm never adjusts
  const double best = r.trace.back()["best_acc"].get<double>();
  EXPECT_GT(best, r.result["base"]["val_acc"].get<double>());
  EXPECT_DOUBLE_EQ(r.result["final"]["val_acc"].get<double>(), best) << "the output is the best candidate";
  const WorkDir wd(r.dir.string());
  EXPECT_FALSE(bitwise_equal(weights_of(wd.adapt_model(to_string(Strategy::kNone))), weights_of(wd.base_model())));
  // Every line's best is the running maximum of the accepted candidates.
  double running = r.result["base"]["val_acc"].get<double>();
  for (const auto& l : r.trace) {
    if (l["accepted"].get<bool>()) running = l["acc_retrained"].get<double>();
    EXPECT_DOUBLE_EQ(l["best_acc"].get<double>(), running) << l.dump();
  }
}

TEST(AdaptLoop, PatienceStopsAfterThatManyBatchesWithoutImprovement) {
  Config cfg = adapt_config();
  cfg.adapt.max_batches = 0;
  cfg.adapt.patience = 3;  // the control arm without retraining never improves
  ArmRun r = adapt("patience", cfg, Strategy::kNone);
  EXPECT_EQ(r.result["stopped_by"], "patience");
  EXPECT_EQ(r.result["batches"], 3);
  EXPECT_EQ(r.trace.size(), 3u);
}

TEST(AdaptLoop, MaxBatchesAndTimeBudgetStopWhereTheyShould) {
  Config cfg = adapt_config();
  cfg.adapt.max_batches = 5;
  ArmRun a = adapt("max-batches", cfg, Strategy::kNone);
  EXPECT_EQ(a.result["stopped_by"], "max_batches");
  EXPECT_EQ(a.result["batches"], 5);
  cfg.adapt.max_batches = 0;
  cfg.adapt.time_budget = 1e-9;  // spent by the first batch
  ArmRun b = adapt("budget", cfg, Strategy::kNone);
  EXPECT_EQ(b.result["stopped_by"], "time_budget");
  EXPECT_EQ(b.result["batches"], 1);
  cfg.adapt.time_budget = 0;
  cfg.adapt.passes = 1;  // one whole pass: 450 training images in batches of 20
  ArmRun c = adapt("passes", cfg, Strategy::kNone);
  EXPECT_EQ(c.result["stopped_by"], "passes");
  EXPECT_EQ(c.result["batches"], (data().train.size() + 19) / 20);
}

TEST(AdaptLoop, SelectionOnTestWarnsAndSelectsOnTest) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  Config cfg = adapt_config();
  cfg.adapt.selection = "test";
  cfg.adapt.retrain_every = 2;
  ArmRun r = adapt("select-test", cfg, Strategy::kNone);
  spdlog::default_logger()->sinks().pop_back();
  EXPECT_NE(log.str().find("leaks the test set"), std::string::npos) << log.str();
  EXPECT_EQ(r.result["selection"], "test");
  // best_acc is a test accuracy: it starts from the base's test accuracy, and the output's test
  // accuracy is the best one.
  EXPECT_DOUBLE_EQ(r.result["final"]["test_acc"].get<double>(), r.trace.back()["best_acc"].get<double>());
  EXPECT_GE(r.result["final"]["test_acc"].get<double>(), r.result["base"]["test_acc"].get<double>());
}

TEST(AdaptLoop, NonFiniteUpdatesAreRejected) {
  Config cfg = adapt_config();
  cfg.adapt.step = 1e300;  // overflows float32 weights
  ArmRun r = adapt("nonfinite", cfg, Strategy::k2);
  EXPECT_GT(r.result["rejected_nonfinite"].get<int64_t>(), 0);
  EXPECT_EQ(r.result["accepted"], 0);
  const WorkDir wd(r.dir.string());
  auto w = weights_of(wd.adapt_model(to_string(Strategy::k2)));
  for (const auto& t : w) EXPECT_TRUE(torch::isfinite(t).all().item<bool>());
  EXPECT_TRUE(bitwise_equal(w, weights_of(wd.base_model())));
}

TEST(AdaptLoop, EarlyRejectionChangesNoDecision) {
  Config cfg = adapt_config();
  cfg.adapt.retrain_every = 3;
  cfg.adapt.max_batches = 12;
  ArmRun fast = adapt("early-on", cfg, Strategy::k1);
  cfg.adapt.early_reject = false;
  ArmRun full = adapt("early-off", cfg, Strategy::k1);
  ASSERT_GT(count_if(fast.trace, [](const json& l) { return l["acc_adjusted"].is_null(); }), 0)
      << "the premise: some candidates were rejected before being fully counted";
  EXPECT_EQ(count_if(full.trace, [](const json& l) { return l["acc_adjusted"].is_null(); }), 0);
  ASSERT_EQ(fast.trace.size(), full.trace.size());
  for (size_t i = 0; i < fast.trace.size(); ++i) {
    EXPECT_EQ(fast.trace[i]["accepted"], full.trace[i]["accepted"]) << i;
    EXPECT_EQ(fast.trace[i]["best_acc"], full.trace[i]["best_acc"]) << i;
    if (!fast.trace[i]["acc_adjusted"].is_null()) {
      EXPECT_EQ(fast.trace[i]["acc_adjusted"], full.trace[i]["acc_adjusted"]) << i;
    }
  }
  EXPECT_EQ(fast.result["final"], full.result["final"]);
  EXPECT_TRUE(bitwise_equal(weights_of(WorkDir(fast.dir.string()).adapt_model(to_string(Strategy::k1))),
                            weights_of(WorkDir(full.dir.string()).adapt_model(to_string(Strategy::k1)))));
}

// result.json's repairs and breaks come from the loop's own record of the best model's selection
// answers (no second pass over the validation split): they must equal a fresh evaluation of the
// saved final model against the saved base, for an adjusting arm with retraining and for the arms
// whose first candidate is a soup or the budget-matched base.
TEST(AdaptLoop, FinalChangesMatchAFreshEvaluation) {
  Config cfg = adapt_config();
  cfg.adapt.retrain_every = 3;
  for (Strategy s : {Strategy::k1, Strategy::kSoup, Strategy::kNoneMatched}) {
    ArmRun r = adapt("changes-" + to_string(s), cfg, s);
    const WorkDir wd(r.dir.string());
    auto final_model = load_checkpoint(wd.adapt_model(to_string(s))), base = load_checkpoint(wd.base_model());
    for (const auto& [name, split] : {std::pair<std::string, const Split*>{"val", &data().val}, {"test", &data().test}}) {
      auto after = predict(*final_model.model, split->x, data().norm, torch::kCPU, 1000);
      auto before = predict(*base.model, split->x, data().norm, torch::kCPU, 1000);
      const json want = compare_predictions(split->y, before, after, data().classes).to_json();
      EXPECT_EQ(r.result["changes"][name], want) << to_string(s) << " " << name;
    }
  }
}
