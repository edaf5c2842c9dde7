// The weight-adjustment engine: flat weight vectors, Apricot's per-input updates composed into one
// affine map per batch (w <- s*w + R^T u, coefficients in double on the CPU, one matrix-vector product
// on R's device), and the naive per-input reference. It does not decide which inputs fail.
#include "apricot/method/adjustment.hpp"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "apricot/core/errors.hpp"

namespace apricot {

namespace {

// The model's weight tensors, in the layout's fixed order: the trainable named_parameters()
// (recursive, registration order), then, if include_buffers, the floating-point named_buffers(). The
// tensors share storage with the model, so writing into them (under NoGradGuard) writes the model.
// A frozen parameter (requires_grad false, as the user's module says) is not a weight here: no
// adjustment or soup moves it, not even by rounding (s*w + R^T u is not exactly w when every rDLM
// holds w).
std::vector<std::pair<std::string, torch::Tensor>> collect(const torch::nn::Module& model,
                                                           bool include_buffers) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  }
  if (include_buffers) {
    for (const auto& item : model.named_buffers(/*recurse=*/true)) {
      // Integer buffers (BatchNorm's num_batches_tracked) are counters, not weights.
      if (item.value().defined() && item.value().is_floating_point()) {
        out.emplace_back(item.key(), item.value());
      }
    }
  }
  return out;
}

// The same tensors, checked against the layout they are supposed to follow.
std::vector<std::pair<std::string, torch::Tensor>> collect_checked(const torch::nn::Module& model,
                                                                   const WeightLayout& layout) {
  auto tensors = collect(model, layout.include_buffers);
  TORCH_CHECK(tensors.size() == layout.names.size(), "weights: model has ", tensors.size(),
              " weight tensors, layout has ", layout.names.size());
  TORCH_CHECK(layout.shapes.size() == layout.names.size() && layout.offsets.size() == layout.names.size(),
              "weights: malformed layout");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    TORCH_CHECK(name == layout.names[i], "weights: tensor ", i, " is '", name, "', layout expects '",
                layout.names[i], "'");
    TORCH_CHECK(t.sizes().vec() == layout.shapes[i], "weights: '", name, "' has shape ", t.sizes(),
                ", layout expects ", c10::IntArrayRef(layout.shapes[i]));
  }
  return tensors;
}

// Per-strategy switches: update w <- w + g*(cc*p_c*(cbar - w) - ci*p_i*(ibar - w)).
struct Terms {
  double cc = 0.0;  // weight of the "toward the correct rDLMs" term
  double ci = 0.0;  // weight of the "away from the incorrect rDLMs" term
};

Terms terms_of(Strategy strategy) {
  switch (strategy) {
    case Strategy::k1: return {1.0, 1.0};
    case Strategy::k2: return {1.0, 0.0};
    case Strategy::k3: return {0.0, 1.0};
    default: return {0.0, 0.0};  // the arms that do not adjust
  }
}

// Whether an input with a correct and b incorrect rDLMs changes w.
bool changes_w(Strategy strategy, int64_t a, int64_t b) {
  if (!adjusts(strategy) || a == 0) return false;  // a == 0: skipped (Algorithm 2, l. 12)
  if (strategy == Strategy::k3) return b > 0;               // nothing to move away from
  return true;
}

void check_mask(const torch::Tensor& correct, int64_t n) {
  TORCH_CHECK(correct.dim() == 2, "weights: correctness mask must be (F, n), got ", correct.sizes());
  TORCH_CHECK(correct.scalar_type() == torch::kBool, "weights: correctness mask must be bool");
  TORCH_CHECK(n < 0 || correct.size(1) == n, "weights: mask has ", correct.size(1),
              " columns, R has ", n, " rows");
}

}  // namespace

WeightLayout weight_layout(const torch::nn::Module& model, bool include_buffers) {
  WeightLayout layout;
  layout.include_buffers = include_buffers;
  for (const auto& [name, t] : collect(model, include_buffers)) {
    layout.names.push_back(name);
    layout.shapes.push_back(t.sizes().vec());
    layout.offsets.push_back(layout.total);
    layout.total += t.numel();
  }
  return layout;
}

torch::Tensor flatten_weights(const torch::nn::Module& model, const WeightLayout& layout) {
  const auto tensors = collect_checked(model, layout);
  if (tensors.empty()) return torch::empty({0}, torch::kFloat);
  std::vector<torch::Tensor> parts;
  parts.reserve(tensors.size());
  for (const auto& [name, t] : tensors) parts.push_back(t.detach().reshape(-1).to(torch::kFloat));
  auto flat = torch::cat(parts);  // (P)
  TORCH_CHECK(flat.numel() == layout.total, "weights: flattened ", flat.numel(), " values, layout says ",
              layout.total);
  return flat;
}

