// The committed TorchScript fixtures (tests/fixtures/README.md) as the tests read them: their path,
// the documented input, the PyTorch logits files, and a model's eval-mode output for comparison.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "apricot/models/model.hpp"

namespace apricot::test {

// Which set of fixtures: APRICOT_FIXTURES names a folder under tests/fixtures (pytorch-2.15: the
// same files saved by PyTorch 2.15); unset, the files in tests/fixtures itself (PyTorch 1.13).
inline std::string fixture_set() {
  const char* set = std::getenv("APRICOT_FIXTURES");
  return set && *set ? set : "";
}

inline std::string fixture(const std::string& name) {
  const std::string set = fixture_set();
  return std::string(APRICOT_SOURCE_DIR) + "/tests/fixtures/" + (set.empty() ? "" : set + "/") + name;
}

// The fixtures' documented input: arange(2*1*H*W) / 512 - 0.25, shape (2, 1, H, W).
inline torch::Tensor fixture_input(int64_t h = 16, int64_t w = 16) {
  return torch::arange(2 * h * w, torch::kFloat32).reshape({2, 1, h, w}) / 512.0 - 0.25;
}

// A NAME.logits.txt file: the (2, 4) logits PyTorch computed for fixture_input(). logits_at takes
// the file's path, logits_file its name in the fixture set.
inline torch::Tensor logits_at(const std::string& path) {
  std::ifstream in(path);
  std::vector<float> v;
  for (float f; in >> f;) v.push_back(f);
  EXPECT_EQ(v.size(), 8u) << path;
  return v.size() == 8 ? torch::tensor(v).reshape({2, 4}) : torch::zeros({2, 4});
}
inline torch::Tensor logits_file(const std::string& name) { return logits_at(fixture(name)); }

inline torch::Tensor eval_logits(NetImpl& m, const torch::Tensor& x) {
  torch::NoGradGuard g;
  m.eval();
  return m.forward(x);
}

}  // namespace apricot::test
