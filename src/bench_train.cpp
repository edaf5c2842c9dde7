// `apricot bench train`: training and inference images/s of one model at one batch size, measured
// on the tool's own training step (uint8 batch indexed on the device, normalisation, forward, loss,
// backward, SGD step), after warm-up, as the median of repeats, synchronising the device.
#include <torch/cuda.h>
#include <torch/optim.h>

#include <algorithm>
#include <chrono>

#include "apricot/bench.hpp"
#include "apricot/device.hpp"
#include "apricot/errors.hpp"
#include "apricot/train.hpp"
#include "timing.hpp"

namespace apricot {


nlohmann::json bench_train(const ModelSpec& spec, int64_t batch, const std::string& precision, int64_t steps,
                           int64_t repeats, int64_t warmup, const torch::Device& device) {
  if (precision != "fp32" && precision != "bf16")
    config_error("bench train --precision " + precision + " is not valid", "use fp32 or bf16");
  const bool bf16 = precision == "bf16";
  if (bf16 && !device.is_cuda()) config_error("--precision bf16 needs a CUDA device", "use --precision fp32");
  torch::manual_seed(0);
  Net model = make_model(spec);
  model->to(device);
  auto gen = at::detail::createCPUGenerator(1);
  const int64_t n = batch * 8;
  auto cpu_u8 = torch::TensorOptions().dtype(torch::kUInt8);
  auto x_all = torch::randint(0, 256, {n, spec.channels, spec.height, spec.width}, gen, cpu_u8).to(device);
  auto y_all = torch::randint(0, spec.classes, {n}, gen, torch::kInt64).to(device);
  Normalizer norm;  // "scale", the same per-batch work as training
  auto optimizer = make_optimizer("sgd", 0.01, 0.9, false, 0.0, model->parameters());
  auto batch_idx = [&](int64_t i) {
    return torch::arange(((i * batch) % n), ((i * batch) % n) + batch, torch::kInt64).remainder(n).to(device);
  };

  model->train();
  const double train_ms = median_ms(repeats, warmup, device, [&] {
    for (int64_t s = 0; s < steps; ++s) {
      auto idx = batch_idx(s);
      train_step(*model, *optimizer, norm.apply(x_all.index_select(0, idx)), y_all.index_select(0, idx), bf16);
    }
  });
  model->eval();
  const double infer_ms = median_ms(repeats, warmup, device, [&] {
    torch::NoGradGuard no_grad;
    AutocastBf16 autocast(bf16);
    for (int64_t s = 0; s < steps; ++s) model->forward(norm.apply(x_all.index_select(0, batch_idx(s)))).argmax(1);
  });
  const double images = static_cast<double>(steps * batch);
  return {{"arch", spec.arch},
          {"batch", batch},
          {"precision", precision},
          {"device", device.str()},
          {"input", {spec.channels, spec.height, spec.width}},
          {"classes", spec.classes},
          {"steps", steps},
          {"repeats", repeats},
          {"threads", torch::get_num_threads()},
          {"train_images_per_s", images / (train_ms / 1000)},
          {"infer_images_per_s", images / (infer_ms / 1000)}};
}

}  // namespace apricot