void assign_weights(torch::nn::Module& model, const WeightLayout& layout, const torch::Tensor& flat) {
  TORCH_CHECK(flat.dim() == 1 && flat.numel() == layout.total, "weights: flat vector has shape ",
              flat.sizes(), ", layout needs (", layout.total, ")");
  TORCH_CHECK(flat.is_floating_point(), "weights: flat vector must be floating point");
  const auto tensors = collect_checked(model, layout);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i].second;
    auto slice = flat.slice(0, layout.offsets[i], layout.offsets[i] + t.numel()).view(t.sizes());
    t.copy_(slice);  // converts dtype and device as needed
  }
}

StepMode parse_step_mode(const std::string& s) {
  if (s == "per-input") return StepMode::kPerInput;
  if (s == "per-batch") return StepMode::kPerBatch;
  state_error("unknown adapt.step_mode '" + s + "'", "valid modes: per-input (the paper), per-batch");
}

std::string to_string(StepMode m) { return m == StepMode::kPerInput ? "per-input" : "per-batch"; }

Direction parse_direction(const std::string& s) {
  if (s == "intent") return Direction::kIntent;
  if (s == "literal") return Direction::kLiteral;
  state_error("unknown adjustment direction '" + s + "'",
              "valid directions: intent (toward the correct rDLMs, as the paper's text says), literal "
              "(the paper's equations (2)-(4) as printed)");
}

std::string to_string(Direction d) { return d == Direction::kIntent ? "intent" : "literal"; }

// One input with a correct and b = n - a incorrect rDLMs, g = step (intent) or -step (literal):
//   w' = w + g*(cc*p_c*(cbar - w) - ci*p_i*(ibar - w))
//      = (1 - g*cc*p_c + g*ci*p_i) * w + sum_{j in C} (g*cc/n) R_j - sum_{j in I} (g*ci/n) R_j
// because p_c*cbar = (a/n)*(1/a)*sum_C R_j = (1/n)*sum_C R_j, and likewise for I. So each input is
// w' = alpha*w + R^T v, and composing onto w_k = s*w + R^T u gives s' = alpha*s, u' = alpha*u + v.
//
// Direction::kLiteral is the paper's equations (2)-(4) as printed, with Algorithm 2's
// corrDiff = w - cbar and incorrDiff = w - ibar (lines 18-19):
//   (2) strategy 1: w' = w + r*(p_c*(w - cbar) - p_i*(w - ibar))
//   (3) strategy 2: w' = w + r*p_c*(w - cbar)
//   (4) strategy 3: w' = w - r*p_i*(w - ibar)
// Each is exactly the intent update with r replaced by -r: away from the correct rDLMs' mean, toward the
// incorrect ones' mean. Skips (a == 0) and `adjusted` are the same in both directions.
AffineUpdate compose_updates(const torch::Tensor& correct, Strategy strategy, Direction direction,
                             double step, StepMode mode) {
  check_mask(correct, -1);
  TORCH_CHECK(correct.device().is_cpu(), "weights: compose_updates needs the mask on the CPU");
  const auto mask = correct.contiguous();
  const int64_t num_failing = mask.size(0);
  const int64_t n = mask.size(1);
  AffineUpdate upd;
  upd.u = torch::zeros({n}, torch::kDouble);  // (n)
  if (!adjusts(strategy) || n == 0) return upd;

  const Terms terms = terms_of(strategy);
  const double g = direction == Direction::kIntent ? step : -step;
  const auto m = mask.accessor<bool, 2>();
  auto u = upd.u.accessor<double, 1>();
  std::vector<double> v(n);
  // per-batch: each input's update with step 1 at the starting w is d(x) = alpha1*w + R^T v1 with
  // alpha1 = -cc*p_c + ci*p_i and v1_j = cc/n (rDLM j right) or -ci/n (wrong); they are summed, then
  // scaled by g / sum q: w' = (1 + g*A/Q) w + R^T (g*V/Q), V accumulated in u.
  const bool per_batch = mode == StepMode::kPerBatch;
  double A = 0, Q = 0;
  for (int64_t f = 0; f < num_failing; ++f) {
    int64_t a = 0;
    for (int64_t j = 0; j < n; ++j) a += m[f][j] ? 1 : 0;
    const int64_t b = n - a;
    if (!changes_w(strategy, a, b)) continue;
    const double p_c = static_cast<double>(a) / n;
    const double p_i = static_cast<double>(b) / n;
    ++upd.adjusted;
    if (per_batch) {
      A += -terms.cc * p_c + terms.ci * p_i;
      Q += strategy == Strategy::k3 ? p_i : p_c;
      for (int64_t j = 0; j < n; ++j) u[j] += m[f][j] ? terms.cc / n : -terms.ci / n;
      continue;
    }
    const double alpha = 1.0 - g * terms.cc * p_c + g * terms.ci * p_i;
    for (int64_t j = 0; j < n; ++j) v[j] = m[f][j] ? g * terms.cc / n : -g * terms.ci / n;
    upd.s *= alpha;
    for (int64_t j = 0; j < n; ++j) u[j] = alpha * u[j] + v[j];
  }
  if (per_batch && upd.adjusted > 0) {
    upd.s = 1.0 + g * A / Q;
    for (int64_t j = 0; j < n; ++j) u[j] *= g / Q;
  }
  return upd;
}

