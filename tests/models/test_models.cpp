// Model construction: the paper's parameter counts, output shapes on other input sizes, both ResNet
// variants, Keras-like initialisation, seeding and gradients. CPU only; no training.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <string>

#include "apricot/core/errors.hpp"
#include "apricot/models/model.hpp"

namespace apricot {
namespace {

ModelSpec arch_spec(const std::string& arch, int64_t c = 3, int64_t h = 32, int64_t w = 32,
                  int64_t classes = 10, const std::string& variant = "v1") {
  ModelSpec s;
  s.arch = arch;
  s.channels = c;
  s.height = h;
  s.width = w;
  s.classes = classes;
  s.resnet_variant = variant;
  return s;
}

// Runs make_model expecting a usage error; returns it for further checks.
Error usage_error_of(const ModelSpec& s) {
  try {
    make_model(s);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage) << e.what();
    return e;
  }
  ADD_FAILURE() << "make_model(" << s.arch << ") did not throw";
  return Error(ExitCode::kOk, "");
}

// Paper Table II / docs/METHOD.md, CIFAR-10 input 3x32x32, 10 classes, totals counting BN moving stats.
TEST(Models, PaperParameterCounts) {
  struct Row {
    const char* arch;
    int64_t trainable, total;
  };
  const Row rows[] = {
      {"cnn1", 2425930, 2425930},     {"cnn2", 271338, 272106},
      {"cnn3", 1000824, 1000824},     {"resnet20", 273066, 274442},
      {"resnet32", 467946, 470218},
  };
  for (const auto& r : rows) {
    for (const char* variant : {"v1", "preact"}) {
      const auto c = count_params(*make_model(arch_spec(r.arch, 3, 32, 32, 10, variant)));
      EXPECT_EQ(c.total, r.total) << r.arch << " " << variant;
      EXPECT_EQ(c.trainable, r.trainable) << r.arch << " " << variant;
    }
  }
}

// Hand counts (weights + biases per layer) for inputs other than CIFAR's: the flattened size must
// follow the input size.
TEST(Models, CountsFollowInputSize) {
  // small, 1x28x28: conv 1*9*16+16, conv 16*9*32+32, dense 32*7*7*64+64, dense 64*10+10.
  EXPECT_EQ(count_params(*make_model(arch_spec("small", 1, 28, 28, 10))).total,
            160 + 4640 + 100416 + 650);
  // small, 3x32x32: conv 3*9*16+16, conv 4640, dense 32*8*8*64+64, dense 650.
  EXPECT_EQ(count_params(*make_model(arch_spec("small", 3, 32, 32, 10))).total,
            448 + 4640 + 131136 + 650);
  // cnn1, 1x28x28, 5 classes: convs 640, 36928, 73856, 147584; dense 6272*256+256, 65792, 1285.
  EXPECT_EQ(count_params(*make_model(arch_spec("cnn1", 1, 28, 28, 5))).total,
            640 + 36928 + 73856 + 147584 + 1605888 + 65792 + 1285);
}

// ResNet-(6n+2): 6n+1 3x3 convs plus the dense layer; shortcuts are 1x1 and do not count.
TEST(Models, ResNetDepth) {
  for (const char* variant : {"v1", "preact"}) {
    for (auto [arch, depth] : {std::pair<const char*, int>{"resnet20", 20}, {"resnet32", 32}}) {
      const Net net = make_model(arch_spec(arch, 3, 32, 32, 10, variant));
      int layers = 0, shortcuts = 0;
      for (const auto& m : net->modules(false)) {
        if (auto* c = m->as<torch::nn::Conv2dImpl>()) {
          const int64_t k = c->options.kernel_size()->at(0);
          (k == 3 ? layers : shortcuts) += 1;
        } else if (m->as<torch::nn::LinearImpl>()) {
          ++layers;
        }
      }
      EXPECT_EQ(layers, depth) << arch << " " << variant;
      EXPECT_EQ(shortcuts, 2) << arch << " " << variant;
    }
  }
}

TEST(Models, ForwardShapes) {
  struct Input {
    int64_t c, h, w, classes;
  };
  // CIFAR, Fashion-MNIST with 5 classes, and an odd non-square size (floors in pooling, ceils in
  // strided convs).
  const Input inputs[] = {{3, 32, 32, 10}, {1, 28, 28, 5}, {2, 17, 23, 3}};
  torch::manual_seed(0);
  for (const auto& arch : model_archs()) {
    for (const char* variant : {"v1", "preact"}) {
      if (arch.rfind("resnet", 0) != 0 && std::string(variant) != "v1") continue;
      for (const auto& in : inputs) {
        const Net net = make_model(arch_spec(arch, in.c, in.h, in.w, in.classes, variant));
        net->train();
        const auto y = net->forward(torch::randn({2, in.c, in.h, in.w}));
        ASSERT_EQ(y.sizes(), (torch::IntArrayRef{2, in.classes}))
            << arch << " " << variant << " " << in.c << "x" << in.h << "x" << in.w;
        net->eval();
        torch::NoGradGuard no_grad;
        const auto z = net->forward(torch::randn({3, in.c, in.h, in.w}));
        EXPECT_EQ(z.sizes(), (torch::IntArrayRef{3, in.classes}));
        EXPECT_TRUE(torch::isfinite(z).all().item<bool>()) << arch;
      }
    }
  }
}

TEST(Models, ArchListOrder) {
  const std::vector<std::string> want = {"small", "cnn1", "cnn2", "cnn3", "resnet20", "resnet32"};
  EXPECT_EQ(model_archs(), want);
}

TEST(Models, UnknownArchIsUsageError) {
  const Error e = usage_error_of(arch_spec("cnn4"));
  EXPECT_NE(std::string(e.what()).find("'cnn4'"), std::string::npos) << e.what();
  for (const auto& a : model_archs()) {
    EXPECT_NE(e.hint().find(a), std::string::npos) << e.hint();
  }
}

TEST(Models, UnknownVariantIsUsageError) {
  const Error e = usage_error_of(arch_spec("resnet20", 3, 32, 32, 10, "v2"));
  EXPECT_NE(std::string(e.what()).find("'v2'"), std::string::npos) << e.what();
}

TEST(Models, TooSmallInputIsUsageError) {
  usage_error_of(arch_spec("small", 1, 3, 28));  // 2 pools need 4x4
  usage_error_of(arch_spec("cnn1", 3, 32, 3));
  usage_error_of(arch_spec("cnn2", 3, 7, 7));  // 3 pools need 8x8
  usage_error_of(arch_spec("cnn3", 3, 2, 2));
  usage_error_of(arch_spec("resnet20", 0, 32, 32));
  usage_error_of(arch_spec("cnn1", 3, 32, 32, 0));
  // The smallest sizes that do work.
  EXPECT_NO_THROW(make_model(arch_spec("small", 1, 4, 4)));
  EXPECT_NO_THROW(make_model(arch_spec("cnn2", 1, 8, 8)));
  const Net tiny = make_model(arch_spec("resnet20", 1, 1, 1));  // strided convs never reach 0
  tiny->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(tiny->forward(torch::zeros({1, 1, 1, 1})).sizes(), (torch::IntArrayRef{1, 10}));
}

TEST(Models, ReadableParameterNames) {
  const auto names = [](const Net& net) {
    std::set<std::string> s;
    for (const auto& p : net->named_parameters()) s.insert(p.key());
    return s;
  };
  const auto v1 = names(make_model(arch_spec("resnet20")));
  for (const char* n : {"conv1.weight", "bn1.weight", "stack1.block0.conv1.weight",
                        "stack1.block2.bn2.bias", "stack2.block0.shortcut.weight",
                        "stack3.block0.shortcut.bias", "fc.weight"}) {
    EXPECT_TRUE(v1.count(n)) << n;
  }
  EXPECT_FALSE(v1.count("stack1.block0.shortcut.weight"));  // identity where the shape is kept
  const auto pre = names(make_model(arch_spec("resnet32", 3, 32, 32, 10, "preact")));
  EXPECT_TRUE(pre.count("bn_final.weight"));
  EXPECT_TRUE(pre.count("stack3.block4.bn1.weight"));
  EXPECT_FALSE(pre.count("bn1.weight"));
  const auto cnn2 = names(make_model(arch_spec("cnn2")));
  EXPECT_TRUE(cnn2.count("conv5.weight") && cnn2.count("bn5.bias") && cnn2.count("fc.bias"));
  // Buffers: BN running stats and num_batches_tracked, the latter not counted as a weight.
  const Net net = make_model(arch_spec("cnn2"));
  EXPECT_TRUE(net->named_buffers().contains("bn1.running_mean"));
  EXPECT_EQ(net->named_buffers()["bn1.num_batches_tracked"].scalar_type(), torch::kLong);
}

// Glorot-uniform bound sqrt(6 / (fan_in + fan_out)); torch's default is 1/sqrt(fan_in) (about 0.03
// for cnn1.conv4, against glorot's 0.051), so the maximum tells them apart.
TEST(Models, GlorotInitForCnns) {
  torch::manual_seed(1);
  const Net net = make_model(arch_spec("cnn1"));
  const auto params = net->named_parameters();
  const auto w = params["conv4.weight"];  // (128, 128, 3, 3)
  const double bound = std::sqrt(6.0 / (128 * 9 + 128 * 9));
  const double max_abs = w.abs().max().item<double>();
  EXPECT_LE(max_abs, bound * (1 + 1e-6));  // float rounding at the bound
  EXPECT_GT(max_abs, 0.99 * bound);
  const auto fc = params["fc1.weight"];  // (256, 8192)
  const double fc_bound = std::sqrt(6.0 / (8192 + 256));
  EXPECT_LE(fc.abs().max().item<double>(), fc_bound * (1 + 1e-6));
  EXPECT_GT(fc.abs().max().item<double>(), 0.99 * fc_bound);
  for (const auto& p : params) {
    if (p.key().find("bias") != std::string::npos) {
      EXPECT_EQ(p.value().abs().max().item<double>(), 0.0) << p.key();
    }
  }
}

// He-normal: std sqrt(2 / fan_in); BN gamma 1, beta 0; Keras momentum and epsilon.
TEST(Models, HeInitAndKerasBatchNormForResNets) {
  torch::manual_seed(2);
  for (const char* variant : {"v1", "preact"}) {
    const Net net = make_model(arch_spec("resnet32", 3, 32, 32, 10, variant));
    const auto params = net->named_parameters();
    const auto w = params["stack3.block1.conv2.weight"];  // (64, 64, 3, 3): 36,864 draws
    const double want = std::sqrt(2.0 / (64 * 9));
    EXPECT_NEAR(w.std().item<double>(), want, 0.03 * want) << variant;
    EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.03 * want) << variant;
    EXPECT_EQ(params["fc.bias"].abs().max().item<double>(), 0.0);
    int bns = 0;
    for (const auto& m : net->modules(false)) {
      if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
        ++bns;
        EXPECT_DOUBLE_EQ(bn->options.momentum().value(), 0.01);
        EXPECT_DOUBLE_EQ(bn->options.eps(), 1e-3);
        EXPECT_TRUE(torch::equal(bn->weight, torch::ones_like(bn->weight)));
        EXPECT_TRUE(torch::equal(bn->bias, torch::zeros_like(bn->bias)));
      }
    }
    EXPECT_EQ(bns, 31) << variant;  // 2 per block (15 blocks) + stem (v1) or head (preact)
  }
}

