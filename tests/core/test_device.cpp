// The CPUs this process may use (threads: 0): the affinity mask capped by the cgroup CPU quota,
// the quota parsing as a function of the files' text, the binary under taskset, and the OpenMP
// wait policy the binary runs with.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "apricot/core/device.hpp"
#include "apricot/core/parallel.hpp"
#include "cli_util.hpp"

using apricot::blas_threads;
using apricot::BlasThreads;
using apricot::set_compute_threads;
using apricot::available_cpus;
using apricot::cgroup_v1_cpu_limit;
using apricot::cgroup_v2_cpu_limit;
using apricot::test::run_apricot;
using apricot::resolve_device;
using apricot::resolve_devices;
using apricot::setup_runtime;

namespace {

int affinity_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  return CPU_COUNT(&set);
}

int first_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  ::sched_getaffinity(0, sizeof set, &set);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) return c;
  return -1;
}

}  // namespace

// cuDNN autotuning follows `deterministic` and nothing else: resolving devices afterwards (as
// --devices and rdlm.devices do, after setup_runtime) must not turn it back on.
TEST(Device, DeterministicTurnsAutotuningOffAndResolvingDevicesKeepsIt) {
  const int threads = at::get_num_threads();  // (kept: device-check.sh runs every test in one process)
  setup_runtime(threads, 0, /*deterministic=*/false);
  EXPECT_TRUE(at::globalContext().benchmarkCuDNN());
  setup_runtime(threads, 0, /*deterministic=*/true);
  EXPECT_FALSE(at::globalContext().benchmarkCuDNN());
  EXPECT_TRUE(at::globalContext().deterministicCuDNN());
  resolve_device("auto");
  resolve_device("cpu");
  resolve_devices({"cpu"});
  if (torch::cuda::is_available()) resolve_devices({"cuda:0"});
  EXPECT_FALSE(at::globalContext().benchmarkCuDNN()) << "a device resolved after setup_runtime undid deterministic";
  setup_runtime(threads, 0, /*deterministic=*/false);  // and back: the fast settings again
  EXPECT_TRUE(at::globalContext().benchmarkCuDNN());
  EXPECT_FALSE(at::globalContext().deterministicCuDNN());
  EXPECT_FALSE(at::globalContext().deterministicAlgorithms());
}

TEST(Device, CgroupV2CpuMax) {
  EXPECT_FALSE(cgroup_v2_cpu_limit("max 100000\n"));
  EXPECT_EQ(cgroup_v2_cpu_limit("150000 100000\n"), 2);  // 1.5 CPUs: rounded up
  EXPECT_EQ(cgroup_v2_cpu_limit("50000 100000"), 1);
  EXPECT_EQ(cgroup_v2_cpu_limit("200000 100000"), 2);
  EXPECT_EQ(cgroup_v2_cpu_limit("1000 100000"), 1);  // a sliver of a CPU is still one thread
  EXPECT_EQ(cgroup_v2_cpu_limit("800000 100000"), 8);
  for (const char* garbage : {"", "\n", "max", "100000", "abc 100000", "150000 abc", "150000 0", "0 100000",
                              "-5 100000", "1.5 1", "150000 100000 7", "150000x 100000"})
    EXPECT_FALSE(cgroup_v2_cpu_limit(garbage)) << "'" << garbage << "'";
}

TEST(Device, CgroupV1CfsQuota) {
  EXPECT_FALSE(cgroup_v1_cpu_limit("-1\n", "100000\n"));  // no quota
  EXPECT_EQ(cgroup_v1_cpu_limit("150000\n", "100000\n"), 2);
  EXPECT_EQ(cgroup_v1_cpu_limit("50000", "100000"), 1);
  EXPECT_EQ(cgroup_v1_cpu_limit("300000", "100000"), 3);
  EXPECT_FALSE(cgroup_v1_cpu_limit("", "100000"));
  EXPECT_FALSE(cgroup_v1_cpu_limit("150000", "0"));
  EXPECT_FALSE(cgroup_v1_cpu_limit("150000", "garbage"));
  EXPECT_FALSE(cgroup_v1_cpu_limit("15 0000", "100000"));
}

