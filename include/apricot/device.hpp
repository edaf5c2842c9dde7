// Resolves the --device / config "device" string once; the result is passed explicitly everywhere.
#pragma once
#include <torch/types.h>
#include <string>

namespace apricot {

// "auto" -> CUDA if available, else CPU (logged). "cuda"/"cuda:N" without a GPU -> Error(kUsage).
torch::Device resolve_device(const std::string& spec);
// Applies threads (0 = leave LibTorch's default) and seeds torch's global generator.
void setup_runtime(int64_t threads, uint64_t seed);

}  // namespace apricot
