// Resolves the --device / config "device" string once; the result is passed explicitly everywhere.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <optional>
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

// The CPUs this process may use: the CPUs of its affinity mask (taskset, Slurm, cpusets), capped by
// its cgroup's CPU quota rounded up (docker --cpus, Kubernetes limits, systemd CPUQuota) and by the
// CPUs a Slurm job was given (SLURM_CPUS_PER_TASK: a cluster without Slurm's affinity or cgroup
// plugins leaves the mask at the whole node), at least 1. This is what `threads: 0` means;
// std::thread::hardware_concurrency counts the machine's CPUs.
int available_cpus();
// SLURM_CPUS_PER_TASK's value as a CPU count: nullopt when unset, empty or not a positive integer.
std::optional<int64_t> slurm_cpus_per_task(const char* value);
// The whole CPUs a cgroup quota allows (ceil(quota / period)), or nullopt for no limit or text that
// does not parse. v2: the text of cpu.max ("max 100000", "150000 100000"); v1: the texts of
// cpu.cfs_quota_us ("-1" = none) and cpu.cfs_period_us.
std::optional<int64_t> cgroup_v2_cpu_limit(const std::string& cpu_max);
std::optional<int64_t> cgroup_v1_cpu_limit(const std::string& cfs_quota_us, const std::string& cfs_period_us);
// The smallest quota over this process's cgroups and their ancestors (v1 and v2), or nullopt.
std::optional<int64_t> cgroup_cpu_limit();

// Every pool that does arithmetic in parallel, set to n threads (n >= 1): LibTorch's intra-op threads
// of the calling thread (OpenMP, also what oneDNN uses) and the BLAS library's own pool. LibTorch
// never sets the latter: OpenBLAS sizes it from the affinity mask when it loads, and its
// matrix-vector products sum in a different order with another thread count, so without this the
// same --threads gave other bits under another mask (a Slurm job bound to one CPU vs a plain run).
// The BLAS library is found at run time: OpenBLAS, BLIS or MKL; the reference BLAS has no threads.
void set_compute_threads(int64_t n);
// The BLAS library's thread count as it reports it, and its name ("openblas", "blis", "mkl");
// {0, ""} for a BLAS without a thread pool (the reference BLAS) or one not recognised.
struct BlasThreads {
  int threads = 0;
  std::string library;
};
BlasThreads blas_threads();
// The kernels the BLAS library chose for this CPU (OpenBLAS's core name, "Haswell", "SkylakeX", ...;
// OPENBLAS_CORETYPE overrides it), or "" where the library does not say.
std::string blas_core();

// Applies threads (0 = available_cpus()) to every pool (set_compute_threads, and LibTorch's
// inter-op pool once per process) and seeds torch's global generator. deterministic: LibTorch's
// deterministic algorithms (an error for an op that has none), deterministic cuDNN without
// autotuning, and a fixed cuBLAS workspace; without it, cuDNN autotunes (and a later call without it
// turns the deterministic settings off again). CPU runs are deterministic either way.
// resolve_device changes none of these, so devices may be resolved before or after.
void setup_runtime(int64_t threads, uint64_t seed, bool deterministic = false);

}  // namespace apricot
