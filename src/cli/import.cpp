// `apricot import --from safetensors`: the reverse of export. Builds the model its metadata names
// (arch, input, classes, resnet_variant) and fills every parameter and floating-point buffer by
// name, so that a model trained elsewhere under the documented names (scripts/pytorch/models.py) can
// be evaluated and repaired. Refuses missing, extra or misshapen tensors.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "apricot/checkpoint.hpp"
#include "apricot/errors.hpp"
#include "apricot/safetensors.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct ImportOptions {
  std::string from = "safetensors";
  std::string in;
  std::string out;
  std::string log_level = "info";
  bool json = false;
  bool force = false;
};

std::string meta_or_fail(const std::map<std::string, std::string>& meta, const std::string& key,
                         const std::string& file) {
  auto it = meta.find(key);
  if (it == meta.end())
    state_error("'" + file + "' has no '" + key + "' in its safetensors metadata",
                "apricot needs arch, input (C,H,W) and classes there; see scripts/pytorch/models.py");
  return it->second;
}

int run_import(const ImportOptions& o) {
  configure_logging(o.log_level);
  if (std::filesystem::exists(o.out) && !o.force)
    config_error("--out '" + o.out + "' exists", "pass --force to overwrite it, or choose another file");
  SafetensorsFile file = read_safetensors(o.in);
  ModelSpec spec;
  spec.arch = meta_or_fail(file.metadata, "arch", o.in);
  spec.resnet_variant = file.metadata.count("resnet_variant") ? file.metadata.at("resnet_variant") : "v1";
  try {
    std::vector<int64_t> in;
    std::stringstream ss(meta_or_fail(file.metadata, "input", o.in));
    for (std::string part; std::getline(ss, part, ',');) in.push_back(std::stoll(part));
    if (in.size() != 3) throw std::invalid_argument("not C,H,W");
    spec.channels = in[0], spec.height = in[1], spec.width = in[2];
    spec.classes = std::stoll(meta_or_fail(file.metadata, "classes", o.in));
  } catch (const std::logic_error& e) {
    state_error("'" + o.in + "': metadata input/classes are malformed (" + e.what() + ")",
                "write input as \"C,H,W\" and classes as a number");
  }
  Net model = make_model(spec);
  std::map<std::string, torch::Tensor> by_name;
  for (auto& t : file.tensors) by_name[t.name] = t.tensor;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto fill = [&](const std::string& name, torch::Tensor dst) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      state_error("'" + o.in + "' lacks tensor '" + name + "' of " + spec.arch,
                  "export it under LibTorch's names (see scripts/pytorch/models.py)");
    if (it->second.sizes() != dst.sizes())
      state_error("'" + o.in + "': tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", " +
                      spec.arch + " needs " + c10::str(dst.sizes()),
                  "check arch, input and classes in the metadata");
    dst.copy_(it->second.to(dst.dtype()));
    used.insert(name);
  };
  for (auto& p : model->named_parameters()) fill(p.key(), p.value());
  for (auto& b : model->named_buffers())
    if (b.value().is_floating_point()) fill(b.key(), b.value());
  for (const auto& t : file.tensors)
    if (!used.count(t.name))
      state_error("'" + o.in + "' holds tensor '" + t.name + "', which " + spec.arch + " does not have",
                  "check arch and resnet_variant in the metadata");

  nlohmann::json meta = {{"format", "apricot-checkpoint"},
                         {"format_version", 1},
                         {"role", "imported"},
                         {"arch", spec.arch},
                         {"resnet_variant", spec.resnet_variant},
                         {"input", {spec.channels, spec.height, spec.width}},
                         {"classes", spec.classes},
                         {"imported_from", o.in},
                         {"tool_version", APRICOT_VERSION}};
  if (file.metadata.count("normalization")) {
    try {
      meta["normalization"] = nlohmann::json::parse(file.metadata.at("normalization"));
      Normalizer::from_json(meta["normalization"]);  // validates
    } catch (const std::exception& e) {
      state_error("'" + o.in + "': metadata 'normalization' is not valid (" + e.what() + ")",
                  "omit it (the tool then scales pixels to [0, 1]) or write it as apricot export does");
    }
  }
  save_checkpoint(o.out, *model, meta);
  spdlog::info("imported {} tensors of {} ({}x{}x{}, {} classes) into {}", used.size(), spec.arch, spec.channels,
               spec.height, spec.width, spec.classes, o.out);
  if (o.json) print_json({{"out", o.out}, {"tensors", used.size()}, {"arch", spec.arch}});
  return 0;
}

}  // namespace

CLI::App* setup_import(CLI::App& app, Action& action) {
  auto o = std::make_shared<ImportOptions>();
  auto* sub = app.add_subcommand("import", "make a checkpoint from weights in another format (reverse of export)");
  sub->add_option("--from", o->from, "input format")->capture_default_str()->check(CLI::IsMember({"safetensors"}));
  sub->add_option("-i,--in", o->in, "input file")->required()->check(CLI::ExistingFile);
  sub->add_option("-o,--out", o->out, "checkpoint to write (model.pt; model.json goes beside it)")->required();
  sub->add_option("--log-level", o->log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember(kLogLevels));
  sub->add_flag("--json", o->json, "print a JSON summary on stdout");
  sub->add_flag("--force", o->force, "overwrite an existing checkpoint");
  sub->callback([o, &action] { action = [o] { return run_import(*o); }; });
  return sub;
}

}  // namespace apricot::cli