TEST(Device, AvailableCpusIsTheAffinityMaskCappedByTheQuota) {
  int64_t expected = affinity_count();
  if (const auto quota = apricot::cgroup_cpu_limit()) expected = std::min(expected, *quota);
  if (const auto slurm = apricot::slurm_cpus_per_task(std::getenv("SLURM_CPUS_PER_TASK")))
    expected = std::min(expected, *slurm);  // the tests themselves run in a Slurm job
  EXPECT_EQ(available_cpus(), expected);
  EXPECT_GE(available_cpus(), 1);
}

TEST(Device, SlurmCpusPerTaskParses) {
  EXPECT_EQ(apricot::slurm_cpus_per_task("4"), 4);
  EXPECT_EQ(apricot::slurm_cpus_per_task(" 1\n"), 1);
  EXPECT_FALSE(apricot::slurm_cpus_per_task(nullptr));
  EXPECT_FALSE(apricot::slurm_cpus_per_task(""));
  EXPECT_FALSE(apricot::slurm_cpus_per_task("0"));
  EXPECT_FALSE(apricot::slurm_cpus_per_task("-2"));
  EXPECT_FALSE(apricot::slurm_cpus_per_task("2x"));
  EXPECT_FALSE(apricot::slurm_cpus_per_task("1 2"));
}

// A Slurm job whose node sets no affinity mask (no task/affinity or cgroup plugin) still gets the
// CPUs the job was given, also when the user's batch script passes no --threads.
TEST(Device, BinaryInASlurmJobUsesItsCpusPerTask) {
  auto dir = apricot::test::fresh_dir("slurm-cpus");
  auto r = apricot::test::run_shell("SLURM_CPUS_PER_TASK=1 " + std::string(APRICOT_BINARY) + " train-base --device cpu -w " +
                                    dir.string() + " --set train.epochs=1 --set data.synthetic_train=300 --set data.val_size=50");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("| 1 CPU threads |"), std::string::npos) << r.err;
  r = apricot::test::run_shell("SLURM_CPUS_PER_TASK=1 " + std::string(APRICOT_BINARY) +
                               " bench matmul -n 8 --repeats 1 --device cpu --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["threads"], 1) << r.out;
  std::filesystem::remove_all(dir);
}

