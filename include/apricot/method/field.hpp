// Field repair (docs/FIELD.md): the field arms of the registry (finetune, finetune-interp,
// soup-interp, apricot-interp, head-only). Each fine-tunes the base on the field set's selection part
// mixed with replayed training images, at one budget of training images (|field.lrs| x field.steps x
// field.batch_size), and keeps the candidate the one selection rule prefers:
//   score = (accuracy on the field selection part + accuracy on the clean validation split) / 2,
//   among the candidates that break at most adapt.max_break_rate of the validation inputs the base
//   gets right (the base itself is a candidate, so an arm that cannot help returns the base).
// The field hold-out and the test split are measured, never selected on.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"

namespace apricot {

struct AdaptRequest;

// The checks of the field fine-tuning recipe (field.replay, steps, batch_size, optimizer, lrs,
// momentum, checkpoint_every, members, interp_points); kUsage naming the key.
void validate_field_recipe(const FieldConfig& f);

// The coefficients an interpolating arm tries: 0, 1/(points-1), ..., 1.
std::vector<double> interp_alphas(int64_t points);
// The point `alpha` of the way from base to tuned (flat weights of one layout): base for 0 and tuned
// for 1, bit for bit (torch::lerp).
torch::Tensor interpolate(const torch::Tensor& base, const torch::Tensor& tuned, double alpha);
// The last layer's parameter names: the trailing parameters whose first dimension is the class
// count (a linear head's weight and bias). Error(kState) when the model ends otherwise.
std::vector<std::string> head_parameters(const torch::nn::Module& model, int64_t classes);

// Runs one field arm over the work directory's base model and writes adapt-<arm>/{model.pt,
// model.json, result.json}. A stored result made from the same base, data, field set and settings
// is returned unless req.force. Error(kData) for bad field data, before anything is written.
nlohmann::json run_field_arm(const Config& cfg, const Dataset& data, const std::string& workdir,
                             const torch::Device& device, const AdaptRequest& req);

}  // namespace apricot
