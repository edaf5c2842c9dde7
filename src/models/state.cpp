// A model's state as a list of tensors (state.hpp), and its own random stream (model.hpp).
#include "apricot/models/state.hpp"

#include "apricot/models/model.hpp"

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

void seed_model_stream(NetImpl& model, uint64_t seed) {
  if (auto g = model.random_stream()) {
    std::lock_guard<std::mutex> lock(g->mutex());
    g->set_current_seed(seed);
  }
}

torch::Tensor model_stream_state(const NetImpl& model) {
  auto g = model.random_stream();
  if (!g) return {};
  std::lock_guard<std::mutex> lock(g->mutex());
  return g->get_state();
}

void set_model_stream_state(NetImpl& model, const torch::Tensor& state) {
  if (auto g = model.random_stream()) {
    std::lock_guard<std::mutex> lock(g->mutex());
    g->set_state(state);
  }
}

}  // namespace apricot
