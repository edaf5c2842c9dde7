// TorchScript models behind NetImpl (torchscript.hpp). The module's tensors are registered in a tree
// of plain nn::Modules that mirrors its submodules, so that named_parameters()/named_buffers() give
// PyTorch's dotted names and every tool that walks an nn::Module (optimisers, the weights engine,
// checkpoints, .to(device)) works on the module's own tensors.
#include "apricot/models/torchscript.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <torch/script.h>
#include <torch/version.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"

namespace apricot {

namespace {

// The logits in what a module's forward returns: a tensor; the first element of a tuple or list
// (torchvision's GoogLeNet and many user models return (logits, features) or aux outputs); a dict's
// "logits" or "out" entry. Anything else is refused with what it was.
torch::Tensor logits_of(const c10::IValue& out) {
  if (out.isTensor()) return out.toTensor();
  if (out.isTuple()) {
    const auto& items = out.toTuple()->elements();
    if (!items.empty() && items[0].isTensor()) return items[0].toTensor();
    throw std::runtime_error("it returns a tuple whose first element is not a tensor of logits");
  }
  if (out.isList()) {
    const auto items = out.toList();
    if (items.size() > 0 && items.get(0).isTensor()) return items.get(0).toTensor();
    throw std::runtime_error("it returns a list whose first element is not a tensor of logits");
  }
  if (out.isGenericDict()) {
    const auto dict = out.toGenericDict();
    std::string keys;
    for (const auto& e : dict) keys += (keys.empty() ? "" : ", ") + (e.key().isString() ? "'" + e.key().toStringRef() + "'" : "?");
    for (const char* key : {"logits", "out"}) {
      auto it = dict.find(c10::IValue(std::string(key)));
      if (it != dict.end() && it->value().isTensor()) return it->value().toTensor();
    }
    throw std::runtime_error("it returns a dict with keys [" + keys + "] and none of them is 'logits' or 'out'");
  }
  throw std::runtime_error("it returns a " + std::string(out.tagKind()) + ", not a tensor of logits");
}

// A module's plain tensor attributes (neither parameters nor buffers), by dotted name, with the
// object and slot that hold each.
struct TensorAttribute {
  std::string name;
  c10::intrusive_ptr<c10::ivalue::Object> owner;
  size_t slot;
  torch::Tensor value;
};

std::vector<TensorAttribute> plain_tensors(const torch::jit::Module& module) {
  std::vector<TensorAttribute> out;
  for (const auto& sub : module.named_modules()) {
    const auto& type = sub.value.type();
    for (size_t i = 0; i < type->numAttributes(); ++i) {
      if (type->is_parameter(i) || type->is_buffer(i)) continue;
      const c10::IValue slot = sub.value._ivalue()->getSlot(i);
      if (!slot.isTensor() || !slot.toTensor().defined()) continue;
      const std::string leaf_name = type->getAttributeName(i);
      out.push_back({sub.name.empty() ? leaf_name : sub.name + "." + leaf_name, sub.value._ivalue(), i, slot.toTensor()});
    }
  }
  return out;
}

// torch::jit::Module::to moves parameters and buffers only; this moves the rest of its tensors.
void move_plain_tensors(const torch::jit::Module& module, torch::Device device, bool non_blocking = false) {
  torch::NoGradGuard no_grad;
  for (const auto& a : plain_tensors(module))
    if (a.value.device() != device) a.owner->setSlot(a.slot, a.value.to(device, non_blocking));
}

class TorchScriptNet : public NetImpl {
 public:
  explicit TorchScriptNet(torch::jit::Module m) : module_(std::move(m)) {
    // A tensor under two names (tied weights: `self.b.weight = self.a.weight`) is registered once,
    // under the first, as PyTorch's named_parameters() lists it: an optimiser that saw it twice
    // would step it twice, and the weights engine would count it twice.
    std::map<const c10::TensorImpl*, std::string> seen;
    auto first = [&](const std::string& name, const torch::Tensor& t) {
      auto [it, fresh] = seen.emplace(t.unsafeGetTensorImpl(), name);
      if (!fresh) aliases_.emplace_back(name, it->second);
      return fresh;
    };
    for (const auto& p : module_.named_parameters(/*recurse=*/true))
      if (first(p.name, p.value)) owner(p.name).register_parameter(leaf(p.name), p.value, p.value.requires_grad());
    for (const auto& b : module_.named_buffers(/*recurse=*/true))
      if (first(b.name, b.value)) owner(b.name).register_buffer(leaf(b.name), b.value);
  }
  torch::Tensor forward(torch::Tensor x) override {
    // On CUDA the draws come from the device's generator, which this does not cover: no swap, no lock.
    if (!draws_ || !is_training() || !x.is_cpu()) return logits_of(module_.forward({std::move(x)}));
    // Training-mode randomness (dropout) comes from LibTorch's process-wide CPU generator: run the
    // forward pass with that generator set to this model's own stream, so that the draws depend on
    // this model's history only (not on other models training at once in this process), and the
    // stream can be saved and restored with the model's state.
    std::lock_guard<std::mutex> lock(global_generator_mutex());
    auto global = at::detail::getDefaultCPUGenerator();
    struct Swap {
      at::Generator global, own;
      torch::Tensor saved;
      Swap(at::Generator g, at::Generator o) : global(std::move(g)), own(std::move(o)) {
        std::scoped_lock both(global.mutex(), own.mutex());
        saved = global.get_state();
        global.set_state(own.get_state());
      }
      ~Swap() {
        std::scoped_lock both(global.mutex(), own.mutex());
        own.set_state(global.get_state());
        global.set_state(saved);
      }
    } swap(global, stream_);
    return logits_of(module_.forward({std::move(x)}));
  }
  void train(bool on = true) override {
    torch::nn::Module::train(on);
    module_.train(on);
  }
  // The registered tensors move with nn::Module::to; a module's plain tensor attributes (`self.mean =
  // torch.tensor(...)` in a scripted module: neither parameters nor buffers) are moved here, so that a
  // forward on the device does not mix devices. Their dtype stays (an index tensor remains int64).
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override {
    NetImpl::to(device, dtype, non_blocking);
    move_plain_tensors(module_, device, non_blocking);
  }
  void to(torch::Device device, bool non_blocking = false) override {
    NetImpl::to(device, non_blocking);
    move_plain_tensors(module_, device, non_blocking);
  }
  using NetImpl::to;
  const torch::jit::Module& module() const { return module_; }
  torch::jit::Module& module() { return module_; }
  // Whether its training-mode forward draws random numbers (check_module finds out).
  void set_draws(bool on) { draws_ = on; }
  std::optional<at::Generator> random_stream() const override {
    if (!draws_) return std::nullopt;
    return stream_;  // shares the generator
  }
  const std::vector<std::pair<std::string, std::string>>& aliases() const { return aliases_; }
  // Parameters the file marks trainable that get no gradient (used under torch.no_grad(), or not at
  // all): apricot holds them as frozen (requires_grad false while loaded; the export restores it).
  std::vector<std::string> gradless;

