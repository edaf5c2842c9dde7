// Training loop and batched inference over in-memory uint8 data. Loss and accuracy accumulate on
// the device and are read once an epoch (and when the live progress line redraws), so a GPU is not
// synchronised every step. Checkpointing and metrics files are the caller's business.
#include "apricot/train.hpp"

#include <ATen/Context.h>
#include <spdlog/spdlog.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "apricot/device.hpp"
#include "apricot/errors.hpp"
#include "apricot/progress.hpp"

namespace apricot {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

double lr_at_epoch(const TrainConfig& recipe, int64_t epoch) {
  double lr = recipe.lr;
  for (int64_t s : recipe.lr_steps)
    if (epoch >= s) lr *= recipe.lr_gamma;
  return lr;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name, double lr, double momentum,
                                                        bool nesterov, double weight_decay,
                                                        std::vector<torch::Tensor> params) {
  namespace optim = torch::optim;
  if (name == "sgd")
    return std::make_unique<optim::SGD>(
        std::move(params),
        optim::SGDOptions(lr).momentum(momentum).nesterov(nesterov).weight_decay(weight_decay));
  if (name == "adam")  // eps as Keras' default
    return std::make_unique<optim::Adam>(std::move(params),
                                         optim::AdamOptions(lr).eps(1e-7).weight_decay(weight_decay));
  if (name == "rmsprop")  // rho 0.9 and eps as Keras' defaults
    return std::make_unique<optim::RMSprop>(
        std::move(params),
        optim::RMSpropOptions(lr).alpha(0.9).eps(1e-7).momentum(momentum).weight_decay(weight_decay));
  TORCH_CHECK(false, "unknown optimizer ", name);  // validated in config
}

StepOutput train_step(NetImpl& model, torch::optim::Optimizer& optimizer, const torch::Tensor& x,
                      const torch::Tensor& y, bool bf16) {
  optimizer.zero_grad();
  torch::Tensor logits, loss;
  {
    AutocastBf16 autocast(bf16);
    logits = model.forward(x);  // (B, classes)
    loss = torch::nn::functional::cross_entropy(logits, y);  // autocast computes it in fp32
  }
  loss.backward();
  optimizer.step();
  torch::NoGradGuard no_grad;
  return {loss.detach(), logits.detach().argmax(1).eq(y).sum()};
}

std::vector<torch::Tensor> snapshot_state(const torch::nn::Module& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.detach().clone());
  for (const auto& b : model.buffers()) out.push_back(b.detach().clone());
  return out;
}

void restore_state(torch::nn::Module& model, const std::vector<torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& p : model.parameters()) p.copy_(state.at(i++));
  for (auto& b : model.buffers()) b.copy_(state.at(i++));
  TORCH_CHECK(i == state.size(), "snapshot does not match the model");
}

torch::Tensor predict(NetImpl& model, const torch::Tensor& x, const Normalizer& norm, const torch::Device& device,
                      int64_t batch_size) {
  torch::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  // Inference batches come in many sizes (a batch's failing inputs, the last chunk of a split):
  // cuDNN autotuning would search algorithms again for each new size, costing more than it saves.
  const bool autotune = at::globalContext().benchmarkCuDNN();
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(false);
  const int64_t n = x.size(0);
  auto out = torch::empty({n}, torch::kInt64);
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; i += batch_size) {
    auto xb = x.slice(0, i, std::min(n, i + batch_size)).to(device, /*non_blocking=*/true);
    parts.push_back(model.forward(norm.apply(xb)).argmax(1));
  }
  if (was_training) model.train();
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(autotune);
  if (parts.empty()) return out;
  return torch::cat(parts).to(torch::kCPU);
}

double accuracy(NetImpl& model, const Split& split, const Normalizer& norm, const torch::Device& device,
                int64_t batch_size) {
  if (split.size() == 0) return 0.0;
  auto pred = predict(model, split.x, norm, device, batch_size);
  return pred.eq(split.y).sum().item<double>() / static_cast<double>(split.size());
}

