// The paper's five CIFAR-10 models (CNN1-3, ResNet-20/32) and a small quickstart model, each
// adapting to the input's channels, size and class count. Construction only: training lives in
// train/train.hpp, weight adjustment in method/adjustment.hpp.
#pragma once
#include <torch/nn/module.h>
#include <torch/types.h>
#include <ATen/core/Generator.h>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace apricot {

struct ModelSpec {
  std::string arch = "small";       // one of model_archs()
  int64_t channels = 3, height = 32, width = 32;
  int64_t classes = 10;
  std::string resnet_variant = "v1";  // "v1" (Keras post-activation) or "preact"
  std::string path = {};              // arch "torchscript": the TorchScript file (torchscript.hpp)
};

// Base of every model: forward maps a normalised float batch (B, C, H, W) to logits (B, classes).
struct NetImpl : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // The model's own random stream, when its training-mode forward draws random numbers from one of
  // its own (a TorchScript module with dropout, torchscript.hpp) rather than from the process-wide
  // generator; none for the built-in models (their dropout-free forward draws nothing).
  virtual std::optional<at::Generator> random_stream() const { return std::nullopt; }
};
using Net = std::shared_ptr<NetImpl>;

// Valid built-in arch names, in the order `apricot models` prints them. model.arch may also be
// "torchscript": the user's own module from model.path (torchscript.hpp).
const std::vector<std::string>& model_archs();

// Builds a freshly initialised model (Keras-like initialisation where the source used Keras:
// glorot-uniform kernels and zero biases for CNN1-3, he-normal for the ResNets; a TorchScript model
// is loaded from spec.path, checked, and re-initialised by reinitialise_torchscript). Initialisation
// draws from torch's global generator: seed it with torch::manual_seed before calling.
// Throws apricot::Error (kUsage) for an unknown arch (listing the valid ones) or an input too small
// for the arch.
Net make_model(const ModelSpec& spec);

// Serialises the use of LibTorch's process-wide generator by concurrent workers: hold it from
// torch::manual_seed until make_model returns (and around any other make_model).
std::mutex& global_generator_mutex();

struct ModelConfig;
struct Dataset;
// The spec that model config `m` describes for a loaded dataset (its channels, size and classes).
ModelSpec model_spec(const ModelConfig& m, const Dataset& data);

struct ParamCount {
  int64_t trainable = 0;  // parameters with requires_grad
  int64_t total = 0;      // trainable + float buffers (BatchNorm running mean/var), as Keras counts
};
ParamCount count_params(const torch::nn::Module& model);

void validate(const ModelConfig& m);  // the range checks of model.*; kUsage naming the key

// A model's own random stream (NetImpl::random_stream) as training and resumable states use it: on
// the CPU its training is then the same whether other models train at once or not, and a resumed
// phase restores the stream with the weights (io/resume.cpp). Every training run seeds it
// (train_model). For a model without a stream these are no-ops and the state is undefined. On CUDA
// the draws come from the device's generator, which this does not cover.
void seed_model_stream(NetImpl& model, uint64_t seed);
torch::Tensor model_stream_state(const NetImpl& model);
void set_model_stream_state(NetImpl& model, const torch::Tensor& state);

}  // namespace apricot
