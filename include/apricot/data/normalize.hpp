// The normaliser: fitted on the training split, applied per batch, stored in model.json.
#pragma once
#include <torch/types.h>
#include <nlohmann/json.hpp>
#include <string>

namespace apricot {

// Normalisation fitted on the training split, applied per batch (on whatever device the batch is).
//   kind "scale":   x / 255
//   kind "channel": (x / 255 - mean_c) / std_c      mean/std shape (C, 1, 1)
//   kind "pixel":   x / 255 - mean image            mean shape (C, H, W), std unused (Keras ResNet)
struct Normalizer {
  std::string kind = "scale";
  torch::Tensor mean;  // float32, see above; undefined for "scale"
  torch::Tensor std;   // float32 (C, 1, 1) for "channel"; undefined otherwise

  static Normalizer fit(const std::string& kind, const torch::Tensor& train_x);
  // uint8 (B, C, H, W) on any device -> float32 (B, C, H, W) on the same device.
  torch::Tensor apply(const torch::Tensor& x_u8) const;
  nlohmann::json to_json() const;  // mean/std as nested lists, for model.json
  static Normalizer from_json(const nlohmann::json& j);
};

}  // namespace apricot
