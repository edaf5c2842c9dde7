// Synthetic data: each class a fixed random prototype pattern plus noise, deterministic in the seed.
#include "apricot/data/formats.hpp"

#include "apricot/core/errors.hpp"
#include "common.hpp"

#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <cmath>

namespace apricot {
namespace fs = std::filesystem;

void make_synthetic(int64_t n_train, int64_t n_test, int64_t channels, int64_t height, int64_t width,
                    int64_t classes, uint64_t seed, Split& train, Split& test) {
  TORCH_CHECK(n_train >= 0 && n_test >= 0 && channels > 0 && height > 0 && width > 0 && classes > 0,
              "make_synthetic: bad sizes");
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  // Prototypes: smooth-ish random patterns (a coarse random grid upsampled) so that shifted or
  // noisy samples stay recognisable, the way real images are.
  const int64_t gh = std::max<int64_t>(2, height / 4), gw = std::max<int64_t>(2, width / 4);
  auto coarse = torch::rand({classes, channels, gh, gw}, gen, f32) * 255;  // (K, C, gh, gw)
  auto protos = torch::nn::functional::interpolate(
      coarse, torch::nn::functional::InterpolateFuncOptions()
                  .size(std::vector<int64_t>{height, width})
                  .mode(torch::kBilinear)
                  .align_corners(false));  // (K, C, H, W)
  auto draw = [&](int64_t n, Split& s) {
    // Balanced labels in random order; each sample blends its class prototype with a random other
    // class's (weight < 0.5, so its own class stays nearest) and adds pixel noise: learnable but
    // not trivially, so models make some mistakes.
    auto y = torch::remainder(torch::arange(n, torch::kLong), classes)
                 .index_select(0, torch::randperm(n, gen, torch::kLong));  // (N)
    auto other = torch::remainder(y + torch::randint(1, std::max<int64_t>(classes, 2), {n}, gen,
                                                     torch::kLong),
                                  classes);                                     // (N)
    auto a = (torch::rand({n}, gen, f32) * 0.5).view({n, 1, 1, 1});             // (N, 1, 1, 1)
    auto noise = torch::randn({n, channels, height, width}, gen, f32) * 48;      // (N, C, H, W)
    auto img = protos.index_select(0, y) * (1 - a) + protos.index_select(0, other) * a + noise;
    s.x = img.round().clamp(0, 255).to(torch::kUInt8);  // (N, C, H, W)
    s.y = y;
  };
  draw(n_train, train);
  draw(n_test, test);
}

}  // namespace apricot
