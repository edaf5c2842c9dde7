// Training on synthetic data reaches high accuracy, deterministically; checkpoints round-trip and
// reject corrupt, foreign and mismatched files; evaluation counts are consistent.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/core/files.hpp"
#include "apricot/io/resume.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/train/train.hpp"
#include "apricot/method/adjustment.hpp"

using namespace apricot;
namespace fs = std::filesystem;

namespace {

Config small_config() {
  Config c;
  c.data.format = "synthetic";
  c.data.synthetic_train = 800;
  c.data.synthetic_test = 200;
  c.data.synthetic_shape = {1, 12, 12};
  c.data.synthetic_classes = 4;
  c.data.val_size = 100;
  c.train.epochs = 4;
  c.train.batch_size = 32;
  c.train.optimizer = "adam";
  c.train.lr = 0.003;
  c.train.momentum = 0;
  return c;
}

ModelSpec spec_for(const Dataset& d, const std::string& arch = "small") {
  return ModelSpec{arch, d.channels, d.height, d.width, d.classes, "v1"};
}

fs::path temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("apricot-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

template <typename F>
ExitCode error_code(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ExitCode::kOk;
}

}  // namespace

TEST(Train, LrScheduleIsStepFunction) {
  TrainConfig t;
  t.lr = 1.0;
  t.lr_steps = {2, 4};
  t.lr_gamma = 0.1;
  EXPECT_DOUBLE_EQ(lr_at_epoch(t, 0), 1.0);
  EXPECT_DOUBLE_EQ(lr_at_epoch(t, 1), 1.0);
  EXPECT_NEAR(lr_at_epoch(t, 2), 0.1, 1e-12);
  EXPECT_NEAR(lr_at_epoch(t, 5), 0.01, 1e-12);
}

TEST(Train, CosineScheduleDecaysToLrMinEpochByEpoch) {
  TrainConfig t;
  t.lr_schedule = "cosine";
  t.lr = 0.1;
  t.lr_min = 0.001;
  t.epochs = 5;
  const double expected[] = {0.1, 0.1 - 0.099 * (1 - std::cos(M_PI / 4)) / 2, 0.0505,
                             0.001 + 0.099 * (1 + std::cos(3 * M_PI / 4)) / 2, 0.001};
  for (int e = 0; e < 5; ++e) EXPECT_NEAR(lr_at_epoch(t, e), expected[e], 1e-12) << "epoch " << e;
  EXPECT_DOUBLE_EQ(lr_at_epoch(t, 7), 0.001);  // past the planned epochs: lr_min
  // The loop uses it: each epoch's recorded learning rate (the one it sets in the optimiser) is the
  // schedule's.
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  TrainOptions opts;
  opts.recipe = c.train;
  opts.recipe.lr_schedule = "cosine";
  opts.recipe.lr = 0.003;
  opts.recipe.lr_min = 0.0001;
  opts.recipe.epochs = 3;
  opts.keep_best = false;
  opts.progress = false;
  torch::manual_seed(7);
  Net m = make_model(spec_for(d));
  auto r = train_model(*m, d, torch::arange(0, 96, torch::kInt64), opts, torch::kCPU, 7);
  ASSERT_EQ(r.history.size(), 3u);
  EXPECT_DOUBLE_EQ(r.history[0].lr, 0.003);
  EXPECT_NEAR(r.history[1].lr, 0.00155, 1e-12);
  EXPECT_DOUBLE_EQ(r.history[2].lr, 0.0001);
}

namespace {

// Trains 8 epochs with early stopping (patience 2) and ruins the weights after epoch 3's validation,
// so that no later epoch can beat the best: zero weights give a ReLU network zero gradients, and SGD
// without momentum leaves them there. Optionally interrupted (SIGINT) after `interrupt_after` epochs.
struct EarlyStopRun {
  Net model;
  TrainResult result;
};
EarlyStopRun early_stop_run(const Dataset& d, const Config& c, const std::string& state, int64_t interrupt_after) {
  TrainOptions opts;
  opts.recipe = c.train;
  opts.recipe.optimizer = "sgd";
  opts.recipe.lr = 0.05;
  opts.recipe.momentum = 0;
  opts.recipe.epochs = 8;
  opts.recipe.lr_schedule = "cosine";
  opts.recipe.patience = 2;
  opts.progress = false;
  opts.state_path = state;
  torch::manual_seed(5);
  EarlyStopRun out{make_model(spec_for(d)), {}};
  opts.on_epoch = [&](const EpochStats& st, const std::vector<EpochStats>&) {
    if (st.epoch == 3) {
      torch::NoGradGuard g;
      for (auto& p : out.model->parameters()) p.zero_();
    }
    if (st.epoch == interrupt_after) std::raise(SIGINT);
  };
  out.result = train_model(*out.model, d, torch::Tensor(), opts, torch::kCPU, 5);
  return out;
}

}  // namespace

TEST(Train, EarlyStoppingKeepsTheBestEpochAndResumesBitwise) {
  torch::set_num_threads(1);
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  auto dir = temp_dir("early-stop");
  auto full = early_stop_run(d, c, (dir / "a" / "state.pt").string(), -1);
  const TrainResult& r = full.result;
  EXPECT_TRUE(r.stopped_early);
  EXPECT_LE(r.best_epoch, 3);
  ASSERT_EQ(static_cast<int64_t>(r.history.size()), r.best_epoch + 2) << "stops `patience` epochs after the best";
  for (size_t e = r.best_epoch; e < r.history.size(); ++e) EXPECT_LE(r.history[e].val_acc, r.best_val_acc);
  EXPECT_GT(r.best_val_acc, 0.6);
  EXPECT_DOUBLE_EQ(accuracy(*full.model, d.val, d.norm, torch::kCPU, 64), r.best_val_acc) << "the best epoch is kept";

  // Interrupted after epoch 2 (mid-schedule: lr has decayed once), then resumed: the same epochs, the
  // same stop and the same weights, bit for bit.
  const std::string state = (dir / "b" / "state.pt").string();
  EXPECT_EQ(error_code([&] { early_stop_run(d, c, state, 2); }), ExitCode::kInterrupted);
  clear_interrupt_for_tests();
  auto resumed = early_stop_run(d, c, state, -1);
  EXPECT_EQ(resumed.result.resumed_epoch, 2);
  EXPECT_TRUE(resumed.result.stopped_early);
  ASSERT_EQ(resumed.result.history.size(), r.history.size());
  for (size_t e = 0; e < r.history.size(); ++e) {
    EXPECT_EQ(resumed.result.history[e].lr, r.history[e].lr) << "epoch " << e + 1;
    EXPECT_EQ(resumed.result.history[e].val_acc, r.history[e].val_acc) << "epoch " << e + 1;
    EXPECT_EQ(resumed.result.history[e].loss, r.history[e].loss) << "epoch " << e + 1;
  }
  auto p1 = full.model->parameters(), p2 = resumed.model->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i])) << "parameter " << i;
  fs::remove_all(dir);
}

