// One split of a dataset: images and labels, decoded once into one uint8 tensor each.
#pragma once
#include <torch/types.h>
#include <cstdint>
#include <string>
#include <vector>

namespace apricot {

// One split: images (N, C, H, W) uint8 on the CPU, labels (N) int64.
struct Split {
  torch::Tensor x;  // (N, C, H, W) uint8
  torch::Tensor y;  // (N) int64 in [0, classes)
  int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

}  // namespace apricot
