// Internal to src/method/field/: what the field arms' files share. The interface is
// apricot/method/field.hpp.
//   finetune.cpp  the mixed fine-tune (field images + replayed training images), the head, the recipe's checks
//   repair.cpp    the selection rule, the arms, result.json
//   gated.cpp     the gated patch's search (gates, experts, thresholds) and its distillation
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/data/field.hpp"
#include "apricot/models/model.hpp"
#include "apricot/models/state.hpp"
#include "apricot/train/eval.hpp"

namespace apricot::field_detail {

using json = nlohmann::json;

// A model's answers on the splits a field arm looks at (int64 predictions on the CPU): the clean
// validation split, the field's pick part (selection), its hold-out, the clean test split.
struct FieldAnswers {
  torch::Tensor val, pick, hold, test;
};

// The selection rule (field.hpp) with the base's answers it compares against.
struct Judge {
  const Dataset& data;
  const FieldSet& field;
  torch::Device device;
  int64_t eval_batch;
  double bound;                 // adapt.max_break_rate
  FieldAnswers base;
  torch::Tensor base_val_right;  // (N_val) bool
  int64_t allowed_breaks = 0;

  torch::Tensor answers(NetImpl& m, const Split& s) const;
  FieldAnswers answers_of(NetImpl& m) const;
};

double share(const torch::Tensor& right);  // the mean of a bool tensor, 0 when empty
inline double acc_of(const torch::Tensor& pred, const Split& s) { return share(pred.eq(s.y)); }

// A candidate's standing under the rule. A candidate stops being evaluated as soon as it breaks more
// validation answers than allowed (the same decisions, sooner): its accuracies are then unknown
// (complete false, null in the logs) and `breaks` is the count when it stopped.
struct Verdict {
  double field_acc = 0, val_acc = 0, score = 0;
  int64_t breaks = 0;
  bool admissible = true;
  bool complete = true;
  json to_json() const {
    auto known = [&](double v) { return complete ? json(v) : json(nullptr); };
    return {{"selection_field_acc", known(field_acc)}, {"val_acc", known(val_acc)}, {"score", known(score)},
            {"val_breaks", breaks}, {"admissible", admissible}};
  }
};

inline Verdict judge(const Judge& j, NetImpl& m) {
  Verdict v;
  const Split& val = j.data.val;
  const int64_t n = val.size(), chunk = std::min<int64_t>(j.eval_batch, 256);
  int64_t right = 0;
  for (int64_t at = 0; at < n; at += chunk) {  // the validation split first, in chunks: breaks end it early
    const int64_t end = std::min(n, at + chunk);
    const torch::Tensor r = predict(m, val.x.slice(0, at, end), j.data.norm, j.device, j.eval_batch).eq(val.y.slice(0, at, end));
    right += r.sum().item<int64_t>();
    v.breaks += (j.base_val_right.slice(0, at, end) & ~r).sum().item<int64_t>();
    if (v.breaks > j.allowed_breaks) {
      v.admissible = v.complete = false;
      return v;
    }
  }
  v.val_acc = n ? static_cast<double>(right) / static_cast<double>(n) : 0.0;
  v.field_acc = share(j.answers(m, j.field.pick).eq(j.field.pick.y));
  v.score = (v.val_acc + v.field_acc) / 2;
  return v;
}

// The best admissible candidate so far; starts with the base.
struct Chooser {
  double score = -std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> state;
  json where;
  int64_t candidates = 0, refused_breaks = 0, refused_nonfinite = 0;

  Verdict consider(const Judge& j, NetImpl& m, const json& at) {
    ++candidates;
    for (const auto& p : m.parameters())
      if (!torch::isfinite(p).all().item<bool>()) {
        ++refused_nonfinite;
        Verdict bad;
        bad.admissible = bad.complete = false;
        return bad;
      }
    const Verdict v = judge(j, m);
    if (!v.admissible) ++refused_breaks;
    if (v.admissible && v.score > score) score = v.score, state = snapshot_state(m), where = at;
    return v;
  }
};

// One fine-tune of the model in place: `steps` optimiser steps of field.batch_size images, each batch
// a fresh draw of field fit images (cycling through seeded permutations) and replayed
// training images (uniform, seeded) in the ratio 1 : field.replay, normalised and augmented as
// train.augment says. head_only: only the head's parameters change, with the model in eval mode
// (BatchNorm statistics and dropout as the base has them). `checkpoint(step)` is called, with the
// model in eval mode, every `every` steps and after the last (every 0: after the last only).
// Returns the training images used. Throws TrainingDiverged when the loss stops being finite.
struct FineTune {
  int64_t steps = 0;
  double lr = 0;
  uint64_t seed = 0;
  bool head_only = false;
  int64_t every = 0;
};
int64_t fine_tune(const Config& cfg, const Dataset& data, const FieldSet& field, NetImpl& model,
                  const torch::Device& device, const FineTune& ft, const std::function<void(int64_t)>& checkpoint);

// The gated arms' outcome (gated.cpp): the chosen model (the base itself, a plain expert, or the
// composite; gated-distilled: one network of the base's architecture) and its search log.
struct GatedOutcome {
  Net chosen;                     // null: the base itself (the model passed in, restored)
  nlohmann::json where;           // {"base": true} or {"lr", "step" | "alpha", "gate", "tau"} (+ "distilled")
  double score = 0;
  int64_t candidates = 0, refused_breaks = 0;
  int64_t finetune_images = 0, gate_images = 0, distill_images = 0;
  double finetune_seconds = 0, evaluation_seconds = 0, gate_seconds = 0;
  double teacher_seconds = 0;     // gated-distilled with a stored gated result: what that run took
  nlohmann::json search = nlohmann::json::array();  // per learning rate: each expert's best threshold
  nlohmann::json gates = nlohmann::json::array();   // per gate: its training and how it separates
  nlohmann::json cost;                               // inference time and parameters against the base
};
// gated: the gates, every expert candidate under every gate and threshold, the choice and its cost.
GatedOutcome run_gated(const Config& cfg, const Dataset& data, const FieldSet& field, const Judge& judge,
                       NetImpl& base, const ModelSpec& spec, const torch::Device& device);
// The outcome of a stored gated result (adapt-gated/result.json) made from the same inputs, with its
// model: gated-distilled's teacher without running the search again.
GatedOutcome stored_gated(const nlohmann::json& result, Net model);
// gated-distilled: replaces a composite outcome by its distillation (a base or a plain expert stays).
void distil_gated(GatedOutcome& out, const Config& cfg, const Dataset& data, const FieldSet& field,
                  const Judge& judge, NetImpl& base, const ModelSpec& spec, const torch::Device& device);

}  // namespace apricot::field_detail
