// The variants beyond the paper (docs/METHOD.md, "Variants beyond the paper"), each against a naive form: the
// per-batch step, BatchNorm recalibration, rDLMs fine-tuned from the base, the soup arms and the
// budget-matched control; and the report's columns for them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "apricot/method/adapt.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/report/report.hpp"
#include "apricot/train/train.hpp"
#include "apricot/method/adjustment.hpp"
#include "apricot/io/workdir.hpp"
#include "apricot/models/state.hpp"
#include "apricot/pipeline/validate.hpp"
#include "cli_util.hpp"

using namespace apricot;
using apricot::test::fresh_dir;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

torch::Tensor random_mask(int64_t f, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  auto m = torch::zeros({f, n}, torch::kBool);
  for (int64_t i = 0; i < f; ++i)
    for (int64_t j = 0; j < n; ++j) m[i][j] = (rng() % 3) != 0;
  return m;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(PerBatchStep, ComposedUpdateMatchesTheNaiveFormForEveryStrategyAndDirection) {
  torch::manual_seed(5);
  const auto w = torch::randn({13}, torch::kDouble);
  const auto R = torch::randn({6, 13}, torch::kDouble);
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto mask = random_mask(9, 6, seed);
    for (Strategy s : {Strategy::k1, Strategy::k2, Strategy::k3})
      for (Direction d : {Direction::kIntent, Direction::kLiteral})
        for (double r : {0.05, 0.5, 1.0}) {
          auto upd = compose_updates(mask, s, d, r, StepMode::kPerBatch);
          auto fast = apply_update(w, R, upd);
          auto naive = naive_adjust(w, R, mask, s, d, r, StepMode::kPerBatch);
          EXPECT_LT(max_diff(fast, naive), 1e-12) << to_string(s) << " " << to_string(d) << " r=" << r;
          EXPECT_EQ(upd.adjusted, compose_updates(mask, s, d, r).adjusted) << "the same inputs take part";
          EXPECT_GT(max_diff(fast, w), 1e-6) << "the step must move w";
        }
  }
}

TEST(PerBatchStep, StrategyTwoMovesTheFractionRTowardTheWeightedMean) {
  // Two failing inputs over three rDLMs: input 0 has rDLMs {0, 1} right, input 1 has {2} right.
  const auto w = torch::tensor({1.0, -2.0}, torch::kDouble);
  const auto R = torch::tensor({{3.0, 0.0}, {5.0, 2.0}, {-1.0, 4.0}}, torch::kDouble);
  const auto mask = torch::tensor({{true, true, false}, {false, false, true}});
  // t = (p_c0 * cbar0 + p_c1 * cbar1) / (p_c0 + p_c1) with p_c = 2/3, 1/3; cbar0 = (4, 1), cbar1 = (-1, 4).
  const auto t = (2.0 / 3 * torch::tensor({4.0, 1.0}, torch::kDouble) + 1.0 / 3 * torch::tensor({-1.0, 4.0}, torch::kDouble)) / 1.0;
  for (double r : {0.2, 1.0}) {
    auto got = apply_update(w, R, compose_updates(mask, Strategy::k2, Direction::kIntent, r, StepMode::kPerBatch));
    EXPECT_LT(max_diff(got, (1 - r) * w + r * t), 1e-12) << "r=" << r;
  }
  // The per-input mode with the same r moves far less: it is not the same step.
  auto per_input = apply_update(w, R, compose_updates(mask, Strategy::k2, Direction::kIntent, 0.2));
  EXPECT_GT(max_diff(per_input, 0.8 * w + 0.2 * t), 1e-3);
}

TEST(PerBatchStep, NoInputThatWouldMoveWLeavesItUnchanged) {
  const auto w = torch::tensor({1.0, 2.0}, torch::kDouble);
  const auto R = torch::tensor({{3.0, 0.0}, {5.0, 2.0}}, torch::kDouble);
  const auto none_right = torch::zeros({3, 2}, torch::kBool);
  auto upd = compose_updates(none_right, Strategy::k2, Direction::kIntent, 0.5, StepMode::kPerBatch);
  EXPECT_EQ(upd.adjusted, 0);
  EXPECT_TRUE(torch::equal(apply_update(w, R, upd), w));
  const auto all_right = torch::ones({2, 2}, torch::kBool);  // strategy 3 has nothing to move away from
  upd = compose_updates(all_right, Strategy::k3, Direction::kIntent, 0.5, StepMode::kPerBatch);
  EXPECT_EQ(upd.adjusted, 0);
  EXPECT_TRUE(torch::equal(apply_update(w, R, upd), w));
}