TEST(Train, SyntheticReachesHighAccuracyDeterministically) {
  torch::set_num_threads(1);
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  TrainOptions opts;
  opts.recipe = c.train;
  opts.progress = false;
  auto run = [&] {
    torch::manual_seed(7);
    Net m = make_model(spec_for(d));
    auto r = train_model(*m, d, torch::Tensor(), opts, torch::kCPU, 7);
    return std::make_pair(m, r);
  };
  auto [m1, r1] = run();
  auto [m2, r2] = run();
  double test_acc = accuracy(*m1, d.test, d.norm, torch::kCPU, 256);
  EXPECT_GT(r1.best_val_acc, 0.9);
  EXPECT_GT(test_acc, 0.9);
  ASSERT_EQ(r1.history.size(), 4u);
  EXPECT_EQ(r1.history.back().steps, 4 * ((d.train.size() + 31) / 32));
  // Same seed, same weights, bit for bit.
  auto p1 = m1->parameters(), p2 = m2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i]));
  // The kept weights are the best epoch's.
  EXPECT_DOUBLE_EQ(accuracy(*m1, d.val, d.norm, torch::kCPU, 64), r1.best_val_acc);
}

TEST(Train, KeepsTheBestEpochNotTheLast) {
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  TrainOptions opts;
  opts.recipe = c.train;
  opts.progress = false;
  torch::manual_seed(7);
  Net m = make_model(spec_for(d));
  // Ruin the weights after the last epoch's validation: a correct keep-best restores a deep copy of
  // the best epoch; an aliased snapshot or no restore would keep the ruined weights.
  opts.on_epoch = [&](const EpochStats& st, const std::vector<EpochStats>&) {
    if (st.epoch == c.train.epochs) {
      torch::NoGradGuard g;
      for (auto& p : m->parameters()) p.zero_();
    }
  };
  auto r = train_model(*m, d, torch::Tensor(), opts, torch::kCPU, 7);
  EXPECT_GT(r.best_val_acc, 0.5);
  EXPECT_DOUBLE_EQ(accuracy(*m, d.val, d.norm, torch::kCPU, 64), r.best_val_acc);
  double norm = 0;
  for (auto& p : m->parameters()) norm += p.abs().sum().item<double>();
  EXPECT_GT(norm, 0.0);
}

