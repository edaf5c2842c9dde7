// `apricot bench`: adjust (the weight-adjustment engine against the naive per-input form), train
// (one model's training and inference images/s), rdlms (k models at once against one at a time) and
// matmul (the measured matrix rate behind the arithmetic floors in docs/PERFORMANCE.md).
#include <spdlog/spdlog.h>

#include <cstdio>

#include "bench/bench.hpp"
#include "apricot/core/device.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/parallel.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

ModelSpec spec_from(const std::string& arch, const std::string& input, int64_t classes);

struct BenchAdjustOptions {
  int64_t params = 2425930;  // CNN1's P
  int64_t rdlms = 20;
  int64_t repeats = 5;
  std::string device = "cpu";
  int64_t threads = 0;
  bool json = false;
};

int run_bench_adjust(const BenchAdjustOptions& o) {
  configure_logging("warn");
  auto device = resolve_device(o.device);
  setup_runtime(o.threads, 0);
  auto r = bench_adjust(o.params, o.rdlms, {1, 5, 20}, o.repeats, 0, device);
  if (o.json) {
    print_json(r);
    return 0;
  }
  std::printf("weight adjustment, P = %lld, n = %lld, %s, %lld threads, median of %lld\n",
              static_cast<long long>(o.params), static_cast<long long>(o.rdlms), device.str().c_str(),
              static_cast<long long>(r.value("threads", 0)), static_cast<long long>(o.repeats));
  std::printf("%8s %12s %12s %8s\n", "failing", "naive ms", "engine ms", "ratio");
  for (const auto& row : r["rows"])
    std::printf("%8lld %12.2f %12.2f %7.1fx\n", static_cast<long long>(row["failing"].get<int64_t>()),
                row["naive_ms"].get<double>(), row["engine_ms"].get<double>(), row["ratio"].get<double>());
  return 0;
}

struct BenchTrainOptions {
  std::string arch = "resnet20";
  int64_t batch = 128;
  std::string precision = "fp32";
  std::string input = "3,32,32";
  int64_t classes = 10;
  int64_t steps = 20;
  int64_t repeats = 5;
  int64_t warmup = 2;
  std::string memory_format = "contiguous";
  std::string device = "auto";
  int64_t threads = 0;
  std::string module;   // --module: a TorchScript file (arch torchscript)
  std::string against;  // --against: a second model measured side by side
  bool json = false;
};

int run_bench_train(const BenchTrainOptions& o) {
  configure_logging("warn");
  auto device = resolve_device(o.device);
  setup_runtime(o.threads, 0);
  ModelSpec spec = spec_from(o.module.empty() ? o.arch : "torchscript", o.input, o.classes);
  spec.path = o.module;
  std::vector<ModelSpec> specs = {spec};
  if (!o.against.empty()) specs.push_back(spec_from(o.against, o.input, o.classes));
  auto rs = bench_train_models(specs, o.batch, o.precision, o.steps, o.repeats, o.warmup, device,
                               o.memory_format == "channels_last");
  nlohmann::json doc = rs[0];
  if (rs.size() == 2) {
    doc = {{"models", rs},
           {"train_ratio", rs[0]["train_images_per_s"].get<double>() / rs[1]["train_images_per_s"].get<double>()},
           {"infer_ratio", rs[0]["infer_images_per_s"].get<double>() / rs[1]["infer_images_per_s"].get<double>()}};
  }
  if (o.json) {
    print_json(doc);
    return 0;
  }
  for (const auto& r : rs)
    std::printf("%s batch %lld %s on %s (%d threads): train %.0f images/s, inference %.0f images/s\n",
                r.contains("module") ? r["module"].get<std::string>().c_str() : r["arch"].get<std::string>().c_str(),
                static_cast<long long>(o.batch), o.precision.c_str(), device.str().c_str(), r["threads"].get<int>(),
                r["train_images_per_s"].get<double>(), r["infer_images_per_s"].get<double>());
  if (rs.size() == 2)
    std::printf("side by side (%lld rounds): first/second = %.3f training, %.3f inference\n",
                static_cast<long long>(o.repeats), doc["train_ratio"].get<double>(), doc["infer_ratio"].get<double>());
  return 0;
}

