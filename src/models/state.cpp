// A model's state as a list of tensors (state.hpp).
#include "apricot/models/state.hpp"

#include <torch/torch.h>

namespace apricot {

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

}  // namespace apricot