// ---- on models and data ----

Config variant_config() {
  Config c;
  c.seed = 7;
  c.device = "cpu";
  c.threads = 1;
  c.data.format = "synthetic";
  c.data.synthetic_train = 700;
  c.data.synthetic_test = 200;
  c.data.val_size = 200;
  c.model.arch = "small";  // no BatchNorm: soups are plain parameter means (BatchNorm is tested on cnn2)
  c.train.epochs = 2;
  c.train.batch_size = 32;
  c.train.optimizer = "adam";
  c.train.lr = 0.002;
  c.train.momentum = 0;
  c.rdlm.count = 3;
  c.rdlm.size = 250;
  c.rdlm.stride = 120;
  c.rdlm.init = "base";
  c.rdlm.finetune.epochs = 1;
  c.rdlm.finetune.lr = 0.001;
  c.adapt.batch_size = 25;
  c.adapt.max_batches = 2;
  c.adapt.retrain_every = 0;
  c.adapt.bn_recalibrate = 0;
  c.resume.every_batches = 0;
  return c;
}

const Dataset& variant_data() {
  static Dataset d = load_dataset(variant_config().data, variant_config().seed);
  return d;
}

// A base and three rDLMs fine-tuned from it, made once per process.
const fs::path& finetuned() {
  static fs::path dir = [] {
    auto d = fresh_dir("variants-trained");
    const Config cfg = variant_config();
    train_base(cfg, d.string(), torch::kCPU, false, &variant_data());
    RdlmTrainRequest req;
    req.progress = false;
    train_rdlms(cfg, variant_data(), d.string(), torch::kCPU, req);
    return d;
  }();
  return dir;
}

fs::path copy_of_trained(const std::string& name) {
  auto d = fresh_dir("variants-" + name);
  fs::copy(finetuned() / "base", d / "base", fs::copy_options::recursive);
  fs::copy(finetuned() / "rdlms", d / "rdlms", fs::copy_options::recursive);
  return d;
}

// Every named tensor (parameters and floating buffers), for naive averaging.
std::map<std::string, torch::Tensor> named_state(NetImpl& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers())
    if (b.value().is_floating_point()) out[b.key()] = b.value().detach().clone();
  return out;
}

// The naive soup: a model whose every parameter and floating buffer is the plain mean of the
// rDLMs' tensors of the same name.
Net naive_soup(const fs::path& dir, const std::vector<int64_t>& members) {
  auto base = load_checkpoint(WorkDir(dir.string()).base_model());
  std::map<std::string, torch::Tensor> sum;
  for (int64_t k : members) {
    auto m = load_checkpoint(WorkDir(dir.string()).rdlm_model(k));
    for (auto& [name, t] : named_state(*m.model)) sum[name] = sum.count(name) ? sum[name] + t : t;
  }
  torch::NoGradGuard no_grad;
  for (auto& p : base.model->named_parameters()) p.value().copy_(sum.at(p.key()) / double(members.size()));
  for (auto& b : base.model->named_buffers())
    if (b.value().is_floating_point()) b.value().copy_(sum.at(b.key()) / double(members.size()));
  return base.model;
}

double val_accuracy(NetImpl& m) {
  const auto& d = variant_data();
  return accuracy(m, d.val, d.norm, torch::kCPU, 1000);
}

