// `apricot bench adjust`: the weight-adjustment engine against the naive per-input form.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "apricot/bench.hpp"
#include "apricot/device.hpp"
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
  return sub;
}

}  // namespace apricot::cli
