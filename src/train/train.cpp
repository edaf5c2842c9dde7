// Training loop and batched inference over in-memory uint8 data. Loss and accuracy accumulate on
// the device and are read once an epoch (and when the live progress line redraws), so a GPU is not
// synchronised every step. Checkpointing and metrics files are the caller's business.
#include "apricot/train/train.hpp"

#include "apricot/data/augment.hpp"

#include <ATen/Context.h>
#include <spdlog/spdlog.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/optim.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/clock.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/models/model.hpp"
#include "apricot/models/state.hpp"
#include "apricot/core/device.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/core/progress.hpp"
#include "apricot/io/resume.hpp"
#include "apricot/core/seeds.hpp"

namespace apricot {

using nlohmann::json;

double lr_at_epoch(const TrainConfig& recipe, int64_t epoch) {
  if (recipe.lr_schedule == "cosine") {
    if (recipe.epochs <= 1) return recipe.lr;
    const double t = static_cast<double>(std::min(epoch, recipe.epochs - 1)) / static_cast<double>(recipe.epochs - 1);
    return recipe.lr_min + (recipe.lr - recipe.lr_min) * 0.5 * (1.0 + std::cos(M_PI * t));
  }
  double lr = recipe.lr;
  for (int64_t s : recipe.lr_steps)
    if (epoch >= s) lr *= recipe.lr_gamma;
  return lr;
}

void use_constant_lr(TrainConfig& recipe) {
  recipe.lr_schedule = "step";
  recipe.lr_steps = {};
  recipe.patience = 0;
}

std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
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
  // Gradients set to none rather than zeroed (PyTorch's default): backward then writes them instead
  // of adding into zeros, one pass over the weights less. Optimisers skip parameters without one.
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
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

int64_t recalibrate_batchnorm(NetImpl& model, const torch::Tensor& x, const Normalizer& norm,
                              const torch::Device& device, int64_t batch_size) {
  struct Saved {
    torch::nn::BatchNormImplBase<2, torch::nn::BatchNorm2dImpl>* bn2 = nullptr;
    torch::nn::BatchNormImplBase<1, torch::nn::BatchNorm1dImpl>* bn1 = nullptr;
    c10::optional<double> momentum;
    torch::Tensor tracked;
  };
  std::vector<Saved> layers;
  for (const auto& m : model.modules(/*include_self=*/false)) {
    Saved s;
    if (auto* b = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) s.bn2 = b;
    else if (auto* b1 = dynamic_cast<torch::nn::BatchNorm1dImpl*>(m.get())) s.bn1 = b1;
    else continue;
    layers.push_back(s);
  }
  const int64_t n = x.size(0);
  if (layers.empty() || n == 0) return 0;
  torch::NoGradGuard no_grad;
  // momentum = nullopt makes BatchNorm keep the cumulative (plain) average of the batches it sees.
  for (auto& l : layers) {
    auto& opts = l.bn2 ? l.bn2->options : l.bn1->options;
    auto& tracked = l.bn2 ? l.bn2->num_batches_tracked : l.bn1->num_batches_tracked;
    if (!tracked.defined()) continue;  // no running statistics to recompute
    l.momentum = opts.momentum();
    l.tracked = tracked.clone();
    opts.momentum(c10::nullopt);
    l.bn2 ? l.bn2->reset_running_stats() : l.bn1->reset_running_stats();
  }
  const bool was_training = model.is_training();
  model.train();
  const int64_t chunks = (n + batch_size - 1) / batch_size;
  const int64_t per = n / chunks;  // equal chunks, so that the plain average weighs every image alike
  for (int64_t c = 0; c < chunks; ++c)
    model.forward(norm.apply(x.slice(0, c * per, (c + 1) * per).to(device, /*non_blocking=*/true)));
  model.train(was_training);
  int64_t count = 0;
  for (auto& l : layers) {
    if (!l.tracked.defined()) continue;
    auto& opts = l.bn2 ? l.bn2->options : l.bn1->options;
    auto& tracked = l.bn2 ? l.bn2->num_batches_tracked : l.bn1->num_batches_tracked;
    opts.momentum(l.momentum);
    tracked.copy_(l.tracked);
    ++count;
  }
  return count;
}

torch::Tensor recalibration_images(const Split& train, uint64_t seed, int64_t n) {
  auto gen = at::detail::createCPUGenerator(seeds::recalibration_images(seed));
  const int64_t take = std::min<int64_t>(n, train.size());
  return train.x.index_select(0, torch::randperm(train.size(), gen, torch::kInt64).slice(0, 0, take));
}

void set_memory_format(torch::nn::Module& model, bool channels_last) {
  torch::NoGradGuard no_grad;
  const auto fmt = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (auto& t : model.parameters())
    if (t.dim() == 4) t.set_data(t.data().contiguous(fmt));
  for (auto& t : model.buffers())
    if (t.dim() == 4) t.set_data(t.data().contiguous(fmt));
}


std::string metrics_jsonl(const std::vector<EpochStats>& history) {
  std::string out;
  for (const auto& e : history) out += json(e).dump() + "\n";
  return out;
}

namespace {

bool params_finite(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& p : model.parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

// Channels-last weights while alive (before the optimiser takes the parameters, so its state
// follows); back to NCHW on every way out, an exception too, so checkpoints are always NCHW.
class MemoryFormatScope {
 public:
  MemoryFormatScope(NetImpl& model, bool channels_last) : model_(model), on_(channels_last) {
    if (on_) set_memory_format(model_, true);
  }
  ~MemoryFormatScope() {
    if (on_) set_memory_format(model_, false);
  }
  MemoryFormatScope(const MemoryFormatScope&) = delete;
  MemoryFormatScope& operator=(const MemoryFormatScope&) = delete;
  // Runs fn with the model in NCHW (callers save copies of the model there).
  template <typename Fn>
  void in_nchw(Fn&& fn) {
    if (on_) set_memory_format(model_, false);
    fn();
    if (on_) set_memory_format(model_, true);
  }

 private:
  NetImpl& model_;
  bool on_;
};

// What stays fixed during one train_model call.
struct TrainRun {
  NetImpl& model;
  torch::optim::Optimizer& optimizer;
  const TrainOptions& opts;
  const Dataset& data;
  torch::Device device;
  torch::Tensor rows = {};                // training rows to train on (int64)
  torch::Tensor src_x = {}, src_y = {};   // the training split, on the device when it is a GPU
  bool augment = false, channels_last = false, bf16 = false, resumable = false;
  int64_t epochs = 0, steps_per_epoch = 0;
  int64_t resumed_step = 0;    // step of the state this process started from
  double elapsed_before = 0;   // seconds spent by earlier processes
  Clock::time_point t_start = {};
  double elapsed() const { return elapsed_before + since(t_start); }
  Progress* progress = nullptr;
  const std::string& state_path() const { return opts.state_path; }
};

// The batch maker: rows of this epoch's permutation -> the normalised, augmented batch.
std::pair<torch::Tensor, torch::Tensor> make_batch(const TrainRun& run, const torch::Tensor& rows, at::Generator& gen) {
  auto didx = rows.to(run.device, true);
  auto x = run.data.norm.apply(run.src_x.index_select(0, didx));  // (B, C, H, W) float
  auto y = run.src_y.index_select(0, didx);                        // (B)
  const AugmentConfig& a = run.opts.recipe.augment;
  if (run.augment) x = augment_batch(x, a.shift, a.fill, a.flip, gen);
  if (run.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  return {x, y};
}

[[noreturn]] void diverged(const TrainRun& run, const TrainState& st, int64_t step_in_epoch, const std::string& what) {
  run.progress->finish();
  throw TrainingDiverged(
      ExitCode::kOther,
      run.opts.label + ": " + what + " at epoch " + std::to_string(st.epoch + 1) + ", step " +
          std::to_string(step_in_epoch) + " of the epoch (global step " + std::to_string(st.steps) +
          "): training diverged",
      std::string("lower the learning rate (train.lr) or check the data") +
          (run.resumable && state_exists(run.state_path())
               ? "; the last good state is kept in " + meta_path_for(run.state_path())
               : ""));
}

[[noreturn]] void stop_interrupted(const TrainRun& run, const std::string& where) {
  throw_interrupted(run.opts.label + ": state saved to " + meta_path_for(run.state_path()) + " " + where,
                    run.opts.resume_hint.empty() ? "rerun the same command to resume" : run.opts.resume_hint);
}

void draw_progress(const TrainRun& run, const TrainState& st, int64_t step_in_epoch, int64_t first_row,
                   Clock::time_point t_epoch) {
  const int64_t seen = st.offset;
  const double done = static_cast<double>(st.epoch * run.steps_per_epoch + step_in_epoch);
  const double total = static_cast<double>(run.opts.max_steps > 0 ? run.opts.max_steps : run.epochs * run.steps_per_epoch);
  const double eta = since(run.t_start) / std::max(1.0, done - static_cast<double>(run.resumed_step)) * (total - done);
  const double mean_loss = st.loss_sum.item<double>() / seen;
  if (!std::isfinite(mean_loss)) diverged(run, st, step_in_epoch, "the loss is not finite (detected by this step)");
  char buf[256];
  std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s",
                static_cast<long long>(st.epoch + 1), static_cast<long long>(run.epochs),
                static_cast<long long>(step_in_epoch), static_cast<long long>(run.steps_per_epoch), mean_loss,
                100.0 * st.correct.item<double>() / seen, (seen - first_row) / since(t_epoch),
                format_duration(eta).c_str());
  run.progress->draw(buf);
}

// One epoch (or what is left of it, for a resumed state), until its rows or max_steps run out.
// Returns its statistics, validation and wall time aside. On SIGINT/SIGTERM it saves the state and
// throws.
EpochStats run_epoch(const TrainRun& run, TrainState& st) {
  const TrainConfig& rc = run.opts.recipe;
  const auto t_epoch = Clock::now();
  const double lr = lr_at_epoch(rc, st.epoch);
  for (auto& group : run.optimizer.param_groups()) group.options().set_lr(lr);
  if (st.offset == 0) {  // a new epoch: its permutation and running sums
    st.perm = run.rows.index_select(0, torch::randperm(run.rows.size(0), st.gen, torch::kInt64));
    st.loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(run.device));
    st.correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(run.device));
  } else {
    st.loss_sum = st.loss_sum.to(run.device), st.correct = st.correct.to(run.device);
  }
  const int64_t n = run.rows.size(0), first_row = st.offset;
  int64_t step_in_epoch = st.offset / rc.batch_size;
  while (st.offset < n && !(run.opts.max_steps > 0 && st.steps >= run.opts.max_steps)) {
    auto rows = st.perm.slice(0, st.offset, std::min(n, st.offset + rc.batch_size));
    auto [x, y] = make_batch(run, rows, st.gen);
    auto out = train_step(run.model, run.optimizer, x, y, run.bf16);
    ++st.steps, ++step_in_epoch;
    // On the CPU the check costs nothing; on a GPU it would synchronise every step, so there it
    // runs on the accumulated loss when the progress line redraws and at the end of the epoch.
    if (!run.device.is_cuda() && !std::isfinite(out.loss.item<float>()))
      diverged(run, st, step_in_epoch, "the loss is not finite");
    {
      torch::NoGradGuard no_grad;
      st.loss_sum += out.loss.to(torch::kFloat64) * rows.size(0);
      st.correct += out.correct;
    }
    st.offset += rows.size(0);
    if (run.resumable && interrupt_requested()) {
      run.progress->finish();
      if (!params_finite(run.model)) diverged(run, st, step_in_epoch, "the weights are not finite");
      st.elapsed = run.elapsed();
      save_train_state(run.state_path(), run.opts.state_key, run.device.str(), st, run.model, run.optimizer);
      stop_interrupted(run, "at epoch " + std::to_string(st.epoch + 1) + " step " + std::to_string(step_in_epoch));
    }
    if (run.progress->should_draw()) draw_progress(run, st, step_in_epoch, first_row, t_epoch);
  }
  EpochStats es;
  es.epoch = st.epoch + 1;
  es.steps = st.steps;
  es.lr = lr;
  const int64_t seen = st.offset;
  es.loss = seen ? st.loss_sum.item<double>() / seen : 0.0;
  es.train_acc = seen ? st.correct.item<double>() / seen : 0.0;
  es.images_per_s = (seen - first_row) / std::max(1e-9, since(t_epoch));
  if (!std::isfinite(es.loss)) diverged(run, st, step_in_epoch, "the loss is not finite (detected by this step)");
  if (!params_finite(run.model)) diverged(run, st, step_in_epoch, "the weights are not finite");
  return es;
}

void log_epoch(const TrainRun& run, const EpochStats& es) {
  char line[256];
  std::snprintf(line, sizeof line, "%s epoch %lld/%lld  loss %.4f  train %.2f%%%s  lr %.2g  %.0f img/s  %.1fs",
                run.opts.label.c_str(), static_cast<long long>(es.epoch), static_cast<long long>(run.epochs), es.loss,
                100 * es.train_acc,
                es.val_acc >= 0 ? ("  val " + std::to_string(100 * es.val_acc).substr(0, 5) + "%").c_str() : "",
                es.lr, es.images_per_s, es.seconds);
  spdlog::log(run.opts.log_epochs ? spdlog::level::info : spdlog::level::debug, "{}", line);
}

}  // namespace