TEST(Train, MaxStepsStopsMidEpochAndSubsetIsRespected) {
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  TrainOptions opts;
  opts.recipe = c.train;
  opts.recipe.epochs = 100;
  opts.max_steps = 5;
  opts.keep_best = false;
  opts.progress = false;
  Net m = make_model(spec_for(d));
  auto subset = torch::arange(0, 64, torch::kInt64);
  auto r = train_model(*m, d, subset, opts, torch::kCPU, 3);
  EXPECT_EQ(r.steps, 5);
  EXPECT_EQ(r.history.size(), 3u);  // 2 steps per epoch on 64 images at batch 32
}

TEST(Train, EveryOptimizerLowersTheLoss) {
  Config c = small_config();
  Dataset d = load_dataset(c.data, 2);
  for (std::string name : {"sgd", "adam", "rmsprop"}) {
    TrainOptions opts;
    opts.recipe = c.train;
    opts.recipe.optimizer = name;
    opts.recipe.lr = name == "sgd" ? 0.05 : 0.002;
    opts.recipe.momentum = name == "sgd" ? 0.9 : 0.0;
    opts.recipe.epochs = 3;
    opts.keep_best = false;
    opts.progress = false;
    torch::manual_seed(1);
    Net m = make_model(spec_for(d));
    auto r = train_model(*m, d, torch::Tensor(), opts, torch::kCPU, 1);
    EXPECT_LT(r.history.back().loss, r.history.front().loss) << name;
  }
}

TEST(Train, ChannelsLastTrainsLikeContiguousAndLeavesNchwWeights) {
  // The same seed in both memory orders: six steps agree to float rounding (the kernels differ),
  // and the trained model is back in contiguous order, as checkpoints expect.
  Config c = small_config();
  c.data.synthetic_shape = {3, 16, 16};
  Dataset d = load_dataset(c.data, 4);
  std::vector<double> losses[2];
  std::vector<torch::Tensor> weights[2];
  for (int cl = 0; cl < 2; ++cl) {
    TrainOptions opts;
    opts.recipe = c.train;
    opts.max_steps = 6;  // long enough to use the optimiser state; rounding differences grow with steps
    opts.recipe.optimizer = "sgd";  // Adam's normalised steps would magnify rounding differences
    opts.recipe.lr = 0.02;
    opts.recipe.momentum = 0.9;
    opts.recipe.memory_format = cl ? "channels_last" : "contiguous";
    opts.keep_best = false;
    opts.progress = false;
    torch::manual_seed(5);
    Net m = make_model(spec_for(d, "cnn2"));
    auto r = train_model(*m, d, torch::Tensor(), opts, torch::kCPU, 6);
    for (const auto& e : r.history) losses[cl].push_back(e.loss);
    for (const auto& p : m->parameters()) {
      EXPECT_TRUE(p.is_contiguous()) << cl;
      weights[cl].push_back(p.detach().clone());
    }
  }
  ASSERT_EQ(losses[0].size(), 1u);
  EXPECT_NEAR(losses[0][0], losses[1][0], 1e-4 * losses[0][0]);
  for (size_t i = 0; i < weights[0].size(); ++i)
    EXPECT_LT((weights[0][i] - weights[1][i]).abs().max().item<double>(), 1e-3) << i;  // a wrong layout: ~0.1
  // What callers see is NCHW: in on_epoch (where base-early copies are saved) and after a
  // diverged training, which the adaptation survives and goes on with.
  {
    TrainOptions opts;
    opts.recipe = c.train;
    opts.recipe.epochs = 3;
    opts.recipe.optimizer = "sgd";
    opts.recipe.lr = 0.01;
    opts.recipe.memory_format = "channels_last";
    opts.keep_best = false;
    opts.progress = false;
    int calls = 0;
    Net m = make_model(spec_for(d, "cnn2"));
    opts.on_epoch = [&](const EpochStats&, const std::vector<EpochStats>&) {
      ++calls;
      for (const auto& p : m->parameters()) EXPECT_TRUE(p.is_contiguous());
    };
    train_model(*m, d, torch::Tensor(), opts, torch::kCPU, 6);
    EXPECT_EQ(calls, 3);
    opts.recipe.lr = 1e30;
    opts.on_epoch = nullptr;
    EXPECT_THROW(train_model(*m, d, torch::Tensor(), opts, torch::kCPU, 6), TrainingDiverged);
    for (const auto& p : m->parameters()) EXPECT_TRUE(p.is_contiguous());
  }
  // A layout changes the memory order only: the channels-last model computes the same logits.
  torch::manual_seed(5);
  Net a = make_model(spec_for(d, "cnn2"));
  a->eval();
  auto x = d.norm.apply(d.test.x.slice(0, 0, 16));
  auto want = a->forward(x);
  set_memory_format(*a, true);
  EXPECT_TRUE(a->parameters()[0].is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::allclose(a->forward(x.contiguous(at::MemoryFormat::ChannelsLast)), want, 1e-4, 1e-5));
}