// The naive greedy soup on `on`: the rDLMs ranked by accuracy there, each next one kept if the soup
// with it does not lose accuracy there. Returns the members and the soup's accuracy.
std::pair<std::vector<int64_t>, double> naive_greedy_soup(const fs::path& dir, const Split& on) {
  auto acc_on = [&](NetImpl& m) { return accuracy(m, on, variant_data().norm, torch::kCPU, 1000); };
  std::vector<std::pair<double, int64_t>> ranked;
  for (int64_t k = 0; k < 3; ++k) ranked.push_back({-acc_on(*naive_soup(dir, {k})), k});
  std::stable_sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<int64_t> members = {ranked[0].second};
  double cur = -ranked[0].first;
  for (size_t i = 1; i < ranked.size(); ++i) {
    auto trial = members;
    trial.push_back(ranked[i].second);
    const double a = acc_on(*naive_soup(dir, trial));
    if (a >= cur) members = trial, cur = a;
  }
  return {members, cur};
}

TEST(FineTunedRdlms, StartFromTheBaseAndBelongToIt) {
  auto d = fresh_dir("variants-ft");
  Config cfg = variant_config();
  train_base(cfg, d.string(), torch::kCPU, false, &variant_data());
  cfg.rdlm.finetune.lr = 1e-12;  // a step this small leaves each rDLM at the base's weights
  RdlmTrainRequest req;
  req.progress = false;
  req.only = {0};
  train_rdlms(cfg, variant_data(), d.string(), torch::kCPU, req);
  const WorkDir wd(d.string());
  auto base = load_checkpoint(wd.base_model());
  auto rdlm = load_checkpoint(wd.rdlm_model(0));
  auto bp = base.model->parameters(), rp = rdlm.model->parameters();
  ASSERT_EQ(bp.size(), rp.size());
  for (size_t i = 0; i < bp.size(); ++i) EXPECT_LT(max_diff(bp[i], rp[i]), 1e-6) << "parameter " << i;
  EXPECT_EQ(rdlm.meta["subset"]["base_crc32"], base.meta["weights"]["crc32"]);
  // A new base makes the old rDLMs stale: they are refused, not reused.
  cfg.seed += 1;
  train_base(cfg, d.string(), torch::kCPU, true, &variant_data());
  try {
    train_rdlms(cfg, variant_data(), d.string(), torch::kCPU, req);
    FAIL() << "rDLMs fine-tuned from another base were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fine-tuned from another base"), std::string::npos) << e.what();
  }
  // Adaptation refuses them too, rather than averaging rDLMs of another base into this one.
  cfg.rdlm.count = 1;
  AdaptRequest areq;
  areq.strategy = Strategy::kSoup;
  areq.progress = false;
  try {
    run_adapt(cfg, variant_data(), d.string(), torch::kCPU, areq);
    FAIL() << "adaptation used rDLMs fine-tuned from another base";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kState);
    EXPECT_NE(std::string(e.what()).find("fine-tuned from another base"), std::string::npos) << e.what();
  }
}

