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
#include <mutex>
#include <optional>

#include "apricot/checkpoint.hpp"
#include "apricot/device.hpp"
#include "apricot/errors.hpp"
#include "apricot/parallel.hpp"
#include "apricot/progress.hpp"
#include "apricot/resume.hpp"

namespace apricot {

using nlohmann::json;

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Switches cuDNN autotuning off while alive; nested pauses restore it once, at the end.
class AutotunePause {
 public:
  AutotunePause() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (depth_++ == 0) {
      saved_ = at::globalContext().benchmarkCuDNN();
      at::globalContext().setBenchmarkCuDNN(false);
    }
  }
  ~AutotunePause() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--depth_ == 0) at::globalContext().setBenchmarkCuDNN(saved_);
  }
  AutotunePause(const AutotunePause&) = delete;
  AutotunePause& operator=(const AutotunePause&) = delete;

 private:
  static inline std::mutex mutex_;
  static inline int depth_ = 0;
  static inline bool saved_ = false;
};
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

void set_memory_format(torch::nn::Module& model, bool channels_last) {
  torch::NoGradGuard no_grad;
  const auto fmt = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (auto& t : model.parameters())
    if (t.dim() == 4) t.set_data(t.data().contiguous(fmt));
  for (auto& t : model.buffers())
    if (t.dim() == 4) t.set_data(t.data().contiguous(fmt));
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
  // Not on a worker of concurrent trainings: the flag is process-wide, so a pause would switch
  // autotuning off for the others' training steps too (and cuDNN keeps what it picked then).
  std::optional<AutotunePause> pause;
  if (device.is_cuda() && !in_parallel_worker()) pause.emplace();
  const int64_t n = x.size(0);
  auto out = torch::empty({n}, torch::kInt64);
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; i += batch_size) {
    auto xb = x.slice(0, i, std::min(n, i + batch_size)).to(device, /*non_blocking=*/true);
    parts.push_back(model.forward(norm.apply(xb)).argmax(1));
  }
  if (was_training) model.train();
  if (parts.empty()) return out;
  return torch::cat(parts).to(torch::kCPU);
}

double accuracy(NetImpl& model, const Split& split, const Normalizer& norm, const torch::Device& device,
                int64_t batch_size) {
  if (split.size() == 0) return 0.0;
  auto pred = predict(model, split.x, norm, device, batch_size);
  return pred.eq(split.y).sum().item<double>() / static_cast<double>(split.size());
}