 private:
  static std::string leaf(const std::string& dotted) { return dotted.substr(dotted.rfind('.') + 1); }
  // The mirror module that holds a dotted name's last part, made on the way.
  torch::nn::Module& owner(const std::string& dotted) {
    torch::nn::Module* at = this;
    size_t start = 0;
    for (size_t dot; (dot = dotted.find('.', start)) != std::string::npos; start = dot + 1) {
      const std::string part = dotted.substr(start, dot - start);
      auto& kids = mirrors_[at];
      auto it = kids.find(part);
      if (it == kids.end()) it = kids.emplace(part, at->register_module(part, std::make_shared<torch::nn::Module>())).first;
      at = it->second.get();
    }
    return *at;
  }
  torch::jit::Module module_;
  std::vector<std::pair<std::string, std::string>> aliases_;  // (second name, registered name)
  bool draws_ = false;
  at::Generator stream_ = at::detail::createCPUGenerator(0);
  std::map<const torch::nn::Module*, std::map<std::string, std::shared_ptr<torch::nn::Module>>> mirrors_;
};

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string first_text_line(const std::string& s) {
  std::istringstream lines(s);
  for (std::string line; std::getline(lines, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) return line;
  return "";
}

// Why torch::jit::load refused a file, in words a user can act on. LibTorch reads files of older
// PyTorch releases, not of newer ones: a file saved by a newer PyTorch names an operator or type this
// LibTorch lacks, or a newer format version, and the fix is a build against a newer LibTorch.
[[noreturn]] void refuse_file(const std::string& path, const std::string& what) {
  const std::string line = first_text_line(what);
  const std::string mine = std::string("this build's LibTorch ") + TORCH_VERSION;
  const std::string newer_hint =
      "the file was saved by a newer PyTorch than " + mine + ": build apricot against a LibTorch at least as new as "
      "the PyTorch that saved it (scripts/setup.sh --torch pip builds against PyTorch 2.15; --torch DIR against an "
      "unpacked LibTorch or a Python venv with torch), or save the model again with PyTorch " TORCH_VERSION;
  auto after = [&](const std::string& key) {
    const auto at = line.find(key);
    if (at == std::string::npos) return std::string();
    std::string rest = line.substr(at + key.size());
    while (!rest.empty() && (rest.back() == '.' || rest.back() == ' ')) rest.pop_back();
    return rest;
  };
  if (const std::string op = after("Unknown builtin op: "); !op.empty()) {
    // aten:: and prim:: are LibTorch's own: missing ones are newer than this LibTorch. Others come
    // from an extension library (torchvision::nms, a custom op) that apricot does not load.
    if (op.rfind("aten::", 0) == 0 || op.rfind("prim::", 0) == 0)
      data_error("model.path '" + path + "' uses the operator " + op + ", which " + mine + " does not have", newer_hint);
    data_error("model.path '" + path + "' uses the operator " + op + " of an extension library, which apricot does "
                   "not load (it runs LibTorch's own operators only)",
               "script the model without it (for example torchvision's detection ops), or replace it with "
               "LibTorch operators before torch.jit.save");
  }
  if (line.find("Unknown type name") != std::string::npos)
    data_error("model.path '" + path + "' uses a type that " + mine + " does not know (" + line + ")", newer_hint);
  // The archive's format version past what this LibTorch reads ("Attempted to read a PyTorch file with
  // version N, but the maximum supported version for reading is M"; older releases fail an assertion
  // on kMaxSupportedFileFormatVersion), or an operator version it has no upgrader for.
  for (const char* key : {"maximum supported version", "kMaxSupportedFileFormatVersion", "supports only up to version",
                          "Unsupported file format version"})
    if (line.find(key) != std::string::npos)
      data_error("model.path '" + path + "' is of a newer TorchScript version than " + mine + " reads: " + line,
                 newer_hint);
  if (line.find("PytorchStreamReader") != std::string::npos || line.find("zip archive") != std::string::npos ||
      line.find("constants.pkl") != std::string::npos || line.find("file not found") != std::string::npos)
    data_error("model.path '" + path + "' is not a TorchScript file: " + line,
               "write it in PyTorch with torch.jit.save(torch.jit.script(model), path) (torch.save writes a pickle, "
               "which LibTorch cannot run)");
  data_error("model.path '" + path + "': " + mine + " cannot load it: " + line,
             "write it in PyTorch with torch.jit.save(torch.jit.script(model), path); if it was saved by a newer "
             "PyTorch than " TORCH_VERSION ", build apricot against that PyTorch's LibTorch (scripts/setup.sh --torch pip)");
}

// What went wrong in a module's forward: the TorchScript interpreter's error opens with "The
// following operation failed in the TorchScript interpreter." and a traceback, then names the cause
// on a line of its own ("RuntimeError: Could not run ... 'CUDA' backend ..."), which may be followed
// by pages of dispatcher details: that cause line is the one a user needs.
std::string cause_of(const std::string& what) {
  const std::string head = first_line(what);
  if (head.find("failed in the TorchScript interpreter") == std::string::npos) return head;
  std::istringstream lines(what);
  for (std::string line; std::getline(lines, line);) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos || line.empty() || line[0] == ' ') continue;
    const std::string kind = line.substr(0, colon);  // "RuntimeError", "torch.jit.Error", ...
    const bool named = kind.find(' ') == std::string::npos &&
                       (kind.size() >= 5 && (kind.compare(kind.size() - 5, 5, "Error") == 0 ||
                                             kind.find("Exception") != std::string::npos));
    if (named) return line.size() > 300 ? line.substr(0, 300) + "..." : line;
  }
  return head;
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

// Which trainable parameters a training step would not reach: one training-mode forward and backward
// of the check batch (the caller restores the buffers it moves). They become frozen while loaded.
void find_gradless(TorchScriptNet& net, const torch::Tensor& x, const std::string& path) {
  torch::AutoGradMode grad_on(true);
  net.train(true);
  const auto params = net.named_parameters();
  for (const auto& p : params) p.value().mutable_grad() = torch::Tensor();
  torch::Tensor out;
  try {
    out = net.forward(x);
    if (out.requires_grad()) out.sum().backward();
  } catch (const c10::Error& e) {
    config_error("model.path '" + path + "': the module's backward pass fails in training mode: " +
                     cause_of(e.what_without_backtrace()),
                 "check that the module trains in PyTorch (loss.backward()) before scripting it");
  }
  if (!out.requires_grad())
    config_error("model.path '" + path + "': no parameter gets a gradient from the module's output (its forward "
                 "runs under torch.no_grad(), or every parameter is frozen), so training cannot change it",
                 "keep torch.no_grad() to the parts that must not train, and leave the layers to repair trainable");
  std::string names;
  for (const auto& p : params) {
    torch::Tensor t = p.value();
    if (t.requires_grad() && !t.grad().defined()) {
      net.gradless.push_back(p.key());
      names += (names.empty() ? "" : ", ") + p.key();
    }
    t.mutable_grad() = torch::Tensor();
  }
  for (const auto& name : net.gradless) net.named_parameters()[name].requires_grad_(false);
  if (!net.gradless.empty())
    spdlog::info("model.path '{}': {} parameter(s) get no gradient in training (used under torch.no_grad(), or not "
                 "at all): {}; apricot keeps them as they are, like frozen ones", path, net.gradless.size(), names);
}

// The traps of torch.jit.trace, and a module that does not fit the data, found by running it.
void check_module(TorchScriptNet& net, const ModelSpec& spec) {
  const std::string& path = spec.path;
  if (net.parameters().empty())
    config_error("model.path '" + path + "': the module has no parameters, so there is nothing to repair",
                 "export the trained classifier itself (scripts/pytorch/export_torchscript.py)");
  bool trainable = false;
  for (const auto& p : net.parameters()) trainable |= p.requires_grad();
  if (!trainable)
    config_error("model.path '" + path + "': every parameter is frozen (requires_grad=False), so apricot may "
                 "change none of them",
                 "unfreeze the layers to repair (requires_grad_(True)) before torch.jit.save");
  torch::NoGradGuard no_grad;
  const auto buffers = net.buffers();
  const auto saved = copies(buffers);
  auto restore = [&] {
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved[i]);
  };
  // The check draws (its batch, dropout masks) must not move the caller's seeded generator.
  auto global = at::detail::getDefaultCPUGenerator();
  const torch::Tensor global_state = global.get_state();
  struct RestoreGenerator {
    at::Generator g;
    torch::Tensor state;
    ~RestoreGenerator() { g.set_state(state); }
  } keep{global, global_state};
  // A fixed state, so that what the check finds does not depend on the caller's (restored below).
  global.set_current_seed(17);
  const torch::Tensor x = torch::randn({2, spec.channels, spec.height, spec.width}, at::detail::createCPUGenerator(17));
  const std::string shape = std::to_string(spec.channels) + "x" + std::to_string(spec.height) + "x" +
                            std::to_string(spec.width);
  // One forward pass in the given mode; a module that fails is a usage error naming the file.
  auto pass = [&](bool training) {
    net.train(training);
    try {
      const torch::Tensor out = net.forward(x);
      if (!out.defined()) throw std::runtime_error("it returned an undefined tensor");
      return out;
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (auto* c = dynamic_cast<const c10::Error*>(&e)) what = c->what_without_backtrace();
      const std::string cause = cause_of(what);
      const bool cuda = cause.find("'CUDA' backend") != std::string::npos ||
                        cause.find("CUDA error") != std::string::npos ||
                        cause.find("NVIDIA driver") != std::string::npos ||
                        (cause.find("same device") != std::string::npos && cause.find("cuda") != std::string::npos);
      if (cuda)
        config_error("model.path '" + path + "': the module's forward makes or moves a tensor to CUDA itself (" +
                         cause.substr(0, 160) + "), and apricot checks and runs it on the CPU",
                     "create tensors on the input's device in forward (torch.zeros(..., device=x.device), "
                     "x.new_zeros(...)) instead of \"cuda\", and script it again; a module saved on a GPU "
                     "otherwise loads fine here");
      config_error("model.path '" + path + "': the module fails in " + (training ? "training" : "eval") +
                       " mode on a batch of shape (2, " + std::to_string(spec.channels) + ", " +
                       std::to_string(spec.height) + ", " + std::to_string(spec.width) + "): " + cause,
                   "the data's images are " + shape +
                       " (data.channels, data.image_size); export a module for that input that returns the "
                       "logits in training and in eval mode: a tensor, a tuple whose first element is the "
                       "logits, or a dict with the key 'logits'");
    }
  };
  const torch::Tensor y = pass(false);
  if (y.dim() != 2 || y.size(0) != 2 || y.size(1) != spec.classes || !y.is_floating_point())
    config_error("model.path '" + path + "': the module returns " + c10::str(y.sizes()) + " for a batch of 2; " +
                     "apricot needs logits of shape (batch, classes) = (2, " + std::to_string(spec.classes) + ")",
                 "the dataset has " + std::to_string(spec.classes) +
                     " classes; the module must return one score per class (no softmax needed)");
  // Training mode must change what BatchNorm and dropout do. Two training-mode passes over the
  // same batch differ only if the module draws random numbers (BatchNorm uses the batch's own
  // statistics both times).
  auto ends_with = [](const std::string& k, const std::string& s) {
    return k.size() >= s.size() && k.compare(k.size() - s.size(), s.size(), s) == 0;
  };
  const auto named = net.named_buffers();  // the order of buffers() and `saved`
  bool has_bn = false, has_dropout = false;
  for (size_t i = 0; i < named.size(); ++i) has_bn |= ends_with(named[i].key(), "running_mean");
  for (const auto& m : net.module().named_modules()) {
    const auto type = m.value.type()->name();
    if (type && type->qualifiedName().find("Dropout") != std::string::npos) has_dropout = true;
  }
  const torch::Tensor a = pass(true);
  bool moved = false;
  for (size_t i = 0; i < named.size(); ++i)
    if (ends_with(named[i].key(), "running_mean") && !torch::equal(named[i].value(), saved[i])) moved = true;
  const torch::Tensor c = pass(true);
  net.eval();
  restore();
  const bool draws = !torch::equal(a, c);
  const std::string hint =
      "export it with torch.jit.script, not torch.jit.trace (scripts/pytorch/export_torchscript.py does): a traced "
      "module records BatchNorm and dropout in the mode it was traced in";
  if (has_bn && !moved)
    config_error("model.path '" + path + "': its BatchNorm statistics do not move in training mode, so it would "
                 "never train as it should (a module made with torch.jit.trace)", hint);
  if (has_dropout && !has_bn && !draws)  // with BatchNorm, the check above finds a traced module
    config_error("model.path '" + path + "': its dropout does not drop in training mode (a module made with "
                 "torch.jit.trace)", hint);
  find_gradless(net, x, path);
  net.eval();
  restore();
  net.set_draws(draws);
}

}  // namespace