TEST(FineTunedRdlms, DiverseFineTunesVaryTheLearningRateAndAugmentationPerRdlm) {
  // The plain set: every rDLM at rdlm.finetune.lr, no augmentation. Here train.augment flips images,
  // and the diverse set cycles the factors [1, 3] and the augmentations [train, train, none].
  const WorkDir plain(finetuned().string());
  auto d = fresh_dir("variants-diverse");
  fs::copy(finetuned() / "base", d / "base", fs::copy_options::recursive);
  Config cfg = variant_config();
  cfg.train.augment.flip = true;
  cfg.rdlm.finetune.lr_factors = {1.0, 3.0};
  cfg.rdlm.finetune.augment = {"train", "train", "none"};
  RdlmTrainRequest req;
  req.progress = false;
  train_rdlms(cfg, variant_data(), d.string(), torch::kCPU, req);
  const WorkDir wd(d.string());
  auto lr_of = [](const WorkDir& w, int64_t k) {  // the first epoch's line of metrics.jsonl
    const std::string lines = apricot::test::slurp(w.rdlm_metrics(k));
    return json::parse(lines.substr(0, lines.find('\n')))["lr"].get<double>();
  };
  EXPECT_DOUBLE_EQ(lr_of(wd, 0), 0.001);
  EXPECT_DOUBLE_EQ(lr_of(wd, 1), 0.003) << "rDLM 1: lr x lr_factors[1]";
  EXPECT_DOUBLE_EQ(lr_of(wd, 2), 0.001) << "rDLM 2: lr x lr_factors[0] (the list cycles)";
  // rDLM 2 (factor 1, no augmentation) is the plain recipe, bit for bit; rDLM 0 flips, rDLM 1 has 3x lr.
  auto same = [&](int64_t k) {
    auto a = load_checkpoint(wd.rdlm_model(k)), b = load_checkpoint(plain.rdlm_model(k));
    auto pa = a.model->parameters(), pb = b.model->parameters();
    for (size_t i = 0; i < pa.size(); ++i)
      if (!torch::equal(pa[i], pb[i])) return false;
    return true;
  };
  EXPECT_FALSE(same(0));
  EXPECT_FALSE(same(1));
  EXPECT_TRUE(same(2));
  EXPECT_EQ(load_checkpoint(wd.rdlm_model(1)).meta["config"]["rdlm"]["finetune"]["lr_factors"], json({1.0, 3.0}));
  // They vary a fine-tuning only: with rDLMs trained from scratch they are a configuration error.
  EXPECT_THROW(load_config("", {"rdlm.init=\"scratch\"", "rdlm.finetune.lr_factors=[1, 2]"}), Error);
  EXPECT_THROW(load_config("", {"rdlm.init=\"base\"", "rdlm.finetune.augment=[\"mirror\"]"}), Error);
  EXPECT_EQ(load_config("", {"rdlm.init=\"base\"", "rdlm.finetune.augment=[\"none\", \"shift+flip\"]"}).rdlm.finetune.augment,
            (std::vector<std::string>{"none", "shift+flip"}));
  EXPECT_THROW(load_config("", {"rdlm.init=\"base\"", "rdlm.finetune.lr_factors=[]"}), Error);
}

TEST(BatchNormRecalibration, RecomputesRunningStatisticsAsThePlainAverageAndNothingElse) {
  const auto& data = variant_data();
  torch::manual_seed(1);
  Config bn = variant_config();
  bn.model.arch = "cnn2";  // has BatchNorm
  Net m = make_model(model_spec(bn.model, data));
  m->eval();
  {
    torch::NoGradGuard g;
    for (auto& b : m->named_buffers())
      if (b.value().is_floating_point()) b.value().uniform_(0.5, 2.0);  // stale statistics
  }
  const auto before = named_state(*m);
  std::vector<torch::Tensor> counters;
  for (auto& b : m->named_buffers())
    if (!b.value().is_floating_point()) counters.push_back(b.value().clone());
  const auto x = data.train.x.slice(0, 0, 200);
  ASSERT_GT(recalibrate_batchnorm(*m, x, data.norm, torch::kCPU, 200), 0);
  EXPECT_FALSE(m->is_training()) << "the model's mode is restored";
  auto after = named_state(*m);
  int changed = 0;
  for (const auto& p : m->named_parameters())
    EXPECT_TRUE(torch::equal(before.at(p.key()), after.at(p.key()))) << p.key() << " is a parameter";
  for (auto& [name, t] : after)
    if (name.find("running") != std::string::npos) changed += torch::equal(t, before.at(name)) ? 0 : 1;
  EXPECT_GT(changed, 0);
  size_t i = 0;
  for (auto& b : m->named_buffers()) {
    if (!b.value().is_floating_point()) {
      EXPECT_TRUE(torch::equal(b.value(), counters.at(i++))) << b.key();
    }
  }
  // The plain average: two chunks of 100 give the mean of each half's recalibrated running mean.
  auto stats_of = [&](const torch::Tensor& images, int64_t chunk) {
    recalibrate_batchnorm(*m, images, data.norm, torch::kCPU, chunk);
    return named_state(*m);
  };
  auto first = stats_of(x.slice(0, 0, 100), 100), second = stats_of(x.slice(0, 100, 200), 100);
  auto both = stats_of(x, 100);
  for (auto& [name, t] : both) {
    if (name.find("running_mean") != std::string::npos) {
      EXPECT_LT(max_diff(t, (first.at(name) + second.at(name)) / 2), 1e-5) << name;
    }
  }
  // `eval --bn-recalibrate N` evaluates a checkpoint with its statistics recomputed the same way.
  auto d = fresh_dir("variants-eval-recal");
  bn.train.epochs = 1;
  train_base(bn, d.string(), torch::kCPU, false, &data);
  std::ofstream(d / "config.json") << to_json(bn).dump();
  const std::string eval = "eval -c " + (d / "config.json").string() + " -w " + d.string() + " --split val --json";
  auto plain = apricot::test::run_apricot(eval);
  auto recal = apricot::test::run_apricot(eval + " --bn-recalibrate 300");
  ASSERT_EQ(recal.code, 0) << recal.err;
  EXPECT_NE(recal.err.find("recalibrated 5 BatchNorm layers on 300 training images"), std::string::npos) << recal.err;
  EXPECT_EQ(plain.err.find("recalibrated"), std::string::npos);
  EXPECT_EQ(json::parse(recal.out)["n"], json::parse(plain.out)["n"]);
  // No BatchNorm: nothing to do, nothing touched.
  Config small = variant_config();
  small.model.arch = "small";
  Net s = make_model(model_spec(small.model, data));
  auto s_before = snapshot_state(*s);
  EXPECT_EQ(recalibrate_batchnorm(*s, x, data.norm, torch::kCPU, 100), 0);
  auto s_after = snapshot_state(*s);
  for (size_t k = 0; k < s_before.size(); ++k) EXPECT_TRUE(torch::equal(s_before[k], s_after[k]));
}