TrainResult train_model(NetImpl& model, const Dataset& data, const torch::Tensor& subset, const TrainOptions& opts,
                        const torch::Device& device, uint64_t seed) {
  const TrainConfig& rc = opts.recipe;
  model.to(device);
  model.train();
  auto gen = at::detail::createCPUGenerator(seed);
  auto idx_all = subset.defined() ? subset.to(torch::kInt64) : torch::arange(data.train.size(), torch::kInt64);
  const int64_t n = idx_all.size(0);
  TORCH_CHECK(n > 0, "training on an empty subset");
  const int64_t steps_per_epoch = (n + rc.batch_size - 1) / rc.batch_size;
  int64_t epochs = rc.epochs;
  if (opts.max_steps > 0) epochs = (opts.max_steps + steps_per_epoch - 1) / steps_per_epoch;

  const bool bf16 = rc.precision == "bf16";
  if (bf16 && !device.is_cuda())
    config_error("train.precision bf16 needs a CUDA device (this run is on " + device.str() + ")",
                 "use train.precision fp32 on the CPU");
  // On a GPU the uint8 training images live on the device (a CIFAR-10 split is 150 MB), so a step
  // indexes device memory instead of copying a batch from the host.
  const torch::Tensor src_x = device.is_cuda() ? data.train.x.to(device) : data.train.x;
  const torch::Tensor src_y = device.is_cuda() ? data.train.y.to(device) : data.train.y;
  auto optimizer = make_optimizer(rc.optimizer, rc.lr, rc.momentum, rc.nesterov, rc.weight_decay, model.parameters());
  TrainResult result;
  std::vector<torch::Tensor> best;
  Progress progress(opts.label, opts.progress);
  const bool augment = rc.augment.shift > 0 || rc.augment.flip;
  auto t_start = Clock::now();

  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    auto t_epoch = Clock::now();
    double lr = lr_at_epoch(rc, epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    auto perm = idx_all.index_select(0, torch::randperm(n, gen, torch::kInt64));
    auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device));
    int64_t seen = 0, step_in_epoch = 0;
    for (int64_t i = 0; i < n; i += rc.batch_size) {
      if (opts.max_steps > 0 && result.steps >= opts.max_steps) break;
      auto bidx = perm.slice(0, i, std::min(n, i + rc.batch_size));
      auto didx = bidx.to(device, true);
      auto xb = src_x.index_select(0, didx);  // (B, C, H, W) uint8
      auto yb = src_y.index_select(0, didx);  // (B)
      auto x = data.norm.apply(xb);
      if (augment) x = augment_batch(x, rc.augment.shift, rc.augment.fill, rc.augment.flip, gen);
      auto out = train_step(model, *optimizer, x, yb, bf16);
      const int64_t b = bidx.size(0);
      {
        torch::NoGradGuard no_grad;
        loss_sum += out.loss.to(torch::kFloat64) * b;
        correct += out.correct;
      }
      seen += b;
      ++result.steps;
      ++step_in_epoch;
      if (progress.should_draw()) {
        double el = since(t_epoch);
        double done = static_cast<double>(epoch * steps_per_epoch + step_in_epoch);
        double total = static_cast<double>(opts.max_steps > 0 ? opts.max_steps : epochs * steps_per_epoch);
        double eta = since(t_start) / done * (total - done);
        char buf[256];
        std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s",
                      static_cast<long long>(epoch + 1), static_cast<long long>(epochs),
                      static_cast<long long>(step_in_epoch), static_cast<long long>(steps_per_epoch),
                      loss_sum.item<double>() / seen, 100.0 * correct.item<double>() / seen, seen / el,
                      format_duration(eta).c_str());
        progress.draw(buf);
      }
    }
    EpochStats st;
    st.epoch = epoch + 1;
    st.steps = result.steps;
    st.lr = lr;
    st.loss = seen ? loss_sum.item<double>() / seen : 0.0;
    st.train_acc = seen ? correct.item<double>() / seen : 0.0;
    st.images_per_s = seen / std::max(1e-9, since(t_epoch));
    if (!std::isfinite(st.loss)) {
      progress.finish();
      throw TrainingDiverged(ExitCode::kOther,
                             opts.label + ": training loss is " + std::to_string(st.loss) + " at epoch " +
                                 std::to_string(epoch + 1) + " (step " + std::to_string(result.steps) + "): diverged",
                             "lower the learning rate (train.lr) or check the data");
    }
    if (opts.keep_best) {
      st.val_acc = accuracy(model, data.val, data.norm, device, rc.eval_batch_size);
      if (st.val_acc > result.best_val_acc) {
        result.best_val_acc = st.val_acc;
        result.best_epoch = st.epoch;
        best = snapshot_state(model);
      }
    }
    st.seconds = since(t_epoch);
    result.history.push_back(st);
    progress.finish();
    char line[256];
    std::snprintf(line, sizeof line, "%s epoch %lld/%lld  loss %.4f  train %.2f%%%s  lr %.2g  %.0f img/s  %.1fs",
                  opts.label.c_str(), static_cast<long long>(st.epoch), static_cast<long long>(epochs), st.loss,
                  100 * st.train_acc,
                  st.val_acc >= 0 ? ("  val " + std::to_string(100 * st.val_acc).substr(0, 5) + "%").c_str() : "",
                  lr, st.images_per_s, st.seconds);
    spdlog::log(opts.log_epochs ? spdlog::level::info : spdlog::level::debug, "{}", line);
    if (opts.on_epoch) opts.on_epoch(st);
  }
  if (opts.keep_best && !best.empty()) restore_state(model, best);
  result.seconds = since(t_start);
  return result;
}

}  // namespace apricot
