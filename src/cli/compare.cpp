// `apricot compare A B`: which tensors of two checkpoints differ, and by how much (the largest
// absolute difference and how many values differ). For "why are these two runs not bitwise equal",
// as the Slurm self-test asks on failure, and for what a repair changed. Exit 0: every tensor is
// bitwise equal; 1: some differ (as cmp and diff do); 2-4: a file could not be read (errors.hpp).
#include <cstdio>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct CompareOptions {
  std::string a, b;
  bool json = false;
  int64_t show = 20;  // differing tensors listed in the text output (0 = all)
  std::string log_level = "warn";
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + ")";
}

int run_compare(const CompareOptions& o) {
  configure_logging(o.log_level);
  const LoadedModel a = load_checkpoint(o.a), b = load_checkpoint(o.b);
  const std::vector<TensorDiff> diffs = compare_tensors(*a.model, *b.model);
  int64_t differing = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& d : diffs) {
    if (d.equal()) continue;
    ++differing;
    list.push_back({{"name", d.name}, {"shape", d.shape}, {"only_in", d.only_in}, {"values", d.numel},
                    {"differing", d.differing}, {"max_abs_diff", d.max_abs_diff}});
  }
  if (o.json) {
    print_json({{"a", o.a}, {"b", o.b}, {"tensors", diffs.size()}, {"differing", differing}, {"differences", list}});
  } else {
    int64_t shown = 0;
    for (const auto& d : diffs) {
      if (d.equal()) continue;
      if (o.show > 0 && shown++ == o.show) {
        std::printf("... and %lld more\n", static_cast<long long>(differing - o.show));
        break;
      }
      if (!d.only_in.empty()) {
        std::printf("only in %s: %s %s\n", d.only_in.c_str(), d.name.c_str(), shape_text(d.shape).c_str());
      } else if (d.differing < 0) {
        std::printf("differs: %s: shape or dtype %s\n", d.name.c_str(), d.note.c_str());
      } else {
        std::printf("differs: %s %s: %lld of %lld values, max |a-b| %.3g\n", d.name.c_str(), shape_text(d.shape).c_str(),
                    static_cast<long long>(d.differing), static_cast<long long>(d.numel), d.max_abs_diff);
      }
    }
    std::printf("%lld of %zu tensors differ (%s vs %s)\n", static_cast<long long>(differing), diffs.size(),
                o.a.c_str(), o.b.c_str());
  }
  return differing == 0 ? 0 : 1;
}

}  // namespace

CLI::App* setup_compare(CLI::App& app, Action& action) {
  auto o = std::make_shared<CompareOptions>();
  auto* sub = app.add_subcommand(
      "compare", "list the tensors (parameters and buffers) in which two checkpoints differ; exit 1 if any do");
  sub->add_option("a", o->a, "first checkpoint (model.pt)")->required()->check(CLI::ExistingFile);
  sub->add_option("b", o->b, "second checkpoint (model.pt)")->required()->check(CLI::ExistingFile);
  sub->add_option("--show", o->show, "differing tensors listed (0 = all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_flag("--json", o->json, "print {a, b, tensors, differing, differences: [{name, shape, only_in, values, "
                                   "differing, max_abs_diff}]}");
  sub->add_option("--log-level", o->log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember(kLogLevels));
  sub->callback([o, &action] { action = [o] { return run_compare(*o); }; });
  return sub;
}

}  // namespace apricot::cli
