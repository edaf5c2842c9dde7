// A user's own PyTorch classifier as a TorchScript file (model.arch: torchscript, model.path): the
// module loaded with torch::jit::load behind the same NetImpl interface as the built-in models, so
// training, the weights engine, adaptation, checkpoints and resume do not care which one they hold.
// Its parameters and buffers are registered under their PyTorch names ("features.0.weight",
// "bn1.running_mean"), aliasing the module's own tensors: an optimiser step, a weight update or a
// checkpoint load changes the module that runs forward.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "apricot/models/model.hpp"

namespace torch::jit {
struct Module;
}

namespace apricot {

// Loads spec.path and checks it against the spec before use (Error with the file named):
//   kData (3)  the file is missing or not a TorchScript archive;
//   kUsage (2) the module has no parameters, rejects a (2, C, H, W) float batch, or does not return
//              (batch, classes) logits; or its BatchNorm statistics do not move / its dropout does not
//              drop in training mode (a module made with torch.jit.trace records the mode it was
//              traced in and never trains as it should: export it with torch.jit.script).
//   kUsage (2) also: every parameter frozen, or none reached by a gradient.
// Outputs: a tensor of logits, a tuple or list whose first element is that, or a dict with "logits"
// (or "out"). Parameters that get no gradient in a training-mode pass (used under torch.no_grad(),
// or unused) are held frozen like those with requires_grad false. The module is loaded onto the CPU
// (a file saved from CUDA loads too); a forward that makes CUDA tensors itself is refused.
// The weights are the file's; the module is left in eval mode.
Net load_torchscript(const ModelSpec& spec);

// Re-initialises every parameter by its kind, as PyTorch initialises a fresh layer: weights of two or
// more dimensions (convolutions, linear layers) Kaiming-uniform with a = sqrt(5), i.e. uniform in
// +-1/sqrt(fan_in); their biases uniform in +-1/sqrt(fan_in); one-dimensional weights (normalisation
// layers) 1 and their biases 0; BatchNorm running means 0, variances 1, counters 0. Draws from torch's
// global generator (seed it first, as for make_model). Frozen parameters (requires_grad false) and
// the statistics of their layers keep the file's values: a frozen part is never changed.
void reinitialise_torchscript(NetImpl& model);

// Whether `model` is a TorchScript model (load_torchscript made it).
bool is_torchscript(const NetImpl& model);

// Tied tensors (one tensor under two names, `self.b.weight = self.a.weight`): the model registers
// each once, under its first name (named_parameters() lists it once, so an optimiser steps it once);
// these are the (second name, registered name) pairs, which PyTorch's state_dict() lists too.
std::vector<std::pair<std::string, std::string>> tied_names(const NetImpl& model);

// The module's plain tensor attributes (`self.mean = torch.tensor(...)` in a scripted module: neither
// parameters nor buffers, so not in named_parameters() or named_buffers()), by dotted name. They are
// never trained, averaged or saved as weights (the module's file keeps them), but model->to(device)
// moves them with the module (PyTorch's .to() does not), so that its forward runs on the device.
// Empty for a built-in model.
std::vector<std::pair<std::string, torch::Tensor>> tensor_attributes(const NetImpl& model);

// A TorchScript module whose training-mode forward draws random numbers (dropout: found at load by
// two training-mode passes that differ) draws them from a random stream of its own, its
// NetImpl::random_stream (model.hpp's seed_model_stream and the state functions use it).

// A deep copy of the module with the model's current weights, on the CPU in eval mode, with the
// file's own requires_grad flags: what save_torchscript writes. Error(kUsage) for a built-in model.
torch::jit::Module exportable_module(const NetImpl& model);

// Writes the module, with the model's current weights, as a TorchScript file that torch.jit.load in
// PyTorch reads. Error(kUsage) for a built-in model.
void save_torchscript(const NetImpl& model, const std::string& path);

}  // namespace apricot
