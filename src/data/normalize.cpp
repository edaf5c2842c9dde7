// The normaliser (normalize.hpp).
#include "apricot/data/normalize.hpp"

#include "apricot/core/errors.hpp"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace apricot {

namespace {

nlohmann::json tensor_to_json(const torch::Tensor& t) {
  auto d = t.to(torch::kDouble).contiguous();
  const double* p = d.data_ptr<double>();
  std::function<nlohmann::json(int64_t, int64_t)> rec = [&](int64_t dim, int64_t off) {
    nlohmann::json arr = nlohmann::json::array();
    const int64_t stride = d.stride(dim);
    for (int64_t i = 0; i < d.size(dim); ++i) {
      if (dim + 1 == d.dim())
        arr.push_back(p[off + i]);
      else
        arr.push_back(rec(dim + 1, off + i * stride));
    }
    return arr;
  };
  return d.dim() == 0 ? nlohmann::json(p[0]) : rec(0, 0);
}

torch::Tensor json_to_tensor(const nlohmann::json& j, const std::string& what) {
  std::vector<int64_t> shape;
  for (const nlohmann::json* cur = &j; cur->is_array(); cur = &(*cur)[0]) {
    shape.push_back(static_cast<int64_t>(cur->size()));
    if (cur->empty()) break;
  }
  std::vector<float> flat;
  std::function<void(const nlohmann::json&, size_t)> rec = [&](const nlohmann::json& n, size_t dim) {
    if (dim == shape.size()) {
      if (!n.is_number()) state_error(what + ": expected a number, found " + n.dump());
      const double v = n.get<double>();  // to float only when it fits: out of range is undefined
      if (!(std::fabs(v) <= std::numeric_limits<float>::max()))
        state_error(what + ": " + n.dump() + " is outside the float range");
      flat.push_back(static_cast<float>(v));
      return;
    }
    if (!n.is_array() || static_cast<int64_t>(n.size()) != shape[dim])
      state_error(what + ": ragged or malformed nested list");
    for (const auto& e : n) rec(e, dim + 1);
  };
  rec(j, 0);
  return torch::tensor(flat, torch::kFloat).reshape(shape);
}

}  // namespace

Normalizer Normalizer::fit(const std::string& kind, const torch::Tensor& train_x) {
  if (kind != "scale" && kind != "channel" && kind != "pixel")
    config_error("data.normalize = \"" + kind + "\": unknown normalisation",
                 "use one of: scale, channel, pixel");
  TORCH_CHECK(train_x.dim() == 4 && train_x.scalar_type() == torch::kUInt8 && train_x.size(0) > 0,
              "Normalizer::fit expects a non-empty uint8 (N, C, H, W) tensor, got ",
              train_x.sizes());
  Normalizer n;
  n.kind = kind;
  if (kind == "scale") return n;
  torch::NoGradGuard no_grad;
  const int64_t N = train_x.size(0), C = train_x.size(1), H = train_x.size(2), W = train_x.size(3);
  // Double accumulation in chunks: exact enough for 50k images without a (N, C, H, W) double copy.
  constexpr int64_t kChunk = 1024;
  auto sum = torch::zeros({C, H, W}, torch::kDouble), sq = torch::zeros({C, H, W}, torch::kDouble);
  for (int64_t i = 0; i < N; i += kChunk) {
    auto c = train_x.slice(0, i, std::min(N, i + kChunk)).to(torch::kDouble).div_(255);
    sum += c.sum(0);
    if (kind == "channel") sq += (c * c).sum(0);
  }
  if (kind == "pixel") {
    n.mean = (sum / N).to(torch::kFloat);  // (C, H, W)
    return n;
  }
  const double count = static_cast<double>(N) * H * W;
  auto mean = sum.sum({1, 2}) / count;                                         // (C)
  auto var = (sq.sum({1, 2}) / count - mean * mean).clamp_min(0);              // population
  auto sd = var.sqrt();
  sd = torch::where(sd > 1e-12, sd, torch::ones_like(sd));  // a constant channel: no scaling
  n.mean = mean.view({C, 1, 1}).to(torch::kFloat);
  n.std = sd.view({C, 1, 1}).to(torch::kFloat);
  return n;
}

torch::Tensor Normalizer::apply(const torch::Tensor& x_u8) const {
  TORCH_CHECK(x_u8.dim() == 4 && x_u8.scalar_type() == torch::kUInt8,
              "Normalizer::apply expects uint8 (B, C, H, W), got ", x_u8.sizes(), " ",
              x_u8.scalar_type());
  auto x = x_u8.to(torch::kFloat).div_(255);  // (B, C, H, W)
  if (kind == "scale") return x;
  TORCH_CHECK(mean.defined(), "Normalizer(", kind, ") used before fit");
  if (kind == "channel") {
    TORCH_CHECK(mean.size(0) == x.size(1), "Normalizer: ", mean.size(0), " channels fitted, batch has ",
                x.size(1));
    return x.sub_(mean.to(x.device())).div_(std.to(x.device()));
  }
  TORCH_CHECK(mean.sizes() == x.sizes().slice(1), "Normalizer: mean image ", mean.sizes(),
              " does not match batch ", x.sizes());
  return x.sub_(mean.to(x.device()));
}

nlohmann::json Normalizer::to_json() const {
  nlohmann::json j{{"kind", kind}};
  if (mean.defined()) j["mean"] = tensor_to_json(mean.cpu());
  if (std.defined()) j["std"] = tensor_to_json(std.cpu());
  return j;
}

Normalizer Normalizer::from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string())
    state_error("normalizer: expected an object with a string \"kind\", found " + j.dump());
  Normalizer n;
  n.kind = j["kind"].get<std::string>();
  if (n.kind == "scale") return n;
  if (n.kind != "channel" && n.kind != "pixel")
    state_error("normalizer: unknown kind \"" + n.kind + "\" (expected scale, channel or pixel)");
  if (!j.contains("mean")) state_error("normalizer (" + n.kind + "): missing \"mean\"");
  n.mean = json_to_tensor(j["mean"], "normalizer.mean");
  if (n.kind == "pixel") {
    if (n.mean.dim() != 3) state_error("normalizer.mean: expected a (C, H, W) nested list");
    return n;
  }
  if (!j.contains("std")) state_error("normalizer (channel): missing \"std\"");
  n.std = json_to_tensor(j["std"], "normalizer.std");
  if (n.mean.dim() != 3 || n.mean.size(1) != 1 || n.mean.size(2) != 1 ||
      n.std.sizes() != n.mean.sizes())
    state_error("normalizer (channel): mean and std must both be (C, 1, 1) nested lists");
  if (!(n.std > 0).all().item<bool>())
    state_error("normalizer (channel): every std must be positive (fit never writes 0)");
  return n;
}

}  // namespace apricot