ModelSpec spec_from(const std::string& arch, const std::string& input, int64_t classes) {
  const auto shape = parse_input_shape(input);
  return ModelSpec{arch, shape[0], shape[1], shape[2], classes, "v1", ""};
}

struct BenchRdlmsOptions {
  std::string arch = "cnn1";
  int64_t k = 4;
  int64_t batch = 128;
  std::string precision = "fp32";
  std::string input = "3,32,32";
  int64_t classes = 10;
  int64_t steps = 10;
  int64_t repeats = 3;
  std::string device = "auto";
  std::string devices;
  int64_t threads = 0;
  bool json = false;
};

int run_bench_rdlms(const BenchRdlmsOptions& o) {
  configure_logging("warn");
  std::vector<torch::Device> devices = o.devices.empty() ? std::vector<torch::Device>{resolve_device(o.device)}
                                                         : resolve_devices(split_device_list(o.devices));
  setup_runtime(o.threads, 0);
  auto r = bench_rdlms(spec_from(o.arch, o.input, o.classes), o.k, o.batch, o.precision, o.steps, o.repeats, devices);
  if (o.json) {
    print_json(r);
    return 0;
  }
  std::printf("%lld x %s batch %lld %s on %s (%d threads): one at a time %.0f images/s, %lld at once %.0f images/s "
              "(%.2fx)\n",
              static_cast<long long>(o.k), o.arch.c_str(), static_cast<long long>(o.batch), o.precision.c_str(),
              r["devices"].dump().c_str(), r["threads"].get<int>(), r["sequential_images_per_s"].get<double>(),
              static_cast<long long>(r["workers"].get<int64_t>()), r["concurrent_images_per_s"].get<double>(),
              r["speedup"].get<double>());
  return 0;
}

struct BenchMatmulOptions {
  int64_t n = 4096;
  int64_t repeats = 5;
  std::string device = "auto";
  int64_t threads = 0;
  bool json = false;
};

int run_bench_matmul(const BenchMatmulOptions& o) {
  configure_logging("warn");
  auto device = resolve_device(o.device);
  setup_runtime(o.threads, 0);
  auto r = bench_matmul(o.n, o.repeats, device);
  if (o.json) {
    print_json(r);
    return 0;
  }
  for (const auto& row : r["rows"])
    std::printf("matmul %lld x %lld %s on %s: %.3f ms, %.2f TFLOP/s\n", static_cast<long long>(o.n),
                static_cast<long long>(o.n), row["dtype"].get<std::string>().c_str(), device.str().c_str(),
                row["ms"].get<double>(), row["tflops"].get<double>());
  return 0;
}

}  // namespace

