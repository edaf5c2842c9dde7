// The weight-adjustment engine: a flat view of a model's weights, the rDLMs' weights stacked as one
// (n, P) matrix on the compute device, and Apricot's per-input updates (strategies 1, 2, 3) composed
// into one affine map per batch, w <- s*w + R^T u, applied with a single matrix-vector product.
// It does not decide which inputs fail or which rDLMs are right: callers pass the masks.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>
#include <cstdint>
#include <string>
#include <vector>

#include "apricot/method/arms.hpp"  // Strategy

namespace apricot {

// Which tensors of a model form "the weights", in a fixed order: every trainable parameter (frozen
// ones, requires_grad false, are never changed), and when include_buffers every floating-point
// buffer (BatchNorm running mean/var, frozen layers' too); never integer buffers such as
// num_batches_tracked.
struct WeightLayout {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets;  // start of each tensor in the flat vector
  int64_t total = 0;             // P
  bool include_buffers = false;
};

WeightLayout weight_layout(const torch::nn::Module& model, bool include_buffers);
// (P) float32 on the model's device. Checks names and shapes against the layout.
torch::Tensor flatten_weights(const torch::nn::Module& model, const WeightLayout& layout);
// Copies `flat` (P) into the model's tensors in place, under NoGradGuard.
void assign_weights(torch::nn::Module& model, const WeightLayout& layout, const torch::Tensor& flat);

enum class Direction { kIntent, kLiteral };     // see docs/METHOD.md, Phase 2
// kPerInput: the paper's per-input step r. kPerBatch: the batch's per-input updates averaged and
// normalised so that r is the fraction of the way toward the rDLMs' weighted mean.
enum class StepMode { kPerInput, kPerBatch };
StepMode parse_step_mode(const std::string& s);  // "per-input" "per-batch"; throws kState
std::string to_string(StepMode m);
Direction parse_direction(const std::string& s);  // "intent" "literal"; throws kState
std::string to_string(Direction d);

// The composition of a batch's per-input updates: w_final = s * w + R^T u.
struct AffineUpdate {
  double s = 1.0;
  torch::Tensor u;       // (n) float64, CPU
  int64_t adjusted = 0;  // inputs that changed w (a > 0, and b > 0 for strategy 3)
};

// correct: (F, n) bool on CPU, row f = which rDLMs classify failing input f correctly, in the order
// the updates are applied. Computed in double precision.
// kPerBatch: with F' the inputs that would change w and d(x) the per-input update of step 1 at the
// batch's starting w, w' = w + r * sum_F' d(x) / sum_F' q(x), q = p_c (strategies 1, 2) or p_i (3).
// For strategy 2 that is w' = (1 - r) w + r t, t = sum p_c(x) cbar(x) / sum p_c(x).
AffineUpdate compose_updates(const torch::Tensor& correct, Strategy strategy, Direction direction,
                             double step, StepMode mode = StepMode::kPerInput);
// w (P), R (n, P) on one device, same float dtype. Returns s*w + R^T u in w's dtype.
torch::Tensor apply_update(const torch::Tensor& w, const torch::Tensor& R, const AffineUpdate& upd);
// The reference: the per-input updates of docs/METHOD.md applied one at a time with explicit means of
// the correct / incorrect rDLMs' rows. Slow; kept for tests and `apricot bench adjust`.
torch::Tensor naive_adjust(const torch::Tensor& w, const torch::Tensor& R, const torch::Tensor& correct,
                           Strategy strategy, Direction direction, double step,
                           StepMode mode = StepMode::kPerInput);

}  // namespace apricot
