// The range checks of train.* (train.hpp).
#include "apricot/core/config.hpp"
#include "apricot/train/train.hpp"

namespace apricot {

const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names = {"sgd", "adam", "rmsprop"};
  return names;
}

void validate(const TrainConfig& t) {
  require(t.epochs >= 1, "train.epochs", t.epochs, ">= 1");
  require(t.batch_size >= 1, "train.batch_size", t.batch_size, ">= 1");
  require_one_of("train.optimizer", t.optimizer, optimizer_names());
  require(t.lr > 0, "train.lr", t.lr, "> 0");
  require(t.momentum >= 0 && t.momentum < 1, "train.momentum", t.momentum, "in [0, 1)");
  require(t.weight_decay >= 0, "train.weight_decay", t.weight_decay, ">= 0");
  require_one_of("train.lr_schedule", t.lr_schedule, {"step", "cosine"});
  for (auto s : t.lr_steps) require(s >= 1, "train.lr_steps", s, "epochs >= 1");
  require(t.lr_gamma > 0, "train.lr_gamma", t.lr_gamma, "> 0");
  require(t.lr_schedule == "step" || t.lr_steps.empty(), "train.lr_steps", "a list",
          "[] with train.lr_schedule cosine (the steps belong to the step schedule)");
  require(t.lr_min >= 0 && t.lr_min <= t.lr, "train.lr_min", t.lr_min, "in [0, train.lr]");
  require(t.patience >= 0, "train.patience", t.patience, ">= 0 (0 = no early stopping)");
  require(t.augment.shift >= 0 && t.augment.shift < 0.5, "train.augment.shift", t.augment.shift, "in [0, 0.5)");
  require_one_of("train.augment.fill", t.augment.fill, {"edge", "zero"});
  require_one_of("train.precision", t.precision, {"fp32", "bf16"});
  require_one_of("train.memory_format", t.memory_format, {"contiguous", "channels_last"});
  require(t.eval_batch_size >= 1, "train.eval_batch_size", t.eval_batch_size, ">= 1");
  require(!t.nesterov || (t.optimizer == "sgd" && t.momentum > 0), "train.nesterov", "true",
          "false unless train.optimizer is sgd with momentum > 0");
}

}  // namespace apricot
