// Device resolution and process-wide runtime settings (threads, global seed).
#include "apricot/device.hpp"

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "apricot/errors.hpp"

namespace apricot {

torch::Device resolve_device(const std::string& spec) {
  bool has_cuda = torch::cuda::is_available();
  // Fixed input shapes: let cuDNN pick the fastest convolution algorithms once.
  if (has_cuda && spec != "cpu") at::globalContext().setBenchmarkCuDNN(true);
  if (spec == "auto") {
    if (has_cuda) return torch::Device(torch::kCUDA, 0);
    spdlog::debug("device auto: no CUDA device found, using the CPU");
    return torch::Device(torch::kCPU);
  }
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (!has_cuda)
      config_error("device '" + spec + "' requested but no CUDA device is available",
                   "use --device cpu or --device auto (this LibTorch build or machine has no GPU)");
    int index = 0;
    if (spec.size() > 5) {
      try {
        index = std::stoi(spec.substr(5));
      } catch (const std::exception&) {
        index = -1;
      }
      if (index < 0 || spec[4] != ':')
        config_error("device '" + spec + "' is not valid", "use auto, cpu, cuda or cuda:N");
    }
    if (index >= static_cast<int>(torch::cuda::device_count()))
      config_error("device '" + spec + "': only " + std::to_string(torch::cuda::device_count()) +
                       " CUDA device(s) present",
                   "use cuda:0 .. cuda:" + std::to_string(torch::cuda::device_count() - 1));
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  config_error("device '" + spec + "' is not valid", "use auto, cpu, cuda or cuda:N");
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define APRICOT_AUTOCAST_PER_DEVICE 1
#endif

AutocastBf16::AutocastBf16(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
#ifdef APRICOT_AUTOCAST_PER_DEVICE
  prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
  prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
  prev_enabled_ = at::autocast::is_enabled();
  prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(true);
#endif
}

AutocastBf16::~AutocastBf16() {
  if (!enabled_) return;
#ifdef APRICOT_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
  at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
#else
  at::autocast::set_enabled(prev_enabled_);
  at::autocast::set_autocast_gpu_dtype(prev_dtype_);
#endif
  at::autocast::clear_cache();
}

void setup_runtime(int64_t threads, uint64_t seed, bool deterministic) {
  // 0 = every core: LibTorch's own default can be 1 thread (seen on Debian's build).
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(seed);
  if (deterministic) {
    // cuBLAS needs a fixed workspace to be reproducible; it reads this before its first use.
    ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
    at::globalContext().setDeterministicCuDNN(true);
    at::globalContext().setBenchmarkCuDNN(false);
  }
}

}  // namespace apricot
