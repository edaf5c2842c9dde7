// Worker threads for independent jobs. Streams come from c10's device-generic guard interface, so
// the same source builds against a CPU-only LibTorch (where no stream is ever requested).
#include "apricot/core/parallel.hpp"

#include <ATen/Parallel.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <optional>
#include <sstream>
#include <thread>

#include "apricot/core/device.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/timing.hpp"

namespace apricot {

std::vector<std::string> split_device_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  if (text.empty() || text.back() == ',' || std::find(out.begin(), out.end(), "") != out.end())
    config_error("--devices '" + text + "': an empty entry", "list devices such as cuda:0,cuda:1");
  return out;
}

std::vector<torch::Device> resolve_devices(const std::vector<std::string>& names) {
  std::vector<torch::Device> out;
  for (const auto& name : names) {
    if (name == "auto")
      config_error("device list (--devices, config key rdlm.devices): 'auto' is not allowed in a list",
                   "list devices such as cuda:0,cuda:1");
    auto d = resolve_device(name);
    if (std::find(out.begin(), out.end(), d) != out.end())
      config_error("device list (--devices, config key rdlm.devices): " + d.str() + " is listed twice",
                   "list each device once; rdlm.parallel sets how many rDLMs train at once");
    out.push_back(d);
  }
  return out;
}

ParallelPlan make_parallel_plan(int64_t parallel, const std::vector<torch::Device>& devices,
                                int64_t total_cpu_threads) {
  TORCH_CHECK(!devices.empty(), "make_parallel_plan: no device");
  ParallelPlan plan;
  plan.devices = devices;
  plan.workers = std::max<int64_t>(parallel, static_cast<int64_t>(devices.size()));
  if (plan.workers > 1) plan.threads_per_worker = std::max<int64_t>(1, total_cpu_threads / plan.workers);
  return plan;
}

namespace {
thread_local bool t_in_worker = false;
}

bool in_parallel_worker() { return t_in_worker; }

void run_parallel(const std::vector<int64_t>& jobs, const ParallelPlan& plan,
                  const std::function<void(int64_t, const torch::Device&)>& job) {
  const auto ndev = static_cast<int64_t>(plan.devices.size());
  TORCH_CHECK(ndev > 0, "run_parallel: no device");
  if (plan.workers <= 1 && ndev == 1) {
    for (int64_t j : jobs) job(j, plan.devices[0]);
    return;
  }
  // Each device's jobs in the caller's order; the device's workers take them one by one.
  std::vector<std::vector<int64_t>> queue(ndev);
  for (int64_t j : jobs) queue[j % ndev].push_back(j);
  std::vector<std::atomic<size_t>> next(ndev);
  for (auto& n : next) n = 0;
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr first_error;
  auto record = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!first_error) {
      first_error = e;
    } else {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("{}", ex.what());  // only the first error is rethrown: show the others here
      } catch (...) {
        spdlog::error("a worker failed with an unknown error");
      }
    }
    failed = true;
  };

  auto worker = [&](int64_t w) {
    t_in_worker = true;
    const int64_t d = w % ndev;
    const torch::Device& device = plan.devices[d];
    try {
      if (plan.threads_per_worker > 0) at::set_num_threads(static_cast<int>(plan.threads_per_worker));
      std::optional<c10::StreamGuard> stream;
      if (!device.is_cpu()) {
        c10::impl::VirtualGuardImpl impl(device.type());
        stream.emplace(impl.getStreamFromGlobalPool(device, /*isHighPriority=*/false));
      }
      while (!failed.load()) {
        const size_t i = next[d].fetch_add(1);
        if (i >= queue[d].size()) break;
        job(queue[d][i], device);
      }
      sync_device(device);
    } catch (...) {
      record(std::current_exception());
    }
  };
  const int saved_threads = at::get_num_threads();
  // The BLAS library's pool is one for the process: the workers' share, like their intra-op threads.
  if (plan.threads_per_worker > 0) set_compute_threads(plan.threads_per_worker);
  std::vector<std::thread> threads;
  try {
    for (int64_t w = 0; w < plan.workers; ++w) threads.emplace_back(worker, w);
  } catch (...) {  // a thread could not start: stop the others, then report
    record(std::current_exception());
  }
  for (auto& t : threads) t.join();
  set_compute_threads(saved_threads);  // workers changed the default that new threads start with
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace apricot