namespace {

bool params_finite(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& p : model.parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

json history_json(const std::vector<EpochStats>& h) {
  json out = json::array();
  for (const auto& st : h)
    out.push_back({{"epoch", st.epoch}, {"steps", st.steps}, {"lr", st.lr}, {"loss", st.loss},
                   {"train_acc", st.train_acc}, {"val_acc", st.val_acc}, {"seconds", st.seconds},
                   {"images_per_s", st.images_per_s}});
  return out;
}

std::vector<EpochStats> history_from_json(const json& j) {
  std::vector<EpochStats> out;
  for (const auto& e : j) {
    EpochStats st;
    st.epoch = e.at("epoch"), st.steps = e.at("steps"), st.lr = e.at("lr"), st.loss = e.at("loss");
    st.train_acc = e.at("train_acc"), st.val_acc = e.at("val_acc"), st.seconds = e.at("seconds");
    st.images_per_s = e.at("images_per_s");
    out.push_back(st);
  }
  return out;
}

}  // namespace

std::string metrics_jsonl(const std::vector<EpochStats>& history) {
  std::string out;
  for (const auto& line : history_json(history)) out += line.dump() + "\n";
  return out;
}

TrainResult train_model(NetImpl& model, const Dataset& data, const torch::Tensor& subset, const TrainOptions& opts,
                        const torch::Device& device, uint64_t seed) {
  const TrainConfig& rc = opts.recipe;
  model.to(device);
  model.train();
  // Channels-last only while training (before the optimiser takes the parameters, so its state
  // follows); the model goes back to contiguous at the end, so checkpoints are always NCHW.
  const bool channels_last = rc.memory_format == "channels_last";
  struct Layout {  // back to NCHW on every way out (an exception too: callers may go on with the model)
    NetImpl& m;
    bool on;
    ~Layout() {
      if (on) set_memory_format(m, false);
    }
  } layout{model, channels_last};
  if (channels_last) set_memory_format(model, true);
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
  // indexes device memory instead of copying a batch from the host. Concurrent trainings share one
  // copy (opts.device_train).
  const bool shared = opts.device_train && opts.device_train->x.device() == device;
  const torch::Tensor src_x = shared ? opts.device_train->x : device.is_cuda() ? data.train.x.to(device) : data.train.x;
  const torch::Tensor src_y = shared ? opts.device_train->y : device.is_cuda() ? data.train.y.to(device) : data.train.y;
  auto optimizer = make_optimizer(rc.optimizer, rc.lr, rc.momentum, rc.nesterov, rc.weight_decay, model.parameters());
  TrainResult result;
  std::vector<torch::Tensor> best;
  Progress progress(opts.label, opts.progress);
  const bool augment = rc.augment.shift > 0 || rc.augment.flip;
  auto t_start = Clock::now();
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const bool resumable = !opts.state_path.empty();

  // Where the loop starts: epoch start_epoch, row offset start_offset of its permutation.
  int64_t start_epoch = 0, start_offset = 0, resumed_seen = 0;
  double elapsed_before = 0;
  torch::Tensor resumed_perm, resumed_loss, resumed_correct;
  // Saves everything the loop needs to continue exactly where it is. offset < 0: at an epoch end.
  auto save = [&](int64_t epoch, int64_t offset, const torch::Tensor& perm, const torch::Tensor& loss_sum,
                  const torch::Tensor& correct, int64_t seen) {
    torch::serialize::OutputArchive a;
    write_module(a, "model", model);
    write_optimizer(a, "optimizer", *optimizer);
    write_generator(a, "gen", gen);
    write_tensors(a, "best", best);
    if (offset >= 0) {
      a.write("perm", perm);
      a.write("loss_sum", loss_sum.to(torch::kCPU));
      a.write("correct", correct.to(torch::kCPU));
    }
    json meta = {{"format", "apricot-train-state"}, {"key", opts.state_key}, {"label", opts.label},
                 {"device", device.str()}, {"epoch", offset >= 0 ? epoch : epoch + 1},
                 {"offset", std::max<int64_t>(offset, 0)}, {"mid_epoch", offset >= 0}, {"seen", seen},
                 {"steps", result.steps}, {"best_val_acc", result.best_val_acc}, {"best_epoch", result.best_epoch},
                 {"history", history_json(result.history)}, {"elapsed", elapsed_before + since(t_start)}};
    save_state(opts.state_path, a, meta);
  };
  if (resumable) {
    install_interrupt_handlers();  // from here on SIGINT/SIGTERM save the state and exit 130
    LoadedState st = load_state(opts.state_path, "delete it (or rerun with --force) to start this phase over");
    if (st.archive && (st.meta.value("key", json()) != opts.state_key || st.meta.value("device", "") != device.str())) {
      spdlog::warn("{}: saved state {} belongs to another configuration or device; starting over", opts.label,
                   meta_path_for(opts.state_path));
      remove_state(opts.state_path);
    } else if (st.archive) {
      try {
        auto& a = *st.archive;
        read_module(a, "model", model);
        read_optimizer(a, "optimizer", *optimizer);
        read_generator(a, "gen", gen);
        best = read_tensors(a, "best");
        start_epoch = st.meta.at("epoch");
        if (st.meta.at("mid_epoch").get<bool>()) {
          start_offset = st.meta.at("offset");
          resumed_seen = st.meta.at("seen");
          a.read("perm", resumed_perm);
          a.read("loss_sum", resumed_loss);
          a.read("correct", resumed_correct);
        }
        result.steps = st.meta.at("steps");
        result.best_val_acc = st.meta.at("best_val_acc");
        result.best_epoch = st.meta.at("best_epoch");
        result.history = history_from_json(st.meta.at("history"));
        elapsed_before = st.meta.at("elapsed");
      } catch (const std::exception& e) {
        state_error(opts.label + ": saved state '" + opts.state_path + "' is unusable: " + e.what(),
                    "delete it (or rerun with --force) to start this phase over");
      }
      result.resumed_epoch = start_epoch;
      result.resumed_step = result.steps;
      spdlog::info("{}: resuming from saved state at epoch {} step {} ({})", opts.label, start_epoch + 1,
                   result.steps, meta_path_for(opts.state_path));
    }
  }
  auto diverged = [&](int64_t epoch, int64_t step_in_epoch, const std::string& what) {
    progress.finish();
    throw TrainingDiverged(
        ExitCode::kOther,
        opts.label + ": " + what + " at epoch " + std::to_string(epoch + 1) + ", step " +
            std::to_string(step_in_epoch) + " of the epoch (global step " + std::to_string(result.steps) +
            "): training diverged",
        std::string("lower the learning rate (train.lr) or check the data") +
            (resumable && state_exists(opts.state_path)
                 ? "; the last good state is kept in " + meta_path_for(opts.state_path)
                 : ""));
  };

  for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
    auto t_epoch = Clock::now();
    double lr = lr_at_epoch(rc, epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    const bool continuing = epoch == start_epoch && resumed_perm.defined();
    auto perm = continuing ? resumed_perm : idx_all.index_select(0, torch::randperm(n, gen, torch::kInt64));
    auto loss_sum = continuing ? resumed_loss.to(device) : torch::zeros({}, f64);
    auto correct = continuing ? resumed_correct.to(device) : torch::zeros({}, i64);
    int64_t seen = continuing ? resumed_seen : 0;
    const int64_t first = continuing ? start_offset : 0;
    int64_t step_in_epoch = first / rc.batch_size;
    for (int64_t i = first; i < n; i += rc.batch_size) {
      if (opts.max_steps > 0 && result.steps >= opts.max_steps) break;
      auto bidx = perm.slice(0, i, std::min(n, i + rc.batch_size));
      auto didx = bidx.to(device, true);
      auto xb = src_x.index_select(0, didx);  // (B, C, H, W) uint8
      auto yb = src_y.index_select(0, didx);  // (B)
      auto x = data.norm.apply(xb);
      if (augment) x = augment_batch(x, rc.augment.shift, rc.augment.fill, rc.augment.flip, gen);
      if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      auto out = train_step(model, *optimizer, x, yb, bf16);
      const int64_t b = bidx.size(0);
      ++result.steps;
      ++step_in_epoch;
      // On the CPU the check costs nothing; on a GPU it would synchronise every step, so there it
      // runs on the accumulated loss when the progress line redraws and at the end of the epoch.
      if (!device.is_cuda() && !std::isfinite(out.loss.item<float>())) diverged(epoch, step_in_epoch, "the loss is not finite");
      {
        torch::NoGradGuard no_grad;
        loss_sum += out.loss.to(torch::kFloat64) * b;
        correct += out.correct;
      }
      seen += b;
      if (resumable && interrupt_requested()) {
        progress.finish();
        if (!params_finite(model)) diverged(epoch, step_in_epoch, "the weights are not finite");
        save(epoch, i + b, perm, loss_sum, correct, seen);
        throw_interrupted(opts.label + ": state saved to " + meta_path_for(opts.state_path) + " at epoch " +
                              std::to_string(epoch + 1) + " step " + std::to_string(step_in_epoch),
                          opts.resume_hint.empty() ? "rerun the same command to resume" : opts.resume_hint);
      }
      if (progress.should_draw()) {
        double el = since(t_epoch);
        double done = static_cast<double>(epoch * steps_per_epoch + step_in_epoch);
        double total = static_cast<double>(opts.max_steps > 0 ? opts.max_steps : epochs * steps_per_epoch);
        double eta = since(t_start) / std::max(1.0, done - (result.resumed_step > 0 ? result.resumed_step : 0)) *
                     (total - done);
        const double mean_loss = loss_sum.item<double>() / seen;
        if (!std::isfinite(mean_loss)) diverged(epoch, step_in_epoch, "the loss is not finite (detected by this step)");
        char buf[256];
        std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s",
                      static_cast<long long>(epoch + 1), static_cast<long long>(epochs),
                      static_cast<long long>(step_in_epoch), static_cast<long long>(steps_per_epoch), mean_loss,
                      100.0 * correct.item<double>() / seen, (seen - (continuing ? resumed_seen : 0)) / el,
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
    st.images_per_s = (seen - (continuing ? resumed_seen : 0)) / std::max(1e-9, since(t_epoch));
    if (!std::isfinite(st.loss)) diverged(epoch, step_in_epoch, "the loss is not finite (detected by this step)");
    if (!params_finite(model)) diverged(epoch, step_in_epoch, "the weights are not finite");
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
    if (opts.on_epoch) {  // callers save copies of the model there: in NCHW, as every checkpoint
      if (channels_last) set_memory_format(model, false);
      opts.on_epoch(st, result.history);
      if (channels_last) set_memory_format(model, true);
    }
    if (resumable && epoch + 1 < epochs &&
        ((opts.state_every_epochs > 0 && (epoch + 1) % opts.state_every_epochs == 0) || interrupt_requested())) {
      save(epoch, -1, {}, {}, {}, 0);
      if (interrupt_requested())
        throw_interrupted(opts.label + ": state saved to " + meta_path_for(opts.state_path) + " after epoch " + std::to_string(epoch + 1),
                          opts.resume_hint.empty() ? "rerun the same command to resume" : opts.resume_hint);
    }
  }
  if (opts.keep_best && !best.empty()) restore_state(model, best);
  result.seconds = elapsed_before + since(t_start);
  return result;
}

}  // namespace apricot