json adapt_arm(const fs::path& dir, const Config& cfg, Strategy s) {
  AdaptRequest req;
  req.strategy = s;
  req.progress = false;
  return run_adapt(cfg, variant_data(), dir.string(), torch::kCPU, req);
}

TEST(Soups, UniformAndGreedySoupsMatchNaiveAverages) {
  auto d = copy_of_trained("soups");
  const Config cfg = variant_config();
  const json soup = adapt_arm(d, cfg, Strategy::kSoup);
  ASSERT_EQ(soup["start"]["members"], json({0, 1, 2}));
  Net naive = naive_soup(d, {0, 1, 2});
  // Within one image: the naive mean is summed in another order, which may flip a near-tie.
  EXPECT_NEAR(soup["start"]["selection_acc"].get<double>(), val_accuracy(*naive), 0.0051);
  EXPECT_EQ(soup["images"]["rdlms"].get<int64_t>(), rdlm_images(cfg));
  EXPECT_EQ(rdlm_images(cfg), 3 * 250 * 1);
  // The naive greedy soup: rank the rDLMs by selection accuracy, keep each next one that does not
  // lower the soup's accuracy.
  const auto [members, cur] = naive_greedy_soup(d, variant_data().val);
  const json greedy = adapt_arm(d, cfg, Strategy::kGreedySoup);
  EXPECT_EQ(greedy["start"]["members"], json(members));
  EXPECT_NEAR(greedy["start"]["selection_acc"].get<double>(), cur, 0.0051);
  // The arm keeps the soup only if it beats the base on the selection split.
  EXPECT_EQ(greedy["start"]["accepted"].get<bool>(),
            greedy["start"]["selection_acc"].get<double>() > greedy["base"]["val_acc"].get<double>());
  // greedy-soup-split: the members are chosen on a random half of the selection split (the naive
  // greedy soup there) and the soup is judged on the other half only, against the base there.
  const json split = adapt_arm(d, cfg, Strategy::kGreedySoupSplit);
  const auto rows = [](const json& j) { return torch::tensor(j.get<std::vector<int64_t>>(), torch::kInt64); };
  const torch::Tensor choose = rows(split["start"]["choose_rows"]), judge = rows(split["start"]["judge_rows"]);
  const int64_t nval = variant_data().val.size();
  ASSERT_EQ(choose.size(0) + judge.size(0), nval);
  EXPECT_EQ(std::get<0>(torch::cat({choose, judge}).sort()).equal(torch::arange(nval, torch::kInt64)), true)
      << "the halves are disjoint and cover the split";
  EXPECT_FALSE(choose.equal(torch::arange(nval / 2, torch::kInt64))) << "a random half, not the first rows";
  const Split first{variant_data().val.x.index_select(0, choose), variant_data().val.y.index_select(0, choose)};
  const Split second{variant_data().val.x.index_select(0, judge), variant_data().val.y.index_select(0, judge)};
  auto acc_on = [](NetImpl& m, const Split& s) { return accuracy(m, s, variant_data().norm, torch::kCPU, 1000); };
  const auto members_a = naive_greedy_soup(d, first).first;
  EXPECT_EQ(split["start"]["members"], json(members_a));
  auto base = load_checkpoint(WorkDir(d.string()).base_model());
  const int64_t base2 = std::llround(acc_on(*base.model, second) * static_cast<double>(second.size()));
  EXPECT_EQ(split["start"]["judge_base_right"].get<int64_t>(), base2);
  const int64_t soup2 = std::llround(acc_on(*naive_soup(d, members_a), second) * static_cast<double>(second.size()));
  EXPECT_NEAR(split["start"]["judge_right"].get<int64_t>(), soup2, 1);  // a near-tie may flip (summing order)
  EXPECT_EQ(split["start"]["accepted"].get<bool>(),
            split["start"]["judge_right"].get<int64_t>() > split["start"]["judge_base_right"].get<int64_t>());
  // Every arm keeps its answers per test image (for bootstraps over images): the final model's and,
  // for a start candidate, the candidate's as it was before the loop.
  for (const json* r : {&soup, &greedy, &split}) {
    const json& a = (*r)["test_answers"];
    ASSERT_EQ(a["label"].size(), static_cast<size_t>(variant_data().test.size()));
    int64_t right = 0, start_right = 0, base_right = 0;
    for (size_t i = 0; i < a["label"].size(); ++i) {
      right += a["after"][i] == a["label"][i];
      base_right += a["base"][i] == a["label"][i];
      start_right += (*r)["start"]["test_after"][i] == a["label"][i];
    }
    const double n = static_cast<double>(a["label"].size());
    EXPECT_DOUBLE_EQ(right / n, (*r)["final"]["test_acc"].get<double>());
    EXPECT_DOUBLE_EQ(base_right / n, (*r)["base"]["test_acc"].get<double>());
    EXPECT_DOUBLE_EQ(start_right / n, (*r)["start"]["test_acc"].get<double>());
  }
  // Recalibration is a no-op without BatchNorm: the same soup.
  Config recal = cfg;
  recal.adapt.bn_recalibrate = 300;
  const json soup_recal = adapt_arm(copy_of_trained("soups-recal"), recal, Strategy::kSoup);
  EXPECT_EQ(soup_recal["start"]["selection_acc"], soup["start"]["selection_acc"]);
  EXPECT_EQ(soup_recal["bn_recalibrate"], 300);
}

