// A model's state (every parameter and buffer) as a list of tensors.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>
#include <vector>

namespace apricot {

// Clones every parameter and buffer (a deep snapshot; the module's live tensors are not aliased),
// and copies such a snapshot back in place.
std::vector<torch::Tensor> snapshot_state(const torch::nn::Module& model);
void restore_state(torch::nn::Module& model, const std::vector<torch::Tensor>& state);

}  // namespace apricot