TrainResult train_model(NetImpl& model, const Dataset& data, const torch::Tensor& subset, const TrainOptions& opts,
                        const torch::Device& device, uint64_t seed) {
  const TrainConfig& rc = opts.recipe;
  model.to(device);
  model.train();
  MemoryFormatScope layout(model, rc.memory_format == "channels_last");
  if (rc.precision == "bf16" && !device.is_cuda())
    config_error("train.precision bf16 needs a CUDA device (this run is on " + device.str() + ")",
                 "use train.precision fp32 on the CPU");
  auto optimizer = make_optimizer(rc.optimizer, rc.lr, rc.momentum, rc.nesterov, rc.weight_decay,
                                  trainable_parameters(model));
  Progress progress(opts.label, opts.progress);
  TrainRun run{model, *optimizer, opts, data, device};
  run.rows = subset.defined() ? subset.to(torch::kInt64) : torch::arange(data.train.size(), torch::kInt64);
  TORCH_CHECK(run.rows.size(0) > 0, "training on an empty subset");
  // On a GPU the uint8 training images live on the device (a CIFAR-10 split is 150 MB), so a step
  // indexes device memory instead of copying a batch from the host. Concurrent trainings share one
  // copy (opts.device_train).
  const bool shared = opts.device_train && opts.device_train->x.device() == device;
  run.src_x = shared ? opts.device_train->x : device.is_cuda() ? data.train.x.to(device) : data.train.x;
  run.src_y = shared ? opts.device_train->y : device.is_cuda() ? data.train.y.to(device) : data.train.y;
  run.augment = rc.augment.shift > 0 || rc.augment.flip;
  run.channels_last = rc.memory_format == "channels_last";
  run.bf16 = rc.precision == "bf16";
  run.resumable = !opts.state_path.empty();
  run.steps_per_epoch = (run.rows.size(0) + rc.batch_size - 1) / rc.batch_size;
  run.epochs = opts.max_steps > 0 ? (opts.max_steps + run.steps_per_epoch - 1) / run.steps_per_epoch : rc.epochs;
  run.progress = &progress;

  TrainState st;
  st.gen = at::detail::createCPUGenerator(seed);
  seed_model_stream(model, seeds::model_stream(seed));  // a TorchScript model's dropout (a resumed state replaces it)
  TrainResult result;
  if (run.resumable) {
    install_interrupt_handlers();  // from here on SIGINT/SIGTERM save the state and exit 130
    if (load_train_state(opts.state_path, opts.state_key, device.str(), st, model, *optimizer, opts.label))
      result.resumed_epoch = st.epoch, result.resumed_step = st.steps;
  }
  run.resumed_step = result.resumed_step;
  run.t_start = Clock::now();
  run.elapsed_before = st.elapsed;
  for (; st.epoch < run.epochs; ++st.epoch, st.offset = 0) {
    const auto t_epoch = Clock::now();
    EpochStats es = run_epoch(run, st);
    if (opts.keep_best) {
      es.val_acc = accuracy(model, data.val, data.norm, device, rc.eval_batch_size);
      if (es.val_acc > st.best_val_acc) st.best_val_acc = es.val_acc, st.best_epoch = es.epoch, st.best = snapshot_state(model);
    }
    es.seconds = since(t_epoch);  // validation included
    st.history.push_back(es);
    progress.finish();
    log_epoch(run, es);
    if (opts.on_epoch) layout.in_nchw([&] { opts.on_epoch(es, st.history); });
    // Early stopping: `patience` epochs without a better validation accuracy end the training (the
    // best epoch is restored below). Decided from the state alone, so a resumed run stops alike.
    if (opts.keep_best && rc.patience > 0 && st.epoch + 1 < run.epochs && es.epoch - st.best_epoch >= rc.patience) {
      result.stopped_early = true;
      spdlog::log(opts.log_epochs ? spdlog::level::info : spdlog::level::debug,
                  "{}: stopped early after epoch {}: no better validation accuracy for {} epochs (best: epoch {}, {:.2f}%)",
                  opts.label, es.epoch, rc.patience, st.best_epoch, 100 * st.best_val_acc);
      break;
    }
    const bool interrupted = run.resumable && interrupt_requested();
    if (run.resumable && st.epoch + 1 < run.epochs &&
        ((opts.state_every_epochs > 0 && (st.epoch + 1) % opts.state_every_epochs == 0) || interrupted)) {
      TrainState next = st;  // the state at the start of the next epoch
      ++next.epoch, next.offset = 0, next.elapsed = run.elapsed();
      save_train_state(opts.state_path, opts.state_key, device.str(), next, model, *optimizer);
      if (interrupted) stop_interrupted(run, "after epoch " + std::to_string(st.epoch + 1));
    }
  }
  if (opts.keep_best && !st.best.empty()) restore_state(model, st.best);
  result.history = st.history;
  result.best_val_acc = st.best_val_acc;
  result.best_epoch = st.best_epoch;
  result.steps = st.steps;
  result.seconds = run.elapsed();
  return result;
}

}  // namespace apricot
