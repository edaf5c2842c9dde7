// `apricot models`: every arch's trainable and total parameter counts for an input shape.
#include <cstdio>

#include "apricot/core/errors.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct ModelsOptions {
  std::string input = "3,32,32";
  int64_t classes = 10;
  bool json = false;
  std::string log_level = "warn";
};

int run_models(const ModelsOptions& o) {
  configure_logging(o.log_level);
  const std::vector<int64_t> shape = parse_input_shape(o.input);
  if (o.classes < 2) config_error("--classes must be >= 2", "for example --classes 10");
  nlohmann::json out = nlohmann::json::array();
  if (!o.json) std::printf("%-10s %12s %12s\n", "arch", "trainable", "total");
  for (const auto& arch : model_archs()) {
    ModelSpec spec{arch, shape[0], shape[1], shape[2], o.classes, "v1", ""};
    auto c = count_params(*make_model(spec));
    out.push_back({{"arch", arch}, {"input", shape}, {"classes", o.classes}, {"trainable", c.trainable},
                   {"total", c.total}});
    if (!o.json)
      std::printf("%-10s %12lld %12lld\n", arch.c_str(), static_cast<long long>(c.trainable),
                  static_cast<long long>(c.total));
  }
  if (o.json) print_json(out);
  return 0;
}

}  // namespace

CLI::App* setup_models(CLI::App& app, Action& action) {
  auto o = std::make_shared<ModelsOptions>();
  auto* sub = app.add_subcommand("models", "list the models with their parameter counts");
  sub->add_option("--input", o->input, "input shape C,H,W")->capture_default_str();
  sub->add_option("--classes", o->classes, "number of classes")->capture_default_str();
  sub->add_flag("--json", o->json, "print a JSON list of {arch, input, classes, trainable, total}");
  sub->add_option("--log-level", o->log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember(kLogLevels));
  sub->callback([o, &action] { action = [o] { return run_models(*o); }; });
  return sub;
}

}  // namespace apricot::cli