TEST(MatchedControl, SpendsTheRdlmsImagesOnTheBaseThenRunsTheControlLoop) {
  auto d = copy_of_trained("matched");
  Config cfg = variant_config();
  cfg.adapt.retrain_every = 1;
  cfg.adapt.retrain.steps = 3;
  cfg.adapt.retrain.batch_size = 16;
  const json none = adapt_arm(d, cfg, Strategy::kNone);
  const json matched = adapt_arm(d, cfg, Strategy::kNoneMatched);
  const int64_t budget = rdlm_images(cfg), bs = cfg.train.batch_size;
  const int64_t spent = matched["images"]["matching"].get<int64_t>();
  EXPECT_GT(spent, budget - bs) << "the budget, up to the last short batch of an epoch";
  EXPECT_LE(spent, budget + bs);
  EXPECT_EQ(matched["images"]["rdlms"], 0);
  EXPECT_EQ(none["images"]["matching"], 0);
  EXPECT_EQ(none["images"]["retraining"].get<int64_t>(), none["retrains"].get<int64_t>() * 3 * 16);
  EXPECT_EQ(matched["images"]["total"].get<int64_t>(),
            spent + matched["images"]["retraining"].get<int64_t>());
  EXPECT_EQ(matched["start"]["kind"], "none-matched");
  EXPECT_EQ(matched["start"]["accepted"].get<bool>(),
            matched["start"]["selection_acc"].get<double>() > matched["base"]["val_acc"].get<double>());
  EXPECT_TRUE(none["start"].is_null());
  // A control result recorded before its provenance dropped the adjustment-only keys is still reused.
  {
    const auto path = WorkDir(d.string()).adapt_result(to_string(Strategy::kNone));
    json old = json::parse(apricot::test::slurp(path));
    old["provenance"]["config"]["adapt"]["step"] = 0.001;
    old["provenance"]["config"]["adapt"]["direction"] = "intent";
    old["provenance"]["config"]["adapt"]["adjust_buffers"] = false;
    old["seconds"] = 12345.0;  // marks this very file
    std::ofstream(path) << old.dump();
    EXPECT_EQ(adapt_arm(d, cfg, Strategy::kNone)["seconds"], 12345.0);
  }
  // Retraining longer than an epoch is counted in whole epochs plus the rest.
  {
    Config longer = cfg;
    longer.adapt.retrain.steps = 40;  // 500 training rows / 16 = 32 steps an epoch: one epoch and 8 steps
    const json r = adapt_arm(copy_of_trained("matched-long"), longer, Strategy::kNone);
    EXPECT_EQ(r["images"]["retraining"].get<int64_t>(), r["retrains"].get<int64_t>() * (500 + 8 * 16));
  }
  // The report puts both controls side by side, with the images each arm cost.
  const json soup = adapt_arm(d, cfg, Strategy::kSoup);
  auto out = fresh_dir("variants-report");
  json rep = write_report({d.string()}, out.string());
  const std::string md = render_markdown(rep);
  EXPECT_NE(md.find("gain over matched control"), std::string::npos);
  EXPECT_NE(md.find("Paired comparison with the budget-matched control"), std::string::npos);
  EXPECT_NE(md.find("training images beyond the base"), std::string::npos);
  EXPECT_NE(md.find("| soup |"), std::string::npos) << md;
  EXPECT_NE(md.find("repaired (test, of the base's failures)"), std::string::npos);
  EXPECT_NE(md.find("broken (test, of the base's right answers)"), std::string::npos);
  EXPECT_TRUE(rep["groups"][0]["adaptation"]["soup"].contains("class_change_test"));
  const std::string html = apricot::test::slurp((out / "report.html").string());
  EXPECT_NE(html.find("Per-class changes"), std::string::npos);
  EXPECT_EQ(html.find("No per-class results yet"), std::string::npos);
}

