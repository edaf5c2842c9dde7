// TorchScript models behind NetImpl (torchscript.hpp). The module's tensors are registered in a tree
// of plain nn::Modules that mirrors its submodules, so that named_parameters()/named_buffers() give
// PyTorch's dotted names and every tool that walks an nn::Module (optimisers, the weights engine,
// checkpoints, .to(device)) works on the module's own tensors.
#include "apricot/torchscript.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "apricot/errors.hpp"
#include "apricot/fsutil.hpp"

namespace apricot {

namespace {

class TorchScriptNet : public NetImpl {
 public:
  explicit TorchScriptNet(torch::jit::Module m) : module_(std::move(m)) {
    for (const auto& p : module_.named_parameters(/*recurse=*/true))
      owner(p.name).register_parameter(leaf(p.name), p.value, p.value.requires_grad());
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) owner(b.name).register_buffer(leaf(b.name), b.value);
  }
  torch::Tensor forward(torch::Tensor x) override {
    // On CUDA the draws come from the device's generator, which this does not cover: no swap, no lock.
    if (!draws_ || !is_training() || !x.is_cpu()) return module_.forward({std::move(x)}).toTensor();
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
    return module_.forward({std::move(x)}).toTensor();
  }
  void train(bool on = true) override {
    torch::nn::Module::train(on);
    module_.train(on);
  }
  const torch::jit::Module& module() const { return module_; }
  torch::jit::Module& module() { return module_; }
  // Whether its training-mode forward draws random numbers (check_module finds out).
  void set_draws(bool on) { draws_ = on; }
  bool draws() const { return draws_; }
  at::Generator stream() const { return stream_; }  // shares the generator

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
  bool draws_ = false;
  at::Generator stream_ = at::detail::createCPUGenerator(0);
  std::map<const torch::nn::Module*, std::map<std::string, std::shared_ptr<torch::nn::Module>>> mirrors_;
};

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

// The traps of torch.jit.trace, and a module that does not fit the data, found by running it.
void check_module(TorchScriptNet& net, const ModelSpec& spec) {
  const std::string& path = spec.path;
  if (net.parameters().empty())
    config_error("model.path '" + path + "': the module has no parameters, so there is nothing to repair",
                 "export the trained classifier itself (scripts/pytorch/export_torchscript.py)");
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
      config_error("model.path '" + path + "': the module fails in " + (training ? "training" : "eval") +
                       " mode on a batch of shape (2, " + std::to_string(spec.channels) + ", " +
                       std::to_string(spec.height) + ", " + std::to_string(spec.width) + "): " + first_line(what),
                   "the data's images are " + shape +
                       " (data.channels, data.image_size); export a module for that input that returns one tensor "
                       "of logits in training and in eval mode");
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
    data_error("model.path '" + spec.path + "' is not a TorchScript file: " + first_line(e.what_without_backtrace()),
               "write it in PyTorch with torch.jit.save(torch.jit.script(model), path)");
  } catch (const std::exception& e) {
    data_error("model.path '" + spec.path + "' is not a TorchScript file: " + first_line(e.what()),
               "write it in PyTorch with torch.jit.save(torch.jit.script(model), path)");
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
  for (const auto& p : params) {
    const std::string& k = p.key();
    auto w = p.value();
    const std::string prefix = k.substr(0, k.rfind('.') + 1);
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
    auto ends = [&](const std::string& s) { return k.size() >= s.size() && k.compare(k.size() - s.size(), s.size(), s) == 0; };
    if (ends("running_mean") || ends("num_batches_tracked")) b.value().zero_();
    if (ends("running_var")) b.value().fill_(1.0);
  }
}

bool is_torchscript(const NetImpl& model) { return dynamic_cast<const TorchScriptNet*>(&model) != nullptr; }

namespace {
// The model's own random stream; none for a built-in model or a module that draws nothing.
std::optional<at::Generator> own_stream(const NetImpl& model) {
  auto* net = dynamic_cast<const TorchScriptNet*>(&model);
  if (!net || !net->draws()) return std::nullopt;
  return net->stream();
}
}  // namespace

void seed_model_stream(NetImpl& model, uint64_t seed) {
  if (auto g = own_stream(model)) {
    std::lock_guard<std::mutex> lock(g->mutex());
    g->set_current_seed(seed);
  }
}

torch::Tensor model_stream_state(const NetImpl& model) {
  auto g = own_stream(model);
  if (!g) return {};
  std::lock_guard<std::mutex> lock(g->mutex());
  return g->get_state();
}

void set_model_stream_state(NetImpl& model, const torch::Tensor& state) {
  if (auto g = own_stream(model)) {
    std::lock_guard<std::mutex> lock(g->mutex());
    g->set_state(state);
  }
}

void save_torchscript(const NetImpl& model, const std::string& path) {
  auto* net = dynamic_cast<const TorchScriptNet*>(&model);
  if (!net)
    config_error("--format torchscript needs a model of arch torchscript (a TorchScript file the user brought)",
                 "built-in models export as safetensors (apricot export --format safetensors)");
  torch::jit::Module copy = net->module().deepcopy();
  copy.eval();
  copy.to(torch::kCPU);
  std::ostringstream os;
  copy.save(os);
  write_file_atomic(path, os.str());
}

}  // namespace apricot