Net load_torchscript(const ModelSpec& spec) {
  if (spec.path.empty())
    config_error("model.arch is \"torchscript\" but model.path is empty",
                 "set model.path to a file written by torch.jit.save(torch.jit.script(model), path)");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(spec.path, ec))
    data_error("model.path '" + spec.path + "': no such file", "check the path (relative paths start where apricot runs)");
  torch::jit::Module m;
  try {
    m = torch::jit::load(spec.path, torch::kCPU);
  } catch (const c10::Error& e) {
    refuse_file(spec.path, e.what_without_backtrace());
  } catch (const std::exception& e) {  // torch::jit::ErrorReport: the saved code does not compile here
    refuse_file(spec.path, e.what());
  }
  auto net = std::make_shared<TorchScriptNet>(std::move(m));
  check_module(*net, spec);
  return net;
}

void reinitialise_torchscript(NetImpl& model) {
  torch::NoGradGuard no_grad;
  std::map<std::string, int64_t> fan_in;  // layer prefix -> fan-in of its weight
  const auto params = model.named_parameters();
  for (const auto& p : params) {
    const std::string& k = p.key();
    const auto& w = p.value();
    if (k.size() < 6 || k.compare(k.size() - 6, 6, "weight") != 0 || w.dim() < 2) continue;
    fan_in[k.substr(0, k.size() - 6)] = w.numel() / w.size(0);
  }
  std::set<std::string> frozen_layers;  // prefixes of layers whose parameters are frozen
  for (const auto& p : params) {
    const std::string& k = p.key();
    auto w = p.value();
    const std::string prefix = k.substr(0, k.rfind('.') + 1);
    if (!w.requires_grad()) {  // frozen by the user: kept as the file has it, like its layer's statistics
      if (!prefix.empty()) frozen_layers.insert(prefix);
      continue;
    }
    const bool is_weight = k.size() >= 6 && k.compare(k.size() - 6, 6, "weight") == 0;
    if (w.dim() >= 2) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(w.numel() / w.size(0)));
      w.uniform_(-bound, bound);
    } else if (!is_weight && fan_in.count(prefix)) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in[prefix]));
      w.uniform_(-bound, bound);
    } else {
      w.fill_(is_weight ? 1.0 : 0.0);
    }
  }
  for (const auto& b : model.named_buffers()) {
    const std::string& k = b.key();
    if (frozen_layers.count(k.substr(0, k.rfind('.') + 1))) continue;
    auto ends = [&](const std::string& s) { return k.size() >= s.size() && k.compare(k.size() - s.size(), s.size(), s) == 0; };
    if (ends("running_mean") || ends("num_batches_tracked")) b.value().zero_();
    if (ends("running_var")) b.value().fill_(1.0);
  }
}

