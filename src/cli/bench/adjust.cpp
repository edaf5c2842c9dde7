// `apricot bench adjust`: the composed affine update (one pass over R per batch) against the naive
// per-input reference (one pass over R per failing input), on random data of a real model's size.
// Timing only; correctness lives in tests/method/test_adjustment.cpp (max_rel_diff here is a sanity check).
#include <torch/torch.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>

#include "bench.hpp"
#include "apricot/method/adjustment.hpp"
#include "apricot/core/timing.hpp"

namespace apricot {


nlohmann::json bench_adjust(int64_t P, int64_t n, const std::vector<int64_t>& failing_counts,
                            int64_t repeats, uint64_t seed, const torch::Device& device) {
  TORCH_CHECK(P > 0 && n > 0 && repeats > 0, "bench_adjust: need P, n, repeats > 0");
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  // Made on the CPU from one seeded generator so that every device sees the same numbers.
  const auto R = (0.05 * torch::randn({n, P}, gen, f32)).to(device);  // (n, P)
  const auto w = (0.05 * torch::randn({P}, gen, f32)).to(device);     // (P)
  const Strategy strategy = Strategy::k1;
  const Direction direction = Direction::kIntent;
  const double step = 0.001;

  nlohmann::json rows = nlohmann::json::array();
  for (const int64_t num_failing : failing_counts) {
    TORCH_CHECK(num_failing > 0, "bench_adjust: failing counts must be positive");
    auto mask = torch::rand({num_failing, n}, gen, f32) < 0.5;  // (F, n)
    // At least one correct rDLM per row, so that no input is skipped and both paths do full work.
    const auto forced = torch::randint(0, n, {num_failing}, gen, torch::TensorOptions().dtype(torch::kLong));
    mask.index_put_({torch::arange(num_failing), forced}, true);
    // The mask lives where the adaptation loop keeps it (the model's device); moving it to the CPU
    // is part of the engine's cost.
    const auto mask_dev = mask.to(device);

    torch::Tensor out_naive, out_engine;
    const double naive_ms = median_ms(repeats, 1, device, [&] {
      out_naive = naive_adjust(w, R, mask_dev, strategy, direction, step);
    });
    const double engine_ms = median_ms(repeats, 1, device, [&] {
      const auto upd = compose_updates(mask_dev.to(torch::kCPU), strategy, direction, step);
      out_engine = apply_update(w, R, upd);
    });
    // Relative to the largest weight, so that weights near zero do not blow the ratio up.
    const double max_rel_diff =
        ((out_engine - out_naive).abs().max() / out_naive.abs().max()).item<double>();
    rows.push_back({{"failing", num_failing},
                    {"naive_ms", naive_ms},
                    {"engine_ms", engine_ms},
                    {"ratio", naive_ms / engine_ms},
                    {"max_rel_diff", max_rel_diff}});
  }
  return {{"P", P},
          {"n", n},
          {"device", device.str()},
          {"strategy", to_string(strategy)},
          {"direction", to_string(direction)},
          {"repeats", repeats},
          {"threads", torch::get_num_threads()},
          {"rows", rows}};
}

}  // namespace apricot