// ---- what a repair fixed and broke (issue 16) ----

TEST(Changes, CountsRepairsBreaksAndPerClassAccuracyByHand) {
  const auto y = torch::tensor({0, 1, 2, 1, 2}, torch::kInt64);
  const auto before = torch::tensor({0, 0, 2, 1, 1}, torch::kInt64);  // right: 0, 2, 3
  const auto after = torch::tensor({1, 1, 2, 1, 2}, torch::kInt64);   // right: 1, 2, 3, 4
  Changes c = compare_predictions(y, before, after, 3);
  EXPECT_EQ(c.n, 5);
  EXPECT_EQ(c.right_before, 3);
  EXPECT_EQ(c.right_after, 4);
  EXPECT_EQ(c.repaired, 2);  // rows 1 and 4
  EXPECT_EQ(c.broken, 1);    // row 0
  EXPECT_DOUBLE_EQ(c.repaired_rate(), 2.0 / 2);
  EXPECT_DOUBLE_EQ(c.broken_rate(), 1.0 / 3);
  EXPECT_EQ(c.class_before, (std::vector<double>{1.0, 0.5, 0.5}));
  EXPECT_EQ(c.class_after, (std::vector<double>{0.0, 1.0, 1.0}));
  const json j = c.to_json();
  EXPECT_EQ(j["repaired"]["count"], 2);
  EXPECT_EQ(j["broken"]["count"], 1);
  EXPECT_DOUBLE_EQ(j["accuracy_after"].get<double>(), 0.8);
}