CLI::App* setup_bench(CLI::App& app, Action& action) {
  auto* sub = app.add_subcommand("bench", "benchmarks that print figures");
  sub->require_subcommand(1);
  auto o = std::make_shared<BenchAdjustOptions>();
  auto* adj = sub->add_subcommand("adjust", "one batch's weight adjustment: naive per-input form vs the engine");
  adj->add_option("--params", o->params, "weights P")->capture_default_str();
  adj->add_option("--rdlms", o->rdlms, "rDLMs n")->capture_default_str();
  adj->add_option("--repeats", o->repeats, "timed repeats (median reported)")->capture_default_str();
  adj->add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  adj->add_option("--threads", o->threads, "CPU threads (0 = the CPUs this process may use)")->capture_default_str();
  adj->add_flag("--json", o->json, "print {\"rows\": [{failing, naive_ms, engine_ms, ratio}, ...]}");
  adj->callback([o, &action] { action = [o] { return run_bench_adjust(*o); }; });

  auto t = std::make_shared<BenchTrainOptions>();
  auto* tr = sub->add_subcommand("train", "training and inference images/s of one model (median of repeats)");
  auto* arch_opt = tr->add_option("--arch", t->arch, "model")->capture_default_str()->check(CLI::IsMember(model_archs()));
  tr->add_option("--module", t->module, "a TorchScript file to measure instead of --arch (model.arch torchscript)")
      ->check(CLI::ExistingFile)
      ->excludes(arch_opt);
  tr->add_option("--against", t->against,
                 "also measure this built-in arch on the same data, side by side round by round, and print the ratio")
      ->check(CLI::IsMember(model_archs()));
  tr->add_option("--batch", t->batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  tr->add_option("--precision", t->precision, "fp32 | bf16 (CUDA autocast)")->capture_default_str();
  tr->add_option("--input", t->input, "input shape C,H,W")->capture_default_str();
  tr->add_option("--memory-format", t->memory_format, "contiguous | channels_last")
      ->capture_default_str()
      ->check(CLI::IsMember({"contiguous", "channels_last"}));
  tr->add_option("--classes", t->classes, "classes")->capture_default_str()->check(CLI::Range(2, 100000));
  tr->add_option("--steps", t->steps, "training steps per repeat")->capture_default_str()->check(CLI::PositiveNumber);
  tr->add_option("--repeats", t->repeats, "timed repeats")->capture_default_str()->check(CLI::PositiveNumber);
  tr->add_option("--warmup", t->warmup, "untimed repeats first")->capture_default_str()->check(CLI::NonNegativeNumber);
  tr->add_option("--device", t->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  tr->add_option("--threads", t->threads, "CPU threads (0 = the CPUs this process may use)")->capture_default_str();
  tr->add_flag("--json", t->json,
               "print {arch, batch, precision, device, train_images_per_s, infer_images_per_s} (with --against: "
               "{models: [both], train_ratio, infer_ratio}, first / second)");
  tr->callback([t, &action] { action = [t] { return run_bench_train(*t); }; });

  auto r = std::make_shared<BenchRdlmsOptions>();
  auto* rd = sub->add_subcommand("rdlms", "aggregate training images/s of k models at once against one at a time");
  rd->add_option("--arch", r->arch, "model")->capture_default_str()->check(CLI::IsMember(model_archs()));
  rd->add_option("-k,--k", r->k, "models")->capture_default_str()->check(CLI::Range(1, 256));
  rd->add_option("--batch", r->batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  rd->add_option("--precision", r->precision, "fp32 | bf16 (CUDA autocast)")->capture_default_str();
  rd->add_option("--input", r->input, "input shape C,H,W")->capture_default_str();
  rd->add_option("--classes", r->classes, "classes")->capture_default_str()->check(CLI::Range(2, 100000));
  rd->add_option("--steps", r->steps, "training steps per model per repeat")->capture_default_str()->check(CLI::PositiveNumber);
  rd->add_option("--repeats", r->repeats, "timed repeats of each way")->capture_default_str()->check(CLI::PositiveNumber);
  rd->add_option("--device", r->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  rd->add_option("--devices", r->devices, "spread the models over these devices, e.g. cuda:0,cuda:1");
  rd->add_option("--threads", r->threads, "CPU threads in all (0 = the CPUs this process may use)")->capture_default_str();
  rd->add_flag("--json", r->json, "print {arch, k, sequential_images_per_s, concurrent_images_per_s, speedup, ...}");
  rd->callback([r, &action] { action = [r] { return run_bench_rdlms(*r); }; });

  auto m = std::make_shared<BenchMatmulOptions>();
  auto* mm = sub->add_subcommand("matmul", "measured matrix-multiply rate (fp32; on CUDA also TF32 and bf16)");
  mm->add_option("-n,--n", m->n, "matrix side")->capture_default_str()->check(CLI::Range(1, 65536));
  mm->add_option("--repeats", m->repeats, "timed repeats")->capture_default_str()->check(CLI::PositiveNumber);
  mm->add_option("--device", m->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  mm->add_option("--threads", m->threads, "CPU threads (0 = the CPUs this process may use)")->capture_default_str();
  mm->add_flag("--json", m->json, "print {n, device, rows: [{dtype, ms, tflops}]}");
  mm->callback([m, &action] { action = [m] { return run_bench_matmul(*m); }; });
  return sub;
}

}  // namespace apricot::cli
