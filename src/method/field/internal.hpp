// Internal to src/method/field/: what the field arms' files share. The interface is
// apricot/method/field.hpp.
//   finetune.cpp  the mixed fine-tune (field images + replayed training images), the head, the recipe's checks
//   repair.cpp    the selection rule, the arms, result.json
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/data/field.hpp"
#include "apricot/models/model.hpp"

namespace apricot::field_detail {

// One fine-tune of the model in place: `steps` optimiser steps of field.batch_size images, each batch
// a fresh draw of field selection images (cycling through seeded permutations) and replayed
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

}  // namespace apricot::field_detail