TEST(Checkpoint, RoundTripAndMetadata) {
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  torch::manual_seed(3);
  Net m = make_model(spec_for(d));
  auto dir = temp_dir("ckpt");
  auto pt = (dir / "model.pt").string();
  auto meta = checkpoint_meta(spec_for(d), d);
  meta["seed"] = 3;
  save_checkpoint(pt, *m, meta);
  ASSERT_TRUE(checkpoint_exists(pt));
  LoadedModel l = load_checkpoint(pt);
  EXPECT_EQ(l.spec.arch, "small");
  EXPECT_EQ(l.meta["dataset"]["fingerprint"], d.fingerprint);
  auto a = m->named_parameters(), b = l.model->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  auto x = d.norm.apply(d.test.x.slice(0, 0, 8));
  m->eval();
  l.model->eval();
  EXPECT_TRUE(torch::allclose(m->forward(x), l.model->forward(x)));
  EXPECT_NO_THROW(check_compatible(l, spec_for(d), d.fingerprint, "test"));
  auto other = spec_for(d);
  other.classes = 7;
  EXPECT_EQ(error_code([&] { check_compatible(l, other, "", "test"); }), ExitCode::kState);
  EXPECT_EQ(error_code([&] { check_compatible(l, spec_for(d), "0123", "test"); }), ExitCode::kState);
}

TEST(Checkpoint, CorruptTruncatedAndForeignFilesAreRejected) {
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  Net m = make_model(spec_for(d));
  auto dir = temp_dir("ckpt-bad");
  auto pt = (dir / "model.pt").string();
  save_checkpoint(pt, *m, checkpoint_meta(spec_for(d), d));
  std::string bytes = read_file(pt);

  write_file_atomic(pt, bytes.substr(0, bytes.size() / 2));  // truncated
  EXPECT_EQ(error_code([&] { load_checkpoint(pt); }), ExitCode::kState);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x5a;  // same size, one byte altered
  write_file_atomic(pt, flipped);
  EXPECT_EQ(error_code([&] { load_checkpoint(pt); }), ExitCode::kState);

  auto junk = (dir / "junk.pt").string();
  write_file_atomic(junk, "this is not a checkpoint");
  EXPECT_EQ(error_code([&] { load_checkpoint(junk); }), ExitCode::kState);  // no metadata beside it
  write_file_atomic((dir / "junk.json").string(), "{\"hello\": 1}");
  EXPECT_EQ(error_code([&] { load_checkpoint(junk); }), ExitCode::kState);  // metadata of something else
  EXPECT_EQ(error_code([&] { load_checkpoint((dir / "missing.pt").string()); }), ExitCode::kData);

  // Weights of another arch under a metadata that claims cnn1: refused, not crashed.
  write_file_atomic(pt, bytes);
  auto meta = nlohmann::json::parse(read_file(meta_path_for(pt)));
  meta["arch"] = "cnn1";
  write_json_atomic(meta_path_for(pt), meta);
  EXPECT_EQ(error_code([&] { load_checkpoint(pt); }), ExitCode::kState);
}

TEST(Eval, ConfusionMatrixIsConsistent) {
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  torch::manual_seed(5);
  Net m = make_model(spec_for(d));
  auto r = evaluate(*m, d.test, "test", d.classes, d.norm, torch::kCPU, 64);
  int64_t total = 0, diag = 0;
  for (int64_t t = 0; t < d.classes; ++t)
    for (int64_t p = 0; p < d.classes; ++p) total += r.confusion[t][p], diag += t == p ? r.confusion[t][p] : 0;
  EXPECT_EQ(total, d.test.size());
  EXPECT_DOUBLE_EQ(r.accuracy, static_cast<double>(diag) / total);
  EXPECT_DOUBLE_EQ(r.accuracy, accuracy(*m, d.test, d.norm, torch::kCPU, 64));
  auto j = r.to_json();
  for (const char* k : {"split", "n", "accuracy", "per_class", "confusion"}) EXPECT_TRUE(j.contains(k)) << k;
}

TEST(Train, Bf16OnTheCpuIsAUsageError) {
  Config c = small_config();
  Dataset d = load_dataset(c.data, 1);
  TrainOptions opts;
  opts.recipe = c.train;
  opts.recipe.precision = "bf16";
  opts.progress = false;
  Net m = make_model(spec_for(d));
  EXPECT_EQ(error_code([&] { train_model(*m, d, torch::Tensor(), opts, torch::kCPU, 1); }), ExitCode::kUsage);
}
