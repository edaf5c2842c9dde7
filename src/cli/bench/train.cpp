// `apricot bench train`: training and inference images/s of one model at one batch size, measured
// on the tool's own training step (uint8 batch indexed on the device, normalisation, forward, loss,
// backward, SGD step), after warm-up, as the median of repeats, synchronising the device.
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/optim.h>

#include <algorithm>
#include <memory>

#include "bench.hpp"
#include "apricot/core/device.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/core/clock.hpp"
#include "apricot/train/train.hpp"
#include "apricot/core/timing.hpp"

namespace apricot {

namespace {
void check_precision(const std::string& precision, const std::vector<torch::Device>& devices) {
  if (precision != "fp32" && precision != "bf16")
    config_error("--precision " + precision + " is not valid", "use fp32 or bf16");
  for (const auto& d : devices)
    if (precision == "bf16" && !d.is_cuda()) config_error("--precision bf16 needs a CUDA device", "use --precision fp32");
}

// Random uint8 images and labels on `device`, n rows.
std::pair<torch::Tensor, torch::Tensor> random_data(const ModelSpec& spec, int64_t n, const torch::Device& device) {
  auto gen = at::detail::createCPUGenerator(1);
  auto cpu_u8 = torch::TensorOptions().dtype(torch::kUInt8);
  auto x = torch::randint(0, 256, {n, spec.channels, spec.height, spec.width}, gen, cpu_u8).to(device);
  auto y = torch::randint(0, spec.classes, {n}, gen, torch::kInt64).to(device);
  return {x, y};
}
}  // namespace

std::vector<nlohmann::json> bench_train_models(const std::vector<ModelSpec>& specs, int64_t batch,
                                               const std::string& precision, int64_t steps, int64_t repeats,
                                               int64_t warmup, const torch::Device& device, bool channels_last) {
  TORCH_CHECK(!specs.empty() && batch >= 1 && steps >= 1 && repeats >= 1 && warmup >= 0, "bench_train: bad arguments");
  check_precision(precision, {device});
  const bool bf16 = precision == "bf16";
  const auto fmt = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const int64_t n = batch * 8;
  struct Runner {
    Net model;
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    torch::Tensor x_all, y_all;
    std::vector<double> train_ms, infer_ms;
  };
  std::vector<Runner> runners;
  for (const auto& spec : specs) {
    Runner r;
    torch::manual_seed(0);
    r.model = make_model(spec);
    r.model->to(device);
    if (channels_last) set_memory_format(*r.model, true);
    std::tie(r.x_all, r.y_all) = random_data(spec, n, device);
    r.optimizer = make_optimizer("sgd", 0.01, 0.9, false, 0.0, trainable_parameters(*r.model));
    runners.push_back(std::move(r));
  }
  Normalizer norm;  // "scale", the same per-batch work as training
  auto batch_idx = [&](int64_t i) {
    return torch::arange(((i * batch) % n), ((i * batch) % n) + batch, torch::kInt64).remainder(n).to(device);
  };
  auto train = [&](Runner& r) {
    for (int64_t s = 0; s < steps; ++s) {
      auto idx = batch_idx(s);
      train_step(*r.model, *r.optimizer, norm.apply(r.x_all.index_select(0, idx)).contiguous(fmt),
                 r.y_all.index_select(0, idx), bf16);
    }
  };
  auto infer = [&](Runner& r) {
    torch::NoGradGuard no_grad;
    AutocastBf16 autocast(bf16);
    for (int64_t s = 0; s < steps; ++s)
      r.model->forward(norm.apply(r.x_all.index_select(0, batch_idx(s))).contiguous(fmt)).argmax(1);
  };
  // Round by round, every model once per round, so that a busy spell of the machine hits all alike.
  auto rounds = [&](bool training) {
    for (auto& r : runners) training ? r.model->train() : r.model->eval();
    for (int64_t round = 0; round < warmup + repeats; ++round)
      for (auto& r : runners) {
        sync_device(device);
        const auto t0 = Clock::now();
        training ? train(r) : infer(r);
        sync_device(device);
        if (round >= warmup) (training ? r.train_ms : r.infer_ms).push_back(1000 * since(t0));
      }
  };
  rounds(true);
  rounds(false);
  const double images = static_cast<double>(steps * batch);
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& spec = specs[i];
    nlohmann::json j = {{"arch", spec.arch},
                        {"batch", batch},
                        {"precision", precision},
                        {"memory_format", channels_last ? "channels_last" : "contiguous"},
                        {"device", device.str()},
                        {"input", {spec.channels, spec.height, spec.width}},
                        {"classes", spec.classes},
                        {"steps", steps},
                        {"repeats", repeats},
                        {"threads", torch::get_num_threads()},
                        {"train_images_per_s", images / (median(runners[i].train_ms) / 1000)},
                        {"infer_images_per_s", images / (median(runners[i].infer_ms) / 1000)}};
    if (spec.arch == "torchscript") j["module"] = spec.path;
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json bench_train(const ModelSpec& spec, int64_t batch, const std::string& precision, int64_t steps,
                           int64_t repeats, int64_t warmup, const torch::Device& device, bool channels_last) {
  return bench_train_models({spec}, batch, precision, steps, repeats, warmup, device, channels_last).at(0);
}

nlohmann::json bench_rdlms(const ModelSpec& spec, int64_t k, int64_t batch, const std::string& precision,
                           int64_t steps, int64_t repeats, const std::vector<torch::Device>& devices) {
  TORCH_CHECK(k >= 1 && batch >= 1 && steps >= 1 && repeats >= 1 && !devices.empty(), "bench_rdlms: bad arguments");
  check_precision(precision, devices);
  const bool bf16 = precision == "bf16";
  const int64_t n = batch * 8;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> data;  // per device
  for (const auto& d : devices) data.push_back(random_data(spec, n, d));
  std::vector<Net> models;
  std::vector<std::unique_ptr<torch::optim::Optimizer>> optimizers;
  for (int64_t j = 0; j < k; ++j) {
    torch::manual_seed(static_cast<uint64_t>(j));
    models.push_back(make_model(spec));
    models.back()->to(devices[j % devices.size()]);
    models.back()->train();
    optimizers.push_back(make_optimizer("sgd", 0.01, 0.9, false, 0.0, trainable_parameters(*models.back())));
  }
  Normalizer norm;
  // `count` training steps of model j on its device's data (the rDLM loop's per-step work).
  auto train = [&](int64_t j, const torch::Device& device, int64_t count) {
    const auto& [x_all, y_all] = data[j % devices.size()];
    for (int64_t s = 0; s < count; ++s) {
      const int64_t start = ((s + j) * batch) % n;
      auto idx = torch::arange(start, start + batch, torch::kInt64).remainder(n).to(device);
      train_step(*models[j], *optimizers[j], norm.apply(x_all.index_select(0, idx)), y_all.index_select(0, idx), bf16);
    }
  };
  std::vector<int64_t> jobs;
  for (int64_t j = 0; j < k; ++j) jobs.push_back(j);
  const int main_threads = torch::get_num_threads();
  const ParallelPlan together = make_parallel_plan(k, devices, main_threads);
  auto sync_all = [&] {
    for (const auto& d : devices) sync_device(d);
  };
  // Wall seconds of `count` steps of every model, one model after another or all at once.
  auto seconds = [&](bool at_once, int64_t count) {
    sync_all();
    const auto t0 = Clock::now();
    if (at_once) {
      run_parallel(jobs, together, [&](int64_t j, const torch::Device& d) { train(j, d, count); });
    } else {
      for (int64_t j = 0; j < k; ++j) train(j, devices[j % devices.size()], count);
    }
    sync_all();
    return since(t0);
  };
  // Warm-up (allocator, cuDNN autotuning, OpenMP teams), then the two ways side by side.
  seconds(false, 2);
  seconds(true, 2);
  std::vector<double> seq, par;
  for (int64_t r = 0; r < repeats; ++r) {
    seq.push_back(seconds(false, steps));
    par.push_back(seconds(true, steps));
  }
  const double images = static_cast<double>(k * steps * batch);
  const double seq_rate = images / median(seq), par_rate = images / median(par);
  nlohmann::json devs = nlohmann::json::array();
  for (const auto& d : devices) devs.push_back(d.str());
  return {{"arch", spec.arch},
          {"batch", batch},
          {"precision", precision},
          {"k", k},
          {"devices", devs},
          {"device", devices[0].str()},
          {"steps", steps},
          {"repeats", repeats},
          {"threads", main_threads},
          {"workers", together.workers},
          {"threads_per_worker", together.threads_per_worker},
          {"sequential_images_per_s", seq_rate},
          {"concurrent_images_per_s", par_rate},
          {"speedup", par_rate / seq_rate}};
}

nlohmann::json bench_matmul(int64_t n, int64_t repeats, const torch::Device& device) {
  TORCH_CHECK(n >= 1 && repeats >= 1, "bench_matmul: bad arguments");
  auto gen = at::detail::createCPUGenerator(3);
  auto a = torch::randn({n, n}, gen, torch::kFloat32).to(device);
  auto b = torch::randn({n, n}, gen, torch::kFloat32).to(device);
  nlohmann::json rows = nlohmann::json::array();
  auto measure = [&](const std::string& name, const torch::Tensor& x, const torch::Tensor& y) {
    const int64_t iters = device.is_cuda() ? 20 : 1;
    const double ms = median_ms(repeats, 1, device, [&] {
      for (int64_t i = 0; i < iters; ++i) torch::mm(x, y);
    });
    const double flops = 2.0 * n * n * n * iters;
    rows.push_back({{"dtype", name}, {"ms", ms / iters}, {"tflops", flops / (ms / 1000) / 1e12}});
  };
  auto& ctx = at::globalContext();
  const bool tf32 = ctx.allowTF32CuBLAS();
  ctx.setAllowTF32CuBLAS(false);
  measure("fp32", a, b);
  if (device.is_cuda()) {
    ctx.setAllowTF32CuBLAS(true);
    measure("tf32", a, b);
    ctx.setAllowTF32CuBLAS(false);
    measure("bf16", a.to(torch::kBFloat16), b.to(torch::kBFloat16));
  }
  ctx.setAllowTF32CuBLAS(tf32);
  return {{"n", n}, {"device", device.str()}, {"repeats", repeats}, {"threads", torch::get_num_threads()},
          {"rows", rows}};
}

}  // namespace apricot
