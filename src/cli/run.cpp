// `apricot run`: every phase in order (base, rDLMs, each arm), then the comparison table.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "apricot/method/arms.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "common.hpp"

namespace apricot::cli {

using nlohmann::json;

namespace {

// The arm's name in tables: the registry's display name ("strategy 1", "matched control").
std::string arm_name(const json& r) { return display_name(r["strategy"].get<std::string>()); }

// Where a field arm chose to stop: "base", "lr 0.001 step 40", "lr 0.001 alpha 0.3".
std::string chosen(const json& c) {
  if (!c.is_object() || c.value("base", false)) return "base";
  char buf[64];
  if (c.contains("alpha"))
    std::snprintf(buf, sizeof buf, "lr %g alpha %.2f", c["lr"].get<double>(), c["alpha"].get<double>());
  else
    std::snprintf(buf, sizeof buf, "lr %g step %lld", c["lr"].get<double>(), static_cast<long long>(c["step"].get<int64_t>()));
  return buf;
}

// The field arms' table (docs/FIELD.md): the field hold-out before and after, the share of the base's
// hold-out failures repaired and of its right answers broken, the clean test split's breaks, and the
// repair rate against the fine-tune arm.
void print_field_table(const std::vector<json>& results) {
  std::vector<const json*> field;
  const json* finetune = nullptr;
  for (const auto& r : results)
    if (r.contains("field")) {
      field.push_back(&r);
      if (r["strategy"] == "finetune") finetune = &r;
    }
  if (field.empty()) return;
  const json& h0 = (*field[0])["field"]["holdout"];
  std::printf("\nfield repair: hold-out of %lld images, the base gets %.2f%% right; at most %.1f%% of the base's right\n"
              "validation answers broken (adapt.max_break_rate)\n",
              static_cast<long long>(h0["n"].get<int64_t>()), 100 * h0["accuracy_before"].get<double>(),
              100 * (*field[0])["max_break_rate"].get<double>());
  std::printf("%-15s %9s %9s %8s %12s %9s %13s  %s\n", "model", "hold-out", "repaired", "broken", "test broken",
              "test acc", "vs fine-tune", "chose");
  for (const json* r : field) {
    const json& h = (*r)["field"]["holdout"];
    std::string vs;
    if (finetune && r != finetune) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%+.1f pp",
                    100 * (h["repaired"]["rate"].get<double>() -
                           (*finetune)["field"]["holdout"]["repaired"]["rate"].get<double>()));
      vs = buf;
    }
    std::printf("%-15s %8.2f%% %8.1f%% %7.1f%% %11.2f%% %8.2f%% %13s  %s\n", arm_name(*r).c_str(),
                100 * h["accuracy_after"].get<double>(), 100 * h["repaired"]["rate"].get<double>(),
                100 * h["broken"]["rate"].get<double>(), 100 * (*r)["changes"]["test"]["broken"]["rate"].get<double>(),
                100 * (*r)["final"]["test_acc"].get<double>(), vs.c_str(), chosen((*r)["field"]["chosen"]).c_str());
  }
  std::printf("repaired: share of the base's hold-out failures now right; broken: share of its right answers now\n"
              "wrong. Selection on the field set's pick part (never trained on) and the validation split; the hold-out\n"
              "and the test split are only measured.\n");
}

// The comparison table on stdout: base, each arm, with the gain over both controls where they ran
// and the training images each arm cost beyond the base.
void print_table(const json& base, const std::vector<json>& results) {
  const json *control = nullptr, *matched = nullptr;
  for (const auto& r : results) {
    if (r["strategy"] == "none") control = &r;
    if (r["strategy"] == "none-matched") matched = &r;
  }
  auto vs = [](const json& r, const json* ref) -> std::string {
    if (!ref || &r == ref) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.2f pp",
                  100 * (r["final"]["test_acc"].get<double>() - (*ref)["final"]["test_acc"].get<double>()));
    return buf;
  };
  std::printf("\n%-15s %9s %9s %10s %11s %11s %8s %10s %7s\n", "model", "val acc", "test acc", "test gain",
              "vs control", "vs matched", "accepted", "images", "time");
  std::printf("%-15s %8.2f%% %8.2f%%\n", "base", 100 * base["val_acc"].get<double>(),
              100 * base["test_acc"].get<double>());
  for (const auto& r : results) {
    const double n = r.contains("images") ? r["images"]["total"].get<double>() : 0.0;
    char images[32];
    if (n < 1e6) std::snprintf(images, sizeof images, "%.1fk", n / 1e3);
    else std::snprintf(images, sizeof images, "%.2fM", n / 1e6);
    std::printf("%-15s %8.2f%% %8.2f%% %+7.2f pp %11s %11s %8lld %10s %6.0fs\n", arm_name(r).c_str(),
                100 * r["final"]["val_acc"].get<double>(), 100 * r["final"]["test_acc"].get<double>(),
                100 * r["gain_test"].get<double>(), vs(r, control).c_str(), vs(r, matched).c_str(),
                static_cast<long long>(r["accepted"].get<int64_t>()), images, r["seconds"].get<double>());
  }
  std::printf("\nselection on the %s split; gains in percentage points of test accuracy. The control arm runs the\n"
              "same loop without the rDLMs, so 'vs control' is what they add; the matched control first spends\n"
              "the rDLMs' training images on the base ('vs matched': what they add at equal cost). images: training\n"
              "images each arm cost beyond the base (rDLMs, budget matching, retraining).\n",
              results.empty() ? "validation" : results[0]["selection"] == "test" ? "TEST (paper protocol)" : "validation");
  print_field_table(results);
  std::fflush(stdout);
}

struct RunOptions {
  CommonOptions common;
};

int run_all(const RunOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  json out = run_pipeline(s.cfg, s.workdir, s.device, o.common.force);
  if (o.common.json) {
    print_json(out);
  } else {
    print_table(out["base"], out["results"].get<std::vector<json>>());
    std::printf("work directory %s, %.0f s in all\n", s.workdir.c_str(), out["seconds"].get<double>());
  }
  return 0;
}

}  // namespace

void print_results_table(const json& run) { print_table(run["base"], run["results"].get<std::vector<json>>()); }

CLI::App* setup_run(CLI::App& app, Action& action) {
  auto o = std::make_shared<RunOptions>();
  auto* sub = app.add_subcommand("run", "every phase in order (base, rDLMs, each strategy), then a results table");
  add_common_options(sub, o->common, /*with_force=*/true);
  add_rdlm_options(sub, o->common);
  add_arms_option(sub, o->common);
  sub->callback([o, &action] { action = [o] { return run_all(*o); }; });
  return sub;
}

}  // namespace apricot::cli
