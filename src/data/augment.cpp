// Augmentation (augment.hpp): vectorised shifts and flips of a batch.
#include "apricot/data/augment.hpp"

#include "apricot/core/errors.hpp"

#include <torch/torch.h>

#include <string>

namespace apricot {

torch::Tensor shift_batch(const torch::Tensor& x, const torch::Tensor& dy, const torch::Tensor& dx,
                          const std::string& fill) {
  if (fill != "edge" && fill != "zero")
    config_error("train.augment.fill = \"" + fill + "\": unknown fill", "use one of: edge, zero");
  TORCH_CHECK(x.dim() == 4, "shift_batch expects (B, C, H, W), got ", x.sizes());
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(dy.numel() == B && dx.numel() == B, "shift_batch: need one dy and dx per image");
  const auto li = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  // Source coordinate of each output pixel: row i reads row i - dy, column j reads column j - dx.
  auto r = torch::arange(H, li).view({1, H}) - dy.to(li).view({B, 1});  // (B, H)
  auto q = torch::arange(W, li).view({1, W}) - dx.to(li).view({B, 1});  // (B, W)
  auto rc = r.clamp(0, H - 1).view({B, 1, H, 1}).expand({B, C, H, W});
  auto qc = q.clamp(0, W - 1).view({B, 1, 1, W}).expand({B, C, H, W});
  auto out = x.gather(2, rc).gather(3, qc);  // (B, C, H, W), edge-replicated
  if (fill == "zero") {
    auto valid = ((r >= 0) & (r < H)).view({B, 1, H, 1}) & ((q >= 0) & (q < W)).view({B, 1, 1, W});
    out = torch::where(valid, out, torch::zeros({}, out.options()));  // (B, 1, H, W) broadcast
  }
  return out;
}

torch::Tensor augment_batch(const torch::Tensor& x, double shift, const std::string& fill, bool flip,
                            torch::Generator& gen) {
  if (!(shift >= 0.0 && shift < 1.0))
    config_error("train.augment.shift = " + std::to_string(shift) + " must be in [0, 1)");
  TORCH_CHECK(x.dim() == 4, "augment_batch expects (B, C, H, W), got ", x.sizes());
  const int64_t B = x.size(0);
  const int64_t sy = std::llround(shift * x.size(2)), sx = std::llround(shift * x.size(3));
  torch::Tensor out = x;
  // Draws happen on the CPU generator in a fixed order (dy, dx, flip) so results match across
  // devices.
  if (sy > 0 || sx > 0) {
    auto dy = torch::randint(-sy, sy + 1, {B}, gen, torch::kLong);
    auto dx = torch::randint(-sx, sx + 1, {B}, gen, torch::kLong);
    out = shift_batch(out, dy, dx, fill);
  } else if (fill != "edge" && fill != "zero") {
    config_error("train.augment.fill = \"" + fill + "\": unknown fill", "use one of: edge, zero");
  }
  if (flip) {
    auto m = (torch::randint(0, 2, {B}, gen, torch::kLong) == 1).to(x.device()).view({B, 1, 1, 1});
    out = torch::where(m, out.flip({3}), out);
  }
  return out;
}

}  // namespace apricot
