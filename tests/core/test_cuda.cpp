// The CUDA path against the CPU: each model's forward pass and one training step agree within
// tolerance, training on CUDA with bf16 autocast lowers the loss, the adjustment engine gives
// the same weights, and models trained concurrently on streams match those trained one by one.
// Every test skips itself where no GPU is present.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/optim.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <mutex>
#include <vector>

#include "apricot/data/dataset.hpp"
#include "apricot/core/device.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/train/train.hpp"
#include "apricot/method/adjustment.hpp"
#include "apricot/models/state.hpp"
#include "apricot/data/formats.hpp"
#include "cli_util.hpp"

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
  if (!has_cuda()) GTEST_SKIP() << apricot::test::why_no_cuda();
  torch::Device cuda(torch::kCUDA, 0);
  for (const auto& arch : model_archs()) {
    ModelSpec spec{arch, 3, 32, 32, 10, "v1", ""};
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
  if (!has_cuda()) GTEST_SKIP() << apricot::test::why_no_cuda();
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
  Net m = make_model({"cnn2", 3, 16, 16, 4, "v1", ""});
  auto r = train_model(*m, d, torch::Tensor(), opts, torch::Device(torch::kCUDA, 0), 2);
  EXPECT_LT(r.history.back().loss, r.history.front().loss);
  EXPECT_GT(r.best_val_acc, 0.5);
}

TEST(Cuda, EngineMatchesCpu) {
  if (!has_cuda()) GTEST_SKIP() << apricot::test::why_no_cuda();
  torch::manual_seed(3);
  auto R = torch::randn({20, 5000}), w = torch::randn({5000});
  auto mask = torch::rand({7, 20}) > 0.5;
  mask.select(1, 0).fill_(true);
  auto upd = compose_updates(mask, Strategy::k1, Direction::kIntent, 0.01);
  auto a = apply_update(w, R, upd);
  auto b = apply_update(w.cuda(), R.cuda(), upd).cpu();
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5));
}

TEST(Cuda, ConcurrentTrainingOnStreamsMatchesOneAtATime) {
  // Four models trained at once (a stream each) end where the same four trained one by one end,
  // within float tolerance (cuDNN may pick other algorithms); each job ran on a side stream.
  if (!has_cuda()) GTEST_SKIP() << apricot::test::why_no_cuda();
  torch::Device cuda(torch::kCUDA, 0);
  ModelSpec spec{"resnet20", 3, 32, 32, 10, "v1", ""};
  auto x = torch::rand({64, 3, 32, 32}).to(cuda);
  auto y = torch::randint(0, 10, {64}, torch::kInt64).to(cuda);
  auto train = [&](int64_t j, std::vector<torch::Tensor>& out) {
    Net m;
    {
      std::lock_guard<std::mutex> g(global_generator_mutex());  // seeded initialisation, one at a time
      torch::manual_seed(static_cast<uint64_t>(j));
      m = make_model(spec);
    }
    m->to(cuda);
    m->train();
    auto opt = make_optimizer("sgd", 0.01, 0.9, false, 0, m->parameters());
    for (int s = 0; s < 5; ++s) train_step(*m, *opt, x, y);
    for (const auto& p : m->parameters()) out.push_back(p.detach().cpu());
  };
  std::vector<std::vector<torch::Tensor>> seq(4), par(4);
  for (int64_t j = 0; j < 4; ++j) train(j, seq[j]);
  std::vector<int> side_stream(4, 0);  // not vector<bool>: workers write their own entries at once
  torch::cuda::synchronize();  // x and y were made on the default stream
  run_parallel({0, 1, 2, 3}, make_parallel_plan(4, {cuda}, 1), [&](int64_t j, const torch::Device& d) {
    EXPECT_EQ(d, cuda);
    c10::impl::VirtualGuardImpl impl(d.type());
    side_stream[j] = impl.getStream(d) != impl.getDefaultStream(d);
    std::vector<torch::Tensor> out;
    train(j, out);
    par[j] = out;
  });
  for (int64_t j = 0; j < 4; ++j) {
    EXPECT_TRUE(side_stream[j]) << j;
    ASSERT_EQ(par[j].size(), seq[j].size());
    double worst = 0;
    for (size_t i = 0; i < seq[j].size(); ++i)
      worst = std::max(worst, (seq[j][i] - par[j][i]).abs().max().item<double>());
    EXPECT_LT(worst, 1e-2) << j;
  }
}
