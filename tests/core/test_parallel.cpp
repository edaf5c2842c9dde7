// Concurrent jobs (rdlm.parallel, --devices): every job runs exactly once on the device its number
// picks, a failing job stops the others from starting new ones and its error reaches the caller,
// and bad device lists are refused with the key and a hint.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "apricot/core/errors.hpp"
#include "apricot/core/parallel.hpp"
#include "cli_util.hpp"

using namespace apricot;
using namespace apricot::test;

TEST(Parallel, EveryJobRunsOnceOnItsWorkerThreads) {
  std::vector<int64_t> jobs;
  for (int64_t j = 0; j < 9; ++j) jobs.push_back(j);
  // 3 workers of 3 threads in all: 1 each, unlike the caller's setting (restored afterwards).
  const int caller_threads = at::get_num_threads();
  at::set_num_threads(3);
  auto plan = make_parallel_plan(3, {torch::Device(torch::kCPU)}, 3);
  EXPECT_EQ(plan.workers, 3);
  EXPECT_EQ(plan.threads_per_worker, 1);
  std::mutex m;
  std::multiset<int64_t> seen;
  std::set<std::thread::id> threads;
  std::set<int> omp_threads;
  run_parallel(jobs, plan, [&](int64_t j, const torch::Device& d) {
    EXPECT_TRUE(d.is_cpu());
    std::lock_guard<std::mutex> g(m);
    seen.insert(j);
    threads.insert(std::this_thread::get_id());
    omp_threads.insert(at::get_num_threads());
  });
  EXPECT_EQ(seen, std::multiset<int64_t>(jobs.begin(), jobs.end()));
  EXPECT_FALSE(threads.count(std::this_thread::get_id()));  // not on the caller's thread
  EXPECT_EQ(omp_threads, std::set<int>{1});
  EXPECT_EQ(at::get_num_threads(), 3);
  at::set_num_threads(caller_threads);
}

TEST(Parallel, OneWorkerRunsInOrderOnTheCallersThread) {
  std::vector<int64_t> order;
  const auto caller = std::this_thread::get_id();
  run_parallel({4, 1, 7}, make_parallel_plan(1, {torch::Device(torch::kCPU)}, 2), [&](int64_t j, const torch::Device&) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    order.push_back(j);
  });
  EXPECT_EQ(order, (std::vector<int64_t>{4, 1, 7}));
}

TEST(Parallel, FirstErrorReachesTheCallerAndStopsNewJobs) {
  std::vector<int64_t> jobs;
  for (int64_t j = 0; j < 50; ++j) jobs.push_back(j);
  std::atomic<int> started{0};
  auto plan = make_parallel_plan(2, {torch::Device(torch::kCPU)}, 2);
  try {
    run_parallel(jobs, plan, [&](int64_t j, const torch::Device&) {
      ++started;
      if (j == 3) throw Error(ExitCode::kData, "job 3 failed");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kData);
    EXPECT_STREQ(e.what(), "job 3 failed");
  }
  EXPECT_LT(started.load(), 50);  // the rest never started (they would take 230 ms more)
}

TEST(Parallel, PlanGivesEveryDeviceAWorker) {
  std::vector<torch::Device> two = {torch::Device(torch::kCPU), torch::Device(torch::kCPU)};
  auto plan = make_parallel_plan(1, two, 4);
  EXPECT_EQ(plan.workers, 2);
  EXPECT_EQ(plan.threads_per_worker, 2);
  EXPECT_EQ(make_parallel_plan(8, {torch::Device(torch::kCPU)}, 2).threads_per_worker, 1);
  EXPECT_EQ(make_parallel_plan(1, {torch::Device(torch::kCPU)}, 2).threads_per_worker, 0);  // left as is
}

TEST(Parallel, DeviceListsAreChecked) {
  EXPECT_EQ(split_device_list("cuda:0,cuda:1"), (std::vector<std::string>{"cuda:0", "cuda:1"}));
  EXPECT_THROW(split_device_list("cuda:0,"), Error);
  EXPECT_THROW(split_device_list(""), Error);
  EXPECT_THROW(resolve_devices({"cpu", "cpu"}), Error);
  EXPECT_THROW(resolve_devices({"auto"}), Error);
  EXPECT_EQ(resolve_devices({"cpu"}).at(0), torch::Device(torch::kCPU));
}

TEST(ParallelCli, BadDevicesAndParallelAreUsageErrors) {
  auto d = fresh_dir("par-cli");
  const std::string w = " -w " + (d / "w").string() + " --set data.synthetic_train=300 ";
  auto r = run_apricot("train-rdlms" + w + "--devices cpu,cpu");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("listed twice"), std::string::npos) << r.err;
  r = run_apricot("train-rdlms" + w + "--devices cpu,");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("empty entry"), std::string::npos) << r.err;
  r = run_apricot("train-rdlms" + w + "--set 'rdlm.devices=[\"gpu\"]'");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("rdlm.devices"), std::string::npos) << r.err;
  r = run_apricot("train-rdlms" + w + "--parallel 0");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("rdlm.parallel"), std::string::npos) << r.err;
  if (!torch::cuda::is_available()) {
    r = run_apricot("train-rdlms" + w + "--devices cuda:0");
    EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
    EXPECT_NE(r.err.find("no CUDA device"), std::string::npos) << r.err;
  }
}

TEST(ParallelCli, BenchRdlmsPrintsBothRates) {
  auto r = run_apricot("bench rdlms --arch small --input 1,12,12 --classes 3 -k 2 --batch 16 --steps 2 --repeats 1 "
                       "--device cpu --threads 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["k"], 2);
  EXPECT_EQ(j["workers"], 2);
  EXPECT_EQ(j["threads_per_worker"], 1);
  EXPECT_GT(j["sequential_images_per_s"].get<double>(), 0);
  EXPECT_GT(j["concurrent_images_per_s"].get<double>(), 0);
  r = run_apricot("bench matmul -n 64 --repeats 1 --device cpu --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rows"][0]["dtype"], "fp32");
  EXPECT_GT(j["rows"][0]["tflops"].get<double>(), 0);
}
