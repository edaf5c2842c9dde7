// `apricot import`: weights made elsewhere become an apricot checkpoint.
//   --from safetensors: the reverse of export (io/exchange.hpp). Builds the model its metadata names
//     (arch, input, classes, resnet_variant; for arch "torchscript" the module from --module or the
//     metadata's model_path) and fills every parameter and travelling buffer by name, so that a model
//     trained elsewhere under the documented names (scripts/pytorch/models.py, or PyTorch's
//     state_dict names of a TorchScript module) can be evaluated and repaired. Refuses missing, extra
//     or misshapen tensors.
//   --from torchscript: the user's trained TorchScript module is the base model of a work directory:
//     the config's model becomes {arch: torchscript, path: FILE, pretrained: true} and train-base
//     evaluates it and writes WORKDIR/base/model.pt and model.json with its accuracies (no training).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "apricot/core/errors.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/io/exchange.hpp"
#include "apricot/models/torchscript.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct ImportOptions {
  std::string from = "safetensors";
  std::string in;
  std::string out;
  std::string module;  // --from safetensors of a TorchScript model: the module that gives its structure
  CommonOptions common;
};

int import_safetensors(const ImportOptions& o) {
  configure_logging(o.common.log_level);
  if (o.out.empty()) config_error("import --from safetensors needs --out", "for example --out imported/model.pt");
  const auto& c = o.common;
  if (!c.config.empty() || !c.sets.empty() || !c.workdir.empty() || !c.device.empty() || !c.threads.empty() ||
      !c.seed.empty() || c.deterministic)
    config_error("-c, --set, -w, --device, --threads, --seed and --deterministic are for import --from torchscript",
                 "import --from safetensors reads everything from the file's metadata; drop them");
  if (std::filesystem::exists(o.out) && !o.common.force)
    config_error("--out '" + o.out + "' exists", "pass --force to overwrite it, or choose another file");
  SafetensorsFile file = read_safetensors(o.in);
  const ModelSpec spec = spec_from_safetensors(file, o.in, o.module);
  Net model = spec.arch == "torchscript" ? load_torchscript(spec) : make_model(spec);
  const size_t used = fill_from_safetensors(*model, spec, file, o.in);
  const nlohmann::json meta = imported_meta(spec, file, o.in);
  save_checkpoint(o.out, *model, meta);
  spdlog::info("imported {} tensors of {} ({}x{}x{}, {} classes) into {}", used, spec.arch, spec.channels,
               spec.height, spec.width, spec.classes, o.out);
  if (o.common.json) print_json({{"out", o.out}, {"tensors", used}, {"arch", spec.arch}});
  return 0;
}

int import_torchscript(const ImportOptions& o) {
  if (!o.out.empty())
    config_error("import --from torchscript writes WORKDIR/base/model.pt, not --out",
                 "drop --out and name the work directory with -w (or the config's workdir)");
  if (!o.module.empty())
    config_error("--module is for --from safetensors", "the TorchScript file is --in");
  CommonOptions common = o.common;
  const auto quoted = [](const std::string& s) { return nlohmann::json(s).dump(); };
  common.sets.push_back("model.arch=" + quoted("torchscript"));
  // Absolute, so that WORKDIR/config.json works from any directory.
  common.sets.push_back("model.path=" + quoted(std::filesystem::absolute(o.in).lexically_normal().string()));
  common.sets.push_back("model.pretrained=true");
  Session s = open_session(common, /*write_config=*/false);  // also refuses rdlm.init base-early
  // The config is written once the module has been checked and the base written (or found), so that
  // a refused file leaves an existing work directory's config as it was.
  make_workdir(s);
  nlohmann::json out = train_base(s.cfg, s.workdir, s.device, o.common.force);
  write_session_config(s);
  spdlog::info("continue with the work directory's config, which names the module as the base: "
               "apricot run -c {}/config.json (or put model.arch torchscript, model.path and "
               "model.pretrained true in your own)", s.workdir);
  if (o.common.json) print_json(out);
  return 0;
}

}  // namespace

CLI::App* setup_import(CLI::App& app, Action& action) {
  auto o = std::make_shared<ImportOptions>();
  auto* sub = app.add_subcommand(
      "import",
      "make a checkpoint from weights in another format: --from safetensors (reverse of export) --out FILE, or "
      "--from torchscript: your trained TorchScript module becomes WORKDIR/base/model.pt, evaluated on the config's data");
  sub->add_option("--from", o->from, "input format: safetensors or torchscript")
      ->capture_default_str()
      ->check(CLI::IsMember({"safetensors", "torchscript"}));
  sub->add_option("-i,--in", o->in, "input file")->required()->check(CLI::ExistingFile);
  sub->add_option("-o,--out", o->out, "--from safetensors: checkpoint to write (model.pt; model.json goes beside it)");
  sub->add_option("--module", o->module,
                  "--from safetensors of a TorchScript model: its TorchScript file (default: the model_path that "
                  "apricot export recorded)")
      ->check(CLI::ExistingFile);
  add_common_options(sub, o->common, /*with_force=*/true);
  sub->callback([o, &action] {
    action = [o] { return o->from == "torchscript" ? import_torchscript(*o) : import_safetensors(*o); };
  });
  return sub;
}

}  // namespace apricot::cli
