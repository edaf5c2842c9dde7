// The gated patch (docs/FIELD.md, arm `gated`): a composite of three networks that answers as the
// expert E where a scope gate g says the input is of the field's kind and as the base B elsewhere,
//   M(x) = E(x) where g(x) > tau, else B(x).
// With tau = +inf it is B bit for bit, with tau = -inf it is E. B and E have one architecture (a
// built-in one or the user's TorchScript module); the gate is small and reads what any model gives:
//   "input"   a two-layer convolutional net on the (normalised) input image: a changed input
//             distribution (noise, blur, contrast, another camera);
//   "logits"  a logistic regression on the base's log-probabilities: failures confined to some
//             classes (a confused pair, a class seen too little).
// The composite is a NetImpl like any other (eval, compare, report, checkpoints); its checkpoint
// metadata says so ("composite"), and operations that change one network's weights refuse it.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/models/model.hpp"

namespace apricot {

const std::vector<std::string>& gate_kinds();  // "input" "logits"

struct GateSpec {
  std::string kind = "input";
  int64_t channels = 1, classes = 10;
};

// A gate's score: a logit, > tau sends the input to the expert.
struct GateImpl : torch::nn::Module {
  explicit GateImpl(const GateSpec& spec);
  // x: normalised images (B, C, H, W); base_logits: the base's logits on them (B, classes).
  torch::Tensor score(const torch::Tensor& x, const torch::Tensor& base_logits);
  // Fresh weights drawn from `gen` (PyTorch's default initialisation of conv and linear layers).
  void initialise(at::Generator gen);
  GateSpec spec;
  torch::Tensor w1, b1, w2, b2, w, b;  // input: both convolutions and the linear read-out; logits: w, b only
};

struct GatedNetImpl : NetImpl {
  GatedNetImpl(Net base, Net expert, const GateSpec& gate, double tau);
  torch::Tensor forward(torch::Tensor x) override;
  // The gate's scores for normalised x, and the mask forward uses (score > tau, in double).
  torch::Tensor scores(const torch::Tensor& x);
  torch::Tensor routed(const torch::Tensor& scores) const;
  double tau() const;
  Net base, expert;
  std::shared_ptr<GateImpl> gate;
  torch::Tensor tau_;  // a float64 buffer (1) so that it travels with the checkpoint and the export
};

// The composite's part of a checkpoint's metadata ("composite": kind, gate, tau) and back.
nlohmann::json gated_meta(const GatedNetImpl& net);
bool is_gated_meta(const nlohmann::json& meta);
GateSpec gate_spec_from_meta(const nlohmann::json& meta, const std::string& source);
// A composite of two fresh models of `inner` and a fresh gate; the checkpoint's weights fill it.
Net make_gated(const ModelSpec& inner, const GateSpec& gate, double tau);

bool is_gated(const NetImpl& model);
// Error(kUsage) naming `what` when `model` is a composite: `operation` does not apply to it.
void refuse_gated(const NetImpl& model, const std::string& what, const std::string& operation);

// Writes the composite as one TorchScript module (base, expert, gate and tau; forward as above) that
// torch.jit.load reads. Needs base and expert to be the user's TorchScript modules returning a
// tensor (or a tuple whose first element is one); Error(kUsage) otherwise.
void save_gated_torchscript(const GatedNetImpl& net, const std::string& path);

}  // namespace apricot
