// Device resolution and process-wide runtime settings (threads, global seed), and the CPUs this
// process may use (affinity mask and cgroup quota). It does not pin threads or change priorities.
#include "apricot/core/device.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <filesystem>
#include <sstream>
#include <vector>

#include "apricot/core/errors.hpp"

namespace apricot {

torch::Device resolve_device(const std::string& spec) {
  // No process-wide settings here (cuDNN autotuning is setup_runtime's): resolve_devices runs after
  // setup_runtime and must not undo `deterministic`.
  bool has_cuda = torch::cuda::is_available();
  if (spec == "auto") {
    if (has_cuda) return torch::Device(torch::kCUDA, 0);
    spdlog::debug("device auto: no CUDA device found, using the CPU");
    return torch::Device(torch::kCPU);
  }
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (!has_cuda)
      config_error("device '" + spec + "' requested but no CUDA device is available",
                   "use --device cpu or --device auto (this LibTorch build or machine has no GPU)");
    int index = 0;
    if (spec.size() > 5) {
      try {
        index = std::stoi(spec.substr(5));
      } catch (const std::exception&) {
        index = -1;
      }
      if (index < 0 || spec[4] != ':')
        config_error("device '" + spec + "' is not valid", "use auto, cpu, cuda or cuda:N");
    }
    if (index >= static_cast<int>(torch::cuda::device_count()))
      config_error("device '" + spec + "': only " + std::to_string(torch::cuda::device_count()) +
                       " CUDA device(s) present",
                   "use cuda:0 .. cuda:" + std::to_string(torch::cuda::device_count() - 1));
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  config_error("device '" + spec + "' is not valid", "use auto, cpu, cuda or cuda:N");
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define APRICOT_AUTOCAST_PER_DEVICE 1
#endif

AutocastBf16::AutocastBf16(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
#ifdef APRICOT_AUTOCAST_PER_DEVICE
  prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
  prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
  prev_enabled_ = at::autocast::is_enabled();
  prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(true);
#endif
}

AutocastBf16::~AutocastBf16() {
  if (!enabled_) return;
#ifdef APRICOT_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
  at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
#else
  at::autocast::set_enabled(prev_enabled_);
  at::autocast::set_autocast_gpu_dtype(prev_dtype_);
#endif
  at::autocast::clear_cache();
}

namespace {

std::optional<int64_t> parse_int(const std::string& token) {
  int64_t v = 0;
  const char* end = token.data() + token.size();
  auto [p, ec] = std::from_chars(token.data(), end, v);
  if (ec != std::errc() || p != end || token.empty()) return std::nullopt;
  return v;
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::optional<int64_t> whole_cpus(int64_t quota, int64_t period) {
  if (quota <= 0 || period <= 0) return std::nullopt;  // v1 writes -1 for "no limit"
  return std::max<int64_t>(1, (quota + period - 1) / period);
}

std::optional<std::string> read_small_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void keep_smaller(std::optional<int64_t>& best, std::optional<int64_t> v) {
  if (v && (!best || *v < *best)) best = v;
}

// `mount` + the cgroup's path and each of its ancestors up to `mount` itself: a parent's quota
// limits its children too. Inside a container the path may not exist under the mount (a cgroup
// namespace shows the container's cgroup as the root); the levels that exist are read.
std::vector<std::filesystem::path> cgroup_levels(const std::filesystem::path& mount, const std::string& path) {
  std::vector<std::filesystem::path> out;
  std::filesystem::path rel = std::filesystem::path(path).relative_path();
  while (true) {
    out.push_back(mount / rel);
    if (rel.empty()) break;
    rel = rel.parent_path();
  }
  return out;
}

}  // namespace

std::optional<int64_t> cgroup_v2_cpu_limit(const std::string& cpu_max) {
  const auto w = words(cpu_max);
  if (w.size() != 2 || w[0] == "max") return std::nullopt;
  const auto quota = parse_int(w[0]), period = parse_int(w[1]);
  if (!quota || !period) return std::nullopt;
  return whole_cpus(*quota, *period);
}

std::optional<int64_t> cgroup_v1_cpu_limit(const std::string& cfs_quota_us, const std::string& cfs_period_us) {
  const auto q = words(cfs_quota_us), p = words(cfs_period_us);
  if (q.size() != 1 || p.size() != 1) return std::nullopt;
  const auto quota = parse_int(q[0]), period = parse_int(p[0]);
  if (!quota || !period) return std::nullopt;
  return whole_cpus(*quota, *period);
}

std::optional<int64_t> cgroup_cpu_limit() {
  namespace fs = std::filesystem;
  const auto self = read_small_file("/proc/self/cgroup");
  if (!self) return std::nullopt;
  std::optional<int64_t> limit;
  std::istringstream lines(*self);
  for (std::string line; std::getline(lines, line);) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    const auto a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      for (const char* mount : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
        for (const auto& dir : cgroup_levels(mount, path))
          if (auto text = read_small_file(dir / "cpu.max")) keep_smaller(limit, cgroup_v2_cpu_limit(*text));
      continue;
    }
    std::istringstream names(controllers);
    bool has_cpu = false;
    for (std::string n; std::getline(names, n, ',');) has_cpu |= n == "cpu";
    if (!has_cpu) continue;
    for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu"})
      for (const auto& dir : cgroup_levels(mount, path)) {
        auto quota = read_small_file(dir / "cpu.cfs_quota_us"), period = read_small_file(dir / "cpu.cfs_period_us");
        if (quota && period) keep_smaller(limit, cgroup_v1_cpu_limit(*quota, *period));
      }
  }
  return limit;
}

std::optional<int64_t> slurm_cpus_per_task(const char* value) {
  if (value == nullptr) return std::nullopt;
  const auto w = words(value);
  if (w.size() != 1) return std::nullopt;
  const auto n = parse_int(w[0]);
  if (!n || *n < 1) return std::nullopt;
  return n;
}

int available_cpus() {
  int64_t n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  // More than CPU_SETSIZE (1024) CPUs, or no affinity call: every CPU online.
  if (n <= 0) n = std::max<long>(1, ::sysconf(_SC_NPROCESSORS_ONLN));
  if (auto quota = cgroup_cpu_limit()) n = std::min(n, *quota);
  if (auto slurm = slurm_cpus_per_task(std::getenv("SLURM_CPUS_PER_TASK"))) n = std::min(n, *slurm);
  return static_cast<int>(std::max<int64_t>(1, n));
}

namespace {

// The BLAS library's thread-count functions, looked up among the libraries already loaded (LibTorch
// links libblas.so.3, whichever implementation Debian's alternatives point it at).
struct BlasApi {
  const char* library = "";
  void (*set_int)(int) = nullptr;       // OpenBLAS, MKL
  void (*set_dim)(int64_t) = nullptr;   // BLIS takes a dim_t
  int (*get)() = nullptr;
  char* (*core)() = nullptr;            // OpenBLAS's kernel name
};

const BlasApi& blas_api() {
  static const BlasApi api = [] {
    BlasApi a;
    auto sym = [](const char* name) { return ::dlsym(RTLD_DEFAULT, name); };
    if (void* s = sym("openblas_set_num_threads")) {
      a.library = "openblas";
      a.set_int = reinterpret_cast<void (*)(int)>(s);
      a.get = reinterpret_cast<int (*)()>(sym("openblas_get_num_threads"));
      a.core = reinterpret_cast<char* (*)()>(sym("openblas_get_corename"));
    } else if (void* b = sym("bli_thread_set_num_threads")) {
      a.library = "blis";
      a.set_dim = reinterpret_cast<void (*)(int64_t)>(b);
    } else if (void* m = sym("MKL_Set_Num_Threads")) {
      a.library = "mkl";
      a.set_int = reinterpret_cast<void (*)(int)>(m);
      a.get = reinterpret_cast<int (*)()>(sym("MKL_Get_Max_Threads"));
    }
    return a;
  }();
  return api;
}

}  // namespace

void set_compute_threads(int64_t n) {
  const int threads = static_cast<int>(std::max<int64_t>(1, n));
  at::set_num_threads(threads);
  const BlasApi& blas = blas_api();
  if (blas.set_int) blas.set_int(threads);
  if (blas.set_dim) blas.set_dim(threads);
}

std::string blas_core() {
  const BlasApi& blas = blas_api();
  const char* name = blas.core ? blas.core() : nullptr;
  return name ? name : "";
}

BlasThreads blas_threads() {
  const BlasApi& blas = blas_api();
  if (!blas.set_int && !blas.set_dim) return {};
  return {blas.get ? blas.get() : 0, blas.library};
}

void setup_runtime(int64_t threads, uint64_t seed, bool deterministic) {
  // 0 = the CPUs this process may use. LibTorch's own default can be 1 thread (seen on Debian's
  // build), and the machine's core count oversubscribes a taskset or a container's quota.
  if (threads <= 0) threads = available_cpus();
  set_compute_threads(threads);
  // The inter-op pool (TorchScript's fork) can be sized once, before it starts: later calls keep it.
  static std::once_flag interop_once;
  std::call_once(interop_once, [threads] {
    try {
      at::set_num_interop_threads(static_cast<int>(threads));
    } catch (const std::exception&) {  // already started by an earlier caller in this process
    }
  });
  torch::manual_seed(seed);
  // Fixed input shapes: cuDNN picks the fastest convolution algorithms once, unless deterministic.
  // Set both ways: a later call for a run without `deterministic` gets the fast settings back.
  at::globalContext().setBenchmarkCuDNN(!deterministic);
  at::globalContext().setDeterministicCuDNN(deterministic);
  at::globalContext().setDeterministicAlgorithms(deterministic, /*warn_only=*/false);
  // cuBLAS needs a fixed workspace to be reproducible; it reads this before its first use.
  if (deterministic) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
}

}  // namespace apricot