TEST(Changes, ResultJsonCountsAgainstTheBaseAndTheBreakBoundRefusesBreakingCandidates) {
  Config cfg = variant_config();
  cfg.adapt.retrain_every = 1;
  cfg.adapt.retrain.steps = 12;
  cfg.adapt.retrain.lr = 0.004;
  cfg.adapt.max_batches = 6;
  auto free_dir = copy_of_trained("breaks-free");
  const json free = adapt_arm(free_dir, cfg, Strategy::kNone);
  // result.json's counts agree with the base and final models' own predictions.
  const auto& d = variant_data();
  auto base = load_checkpoint(WorkDir(free_dir.string()).base_model());
  auto fin = load_checkpoint(WorkDir(free_dir.string()).adapt_model(to_string(Strategy::kNone)));
  Changes val = compare_predictions(d.val.y, predict(*base.model, d.val.x, d.norm, torch::kCPU, 1000),
                                    predict(*fin.model, d.val.x, d.norm, torch::kCPU, 1000), d.classes);
  EXPECT_EQ(free["changes"]["val"], val.to_json());
  // `eval --compare` prints the same for the two checkpoints.
  const fs::path cfg_file = free_dir / "config.json";
  std::ofstream(cfg_file) << to_json(cfg).dump();
  const WorkDir wd(free_dir.string());
  auto r = apricot::test::run_apricot("eval -c " + cfg_file.string() + " -w " + free_dir.string() + " -m " +
                                      wd.adapt_model(to_string(Strategy::kNone)) + " --compare " + wd.base_model() +
                                      " --split val --json --log-level warn");
  ASSERT_EQ(r.code, 0) << r.err;
  const json cmp = json::parse(r.out);
  EXPECT_EQ(cmp["repaired"], val.to_json()["repaired"]);
  EXPECT_EQ(cmp["broken"], val.to_json()["broken"]);
  EXPECT_EQ(cmp["per_class"], val.to_json()["per_class"]);
  r = apricot::test::run_apricot("eval -c " + cfg_file.string() + " -w " + free_dir.string() + " --compare " +
                                 (free_dir / "missing.pt").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;  // a missing reference is a data error naming the file
  EXPECT_NE(r.err.find("missing.pt"), std::string::npos) << r.err;
  ASSERT_GT(free["accepted"].get<int64_t>(), 0) << "the fixture must accept some candidate";
  ASSERT_GT(free["changes"]["val"]["broken"]["count"].get<int64_t>(), 0)
      << "without a bound, the accepted model breaks some validation inputs (else this test proves nothing)";
  // With no breaks allowed, every better candidate that breaks one is refused.
  cfg.adapt.max_break_rate = 0;
  const json bound = adapt_arm(copy_of_trained("breaks-bound"), cfg, Strategy::kNone);
  EXPECT_GT(bound["rejected_breaks"].get<int64_t>(), 0);
  EXPECT_EQ(bound["changes"]["val"]["broken"]["count"], 0);
  EXPECT_EQ(bound["max_break_rate"], 0.0);
}

TEST(VariantConfig, BadValuesNameTheKey) {
  auto expect_usage = [](const std::vector<std::string>& sets, const std::string& key) {
    try {
      parse_config_text("{}", "test", sets);
      FAIL() << sets.back() << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage);
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_usage({"adapt.step_mode=per-epoch"}, "adapt.step_mode");
  expect_usage({"adapt.bn_recalibrate=-1"}, "adapt.bn_recalibrate");
  expect_usage({"adapt.max_break_rate=1.5"}, "adapt.max_break_rate");
  expect_usage({"adapt.bn_recalibrate=1"}, "adapt.bn_recalibrate");
  expect_usage({"rdlm.init=finetune"}, "rdlm.init");
  expect_usage({"rdlm.finetune.epochs=0"}, "rdlm.finetune.epochs");
  expect_usage({"adapt.strategies=[\"soups\"]"}, "adapt.strategies");
  expect_usage({"adapt.step_mode=per-batch", "adapt.step=2"}, "adapt.step");  // more than the whole way
  parse_config_text("{}", "test", {"adapt.step_mode=per-batch", "adapt.step=0.5"});
  parse_config_text("{}", "test", {"adapt.step=2"});  // per-input: r is a per-input rate, not a fraction
}

TEST(VariantConfig, EveryStudyConfigIsValid) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(APRICOT_SOURCE_DIR) / "configs" / "study")) {
    if (e.path().extension() != ".json") continue;
    EXPECT_NO_THROW(load_config(e.path().string(), {})) << e.path();
    ++n;
  }
  EXPECT_GE(n, 8);
}

}  // namespace
