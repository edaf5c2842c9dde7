// `apricot export`: a checkpoint as safetensors, every parameter and floating-point buffer under its
// LibTorch name (for a TorchScript model its whole state_dict, under PyTorch's names), with arch,
// input shape, classes and normalisation in the metadata; or, for a TorchScript model, as the
// user's own TorchScript module holding the checkpoint's weights (--format torchscript), which
// torch.jit.load reads.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/io/safetensors.hpp"
#include "apricot/models/torchscript.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct ExportOptions {
  std::string model;
  std::string format = "safetensors";
  std::string out;
  std::string log_level = "info";
  bool json = false;
  bool force = false;
};

int run_export(const ExportOptions& o) {
  configure_logging(o.log_level);
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(o.out, o.model, ec) || fs::equivalent(o.out, meta_path_for(o.model), ec))
    config_error("--out '" + o.out + "' is the checkpoint itself", "choose another output file");
  if (fs::exists(o.out) && !o.force)
    config_error("--out '" + o.out + "' exists", "pass --force to overwrite it, or choose another file");
  LoadedModel m = load_checkpoint(o.model);
  if (o.format == "torchscript") {
    if (!is_torchscript(*m.model))
      config_error("'" + o.model + "' is a built-in " + m.spec.arch + " model; --format torchscript writes the user's "
                   "own TorchScript module (model.arch: torchscript)",
                   "export built-in models with --format safetensors (scripts/pytorch/models.py reads them)");
    save_torchscript(*m.model, o.out);
    spdlog::info("wrote {} as TorchScript ({} with its weights) to {}", o.model, m.spec.path, o.out);
    if (o.json) print_json({{"out", o.out}, {"format", "torchscript"}, {"arch", m.spec.arch}});
    return 0;
  }
  std::vector<NamedTensor> tensors;
  for (const auto& p : m.model->named_parameters()) tensors.push_back({p.key(), p.value().detach().cpu()});
  // A TorchScript model's whole state_dict (BatchNorm's integer counters too), so that PyTorch's
  // strict load_state_dict takes it; built-in models as scripts/pytorch/models.py reads them.
  const bool whole_state = m.spec.arch == "torchscript";
  for (const auto& b : m.model->named_buffers())
    if (whole_state || b.value().is_floating_point()) tensors.push_back({b.key(), b.value().detach().cpu()});
  // Tied tensors under their second names too: PyTorch's state_dict() lists both.
  for (const auto& [alias, name] : tied_names(*m.model)) {
    const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const NamedTensor& t) { return t.name == name; });
    if (it != tensors.end()) tensors.push_back({alias, it->tensor});
  }
  std::map<std::string, std::string> meta = {
      {"format", "pt"},
      {"arch", m.spec.arch},
      {"resnet_variant", m.spec.resnet_variant},
      {"input", std::to_string(m.spec.channels) + "," + std::to_string(m.spec.height) + "," +
                    std::to_string(m.spec.width)},
      {"classes", std::to_string(m.spec.classes)},
      // What the tool applies: a checkpoint without the key (say, imported without it) scales to
      // [0, 1]; "{}" here would make `apricot import` refuse the file.
      {"normalization", m.meta.value("normalization", m.norm.to_json()).dump()},
      {"producer", std::string("apricot ") + APRICOT_VERSION}};
  // The module whose state_dict these tensors are; `apricot import --module` names another copy.
  if (m.spec.arch == "torchscript") meta["model_path"] = m.spec.path;
  write_safetensors(o.out, tensors, meta);
  spdlog::info("wrote {} tensors of {} to {}", tensors.size(), o.model, o.out);
  if (o.json) print_json({{"out", o.out}, {"tensors", tensors.size()}, {"arch", m.spec.arch}});
  return 0;
}

}  // namespace

CLI::App* setup_export(CLI::App& app, Action& action) {
  auto o = std::make_shared<ExportOptions>();
  auto* sub = app.add_subcommand("export", "write a checkpoint's weights in another format");
  sub->add_option("-m,--model", o->model, "checkpoint (model.pt with its model.json)")->required();
  sub->add_option("--format", o->format, "output format: safetensors, or torchscript for a TorchScript model")
      ->capture_default_str()
      ->check(CLI::IsMember({"safetensors", "torchscript"}));
  sub->add_option("-o,--out", o->out, "output file")->required();
  sub->add_option("--log-level", o->log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember(kLogLevels));
  sub->add_flag("--json", o->json, "print a JSON summary on stdout");
  sub->add_flag("--force", o->force, "overwrite an existing output file");
  sub->callback([o, &action] { action = [o] { return run_export(*o); }; });
  return sub;
}

}  // namespace apricot::cli
