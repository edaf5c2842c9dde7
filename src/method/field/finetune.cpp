// The field arms' fine-tune (internal.hpp), the interpolation and the head (field.hpp).
#include "internal.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <set>

#include "apricot/core/errors.hpp"
#include "apricot/data/augment.hpp"
#include "apricot/method/field.hpp"
#include "apricot/train/train.hpp"

namespace apricot {

std::vector<double> interp_alphas(int64_t points) {
  std::vector<double> a;
  for (int64_t i = 0; i < points; ++i) a.push_back(static_cast<double>(i) / static_cast<double>(points - 1));
  return a;
}

torch::Tensor interpolate(const torch::Tensor& base, const torch::Tensor& tuned, double alpha) {
  return torch::lerp(base, tuned, alpha);
}

std::vector<std::string> head_parameters(const torch::nn::Module& model, int64_t classes) {
  const auto params = model.named_parameters(/*recurse=*/true);
  std::vector<std::string> head;
  for (size_t i = params.size(); i-- > 0;) {
    const torch::Tensor& p = params[i].value();
    if (p.dim() < 1 || p.size(0) != classes) break;
    head.insert(head.begin(), params[i].key());
    if (p.dim() >= 2) break;  // the weight ends the head; a bias comes after it
  }
  if (head.empty() || params[params.size() - 1].value().size(0) != classes)
    state_error("the model's last parameter is not a classification head with " + std::to_string(classes) +
                    " outputs",
                "head-only fine-tunes the last layer; use finetune for this model");
  return head;
}

namespace field_detail {

int64_t fine_tune(const Config& cfg, const Dataset& data, const FieldSet& field, NetImpl& model,
                  const torch::Device& device, const FineTune& ft, const std::function<void(int64_t)>& checkpoint) {
  const FieldConfig& fc = cfg.field;
  const int64_t batch = fc.batch_size;
  const int64_t n_field = std::clamp<int64_t>(std::llround(static_cast<double>(batch) / (1.0 + fc.replay)), 1, batch);
  const int64_t n_replay = data.train.size() > 0 ? batch - n_field : 0;
  auto gen = at::detail::createCPUGenerator(ft.seed);
  seed_model_stream(model, ft.seed);  // a TorchScript module's dropout: the same draws whatever ran before
  torch::Generator aug_gen = at::detail::createCPUGenerator(ft.seed ^ 0xA5A5A5A5ULL);

  // The parameters that change; head-only freezes the rest for the fine-tune's duration.
  std::vector<torch::Tensor> params;
  std::vector<std::pair<torch::Tensor, bool>> frozen;
  if (ft.head_only) {
    const auto names = head_parameters(model, data.classes);
    const std::set<std::string> head(names.begin(), names.end());
    for (const auto& p : model.named_parameters(true)) {
      if (head.count(p.key())) {
        if (p.value().requires_grad()) params.push_back(p.value());
      } else if (p.value().requires_grad()) {
        frozen.emplace_back(p.value(), true);
        p.value().set_requires_grad(false);
      }
    }
  } else {
    params = trainable_parameters(model);
  }
  struct Unfreeze {
    std::vector<std::pair<torch::Tensor, bool>>& f;
    ~Unfreeze() {
      for (auto& [t, rg] : f) t.set_requires_grad(rg);
    }
  } unfreeze{frozen};
  auto optimizer = make_optimizer(fc.optimizer, ft.lr, fc.momentum, false, 0.0, params);
  const AugmentConfig& a = cfg.train.augment;
  const bool augment = a.shift > 0 || a.flip;

  torch::Tensor order;  // the field rows of the current cycle
  int64_t at = 0;
  auto next_field = [&](int64_t n) {
    std::vector<torch::Tensor> parts;
    while (n > 0) {
      if (!order.defined() || at == order.size(0)) order = torch::randperm(field.fit.size(), gen, torch::kInt64), at = 0;
      const int64_t take = std::min(n, order.size(0) - at);
      parts.push_back(order.slice(0, at, at + take));
      at += take, n -= take;
    }
    return torch::cat(parts);
  };
  auto set_mode = [&] { ft.head_only ? model.eval() : model.train(); };
  set_mode();
  for (int64_t step = 1; step <= ft.steps; ++step) {
    const torch::Tensor fi = next_field(n_field);
    torch::Tensor x = field.fit.x.index_select(0, fi), y = field.fit.y.index_select(0, fi);
    if (n_replay > 0) {
      const torch::Tensor ri = torch::randint(data.train.size(), {n_replay}, gen, torch::kInt64);
      x = torch::cat({x, data.train.x.index_select(0, ri)});
      y = torch::cat({y, data.train.y.index_select(0, ri)});
    }
    torch::Tensor xb = data.norm.apply(x.to(device));
    if (augment) xb = augment_batch(xb, a.shift, a.fill, a.flip, aug_gen);
    const StepOutput out = train_step(model, *optimizer, xb, y.to(device));
    const bool last = step == ft.steps;
    if (last || (ft.every > 0 && step % ft.every == 0)) {
      const double loss = out.loss.item<double>();
      if (!std::isfinite(loss))
        throw TrainingDiverged(ExitCode::kState, "the field fine-tune's loss is " + std::to_string(loss) +
                                                     " at step " + std::to_string(step) + " (lr " +
                                                     std::to_string(ft.lr) + ")",
                               "lower field.lrs");
      model.eval();
      checkpoint(step);
      set_mode();
    }
  }
  model.eval();
  return ft.steps * (n_field + n_replay);
}

}  // namespace field_detail
}  // namespace apricot
