// `apricot import`: weights made elsewhere become an apricot checkpoint.
//   --from safetensors: the reverse of export. Builds the model its metadata names (arch, input,
//     classes, resnet_variant; for arch "torchscript" the module from --module or the metadata's
//     model_path) and fills every parameter and floating-point buffer by name (a TorchScript
//     module's whole state_dict), so that a model trained
//     elsewhere under the documented names (scripts/pytorch/models.py, or PyTorch's state_dict names
//     of a TorchScript module) can be evaluated and repaired. Refuses missing, extra or misshapen
//     tensors.
//   --from torchscript: the user's trained TorchScript module is the base model of a work directory:
//     the config's model becomes {arch: torchscript, path: FILE, pretrained: true} and train-base
//     evaluates it and writes WORKDIR/base/model.pt and model.json with its accuracies (no training).
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "apricot/io/safetensors.hpp"
#include "apricot/models/torchscript.hpp"
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

std::string meta_or_fail(const std::map<std::string, std::string>& meta, const std::string& key,
                         const std::string& file) {
  auto it = meta.find(key);
  if (it == meta.end())
    state_error("'" + file + "' has no '" + key + "' in its safetensors metadata",
                "apricot needs arch, input (C,H,W) and classes there; see scripts/pytorch/models.py");
  return it->second;
}

// The TorchScript module a safetensors file of arch "torchscript" fills: --module, else the
// model_path apricot export recorded.
std::string module_for(const ImportOptions& o, const std::map<std::string, std::string>& meta) {
  if (!o.module.empty()) return o.module;
  auto it = meta.find("model_path");
  if (it != meta.end() && std::filesystem::exists(it->second)) return it->second;
  config_error("'" + o.in + "' holds the weights of a TorchScript model" +
                   (it != meta.end() ? " whose module '" + it->second + "' is not here" : std::string()),
               "pass --module FILE: the TorchScript file (torch.jit.save) whose state_dict names these tensors");
}

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
  ModelSpec spec;
  spec.arch = meta_or_fail(file.metadata, "arch", o.in);
  spec.resnet_variant = file.metadata.count("resnet_variant") ? file.metadata.at("resnet_variant") : "v1";
  if (!o.module.empty() && spec.arch != "torchscript")
    config_error("--module is given but '" + o.in + "' holds a built-in " + spec.arch + " model",
                 "--module names the TorchScript file of a model with arch torchscript; drop it");
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
  const bool torchscript = spec.arch == "torchscript";
  if (torchscript) spec.path = module_for(o, file.metadata);
  Net model = torchscript ? load_torchscript(spec) : make_model(spec);
  const std::string names_hint = torchscript ? "the tensors must be the module's state_dict() (check --module)"
                                             : "export it under LibTorch's names (see scripts/pytorch/models.py)";
  std::map<std::string, torch::Tensor> by_name;
  for (auto& t : file.tensors) by_name[t.name] = t.tensor;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto fill = [&](const std::string& name, torch::Tensor dst) {
    auto it = by_name.find(name);
    if (it == by_name.end()) state_error("'" + o.in + "' lacks tensor '" + name + "' of " + spec.arch, names_hint);
    if (it->second.sizes() != dst.sizes())
      state_error("'" + o.in + "': tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", " +
                      spec.arch + " needs " + c10::str(dst.sizes()),
                  torchscript ? names_hint : "check arch, input and classes in the metadata");
    dst.copy_(it->second.to(dst.dtype()));
    used.insert(name);
  };
  for (auto& p : model->named_parameters()) fill(p.key(), p.value());
  for (auto& b : model->named_buffers())
    if (b.value().is_floating_point() || torchscript) fill(b.key(), b.value());
  // A tied tensor's second name (state_dict() lists both) must hold what its first name holds.
  for (const auto& [alias, name] : tied_names(*model)) {
    auto a = by_name.find(alias), n = by_name.find(name);
    if (a == by_name.end()) continue;
    if (n == by_name.end() || !a->second.sizes().equals(n->second.sizes()) ||
        !torch::equal(a->second.to(n->second.dtype()), n->second))
      state_error("'" + o.in + "': tensors '" + alias + "' and '" + name + "' differ, but the module ties them "
                  "(one tensor under two names)", "export a state_dict of this module, whose tied tensors agree");
    used.insert(alias);
  }
  for (const auto& t : file.tensors)
    if (!used.count(t.name))
      state_error("'" + o.in + "' holds tensor '" + t.name + "', which " + spec.arch + " does not have",
                  torchscript ? names_hint : "check arch and resnet_variant in the metadata");

  nlohmann::json meta = {{"format", "apricot-checkpoint"},
                         {"format_version", 1},
                         {"role", "imported"},
                         {"arch", spec.arch},
                         {"resnet_variant", spec.resnet_variant},
                         {"input", {spec.channels, spec.height, spec.width}},
                         {"classes", spec.classes},
                         {"imported_from", o.in},
                         {"tool_version", APRICOT_VERSION}};
  if (torchscript) meta["model_path"] = std::filesystem::absolute(spec.path).string();
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
  if (o.common.json) print_json({{"out", o.out}, {"tensors", used.size()}, {"arch", spec.arch}});
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
