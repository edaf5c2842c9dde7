// Augmentation, vectorised per batch.
#pragma once
#include <torch/types.h>
#include <cstdint>
#include <string>
#include <vector>

namespace apricot {

// Augmentation on a normalised float batch (B, C, H, W), vectorised: each image gets an integer
// shift (dy, dx) uniform in [-round(shift*H), round(shift*H)] x [-round(shift*W), ...] with
// fill "edge" (replicate border) or "zero", and a horizontal flip with probability 0.5 if flip.
// Random draws come from `gen` (a CPU generator) so results are identical across devices.
torch::Tensor augment_batch(const torch::Tensor& x, double shift, const std::string& fill, bool flip,
                            torch::Generator& gen);

// Shift a batch by explicit per-image offsets; dy, dx int64 (B). Positive dy moves content down,
// positive dx moves content right. Exposed for tests.
torch::Tensor shift_batch(const torch::Tensor& x, const torch::Tensor& dy, const torch::Tensor& dx,
                          const std::string& fill);

}  // namespace apricot
