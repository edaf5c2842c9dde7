// The committed TorchScript fixtures (tests/fixtures/README.md) as the tests read them: their path,
// the documented input, the PyTorch logits files, and a model's eval-mode output for comparison.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <string>
#include <vector>

#include "apricot/models/model.hpp"

namespace apricot::test {

inline std::string fixture(const std::string& name) {
  return std::string(APRICOT_SOURCE_DIR) + "/tests/fixtures/" + name;
}

// The fixtures' documented input: arange(2*1*H*W) / 512 - 0.25, shape (2, 1, H, W).
inline torch::Tensor fixture_input(int64_t h = 16, int64_t w = 16) {
  return torch::arange(2 * h * w, torch::kFloat32).reshape({2, 1, h, w}) / 512.0 - 0.25;
}

// A NAME.logits.txt file: the (2, 4) logits PyTorch computed for fixture_input().
inline torch::Tensor logits_file(const std::string& name) {
  std::ifstream in(fixture(name));
  std::vector<float> v;
  for (float f; in >> f;) v.push_back(f);
  EXPECT_EQ(v.size(), 8u) << name;
  return v.size() == 8 ? torch::tensor(v).reshape({2, 4}) : torch::zeros({2, 4});
}

inline torch::Tensor eval_logits(NetImpl& m, const torch::Tensor& x) {
  torch::NoGradGuard g;
  m.eval();
  return m.forward(x);
}

}  // namespace apricot::test
