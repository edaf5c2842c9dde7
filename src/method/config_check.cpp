// The range checks of rdlm.* (rdlm.hpp) and adapt.* (adapt.hpp).
#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/method/adapt.hpp"
#include "apricot/method/arms.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/train/train.hpp"

#include <nlohmann/json.hpp>

namespace apricot {

using nlohmann::json;

void validate(const RdlmConfig& r) {
  require(r.count >= 1 && r.count <= 1000, "rdlm.count", r.count, "in [1, 1000]");
  require_one_of("rdlm.layout", r.layout, {"sliding", "random", "balanced"});
  require(r.size >= 1, "rdlm.size", r.size, ">= 1");
  require(r.stride >= 0, "rdlm.stride", r.stride, ">= 0");
  require_one_of("rdlm.init", r.init, {"scratch", "base-early", "base"});
  require(r.init_epochs >= 1, "rdlm.init_epochs", r.init_epochs, ">= 1");
  require(r.epochs >= 1, "rdlm.epochs", r.epochs, ">= 1");
  require(r.finetune.epochs >= 1, "rdlm.finetune.epochs", r.finetune.epochs, ">= 1");
  require_one_of("rdlm.finetune.optimizer", r.finetune.optimizer, optimizer_names());
  require(r.finetune.lr > 0, "rdlm.finetune.lr", r.finetune.lr, "> 0");
  require(r.finetune.momentum >= 0 && r.finetune.momentum < 1, "rdlm.finetune.momentum", r.finetune.momentum,
          "in [0, 1)");
  require(r.parallel >= 1 && r.parallel <= 256, "rdlm.parallel", r.parallel, "in 1..256");
  for (const auto& d : r.devices)
    if (d == "auto" || !valid_device_name(d))
      config_error("config key 'rdlm.devices': '" + d + "' is not a device", "list devices such as [\"cuda:0\", \"cuda:1\"] (or cpu)");
}

void validate(const AdaptConfig& a) {
  require(a.parallel >= 1 && a.parallel <= 64, "adapt.parallel", a.parallel, "in 1..64");
  require(!a.strategies.empty(), "adapt.strategies", "[]", "a non-empty list of arms (1, 2, 3, none, ...)");
  for (const auto& s : a.strategies) require_one_of("adapt.strategies", s, strategy_names());
  for (size_t i = 0; i < a.strategies.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (a.strategies[i] == a.strategies[j])
        config_error("config key 'adapt.strategies': \"" + a.strategies[i] + "\" is listed twice",
                     "list each arm at most once");
  require_one_of("adapt.direction", a.direction, {"intent", "literal"});
  require(a.step > 0, "adapt.step", a.step, "> 0");
  require_one_of("adapt.step_mode", a.step_mode, {"per-input", "per-batch"});
  require(a.step_mode != "per-batch" || a.step <= 1, "adapt.step", a.step,
          "<= 1 with adapt.step_mode per-batch (the fraction of the way to the rDLMs' mean)");
  require(a.max_break_rate >= 0 && a.max_break_rate <= 1, "adapt.max_break_rate", a.max_break_rate,
          "in [0, 1] (1 = no bound)");
  require(a.bn_recalibrate == 0 || a.bn_recalibrate >= 2, "adapt.bn_recalibrate", a.bn_recalibrate,
          "0 (off) or >= 2 images (batch statistics need two)");
  require(a.batch_size >= 1, "adapt.batch_size", a.batch_size, ">= 1");
  require(a.passes >= 1, "adapt.passes", a.passes, ">= 1");
  require(a.patience >= 0, "adapt.patience", a.patience, ">= 0 (0 = off)");
  require(a.max_batches >= 0, "adapt.max_batches", a.max_batches, ">= 0 (0 = off)");
  require(a.time_budget >= 0, "adapt.time_budget", a.time_budget, ">= 0 seconds (0 = off)");
  require_one_of("adapt.selection", a.selection, {"val", "test"});
  require(a.retrain_every >= 0, "adapt.retrain_every", a.retrain_every, ">= 0 (0 = never)");
  if (!a.target.empty()) {
    if (a.target.size() != 2 || a.target[0] < 0 || a.target[1] < 0 || a.target[0] == a.target[1])
      config_error("config key 'adapt.target': " + json(a.target).dump() + " is not a pair of two different classes",
                   "write [src, dst], e.g. [3, 5] for inputs of class 3 predicted as 5, or [] for all failures");
  }
  require(a.retrain.epochs >= 0, "adapt.retrain.epochs", a.retrain.epochs, ">= 0");
  require(a.retrain.steps >= 0, "adapt.retrain.steps", a.retrain.steps, ">= 0");
  require(a.retrain.batch_size >= 1, "adapt.retrain.batch_size", a.retrain.batch_size, ">= 1");
  require_one_of("adapt.retrain.optimizer", a.retrain.optimizer, optimizer_names());
  require(a.retrain.lr > 0, "adapt.retrain.lr", a.retrain.lr, "> 0");
  require(a.retrain.momentum >= 0 && a.retrain.momentum < 1, "adapt.retrain.momentum", a.retrain.momentum,
          "in [0, 1)");
}

}  // namespace apricot
