// The range checks of rdlm.* (rdlm.hpp), adapt.* (adapt.hpp) and the field recipe (field.hpp).
#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/method/adapt.hpp"
#include "apricot/method/arms.hpp"
#include "apricot/method/field.hpp"
#include "apricot/models/gated.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/train/train.hpp"

#include <nlohmann/json.hpp>

#include <cmath>

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
  require(!r.finetune.lr_factors.empty(), "rdlm.finetune.lr_factors", "[]", "a non-empty list (e.g. [1])");
  for (double f : r.finetune.lr_factors) require(f > 0, "rdlm.finetune.lr_factors", f, "factors > 0");
  require(!r.finetune.augment.empty(), "rdlm.finetune.augment", "[]", "a non-empty list (e.g. [\"train\"])");
  for (const auto& a : r.finetune.augment) require_one_of("rdlm.finetune.augment", a, {"train", "none", "flip", "shift", "shift+flip"});
  if (r.init != "base" && (r.finetune.lr_factors != std::vector<double>{1.0} ||
                           r.finetune.augment != std::vector<std::string>{"train"}))
    config_error("rdlm.finetune.lr_factors and rdlm.finetune.augment vary the rDLMs' fine-tuning, but rdlm.init is \"" +
                     r.init + "\" (the rDLMs are not fine-tuned)",
                 "set rdlm.init to \"base\", or leave lr_factors at [1] and augment at [\"train\"]");
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

void validate_field_recipe(const FieldConfig& f) {
  if (f.format.empty()) return;
  require(f.replay >= 0 && f.replay <= 100, "field.replay", f.replay,
          "in [0, 100] replayed training images per field image");
  require(f.steps >= 1, "field.steps", f.steps, ">= 1");
  require(f.batch_size >= 2, "field.batch_size", f.batch_size, ">= 2");
  require_one_of("field.optimizer", f.optimizer, optimizer_names());
  require(!f.lrs.empty() && f.lrs.size() <= 16, "field.lrs", f.lrs.size(), "a list of 1 to 16 learning rates");
  for (double lr : f.lrs) require(lr > 0 && std::isfinite(lr), "field.lrs", lr, "> 0");
  require(f.momentum >= 0 && f.momentum < 1, "field.momentum", f.momentum, "in [0, 1)");
  require(f.checkpoint_every >= 0, "field.checkpoint_every", f.checkpoint_every, ">= 0 (0 = the last step only)");
  require(f.members >= 2 && f.members <= 64, "field.members", f.members, "in [2, 64]");
  require(f.steps % f.members == 0, "field.members", f.members,
          "a divisor of field.steps (each member takes steps / members, so that every arm spends the same images)");
  require(f.interp_points >= 2 && f.interp_points <= 101, "field.interp_points", f.interp_points, "in [2, 101]");
  require(!f.gates.empty() && f.gates.size() <= 4, "field.gates", f.gates.size(),
          "a list of 1 to 4 gates (input, logits)");
  for (const auto& g : f.gates) require_one_of("field.gates", g, gate_kinds());
  for (size_t i = 0; i < f.gates.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (f.gates[i] == f.gates[j])
        config_error("config key 'field.gates' names '" + f.gates[i] + "' twice", "name each gate once");
  require(f.gate_steps >= 1 && f.gate_steps <= 100000, "field.gate_steps", f.gate_steps, "in [1, 100000]");
}

}  // namespace apricot