TEST(Models, SameSeedSameWeights) {
  for (const auto& arch : model_archs()) {
    torch::manual_seed(42);
    const Net a = make_model(arch_spec(arch, 1, 16, 16, 4));
    torch::manual_seed(42);
    const Net b = make_model(arch_spec(arch, 1, 16, 16, 4));
    torch::manual_seed(43);
    const Net c = make_model(arch_spec(arch, 1, 16, 16, 4));
    const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
    ASSERT_EQ(pa.keys(), pb.keys());
    bool differs = false;
    for (const auto& p : pa) {
      EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << arch << " " << p.key();
      differs = differs || !torch::equal(p.value(), pc[p.key()]);
    }
    EXPECT_TRUE(differs) << arch << ": another seed gave identical weights";
  }
}

TEST(Models, BackwardReachesEveryParameter) {
  torch::manual_seed(3);
  for (const auto& arch : model_archs()) {
    for (const char* variant : {"v1", "preact"}) {
      const Net net = make_model(arch_spec(arch, 3, 16, 16, 10, variant));
      net->train();
      const auto x = torch::randn({4, 3, 16, 16});
      const auto y = torch::tensor({0, 3, 5, 9}, torch::kLong);
      const auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
      loss.backward();
      for (const auto& p : net->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << arch << " " << p.key();
        EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << arch << p.key();
      }
      // The gradient reaches the first layer (ReLU can zero single entries, never all of them).
      const auto g = net->named_parameters()["conv1.weight"].grad();
      EXPECT_GT(g.abs().sum().item<double>(), 0.0) << arch << " " << variant;
    }
  }
}

TEST(Models, CountParamsSplitsFrozenFromTrainable) {
  const Net net = make_model(arch_spec("cnn2"));
  const auto before = count_params(*net);
  net->named_parameters()["fc.weight"].set_requires_grad(false);  // (10, 2048)
  const auto after = count_params(*net);
  EXPECT_EQ(after.total, before.total);
  EXPECT_EQ(after.trainable, before.trainable - 10 * 2048);
}

}  // namespace
}  // namespace apricot
