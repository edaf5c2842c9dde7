// The CUDA path against the CPU: each model's forward pass and one training step agree within
// tolerance, training on CUDA with bf16 autocast lowers the loss, and the adjustment engine gives
// the same weights. Every test skips itself where no GPU is present.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/optim.h>

#include "apricot/data.hpp"
#include "apricot/device.hpp"
#include "apricot/train.hpp"
#include "apricot/weights.hpp"

using namespace apricot;

namespace {

bool has_cuda() { return torch::cuda::is_available(); }

// A copy of `m` built anew with the same weights, on `device`.
Net copy_to(const Net& m, const ModelSpec& spec, const torch::Device& device) {
  Net c = make_model(spec);
  restore_state(*c, snapshot_state(*m));
  c->to(device);
  return c;
}

}  // namespace

TEST(Cuda, ForwardAndTrainingStepMatchCpu) {
  if (!has_cuda()) GTEST_SKIP() << "no CUDA device";
  torch::Device cuda(torch::kCUDA, 0);
  for (const auto& arch : model_archs()) {
    ModelSpec spec{arch, 3, 32, 32, 10, "v1"};
    torch::manual_seed(1);
    Net cpu = make_model(spec);
    Net gpu = copy_to(cpu, spec, cuda);
    auto x = torch::rand({8, 3, 32, 32});
    auto y = torch::randint(0, 10, {8}, torch::kInt64);
    cpu->eval(), gpu->eval();
    {
      torch::NoGradGuard g;
      auto a = cpu->forward(x), b = gpu->forward(x.to(cuda)).cpu();
      // cuDNN may use TF32 for convolutions: a loose tolerance relative to the logits' scale.
      EXPECT_LT((a - b).abs().max().item<double>(), 2e-2 * (1 + a.abs().max().item<double>())) << arch;
    }
    cpu->train(), gpu->train();
    auto oc = make_optimizer("sgd", 0.01, 0.9, false, 0, cpu->parameters());
    auto og = make_optimizer("sgd", 0.01, 0.9, false, 0, gpu->parameters());
    auto lc = train_step(*cpu, *oc, x, y).loss.item<double>();
    auto lg = train_step(*gpu, *og, x.to(cuda), y.to(cuda)).loss.cpu().item<double>();
    EXPECT_NEAR(lc, lg, 2e-2 * (1 + std::abs(lc))) << arch;
    auto pc = cpu->parameters(), pg = gpu->parameters();
    double worst = 0;
    for (size_t i = 0; i < pc.size(); ++i)
      worst = std::max(worst, (pc[i] - pg[i].cpu()).abs().max().item<double>());
    EXPECT_LT(worst, 1e-2) << arch;
  }
}

TEST(Cuda, Bf16TrainingLowersTheLoss) {
  if (!has_cuda()) GTEST_SKIP() << "no CUDA device";
  Dataset d;
  make_synthetic(600, 100, 3, 16, 16, 4, 3, d.train, d.test);
  d.val = d.test;
  d.channels = 3, d.height = 16, d.width = 16, d.classes = 4;
  TrainOptions opts;
  opts.recipe.epochs = 4;
  opts.recipe.batch_size = 32;
  opts.recipe.optimizer = "adam";
  opts.recipe.lr = 0.003;
  opts.recipe.momentum = 0;
  opts.recipe.precision = "bf16";
  opts.progress = false;
  torch::manual_seed(2);
  Net m = make_model({"cnn2", 3, 16, 16, 4, "v1"});
  auto r = train_model(*m, d, torch::Tensor(), opts, torch::Device(torch::kCUDA, 0), 2);
  EXPECT_LT(r.history.back().loss, r.history.front().loss);
  EXPECT_GT(r.best_val_acc, 0.5);
}

TEST(Cuda, EngineMatchesCpu) {
  if (!has_cuda()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(3);
  auto R = torch::randn({20, 5000}), w = torch::randn({5000});
  auto mask = torch::rand({7, 20}) > 0.5;
  mask.select(1, 0).fill_(true);
  auto upd = compose_updates(mask, Strategy::k1, Direction::kIntent, 0.01);
  auto a = apply_update(w, R, upd);
  auto b = apply_update(w.cuda(), R.cuda(), upd).cpu();
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5));
}
