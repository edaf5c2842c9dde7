// The gated patch as a model (gated.hpp): the gate, the composite, its metadata and its TorchScript form.
#include "apricot/models/gated.hpp"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/models/torchscript.hpp"

namespace apricot {

using nlohmann::json;

namespace {
constexpr int64_t kHidden1 = 16, kHidden2 = 32;  // the input gate's channels: small beside any base
}

const std::vector<std::string>& gate_kinds() {
  static const std::vector<std::string> kinds = {"input", "logits"};
  return kinds;
}

GateImpl::GateImpl(const GateSpec& s) : spec(s) {
  if (spec.kind == "input") {
    w1 = register_parameter("w1", torch::zeros({kHidden1, spec.channels, 3, 3}));
    b1 = register_parameter("b1", torch::zeros({kHidden1}));
    w2 = register_parameter("w2", torch::zeros({kHidden2, kHidden1, 3, 3}));
    b2 = register_parameter("b2", torch::zeros({kHidden2}));
    w = register_parameter("w", torch::zeros({1, kHidden2}));
  } else if (spec.kind == "logits") {
    w = register_parameter("w", torch::zeros({1, spec.classes}));
  } else {
    config_error("unknown gate '" + spec.kind + "'", "valid gates: input, logits");
  }
  b = register_parameter("b", torch::zeros({1}));
}

void GateImpl::initialise(at::Generator gen) {
  torch::NoGradGuard no_grad;
  // PyTorch's default for conv and linear layers: weights and biases uniform in +-1/sqrt(fan_in).
  auto fill = [&](torch::Tensor& t, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    t.copy_(torch::rand(t.sizes(), gen) * (2 * bound) - bound);
  };
  if (spec.kind == "input") {
    fill(w1, spec.channels * 9), fill(b1, spec.channels * 9);
    fill(w2, kHidden1 * 9), fill(b2, kHidden1 * 9);
    fill(w, kHidden2), fill(b, kHidden2);
  } else {
    fill(w, spec.classes), fill(b, spec.classes);
  }
}

// The same operations as the TorchScript source below, so that the export scores as apricot does.
torch::Tensor GateImpl::score(const torch::Tensor& x, const torch::Tensor& base_logits) {
  torch::Tensor f;
  if (spec.kind == "input") {
    torch::Tensor h = torch::relu(torch::conv2d(x, w1, b1, {2, 2}, {1, 1}));
    h = torch::relu(torch::conv2d(h, w2, b2, {2, 2}, {1, 1}));
    f = h.mean({2, 3});
  } else {
    f = torch::log_softmax(base_logits, 1);
  }
  return torch::addmm(b, f, w.t()).squeeze(1);
}

GatedNetImpl::GatedNetImpl(Net b, Net e, const GateSpec& g, double tau)
    : base(register_module("base", std::move(b))),
      expert(register_module("expert", std::move(e))),
      gate(register_module("gate", std::make_shared<GateImpl>(g))) {
  // In double, as the search compares: a threshold between two float scores stays between them.
  tau_ = register_buffer("tau", torch::full({1}, tau, torch::kDouble));
}

torch::Tensor GatedNetImpl::scores(const torch::Tensor& x) { return gate->score(x, base->forward(x)); }

torch::Tensor GatedNetImpl::routed(const torch::Tensor& scores) const { return scores.to(torch::kDouble).gt(tau_); }

double GatedNetImpl::tau() const { return tau_.item<double>(); }

torch::Tensor GatedNetImpl::forward(torch::Tensor x) {
  const torch::Tensor b = base->forward(x);
  const torch::Tensor mask = routed(gate->score(x, b));
  if (!mask.any().item<bool>()) return b;  // the expert is not asked: the base's logits, bit for bit
  return torch::where(mask.unsqueeze(1), expert->forward(x), b);
}

json gated_meta(const GatedNetImpl& net) {
  const double t = net.tau();
  return {{"kind", "gated"}, {"gate", net.gate->spec.kind},
          {"tau", std::isfinite(t) ? json(t) : json(t > 0 ? "inf" : "-inf")}};
}

bool is_gated_meta(const json& meta) {
  return meta.contains("composite") && meta["composite"].is_object() &&
         meta["composite"].value("kind", "") == "gated";
}

GateSpec gate_spec_from_meta(const json& meta, const std::string& source) {
  GateSpec g;
  try {
    g.kind = meta.at("composite").at("gate").get<std::string>();
    const json& in = meta.at("input");
    g.channels = in.at(0).get<int64_t>();
    g.classes = meta.at("classes").get<int64_t>();
  } catch (const json::exception& e) {
    state_error("'" + source + "': the gated composite's metadata is incomplete (" + e.what() + ")",
                "restore the model.json apricot wrote beside the model");
  }
  if (std::find(gate_kinds().begin(), gate_kinds().end(), g.kind) == gate_kinds().end())
    state_error("'" + source + "': unknown gate '" + g.kind + "' in the composite's metadata",
                "this apricot knows the gates input and logits; the file may be from a newer version");
  return g;
}

Net make_gated(const ModelSpec& inner, const GateSpec& gate, double tau) {
  return std::make_shared<GatedNetImpl>(make_model(inner), make_model(inner), gate, tau);
}

bool is_gated(const NetImpl& model) { return dynamic_cast<const GatedNetImpl*>(&model) != nullptr; }

void refuse_gated(const NetImpl& model, const std::string& what, const std::string& operation) {
  if (is_gated(model))
    config_error(what + " is a gated patch (a base, an expert and a scope gate), not one network; " + operation +
                     " does not apply to it",
                 "use the base model it was made from, or the arm gated-distilled for one network of the base's "
                 "architecture");
}

namespace {

// How the composite's TorchScript source reaches the logits in what the user's forward returns.
std::string logits_access(const torch::jit::Module& m, const std::string& call) {
  const auto& returns = m.get_method("forward").function().getSchema().returns();
  if (returns.size() == 1) {
    const auto kind = returns[0].type()->kind();
    if (kind == c10::TypeKind::TensorType) return call;
    if (kind == c10::TypeKind::TupleType) {
      const auto elems = returns[0].type()->containedTypes();
      if (!elems.empty() && elems[0]->kind() == c10::TypeKind::TensorType) return call + "[0]";
    }
  }
  config_error("the module's forward returns " + (returns.empty() ? std::string("nothing") : returns[0].type()->str()) +
                   "; the gated export composes modules that return logits as a tensor or a tuple's first element",
               "export with --format safetensors (every part, by name), or make forward return the logits");
}

}  // namespace

void save_gated_torchscript(const GatedNetImpl& net, const std::string& path) {
  if (!is_torchscript(*net.base))
    config_error("--format torchscript: the gated patch's base is a built-in model; TorchScript export writes the "
                 "user's own modules",
                 "export it with --format safetensors: every part (base.*, expert.*, gate.*, tau) by name");
  torch::jit::Module base = exportable_module(*net.base), expert = exportable_module(*net.expert);
  torch::jit::Module m("__torch__.apricot.GatedPatch");
  m.register_module("base", base);
  m.register_module("expert", expert);
  torch::NoGradGuard no_grad;
  for (const auto& p : net.gate->named_parameters())
    m.register_parameter("gate_" + p.key(), p.value().detach().cpu().clone(), false);
  m.register_buffer("tau", net.tau_.detach().cpu().clone());
  std::ostringstream src;
  src << "def gate_score(self, x: Tensor, b: Tensor) -> Tensor:\n";
  if (net.gate->spec.kind == "input") {
    src << "    h = torch.relu(torch.conv2d(x, self.gate_w1, self.gate_b1, [2, 2], [1, 1]))\n"
           "    h = torch.relu(torch.conv2d(h, self.gate_w2, self.gate_b2, [2, 2], [1, 1]))\n"
           "    f = h.mean([2, 3])\n";
  } else {
    src << "    f = torch.log_softmax(b, 1)\n";
  }
  src << "    return torch.addmm(self.gate_b, f, self.gate_w.t()).squeeze(1)\n"
         "\n"
         "def forward(self, x: Tensor) -> Tensor:\n"
         "    b = " << logits_access(base, "self.base.forward(x)") << "\n"
         "    mask = self.gate_score(x, b).double().gt(self.tau)\n"
         "    if not bool(mask.any()):\n"
         "        return b\n"
         "    e = " << logits_access(expert, "self.expert.forward(x)") << "\n"
         "    return torch.where(mask.unsqueeze(1), e, b)\n";
  try {
    m.define(src.str());
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    state_error("the gated patch's TorchScript form does not compile: " + what.substr(0, what.find('\n')),
                "export it with --format safetensors, and report this with the module");
  }
  m.eval();
  std::ostringstream os;
  m.save(os);
  write_file_atomic(path, os.str());
}

}  // namespace apricot
