// Builds the paper's five CIFAR-10 models (CNN1-3, ResNet-20/32 as Keras v1 or pre-activation)
// and a small quickstart CNN for any input size and class count, initialised the way Keras would.
// Construction and parameter counting only: no training, no weight I/O, no device placement.
#include "apricot/models/model.hpp"

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/models/torchscript.hpp"

#include <torch/torch.h>

#include <string>
#include <vector>

#include "apricot/core/errors.hpp"

namespace apricot {
namespace {

namespace nn = torch::nn;

// Keras 'same' padding. For odd k this gives Keras's output size ceil(n / stride) at every stride;
// Keras pads a stride-2 conv on the bottom/right only where this pads symmetrically, which shifts
// the sampling grid by a pixel but changes no shape or parameter count.
nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(true));
}

// Keras BatchNormalization defaults: moving-average momentum 0.99 (torch counts the new sample's
// weight instead, so 0.01) and epsilon 1e-3. Used by every arch, the pre-activation ResNet too.
nn::BatchNorm2d batch_norm(int64_t c) {
  return nn::BatchNorm2d(nn::BatchNorm2dOptions(c).momentum(0.01).eps(1e-3));
}

// Keras 'valid' 2x2 max-pool: floors odd sizes.
torch::Tensor pool(const torch::Tensor& x) { return torch::max_pool2d(x, 2); }

enum class Init { kGlorotUniform, kHeNormal };

// Re-initialises every conv and dense layer of `net` (in registration order, so one seed gives one
// set of weights) as Keras would: kernels glorot-uniform or he-normal, biases zero. Keras's
// he_normal draws from a truncated normal; kaiming_normal_ draws from a plain normal with the same
// std sqrt(2 / fan_in), which is close enough for a fresh start. BatchNorm keeps torch's gamma = 1,
// beta = 0, running mean 0 and variance 1, which are Keras's defaults too.
void init_keras(nn::Module& net, Init kind) {
  torch::NoGradGuard no_grad;
  for (const auto& m : net.modules(/*include_self=*/false)) {
    torch::Tensor w, b;
    if (auto* c = m->as<nn::Conv2dImpl>()) {
      w = c->weight;
      b = c->bias;
    } else if (auto* l = m->as<nn::LinearImpl>()) {
      w = l->weight;
      b = l->bias;
    } else {
      continue;
    }
    if (kind == Init::kGlorotUniform) {
      nn::init::xavier_uniform_(w);
    } else {
      nn::init::kaiming_normal_(w, /*a=*/0.0, torch::kFanIn, torch::kReLU);
    }
    if (b.defined()) b.zero_();
  }
}

// Each 2x2 max-pool halves the size (floor), so `pools` of them need a side of at least 2^pools.
void require_poolable(const ModelSpec& spec, int pools) {
  const int64_t min_side = int64_t{1} << pools;
  if (spec.height < min_side || spec.width < min_side) {
    config_error("model.arch '" + spec.arch + "' needs inputs of at least " +
                     std::to_string(min_side) + "x" + std::to_string(min_side) + " (it has " +
                     std::to_string(pools) + " 2x2 max-pools), got " +
                     std::to_string(spec.height) + "x" + std::to_string(spec.width),
                 "use larger images, or resnet20/resnet32, which accept any size");
  }
}

