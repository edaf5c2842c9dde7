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

namespace apricot {

// Which tensors of a model form "the weights", in a fixed order: every parameter, and when
// include_buffers every floating-point buffer (BatchNorm running mean/var); never integer buffers
// such as num_batches_tracked.
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

enum class Strategy { kNone, k1, k2, k3 };      // kNone: the control arm, no adjustment
enum class Direction { kIntent, kLiteral };     // see APRICOT.md, Phase 2
Strategy parse_strategy(const std::string& s);  // "1" "2" "3" "none"; throws kUsage listing valid
std::string to_string(Strategy s);
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
AffineUpdate compose_updates(const torch::Tensor& correct, Strategy strategy, Direction direction,
                             double step);
// w (P), R (n, P) on one device, same float dtype. Returns s*w + R^T u in w's dtype.
torch::Tensor apply_update(const torch::Tensor& w, const torch::Tensor& R, const AffineUpdate& upd);
// The reference: the per-input updates of APRICOT.md applied one at a time with explicit means of
// the correct / incorrect rDLMs' rows. Slow; kept for tests and `apricot bench adjust`.
torch::Tensor naive_adjust(const torch::Tensor& w, const torch::Tensor& R, const torch::Tensor& correct,
                           Strategy strategy, Direction direction, double step);

// Clones every parameter and buffer (a deep snapshot; the module's live tensors are not aliased),
// and copies such a snapshot back in place.
std::vector<torch::Tensor> snapshot_state(const torch::nn::Module& model);
void restore_state(torch::nn::Module& model, const std::vector<torch::Tensor>& state);

}  // namespace apricot
