// Runs independent jobs (rDLM trainings, benchmark models) on several worker threads at once: one
// CUDA stream per worker on a GPU, a share of the CPU threads per worker on the CPU, and jobs spread
// over several devices. Which device a job runs on depends only on the job's number, so a job
// interrupted on one device resumes on the same device however many workers the rerun has.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace apricot {

// {"cuda:0", "cuda:1"} -> the devices, each resolved as resolve_device does. Throws kUsage naming
// the bad entry ("auto", a duplicate, a device that is not present).
std::vector<torch::Device> resolve_devices(const std::vector<std::string>& names);
// "cuda:0,cuda:1" -> {"cuda:0", "cuda:1"} (the --devices flag); kUsage for an empty entry.
std::vector<std::string> split_device_list(const std::string& text);

struct ParallelPlan {
  int64_t workers = 1;                // threads running jobs at once (>= number of devices)
  std::vector<torch::Device> devices;  // job j runs on devices[j % devices.size()]
  int64_t threads_per_worker = 0;      // intra-op CPU threads of each worker (0 = leave as is)
};

// The plan for `parallel` jobs at once over `devices`: at least one worker per device, each with
// max(1, total_cpu_threads / workers) intra-op threads. The thread count depends on `parallel`
// only, never on how many jobs are pending, so a job computes the same way in a rerun that has
// fewer jobs left (LibTorch's CPU kernels can round differently at other thread counts).
ParallelPlan make_parallel_plan(int64_t parallel, const std::vector<torch::Device>& devices,
                                int64_t total_cpu_threads);

// Calls job(j, device) for every j in `jobs`. With one worker and one device, on the calling
// thread, in order. Otherwise on plan.workers threads (however few jobs there are); each worker
// serves one device's jobs in order, runs them with plan.threads_per_worker intra-op threads and,
// on a GPU, on its own stream from the device's stream pool. When a job throws, no worker starts a
// new job; running jobs finish, the first exception is rethrown here after every worker has ended,
// and any later one is logged. The caller's intra-op thread setting is restored.
void run_parallel(const std::vector<int64_t>& jobs, const ParallelPlan& plan,
                  const std::function<void(int64_t job, const torch::Device& device)>& job);

// True on a run_parallel worker thread (which then shares the device with other workers).
bool in_parallel_worker();


}  // namespace apricot
