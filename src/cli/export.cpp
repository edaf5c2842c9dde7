// `apricot export`: a checkpoint as safetensors (the tensors and metadata of io/exchange.hpp), or, for
// a TorchScript model, as the user's own TorchScript module holding the checkpoint's weights
// (--format torchscript), which torch.jit.load reads; a gated patch of TorchScript models as one module. This file parses options and checks --out.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "apricot/core/errors.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/io/exchange.hpp"
#include "apricot/models/gated.hpp"
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
  if (o.format == "torchscript" && is_gated(*m.model)) {
    save_gated_torchscript(dynamic_cast<const GatedNetImpl&>(*m.model), o.out);
    spdlog::info("wrote the gated patch {} as one TorchScript module (base, expert, gate) to {}", o.model, o.out);
    if (o.json) print_json({{"out", o.out}, {"format", "torchscript"}, {"arch", m.spec.arch}, {"composite", "gated"}});
    return 0;
  }
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
  const std::vector<NamedTensor> tensors = exported_tensors(m);
  write_safetensors(o.out, tensors, exported_metadata(m));
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