// Quickstart model: small enough to train an epoch of Fashion-MNIST on two CPU cores in seconds.
struct SmallNetImpl : NetImpl {
  explicit SmallNetImpl(const ModelSpec& s) {
    require_poolable(s, 2);
    const int64_t flat = 32 * (s.height / 4) * (s.width / 4);
    conv1 = register_module("conv1", conv(s.channels, 16, 3));
    conv2 = register_module("conv2", conv(16, 32, 3));
    fc1 = register_module("fc1", nn::Linear(flat, 64));
    fc2 = register_module("fc2", nn::Linear(64, s.classes));
    init_keras(*this, Init::kGlorotUniform);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = pool(torch::relu(conv1(x)));  // (B, 16, H/2, W/2)
    x = pool(torch::relu(conv2(x)));  // (B, 32, H/4, W/4)
    x = x.flatten(1);                 // (B, 32 * H/4 * W/4)
    return fc2(torch::relu(fc1(x)));  // (B, classes)
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
};

// CNN1 (paper Table I): conv 64, 64, pool; conv 128, 128, pool; dense 256, 256, classes.
struct Cnn1Impl : NetImpl {
  explicit Cnn1Impl(const ModelSpec& s) {
    require_poolable(s, 2);
    const int64_t flat = 128 * (s.height / 4) * (s.width / 4);
    conv1 = register_module("conv1", conv(s.channels, 64, 3));
    conv2 = register_module("conv2", conv(64, 64, 3));
    conv3 = register_module("conv3", conv(64, 128, 3));
    conv4 = register_module("conv4", conv(128, 128, 3));
    fc1 = register_module("fc1", nn::Linear(flat, 256));
    fc2 = register_module("fc2", nn::Linear(256, 256));
    fc3 = register_module("fc3", nn::Linear(256, s.classes));
    init_keras(*this, Init::kGlorotUniform);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(conv1(x));
    x = pool(torch::relu(conv2(x)));  // (B, 64, H/2, W/2)
    x = torch::relu(conv3(x));
    x = pool(torch::relu(conv4(x)));  // (B, 128, H/4, W/4)
    // Channel-major flatten (torch order); Keras flattens channels-last. Only matters when
    // importing Keras weights, which this tool does not do.
    x = x.flatten(1);  // (B, 128 * H/4 * W/4)
    x = torch::relu(fc1(x));
    x = torch::relu(fc2(x));
    return fc3(x);  // (B, classes)
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
};

// CNN2 (paper Table I): units conv -> ELU -> BatchNorm; 32, 32, pool; 64, pool; 128, 128, pool;
// flatten; dense classes. One 64-filter conv, as the paper's table and its 272,106 count say.
struct Cnn2Impl : NetImpl {
  explicit Cnn2Impl(const ModelSpec& s) {
    require_poolable(s, 3);
    const int64_t widths[kUnits] = {32, 32, 64, 128, 128};
    int64_t in = s.channels;
    for (int i = 0; i < kUnits; ++i) {
      const std::string k = std::to_string(i + 1);
      convs[i] = register_module("conv" + k, conv(in, widths[i], 3));
      bns[i] = register_module("bn" + k, batch_norm(widths[i]));
      in = widths[i];
    }
    fc = register_module("fc", nn::Linear(128 * (s.height / 8) * (s.width / 8), s.classes));
    init_keras(*this, Init::kGlorotUniform);
  }
  torch::Tensor unit(int i, const torch::Tensor& x) { return bns[i](torch::elu(convs[i](x))); }
  torch::Tensor forward(torch::Tensor x) override {
    x = pool(unit(1, unit(0, x)));  // (B, 32, H/2, W/2)
    x = pool(unit(2, x));           // (B, 64, H/4, W/4)
    x = pool(unit(4, unit(3, x)));  // (B, 128, H/8, W/8)
    x = x.flatten(1);               // (B, 128 * H/8 * W/8)
    return fc(x);                   // (B, classes)
  }
  static constexpr int kUnits = 5;
  nn::Conv2d convs[kUnits] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  nn::BatchNorm2d bns[kUnits] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  nn::Linear fc{nullptr};
};

// CNN3 (paper Table I): conv 96 x3, pool; conv 192 x3, pool; conv1x1 classes; global average pool;
// dense classes. ReLU after every conv ("ReLU for all CNNs", paper Section IV-A).
struct Cnn3Impl : NetImpl {
  explicit Cnn3Impl(const ModelSpec& s) {
    require_poolable(s, 2);
    const int64_t widths[6] = {96, 96, 96, 192, 192, 192};
    int64_t in = s.channels;
    for (int i = 0; i < 6; ++i) {
      convs[i] = register_module("conv" + std::to_string(i + 1), conv(in, widths[i], 3));
      in = widths[i];
    }
    conv7 = register_module("conv7", conv(192, s.classes, 1));
    fc = register_module("fc", nn::Linear(s.classes, s.classes));
    init_keras(*this, Init::kGlorotUniform);
  }
  torch::Tensor forward(torch::Tensor x) override {
    for (int i = 0; i < 6; ++i) {
      x = torch::relu(convs[i](x));
      if (i == 2 || i == 5) x = pool(x);  // (B, 96, H/2, W/2), then (B, 192, H/4, W/4)
    }
    x = torch::relu(conv7(x));  // (B, classes, H/4, W/4)
    x = x.mean({2, 3});         // (B, classes)
    return fc(x);               // (B, classes)
  }
  nn::Conv2d convs[6] = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  nn::Conv2d conv7{nullptr};
  nn::Linear fc{nullptr};
};

// One residual block of two 3x3 convs. v1 (Keras cifar10_resnet resnet_v1):
//   relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// pre-activation (BIGBALLON cifar-10-cnn ResNet_keras), with a = relu(bn1(x)):
//   conv2(relu(bn2(conv1(a)))) + (shortcut(a) or x)
// The shortcut is a 1x1 conv of stride `stride` without BatchNorm, present only where the shape
// changes. Both orderings hold the same parameters once the stem and head are counted.
struct ResBlockImpl : nn::Module {
  ResBlockImpl(int64_t in, int64_t out, int64_t stride, bool preact) : preact_(preact) {
    if (preact_) {
      bn1 = register_module("bn1", batch_norm(in));
      conv1 = register_module("conv1", conv(in, out, 3, stride));
      bn2 = register_module("bn2", batch_norm(out));
      conv2 = register_module("conv2", conv(out, out, 3));
    } else {
      conv1 = register_module("conv1", conv(in, out, 3, stride));
      bn1 = register_module("bn1", batch_norm(out));
      conv2 = register_module("conv2", conv(out, out, 3));
      bn2 = register_module("bn2", batch_norm(out));
    }
    if (in != out || stride != 1) shortcut = register_module("shortcut", conv(in, out, 1, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (preact_) {
      const torch::Tensor a = torch::relu(bn1(x));
      const torch::Tensor y = conv2(torch::relu(bn2(conv1(a))));  // (B, out, ceil(H/s), ceil(W/s))
      return y + (shortcut ? shortcut(a) : x);
    }
    const torch::Tensor y = bn2(conv2(torch::relu(bn1(conv1(x)))));  // (B, out, ceil(H/s), ...)
    return torch::relu(y + (shortcut ? shortcut(x) : x));
  }
  bool preact_;
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, shortcut{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};
TORCH_MODULE(ResBlock);

// n residual blocks of one width; the first may change width and stride. Blocks are registered as
// block0..block{n-1} so parameter names read "stack2.block0.conv1.weight".
struct ResStackImpl : nn::Module {
  ResStackImpl(int64_t n, int64_t in, int64_t out, int64_t stride, bool preact) {
    for (int64_t i = 0; i < n; ++i) {
      blocks.push_back(register_module(
          "block" + std::to_string(i),
          ResBlock(i == 0 ? in : out, out, i == 0 ? stride : 1, preact)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& b : blocks) x = b(x);
    return x;
  }
  std::vector<ResBlock> blocks;
};
TORCH_MODULE(ResStack);

// ResNet-(6n+2) for CIFAR: stem conv 16, three stacks of n blocks (16, 32, 64 filters; the last two
// halve the size), global average pool, dense. v1 has conv-BN-ReLU in the stem; preact has a bare
// stem conv and a final BN-ReLU before pooling. Keras's v1 example pools with AveragePooling2D(8),
// which is global only for 32x32 inputs; a true global average pool keeps other sizes working.
struct ResNetImpl : NetImpl {
  ResNetImpl(const ModelSpec& s, int64_t n, bool preact) : preact_(preact) {
    conv1 = register_module("conv1", conv(s.channels, 16, 3));
    if (!preact_) bn1 = register_module("bn1", batch_norm(16));
    stack1 = register_module("stack1", ResStack(n, 16, 16, 1, preact));
    stack2 = register_module("stack2", ResStack(n, 16, 32, 2, preact));
    stack3 = register_module("stack3", ResStack(n, 32, 64, 2, preact));
    if (preact_) bn_final = register_module("bn_final", batch_norm(64));
    fc = register_module("fc", nn::Linear(64, s.classes));
    init_keras(*this, Init::kHeNormal);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = conv1(x);                                // (B, 16, H, W)
    if (!preact_) x = torch::relu(bn1(x));
    x = stack3(stack2(stack1(x)));               // (B, 64, ceil(H/4), ceil(W/4))
    if (preact_) x = torch::relu(bn_final(x));
    x = x.mean({2, 3});                          // (B, 64)
    return fc(x);                                // (B, classes)
  }
  bool preact_;
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn_final{nullptr};
  ResStack stack1{nullptr}, stack2{nullptr}, stack3{nullptr};
  nn::Linear fc{nullptr};
};

std::string joined_archs() {
  std::string s;
  for (const auto& a : model_archs()) s += (s.empty() ? "" : ", ") + a;
  return s;
}

}  // namespace

const std::vector<std::string>& model_archs() {
  static const std::vector<std::string> archs = {"small", "cnn1",     "cnn2",
                                                 "cnn3",  "resnet20", "resnet32"};
  return archs;
}

Net make_model(const ModelSpec& spec) {
  if (spec.channels < 1 || spec.height < 1 || spec.width < 1 || spec.classes < 1) {
    config_error("model input must have positive channels, height, width and classes, got " +
                     std::to_string(spec.channels) + "x" + std::to_string(spec.height) + "x" +
                     std::to_string(spec.width) + " with " + std::to_string(spec.classes) +
                     " classes",
                 "check the dataset's shape and labels");
  }
  // Checked for every arch so that a typo fails early even where the variant is unused.
  if (spec.resnet_variant != "v1" && spec.resnet_variant != "preact") {
    config_error("unknown model.resnet_variant '" + spec.resnet_variant + "'",
                 "valid: v1, preact");
  }
  const bool preact = spec.resnet_variant == "preact";
  if (spec.arch == "torchscript") {
    Net net = load_torchscript(spec);
    reinitialise_torchscript(*net);
    return net;
  }
  if (spec.arch == "small") return std::make_shared<SmallNetImpl>(spec);
  if (spec.arch == "cnn1") return std::make_shared<Cnn1Impl>(spec);
  if (spec.arch == "cnn2") return std::make_shared<Cnn2Impl>(spec);
  if (spec.arch == "cnn3") return std::make_shared<Cnn3Impl>(spec);
  if (spec.arch == "resnet20") return std::make_shared<ResNetImpl>(spec, 3, preact);
  if (spec.arch == "resnet32") return std::make_shared<ResNetImpl>(spec, 5, preact);
  config_error("unknown model.arch '" + spec.arch + "'", "valid: " + joined_archs() + ", torchscript");
}

ModelSpec model_spec(const ModelConfig& m, const Dataset& data) {
  return ModelSpec{m.arch, data.channels, data.height, data.width, data.classes, m.resnet_variant,
                   m.arch == "torchscript" ? m.path : std::string()};
}

ParamCount count_params(const nn::Module& model) {
  ParamCount c;
  for (const auto& p : model.parameters(/*recurse=*/true)) {
    c.total += p.numel();
    if (p.requires_grad()) c.trainable += p.numel();
  }
  // Keras counts BatchNorm's moving mean/variance as (non-trainable) weights; num_batches_tracked
  // is a torch-only integer counter and is not a weight.
  for (const auto& b : model.buffers(/*recurse=*/true)) {
    if (b.is_floating_point()) c.total += b.numel();
  }
  return c;
}

std::mutex& global_generator_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace apricot