bool is_torchscript(const NetImpl& model) { return dynamic_cast<const TorchScriptNet*>(&model) != nullptr; }

std::vector<std::pair<std::string, torch::Tensor>> tensor_attributes(const NetImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (auto* net = dynamic_cast<const TorchScriptNet*>(&model))
    for (const auto& a : plain_tensors(net->module())) out.emplace_back(a.name, a.value);
  return out;
}

std::vector<std::pair<std::string, std::string>> tied_names(const NetImpl& model) {
  auto* net = dynamic_cast<const TorchScriptNet*>(&model);
  return net ? net->aliases() : std::vector<std::pair<std::string, std::string>>{};
}


torch::jit::Module exportable_module(const NetImpl& model) {
  auto* net = dynamic_cast<const TorchScriptNet*>(&model);
  if (!net)
    config_error("--format torchscript needs a model of arch torchscript (a TorchScript file the user brought)",
                 "built-in models export as safetensors (apricot export --format safetensors)");
  torch::jit::Module copy = net->module().deepcopy();
  if (!net->gradless.empty()) {  // the file's own flags: trainable, though no gradient reaches them
    torch::NoGradGuard no_grad;
    std::set<std::string> names(net->gradless.begin(), net->gradless.end());
    for (const auto& p : copy.named_parameters(/*recurse=*/true))
      if (names.count(p.name)) p.value.requires_grad_(true);
  }
  copy.eval();
  copy.to(torch::kCPU);
  move_plain_tensors(copy, torch::kCPU);  // the file loads on a machine without the GPU it ran on
  return copy;
}

void save_torchscript(const NetImpl& model, const std::string& path) {
  std::ostringstream os;
  exportable_module(model).save(os);
  write_file_atomic(path, os.str());
}

}  // namespace apricot