TEST(Device, AvailableCpusFollowsANarrowedMask) {
  // This thread only: pin it to one CPU, ask, restore.
  cpu_set_t saved;
  CPU_ZERO(&saved);
  ASSERT_EQ(::sched_getaffinity(0, sizeof saved, &saved), 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first_allowed_cpu(), &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
  const int n = available_cpus();
  ASSERT_EQ(::sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(n, 1);
}

TEST(Device, BinaryUnderTasksetUsesOneThread) {
  if (std::system("command -v taskset >/dev/null 2>&1") != 0) GTEST_SKIP() << "taskset (util-linux) not installed";
  const std::string taskset = "taskset -c " + std::to_string(first_allowed_cpu()) + " " + apricot::test::apricot_command();
  // bench reports the thread count it ran with.
  auto r = apricot::test::run_shell(taskset + " bench matmul -n 8 --repeats 1 --device cpu --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["threads"], 1) << r.out;
  // A session logs it at start: "device cpu | 1 CPU threads | work directory ...".
  auto dir = apricot::test::fresh_dir("taskset");
  r = apricot::test::run_shell(taskset + " train-base --device cpu -w " + dir.string() +
                               " --set train.epochs=1 --set data.synthetic_train=300 --set data.val_size=50");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("| 1 CPU threads |"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

TEST(Device, ThreadsSetTheBlasLibrarysPoolToo) {
  // LibTorch leaves the BLAS library's own pool alone; set_compute_threads sizes it with the rest.
  const BlasThreads before = blas_threads();
  if (before.library.empty())
    GTEST_SKIP() << "no BLAS thread-pool functions among the loaded libraries: the reference BLAS, or a BLAS built "
                    "into LibTorch (PyTorch's wheel links MKL in, which follows LibTorch's OpenMP threads)";
  const int saved = at::get_num_threads();
  set_compute_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  if (before.library != "blis") {
    EXPECT_EQ(blas_threads().threads, 1) << before.library;
    set_compute_threads(2);
    EXPECT_EQ(blas_threads().threads, 2) << before.library;
  }
  set_compute_threads(saved);
}

TEST(Device, SameThreadsGiveTheSameBitsWhateverTheBlasPoolStartedWith) {
  // The root cause of a Slurm job and a plain run training different bits with the same --threads:
  // OpenBLAS sizes its pool from the affinity mask (1 CPU in the job, all in the plain run), and its
  // products sum in another order with another thread count (seen with the Haswell/Zen kernels that
  // OPENBLAS_CORETYPE selects on any x86-64 machine). The pool's starting size is set here by
  // OPENBLAS_NUM_THREADS; --threads 1 must override it.
  if (blas_threads().library != "openblas") GTEST_SKIP() << "not OpenBLAS (Debian's LibTorch with libopenblas0-pthread)";
  auto dir = apricot::test::fresh_dir("blas-threads");
  const std::string args = " train-base --device cpu --threads 1 --log-level warn --set train.epochs=2 "
                           "--set data.synthetic_train=600 --set data.val_size=100 -w " + dir.string();
  for (const char* n : {"1", "2"}) {
    auto r = apricot::test::run_shell(std::string("OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=") + n + " " +
                                      APRICOT_BINARY + args + "/w" + n);
    ASSERT_EQ(r.code, 0) << r.err;
  }
  // apricot compare: exit 0 when every tensor is bitwise equal.
  const std::string a = (dir / "w1/base/model.pt").string(), b = (dir / "w2/base/model.pt").string();
  auto same = apricot::test::run_apricot("compare " + a + " " + b);
  EXPECT_EQ(same.code, 0) << same.out << same.err;
  EXPECT_NE(same.out.find("0 of "), std::string::npos) << same.out;
  // Another seed: exit 1, and each differing tensor named with its largest difference.
  auto r = apricot::test::run_shell(std::string(APRICOT_BINARY) + args + "/w3 --seed 1");
  ASSERT_EQ(r.code, 0) << r.err;
  auto other = apricot::test::run_apricot("compare --json " + a + " " + (dir / "w3/base/model.pt").string());
  EXPECT_EQ(other.code, 1) << other.err;  // as diff: 1 = they differ (not an error code)
  const auto doc = nlohmann::json::parse(other.out);
  EXPECT_GT(doc["differing"].get<int64_t>(), 0);
  EXPECT_EQ(doc["differing"], doc["differences"].size());
  for (const auto& d : doc["differences"]) {
    EXPECT_GT(d["differing"].get<int64_t>(), 0) << d;
    EXPECT_GT(d["max_abs_diff"].get<double>(), 0) << d;
  }
  std::filesystem::remove_all(dir);
}

namespace {
// The spin count libgomp settled on, from its OMP_DISPLAY_ENV=verbose report on stderr (the last
// one: a re-exec'd binary reports twice); "" if the OpenMP runtime is not libgomp.
std::string last_spin_count(const std::string& err) {
  const std::string key = "GOMP_SPINCOUNT = '";
  const auto at = err.rfind(key);
  if (at == std::string::npos) return "";
  const auto start = at + key.size();
  return err.substr(start, err.find('\'', start) - start);
}
}  // namespace

TEST(Device, OpenMpThreadsSleepInsteadOfSpinningUnlessTheUserChose) {
  // libgomp reads the policy at load time; the binary must really run with it, not only set it.
  auto r = apricot::test::run_shell("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose " +
                                    std::string(APRICOT_BINARY) + " --version");
  ASSERT_EQ(r.code, 0) << r.err;
  if (last_spin_count(r.err).empty()) GTEST_SKIP() << "the OpenMP runtime is not libgomp";
  EXPECT_EQ(last_spin_count(r.err), "0") << r.err;  // OMP_WAIT_POLICY=PASSIVE
  EXPECT_NE(r.out.find("apricot "), std::string::npos) << r.out;  // and the command still ran
  // A user's own setting is kept.
  r = apricot::test::run_shell("env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=ACTIVE OMP_DISPLAY_ENV=verbose " +
                               std::string(APRICOT_BINARY) + " --version");
  EXPECT_NE(r.err.find("OMP_WAIT_POLICY = 'ACTIVE'"), std::string::npos) << r.err;
  EXPECT_NE(last_spin_count(r.err), "0") << r.err;
  r = apricot::test::run_shell("env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=1234 OMP_DISPLAY_ENV=verbose " +
                               std::string(APRICOT_BINARY) + " --version");
  EXPECT_EQ(last_spin_count(r.err), "1234") << r.err;
}
