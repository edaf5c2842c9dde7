// Weights in and out of apricot (exchange.hpp).
#include "apricot/io/exchange.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "apricot/core/errors.hpp"
#include "apricot/models/torchscript.hpp"

namespace apricot {

bool buffer_travels(const torch::Tensor& buffer, bool whole_state) {
  return whole_state || buffer.is_floating_point();
}

std::vector<NamedTensor> exported_tensors(const LoadedModel& m) {
  std::vector<NamedTensor> tensors;
  for (const auto& p : m.model->named_parameters()) tensors.push_back({p.key(), p.value().detach().cpu()});
  const bool whole_state = m.spec.arch == "torchscript";  // a gated patch's parts too: its names say which
  for (const auto& b : m.model->named_buffers())
    if (buffer_travels(b.value(), whole_state)) tensors.push_back({b.key(), b.value().detach().cpu()});
  for (const auto& [alias, name] : tied_names(*m.model)) {
    const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const NamedTensor& t) { return t.name == name; });
    if (it != tensors.end()) tensors.push_back({alias, it->tensor});
  }
  return tensors;
}

std::map<std::string, std::string> exported_metadata(const LoadedModel& m) {
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
  // A gated patch (models/gated.hpp): base.*, expert.*, gate.* and tau; what the parts are.
  if (m.meta.contains("composite")) meta["composite"] = m.meta["composite"].dump();
  return meta;
}

namespace {

std::string meta_or_fail(const std::map<std::string, std::string>& meta, const std::string& key,
                         const std::string& file) {
  auto it = meta.find(key);
  if (it == meta.end())
    state_error("'" + file + "' has no '" + key + "' in its safetensors metadata",
                "apricot needs arch, input (C,H,W) and classes there; see scripts/pytorch/models.py");
  return it->second;
}

// The TorchScript module a safetensors file of arch "torchscript" fills: `module`, else the
// model_path apricot export recorded.
std::string module_for(const std::string& module, const std::map<std::string, std::string>& meta,
                       const std::string& source) {
  if (!module.empty()) return module;
  auto it = meta.find("model_path");
  if (it != meta.end() && std::filesystem::exists(it->second)) return it->second;
  config_error("'" + source + "' holds the weights of a TorchScript model" +
                   (it != meta.end() ? " whose module '" + it->second + "' is not here" : std::string()),
               "pass --module FILE: the TorchScript file (torch.jit.save) whose state_dict names these tensors");
}

}  // namespace

ModelSpec spec_from_safetensors(const SafetensorsFile& file, const std::string& source, const std::string& module) {
  ModelSpec spec;
  spec.arch = meta_or_fail(file.metadata, "arch", source);
  if (file.metadata.count("composite"))
    config_error("'" + source + "' holds a gated patch (a base, an expert and a scope gate: " +
                     file.metadata.at("composite") + "), not one network",
                 "import the base's own weights; the gated patch stays in apricot's checkpoint (adapt-gated/model.pt)");
  spec.resnet_variant = file.metadata.count("resnet_variant") ? file.metadata.at("resnet_variant") : "v1";
  if (!module.empty() && spec.arch != "torchscript")
    config_error("--module is given but '" + source + "' holds a built-in " + spec.arch + " model",
                 "--module names the TorchScript file of a model with arch torchscript; drop it");
  try {
    std::vector<int64_t> in;
    std::stringstream ss(meta_or_fail(file.metadata, "input", source));
    for (std::string part; std::getline(ss, part, ',');) in.push_back(std::stoll(part));
    if (in.size() != 3) throw std::invalid_argument("not C,H,W");
    spec.channels = in[0], spec.height = in[1], spec.width = in[2];
    spec.classes = std::stoll(meta_or_fail(file.metadata, "classes", source));
  } catch (const std::logic_error& e) {
    state_error("'" + source + "': metadata input/classes are malformed (" + e.what() + ")",
                "write input as \"C,H,W\" and classes as a number");
  }
  if (spec.arch == "torchscript") spec.path = module_for(module, file.metadata, source);
  return spec;
}

size_t fill_from_safetensors(NetImpl& model, const ModelSpec& spec, const SafetensorsFile& file,
                             const std::string& source) {
  const bool torchscript = spec.arch == "torchscript";
  const std::string names_hint = torchscript ? "the tensors must be the module's state_dict() (check --module)"
                                             : "export it under LibTorch's names (see scripts/pytorch/models.py)";
  std::map<std::string, torch::Tensor> by_name;
  for (auto& t : file.tensors) by_name[t.name] = t.tensor;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto fill = [&](const std::string& name, torch::Tensor dst) {
    auto it = by_name.find(name);
    if (it == by_name.end()) state_error("'" + source + "' lacks tensor '" + name + "' of " + spec.arch, names_hint);
    if (it->second.sizes() != dst.sizes())
      state_error("'" + source + "': tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", " +
                      spec.arch + " needs " + c10::str(dst.sizes()),
                  torchscript ? names_hint : "check arch, input and classes in the metadata");
    dst.copy_(it->second.to(dst.dtype()));
    used.insert(name);
  };
  for (auto& p : model.named_parameters()) fill(p.key(), p.value());
  for (auto& b : model.named_buffers())
    if (buffer_travels(b.value(), torchscript)) fill(b.key(), b.value());
  // A tied tensor's second name (state_dict() lists both) must hold what its first name holds.
  for (const auto& [alias, name] : tied_names(model)) {
    auto a = by_name.find(alias), n = by_name.find(name);
    if (a == by_name.end()) continue;
    if (n == by_name.end() || !a->second.sizes().equals(n->second.sizes()) ||
        !torch::equal(a->second.to(n->second.dtype()), n->second))
      state_error("'" + source + "': tensors '" + alias + "' and '" + name + "' differ, but the module ties them "
                  "(one tensor under two names)", "export a state_dict of this module, whose tied tensors agree");
    used.insert(alias);
  }
  for (const auto& t : file.tensors)
    if (!used.count(t.name))
      state_error("'" + source + "' holds tensor '" + t.name + "', which " + spec.arch + " does not have",
                  torchscript ? names_hint : "check arch and resnet_variant in the metadata");
  return used.size();
}

nlohmann::json imported_meta(const ModelSpec& spec, const SafetensorsFile& file, const std::string& source) {
  nlohmann::json meta = model_meta(spec);
  meta["role"] = "imported";
  meta["imported_from"] = source;
  meta["tool_version"] = APRICOT_VERSION;
  if (file.metadata.count("normalization")) {
    try {
      meta["normalization"] = nlohmann::json::parse(file.metadata.at("normalization"));
      Normalizer::from_json(meta["normalization"]);  // validates
    } catch (const std::exception& e) {
      state_error("'" + source + "': metadata 'normalization' is not valid (" + e.what() + ")",
                  "omit it (the tool then scales pixels to [0, 1]) or write it as apricot export does");
    }
  }
  return meta;
}

}  // namespace apricot
