// `apricot bench adjust`: the weight-adjustment engine against the naive per-input form.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "apricot/bench.hpp"
#include "apricot/device.hpp"
#include "apricot/errors.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

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
  std::string device = "auto";
  int64_t threads = 0;
  bool json = false;
};

int run_bench_train(const BenchTrainOptions& o) {
  configure_logging("warn");
  auto device = resolve_device(o.device);
  setup_runtime(o.threads, 0);
  int64_t c = 0, h = 0, w = 0;
  if (std::sscanf(o.input.c_str(), "%ld,%ld,%ld", &c, &h, &w) != 3 || c < 1 || h < 1 || w < 1)
    config_error("--input '" + o.input + "' is not C,H,W", "for example --input 3,32,32");
  ModelSpec spec{o.arch, c, h, w, o.classes, "v1"};
  auto r = bench_train(spec, o.batch, o.precision, o.steps, o.repeats, o.warmup, device);
  if (o.json) {
    print_json(r);
    return 0;
  }
  std::printf("%s batch %lld %s on %s (%d threads): train %.0f images/s, inference %.0f images/s\n",
              o.arch.c_str(), static_cast<long long>(o.batch), o.precision.c_str(), device.str().c_str(),
              r["threads"].get<int>(), r["train_images_per_s"].get<double>(), r["infer_images_per_s"].get<double>());
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
  adj->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
  adj->add_flag("--json", o->json, "print {\"rows\": [{failing, naive_ms, engine_ms, ratio}, ...]}");
  adj->callback([o, &action] { action = [o] { return run_bench_adjust(*o); }; });

  auto t = std::make_shared<BenchTrainOptions>();
  auto* tr = sub->add_subcommand("train", "training and inference images/s of one model (median of repeats)");
  tr->add_option("--arch", t->arch, "model")->capture_default_str()->check(CLI::IsMember(model_archs()));
  tr->add_option("--batch", t->batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  tr->add_option("--precision", t->precision, "fp32 | bf16 (CUDA autocast)")->capture_default_str();
  tr->add_option("--input", t->input, "input shape C,H,W")->capture_default_str();
  tr->add_option("--classes", t->classes, "classes")->capture_default_str()->check(CLI::Range(2, 100000));
  tr->add_option("--steps", t->steps, "training steps per repeat")->capture_default_str()->check(CLI::PositiveNumber);
  tr->add_option("--repeats", t->repeats, "timed repeats")->capture_default_str()->check(CLI::PositiveNumber);
  tr->add_option("--warmup", t->warmup, "untimed repeats first")->capture_default_str();
  tr->add_option("--device", t->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  tr->add_option("--threads", t->threads, "CPU threads (0 = all cores)")->capture_default_str();
  tr->add_flag("--json", t->json, "print {arch, batch, precision, device, train_images_per_s, infer_images_per_s}");
  tr->callback([t, &action] { action = [t] { return run_bench_train(*t); }; });
  return sub;
}

}  // namespace apricot::cli