torch::Tensor apply_update(const torch::Tensor& w, const torch::Tensor& R, const AffineUpdate& upd) {
  TORCH_CHECK(w.dim() == 1 && R.dim() == 2 && R.size(1) == w.size(0), "weights: need w (P) and R (n, P), got ",
              w.sizes(), " and ", R.sizes());
  TORCH_CHECK(w.device() == R.device(), "weights: w on ", w.device(), ", R on ", R.device());
  TORCH_CHECK(w.scalar_type() == R.scalar_type() && w.is_floating_point(),
              "weights: w and R must share one floating dtype");
  TORCH_CHECK(upd.u.defined() && upd.u.dim() == 1 && upd.u.size(0) == R.size(0), "weights: u must be (",
              R.size(0), ")");
  torch::NoGradGuard no_grad;
  const auto u = upd.u.to(R.options());  // (n), a few bytes to the device
  // s*w + (R^T) u in one pass over R; R.t() is a strided view, not a copy.
  if (w.scalar_type() == torch::kDouble || (std::isfinite(upd.s) && std::abs(upd.s) <= 3.0e38))
    return torch::addmv(w, R.t(), u, /*beta=*/upd.s, /*alpha=*/1.0);  // (P)
  // A scale beyond the weights' dtype (a huge adapt.step): LibTorch refuses such a scalar, so go
  // through a tensor cast, which yields inf/NaN weights the caller then rejects.
  const auto s_t = torch::tensor(upd.s, torch::kFloat64).to(w.options());
  return torch::addmv(w * s_t, R.t(), u);
}

torch::Tensor naive_adjust(const torch::Tensor& w, const torch::Tensor& R, const torch::Tensor& correct,
                           Strategy strategy, Direction direction, double step, StepMode mode) {
  TORCH_CHECK(w.dim() == 1 && R.dim() == 2 && R.size(1) == w.size(0), "weights: need w (P) and R (n, P)");
  TORCH_CHECK(w.device() == R.device() && w.scalar_type() == R.scalar_type(),
              "weights: w and R must share device and dtype");
  check_mask(correct, R.size(0));
  torch::NoGradGuard no_grad;
  const auto mask = correct.to(torch::kCPU).contiguous();
  const int64_t n = R.size(0);
  auto cur = w.clone();  // (P)
  if (!adjusts(strategy)) return cur;
  const double r = step;
  // per-batch: every update is taken at the starting w with step 1, summed with its weight q.
  const bool per_batch = mode == StepMode::kPerBatch;
  auto sum_d = torch::zeros_like(w);
  double sum_q = 0;
  for (int64_t f = 0; f < mask.size(0); ++f) {
    const auto row = mask[f];                                   // (n)
    const auto idx_c = row.nonzero().reshape(-1);               // (a)
    const auto idx_i = row.logical_not().nonzero().reshape(-1);  // (b)
    const int64_t a = idx_c.numel();
    const int64_t b = idx_i.numel();
    if (a == 0) continue;  // no rDLM is right: nothing to move toward (Algorithm 2, lines 12-13)
    const double p_c = static_cast<double>(a) / n;
    const double p_i = static_cast<double>(b) / n;
    const auto cbar = R.index_select(0, idx_c.to(R.device())).mean(0);  // (P)
    // The incorrect term is zero when b == 0; a zero-filled mean keeps the formulas uniform.
    const auto ibar = b > 0 ? R.index_select(0, idx_i.to(R.device())).mean(0) : torch::zeros_like(cur);
    if (per_batch) {
      if (strategy == Strategy::k3 && b == 0) continue;  // nothing to move away from
      const double sign = direction == Direction::kIntent ? 1.0 : -1.0;
      switch (strategy) {
        case Strategy::k1: sum_d += sign * (p_c * (cbar - w) - p_i * (ibar - w)), sum_q += p_c; break;
        case Strategy::k2: sum_d += sign * p_c * (cbar - w), sum_q += p_c; break;
        case Strategy::k3: sum_d += -sign * p_i * (ibar - w), sum_q += p_i; break;
        default: break;
      }
      continue;
    }
    if (direction == Direction::kIntent) {
      switch (strategy) {
        case Strategy::k1: cur = cur + r * (p_c * (cbar - cur) - p_i * (ibar - cur)); break;
        case Strategy::k2: cur = cur + r * p_c * (cbar - cur); break;
        case Strategy::k3: cur = cur - r * p_i * (ibar - cur); break;
        default: break;
      }
    } else {
      // Algorithm 2 lines 18-19 and equations (2)-(4), as printed.
      const auto corr_diff = cur - cbar;
      const auto incorr_diff = cur - ibar;
      switch (strategy) {
        case Strategy::k1: cur = cur + r * (p_c * corr_diff - p_i * incorr_diff); break;
        case Strategy::k2: cur = cur + r * p_c * corr_diff; break;
        case Strategy::k3: cur = cur - r * p_i * incorr_diff; break;
        default: break;
      }
    }
  }
  if (per_batch && sum_q > 0) cur = w + r * sum_d / sum_q;
  return cur;
}


}  // namespace apricot
