// Timing for the benchmarks: the median wall time of repeated calls, after warm-up calls, with
// the device synchronised around each call so that GPU work is counted. Internal to src/.
#pragma once
#include <torch/cuda.h>
#include <torch/types.h>

#include "apricot/core/clock.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace apricot {

inline void sync_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// The median of `v` (0 when empty).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t k = v.size();
  return k == 0 ? 0.0 : k % 2 == 1 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

// Median wall time in ms of `repeats` calls of fn after `warmup` untimed calls.
template <typename Fn>
double median_ms(int64_t repeats, int64_t warmup, const torch::Device& device, Fn&& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  sync_device(device);
  std::vector<double> times;
  times.reserve(repeats);
  for (int64_t i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    fn();
    sync_device(device);
    times.push_back(1000 * since(t0));
  }
  return median(std::move(times));
}

}  // namespace apricot
