// The training loop (base model, rDLMs, retraining during adaptation) and batched inference.
// A free function over an in-memory dataset: batches index a seeded permutation of the uint8 train
// tensor; normalisation and augmentation run per batch on the compute device. No checkpointing here.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/models/model.hpp"

namespace torch::optim {
class Optimizer;
}

namespace apricot {

struct EpochStats {
  int64_t epoch = 0;          // 1-based
  int64_t steps = 0;          // optimiser steps so far
  double lr = 0;              // learning rate used in this epoch
  double loss = 0;            // mean training loss
  double train_acc = 0;       // accuracy on the training batches (augmented, train mode)
  double val_acc = -1;        // -1 when not evaluated
  double seconds = 0;         // wall time of the epoch (training + validation)
  double images_per_s = 0;    // training throughput
};

void to_json(nlohmann::json& j, const EpochStats& e);
void from_json(const nlohmann::json& j, EpochStats& e);

// Everything the training loop changes, weights and optimiser aside. Saved at epoch ends and, on a
// signal, mid-epoch (resume.hpp); the scalars go to state.json, the tensors to its archive.
struct TrainState {
  int64_t epoch = 0;          // the epoch in progress (0-based)
  int64_t offset = 0;         // rows of its permutation already trained on (0: not started)
  int64_t steps = 0;          // optimiser steps so far
  double best_val_acc = -1;   // keep_best: the best epoch's validation accuracy
  int64_t best_epoch = 0;
  std::vector<EpochStats> history;
  double elapsed = 0;         // seconds, including earlier processes of a resumed run
  // Tensors, kept in the state's archive:
  at::Generator gen;          // permutations and augmentation
  torch::Tensor perm;         // this epoch's order of the training rows (when offset > 0)
  torch::Tensor loss_sum;     // () float64: this epoch's summed loss so far (when offset > 0)
  torch::Tensor correct;      // () int64: this epoch's correct training predictions so far (when offset > 0)
  std::vector<torch::Tensor> best;  // keep_best: the best epoch's weights
};
void to_json(nlohmann::json& j, const TrainState& s);  // the scalars
void from_json(const nlohmann::json& j, TrainState& s);

struct TrainOptions {
  TrainConfig recipe;
  int64_t max_steps = 0;       // > 0: stop after this many optimiser steps (may end mid-epoch)
  bool keep_best = true;       // evaluate val each epoch and restore the best epoch's weights at the end
  std::string label = "train";  // shown in progress and logs
  bool progress = true;        // live progress on stderr
  bool log_epochs = true;      // one info line per epoch (debug level when false)
  // After each epoch (after validation); `history` holds every epoch so far, including those of an
  // earlier process when the run was resumed.
  std::function<void(const EpochStats&, const std::vector<EpochStats>& history)> on_epoch;
  // Resumable state (resume.hpp). With a path, the loop saves its whole state there every
  // state_every_epochs epochs and when SIGINT/SIGTERM arrives (then it throws kInterrupted), and
  // starts from a state found there whose key equals state_key. The caller removes the state once
  // the final output is safe. Without a path, signals are not checked.
  std::string state_path;
  nlohmann::json state_key;
  int64_t state_every_epochs = 1;
  std::string resume_hint;  // shown when interrupted, e.g. the command to rerun
  // The training split already on the compute device (uint8 x, int64 y), shared by concurrent
  // trainings instead of one copy each; used when it is on `device`.
  const Split* device_train = nullptr;
};

// Thrown when the training loss stops being finite; the model's weights are then not usable.
struct TrainingDiverged : Error {
  using Error::Error;
};

struct TrainResult {
  std::vector<EpochStats> history;
  double best_val_acc = -1;  // -1 when keep_best is off
  int64_t best_epoch = 0;
  int64_t steps = 0;
  double seconds = 0;
  int64_t resumed_epoch = -1;  // >= 0: continued from a saved state at this (0-based) epoch
  int64_t resumed_step = 0;    // global step of that state
  bool stopped_early = false;  // recipe.patience ended it before recipe.epochs
};

// metrics.jsonl contents: one JSON line per epoch (epoch, steps, lr, loss, train_acc, val_acc,
// seconds, images_per_s).
std::string metrics_jsonl(const std::vector<EpochStats>& history);

// The learning rate at `epoch` (0-based). step: lr * gamma^(number of lr_steps <= epoch). cosine:
// lr_min + (lr - lr_min) (1 + cos(pi e / (epochs - 1))) / 2, so lr in the first epoch and lr_min in the
// last (recipe.epochs; later epochs keep lr_min).
double lr_at_epoch(const TrainConfig& recipe, int64_t epoch);
// Makes a recipe's learning rate constant and turns early stopping off (the rDLMs' fine-tuning, the
// adaptation's retraining and the matched control's training use a recipe so).
void use_constant_lr(TrainConfig& recipe);

// The parameters an optimiser may change: those with requires_grad (a user's module may freeze some;
// weight decay and momentum never touch those either).
std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& model);
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name, double lr, double momentum,
                                                        bool nesterov, double weight_decay,
                                                        std::vector<torch::Tensor> params);

