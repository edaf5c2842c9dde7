// Resolves the --device / config "device" string once; the result is passed explicitly everywhere.
#pragma once
#include <torch/types.h>
#include <string>

namespace apricot {

// "auto" -> CUDA if available, else CPU (logged). "cuda"/"cuda:N" without a GPU -> Error(kUsage).
torch::Device resolve_device(const std::string& spec);
// While alive, CUDA ops run under bf16 autocast (when enabled is true); restores the previous
// state on destruction. Hides the API change of LibTorch 2.4 (per-device autocast functions).
class AutocastBf16 {
 public:
  explicit AutocastBf16(bool enabled);
  ~AutocastBf16();
  AutocastBf16(const AutocastBf16&) = delete;
  AutocastBf16& operator=(const AutocastBf16&) = delete;

 private:
  bool enabled_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kHalf;
};

// Applies threads (0 = all cores) and seeds torch's global generator. deterministic: LibTorch's
// deterministic algorithms (an error for an op that has none), deterministic cuDNN without
// autotuning, and a fixed cuBLAS workspace. CPU runs are deterministic without it.
void setup_runtime(int64_t threads, uint64_t seed, bool deterministic = false);

}  // namespace apricot