// One optimiser step on a prepared (normalised, augmented) batch x (B, C, H, W), labels y (B).
// Returns the loss and the number of correct predictions as device scalars (no host sync).
struct StepOutput {
  torch::Tensor loss;     // () float, detached
  torch::Tensor correct;  // () int64
};
// bf16: the forward pass under CUDA bf16 autocast (the backward pass follows its dtypes).
StepOutput train_step(NetImpl& model, torch::optim::Optimizer& optimizer, const torch::Tensor& x,
                      const torch::Tensor& y, bool bf16 = false);

// Trains `model` (moved to `device`) on data.train rows `subset` (int64 indices; undefined = all).
// Deterministic in `seed` on CPU.
TrainResult train_model(NetImpl& model, const Dataset& data, const torch::Tensor& subset, const TrainOptions& opts,
                        const torch::Device& device, uint64_t seed);

// BatchNorm recalibration (docs/METHOD.md, "Variants beyond the paper"): resets every BatchNorm layer's running
// mean and variance and recomputes them as the plain average of the batch statistics of a forward
// pass in training mode, without gradients, over the uint8 images x (N, C, H, W), in equal chunks of
// at most batch_size. Parameters, num_batches_tracked and the train/eval mode are left as they were.
// Returns the number of BatchNorm layers recalibrated (0: the model has none and is untouched).
int64_t recalibrate_batchnorm(NetImpl& model, const torch::Tensor& x, const Normalizer& norm,
                              const torch::Device& device, int64_t batch_size);

// The images adapt.bn_recalibrate (and eval --bn-recalibrate) recalibrate on: the first n rows
// (at most all) of a permutation of the training split seeded by `seed`, the same for every arm.
torch::Tensor recalibration_images(const Split& train, uint64_t seed, int64_t n);

// Puts the 4-D parameters and buffers (convolution weights) of `model` in channels-last (NHWC)
// memory order, or back to contiguous (NCHW). Values are unchanged.
void set_memory_format(torch::nn::Module& model, bool channels_last);

// ---- resumable state (io/resume.hpp's state files) ----
// The training loop's state, with its model and optimiser. `device` is part of the key.
void save_train_state(const std::string& pt_path, const nlohmann::json& key, const std::string& device,
                      const TrainState& st, const torch::nn::Module& model, torch::optim::Optimizer& optimizer);
bool load_train_state(const std::string& pt_path, const nlohmann::json& key, const std::string& device,
                      TrainState& st, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                      const std::string& what);


// train.optimizer's values (and rdlm.finetune's, adapt.retrain's): "sgd" "adam" "rmsprop".
const std::vector<std::string>& optimizer_names();
void validate(const TrainConfig& t);  // the range checks of train.*; kUsage naming the key

}  // namespace apricot
