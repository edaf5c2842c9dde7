// A user's PyTorch model as TorchScript (model.arch: torchscript), on the committed fixtures of
// tests/fixtures/ (made by scripts/pytorch/export_torchscript.py; README there): the module computes
// what PyTorch computed, its twin of the built-in `small` gives the built-in's logits with the same
// weights, training changes the module itself, a traced module with BatchNorm is refused, bad files
// are clear errors, and the whole tool runs on it and exports it back as TorchScript.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/models/gated.hpp"
#include "apricot/models/model.hpp"
#include "apricot/models/state.hpp"
#include "apricot/models/torchscript.hpp"
#include "cli_util.hpp"
#include "torchscript_fixtures.hpp"

using namespace apricot;
using namespace apricot::test;
namespace fs = std::filesystem;

namespace {

ModelSpec script_spec(const std::string& file, int64_t channels = 1, int64_t classes = 4) {
  ModelSpec s;
  s.arch = "torchscript", s.channels = channels, s.height = 16, s.width = 16, s.classes = classes, s.path = fixture(file);
  return s;
}

// What PyTorch computes for the fixtures' input after `setup`, a Python statement that binds the
// module to m (run in scripts/pytorch/, so st_io imports). The Python is the build's APRICOT_PYTHON:
// Debian's python3-torch (1.13) for Debian's LibTorch, the venv's PyTorch 2.15 for the pip build.
// An undefined tensor when that Python has no torch.
torch::Tensor pytorch_logits(const std::string& setup) {
  if (!python_has_this_torch()) return {};
  const auto r = run_shell("cd " + std::string(APRICOT_SOURCE_DIR) + "/scripts/pytorch && " APRICOT_PYTHON " -W ignore -c \"import torch, st_io; " +
                           setup + "; m.eval(); x = torch.arange(512, dtype=torch.float32).reshape(2, 1, 16, 16) / 512.0 - 0.25; "
                           "print(' '.join('%.9g' % v for v in m(x).flatten().tolist()))\"");
  EXPECT_EQ(r.code, 0) << r.err;
  std::istringstream in(r.out);
  std::vector<float> v;
  for (float f; in >> f;) v.push_back(f);
  EXPECT_EQ(v.size(), 8u) << r.out;
  return v.size() == 8 ? torch::tensor(v).reshape({2, 4}) : torch::zeros({2, 4});
}

}  // namespace

TEST(TorchScript, ComputesWhatPyTorchComputed) {
  for (const char* f : {"small-1x16x16-4.pt", "small-traced-1x16x16-4.pt"}) {
    Net m = load_torchscript(script_spec(f));
    EXPECT_TRUE(is_torchscript(*m));
    EXPECT_TRUE(torch::allclose(eval_logits(*m, fixture_input()), logits_file("small-1x16x16-4.logits.txt"), 1e-5, 1e-6))
        << f;
  }
  Net bn = load_torchscript(script_spec("bn-dropout-1x16x16-4.pt"));
  EXPECT_TRUE(torch::allclose(eval_logits(*bn, fixture_input()), logits_file("bn-dropout-1x16x16-4.logits.txt"), 1e-5, 1e-6));
  // PyTorch's state_dict names, parameters and buffers.
  std::vector<std::string> names;
  for (const auto& p : bn->named_parameters()) names.push_back(p.key());
  for (const auto& b : bn->named_buffers()) names.push_back(b.key());
  EXPECT_NE(std::find(names.begin(), names.end(), "bn1.running_mean"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "fc.weight"), names.end());
}

TEST(TorchScript, TwinOfTheBuiltInSmallGivesItsLogits) {
  Net ts = load_torchscript(script_spec("small-1x16x16-4.pt"));
  ModelSpec s = script_spec("");
  s.arch = "small", s.path.clear();
  Net builtin = make_model(s);
  auto theirs = ts->named_parameters();
  auto ours = builtin->named_parameters();
  ASSERT_EQ(theirs.size(), ours.size());
  torch::NoGradGuard g;
  for (const auto& p : ours) {
    ASSERT_TRUE(theirs.contains(p.key())) << p.key();
    p.value().copy_(theirs[p.key()]);
  }
  EXPECT_TRUE(torch::allclose(eval_logits(*builtin, fixture_input()), eval_logits(*ts, fixture_input()), 1e-5, 1e-6));
}

TEST(TorchScript, TrainingChangesTheModuleItselfAndCheckpointsRoundTrip) {
  Net m = load_torchscript(script_spec("bn-dropout-1x16x16-4.pt"));
  const auto before = eval_logits(*m, fixture_input());
  m->train();
  torch::optim::SGD opt(m->parameters(), 0.1);
  auto loss = torch::nn::functional::cross_entropy(m->forward(fixture_input()), torch::tensor({1, 2}));
  loss.backward();
  opt.step();
  EXPECT_EQ(m->named_buffers()["bn1.num_batches_tracked"].item<int64_t>(), 1);  // BatchNorm trained
  const auto after = eval_logits(*m, fixture_input());
  EXPECT_FALSE(torch::allclose(before, after)) << "the optimiser step did not reach the module's forward";
  // Saved and loaded as every checkpoint: the same function.
  auto dir = fresh_dir("ts-ckpt");
  nlohmann::json meta = {{"format", "apricot-checkpoint"}, {"format_version", 1}, {"arch", "torchscript"},
                         {"model_path", fixture("bn-dropout-1x16x16-4.pt")}, {"input", {1, 16, 16}}, {"classes", 4}};
  save_checkpoint((dir / "model.pt").string(), *m, meta);
  LoadedModel back = load_checkpoint((dir / "model.pt").string());
  EXPECT_TRUE(torch::equal(eval_logits(*back.model, fixture_input()), after));
  // Exported as TorchScript: torch::jit::load gives the same logits.
  save_torchscript(*back.model, (dir / "exported.pt").string());
  auto exported = torch::jit::load((dir / "exported.pt").string());
  exported.eval();
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(exported.forward({fixture_input()}).toTensor(), after));
  fs::remove_all(dir);
}

TEST(TorchScript, FreshModelsAreReinitialisedByKind) {
  torch::manual_seed(1);
  Net m = make_model(script_spec("bn-dropout-1x16x16-4.pt"));
  Net file = load_torchscript(script_spec("bn-dropout-1x16x16-4.pt"));
  auto p = m->named_parameters(), q = file->named_parameters();
  EXPECT_FALSE(torch::equal(p["conv1.weight"], q["conv1.weight"]));
  const double bound = 1.0 / std::sqrt(9.0);  // conv1: 1 input channel, 3x3
  EXPECT_LE(p["conv1.weight"].abs().max().item<double>(), bound);
  EXPECT_LE(p["conv1.bias"].abs().max().item<double>(), bound);
  EXPECT_TRUE(torch::equal(p["bn1.weight"], torch::ones_like(p["bn1.weight"])));
  EXPECT_TRUE(torch::equal(p["bn1.bias"], torch::zeros_like(p["bn1.bias"])));
  auto b = m->named_buffers();
  EXPECT_TRUE(torch::equal(b["bn1.running_var"], torch::ones_like(b["bn1.running_var"])));
  EXPECT_EQ(b["bn1.num_batches_tracked"].item<int64_t>(), 0);
  torch::manual_seed(1);
  Net again = make_model(script_spec("bn-dropout-1x16x16-4.pt"));
  EXPECT_TRUE(torch::equal(again->named_parameters()["fc.weight"], p["fc.weight"])) << "seeded, so reproducible";
  torch::manual_seed(2);
  Net other = make_model(script_spec("bn-dropout-1x16x16-4.pt"));
  EXPECT_FALSE(torch::equal(other->named_parameters()["fc.weight"], p["fc.weight"])) << "another seed, another start";
  // Loading (and its checks' draws) leaves the caller's generator where it was.
  torch::manual_seed(3);
  const auto want = torch::rand({4});
  torch::manual_seed(3);
  load_torchscript(script_spec("bn-dropout-1x16x16-4.pt"));
  EXPECT_TRUE(torch::equal(torch::rand({4}), want));
}

TEST(TorchScript, TracedBatchNormIsRefusedAndBadFilesAreClearErrors) {
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { load_torchscript(script_spec("bn-dropout-traced-1x16x16-4.pt")); }, &msg), exit_status(ExitCode::kUsage));
  EXPECT_NE(msg.find("torch.jit.script"), std::string::npos) << msg;
  EXPECT_EQ(exit_code_of([&] { load_torchscript(script_spec("small-traced-1x16x16-4.pt")); }), 0)
      << "tracing a model without BatchNorm or dropout loses nothing";
  EXPECT_EQ(exit_code_of([&] { load_torchscript(script_spec("no-such-file.pt")); }, &msg), exit_status(ExitCode::kData));
  auto dir = fresh_dir("ts-bad");
  std::ofstream(dir / "text.pt") << "not a TorchScript archive";
  ModelSpec s = script_spec("");
  s.path = (dir / "text.pt").string();
  EXPECT_EQ(exit_code_of([&] { load_torchscript(s); }, &msg), exit_status(ExitCode::kData));
  EXPECT_NE(msg.find("text.pt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is not a TorchScript file"), std::string::npos) << msg;
  EXPECT_EQ(exit_code_of([&] { load_torchscript(script_spec("small-1x16x16-4.pt", 1, 10)); }, &msg), exit_status(ExitCode::kUsage));
  EXPECT_NE(msg.find("(batch, classes)"), std::string::npos) << msg;
  EXPECT_EQ(exit_code_of([&] { load_torchscript(script_spec("small-1x16x16-4.pt", 3, 4)); }, &msg), exit_status(ExitCode::kUsage));
  EXPECT_NE(msg.find("mode on a batch of shape (2, 3, 16, 16)"), std::string::npos) << msg;
  fs::remove_all(dir);
}

// The whole tool on the user's module: every phase, the result table, export back to TorchScript
// with apricot's logits (and, where Debian's python3-torch is installed, PyTorch's torch.jit.load
// gives them too).
TEST(TorchScript, CliRunsEveryPhaseAndExportsBack) {
  auto dir = fresh_dir("ts-cli");
  const std::string args = " --device cpu -w " + (dir / "w").string() +
                           " --set model.arch=torchscript --set model.path=" + fixture("bn-dropout-1x16x16-4.pt") +
                           " --set data.synthetic_train=400 --set data.synthetic_test=100 --set data.val_size=100"
                           " --set train.epochs=2 --set rdlm.count=3 --set rdlm.size=150 --set rdlm.stride=100"
                           " --set rdlm.epochs=1 --set adapt.max_batches=4 --set adapt.retrain_every=2"
                           " --set adapt.retrain.steps=5 --set 'adapt.strategies=[\"1\",\"none\",\"soup\"]'";
  auto r = run_apricot("run" + args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("strategy 1"), std::string::npos) << r.out;
  const std::string model = (dir / "w" / "adapt-1" / "model.pt").string();
  r = run_apricot("export -m " + model + " --format torchscript -o " + (dir / "repaired.pt").string());
  ASSERT_EQ(r.code, 0) << r.err;
  LoadedModel ours = load_checkpoint(model);
  auto exported = torch::jit::load((dir / "repaired.pt").string());
  exported.eval();
  torch::NoGradGuard g;
  const auto want = eval_logits(*ours.model, fixture_input());
  EXPECT_TRUE(torch::equal(exported.forward({fixture_input()}).toTensor(), want));
  const auto theirs = pytorch_logits("m = torch.jit.load('" + (dir / "repaired.pt").string() + "')");
  if (!theirs.defined())
    GTEST_SKIP() << APRICOT_PYTHON << " has no torch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR
                 << ": PyTorch's side of the round trip is skipped";
  EXPECT_TRUE(torch::allclose(theirs, want, 1e-5, 1e-6)) << theirs;
  fs::remove_all(dir);
}

// A gated patch of the user's modules exports as one TorchScript module (base, expert, gate, tau)
// that LibTorch's and PyTorch's torch.jit.load run with apricot's logits, row by row routed as in
// apricot; a module returning a dict is refused with what to do instead.
TEST(TorchScript, GatedPatchExportsAsOneModuleThatScoresAsApricot) {
  auto dir = fresh_dir("ts-gated");
  const ModelSpec spec = script_spec("small-1x16x16-4.pt");
  Net expert = load_torchscript(spec);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(5);
    for (auto& p : expert->parameters()) p.add_(torch::randn_like(p) * 0.3);
  }
  auto g = std::make_shared<GatedNetImpl>(load_torchscript(spec), expert, GateSpec{"input", 1, 4}, 0.0);
  g->gate->initialise(at::detail::createCPUGenerator(3));
  g->eval();
  const torch::Tensor x = fixture_input();
  torch::Tensor s;
  {
    torch::NoGradGuard no_grad;
    s = g->scores(x);
  }
  ASSERT_NE(s[0].item<float>(), s[1].item<float>());
  g->tau_.fill_((s[0].item<double>() + s[1].item<double>()) / 2);  // one row to each network
  Dataset data;
  data.channels = 1, data.height = 16, data.width = 16, data.classes = 4, data.name = "synthetic";
  nlohmann::json meta = checkpoint_meta(spec, data);
  meta["composite"] = gated_meta(*g);
  const std::string model = (dir / "model.pt").string();
  save_checkpoint(model, *g, meta);
  auto r = run_apricot("export -m " + model + " --format torchscript -o " + (dir / "gated.pt").string());
  ASSERT_EQ(r.code, 0) << r.err;
  LoadedModel ours = load_checkpoint(model);
  const torch::Tensor want = eval_logits(*ours.model, x);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor b = eval_logits(*g->base, x), e = eval_logits(*g->expert, x);
    const int64_t routed = s[0].item<double>() > s[1].item<double>() ? 0 : 1;
    EXPECT_TRUE(torch::equal(want[routed], e[routed]));
    EXPECT_TRUE(torch::equal(want[1 - routed], b[1 - routed]));
  }
  auto exported = torch::jit::load((dir / "gated.pt").string());
  exported.eval();
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(exported.forward({x}).toTensor(), want));
  }
  // A module whose forward returns a dict cannot be composed by the export; the message says so.
  const ModelSpec dict = script_spec("dict-out-1x16x16-4.pt");
  GatedNetImpl d(load_torchscript(dict), load_torchscript(dict), GateSpec{"logits", 1, 4}, 0.0);
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { save_gated_torchscript(d, (dir / "dict.pt").string()); }, &msg),
            static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("safetensors"), std::string::npos) << msg;
  const auto theirs = pytorch_logits("m = torch.jit.load('" + (dir / "gated.pt").string() + "')");
  if (!theirs.defined())
    GTEST_SKIP() << APRICOT_PYTHON << " has no torch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR
                 << ": PyTorch's side of the round trip is skipped";
  EXPECT_TRUE(torch::allclose(theirs, want, 1e-5, 1e-6)) << theirs;
  fs::remove_all(dir);
}

// model.pretrained: the user's trained module is the base as it is; train-base only evaluates it.
TEST(TorchScript, PretrainedFileIsTheBaseAsItIs) {
  auto dir = fresh_dir("ts-pretrained");
  const std::string args = " --device cpu -w " + (dir / "w").string() +
                           " --set model.arch=torchscript --set model.path=" + fixture("small-1x16x16-4.pt") +
                           " --set model.pretrained=true --set rdlm.init=base --set data.synthetic_train=300"
                           " --set data.synthetic_test=100 --set data.val_size=50";
  auto r = run_apricot("train-base" + args);
  ASSERT_EQ(r.code, 0) << r.err;
  LoadedModel base = load_checkpoint((dir / "w" / "base" / "model.pt").string());
  Net file = load_torchscript(script_spec("small-1x16x16-4.pt"));
  auto want = file->named_parameters();
  for (const auto& p : base.model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key();
  EXPECT_EQ(base.meta["metrics"]["epochs"], 0);
  EXPECT_TRUE(base.meta["metrics"].contains("test_acc"));
  // Only for a TorchScript model, and not with an early-epoch copy that cannot exist.
  r = run_apricot("train-base --device cpu -w " + (dir / "x").string() + " --set model.pretrained=true");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  r = run_apricot("train-base" + args + " --set rdlm.init=base-early --force");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("rdlm.init"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

// `apricot import --from torchscript`: the user's trained module becomes a work directory's base
// model (evaluated, not trained), and the rest of the pipeline runs from the config it writes.
TEST(TorchScript, ImportMakesTheModuleTheBaseOfAWorkDirectory) {
  auto dir = fresh_dir("ts-import");
  const std::string w = (dir / "w").string();
  const std::string data = " --set data.synthetic_train=300 --set data.synthetic_test=100 --set data.val_size=50"
                           " --set rdlm.init=base --set rdlm.count=2 --set rdlm.size=100 --set rdlm.stride=100"
                           " --set rdlm.epochs=1 --set adapt.max_batches=2 --set adapt.retrain.steps=2"
                           " --set 'adapt.strategies=[\"1\"]'";
  auto r = run_apricot("import --from torchscript -i " + fixture("small-1x16x16-4.pt") + " --device cpu -w " + w + data +
                       " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  EXPECT_TRUE(out["metrics"].contains("test_acc")) << r.out;
  LoadedModel base = load_checkpoint(w + "/base/model.pt");
  EXPECT_EQ(base.meta["metrics"]["epochs"], 0);
  auto want = load_torchscript(script_spec("small-1x16x16-4.pt"))->named_parameters();
  for (const auto& p : base.model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key();
  // Importing again keeps the base (as train-base does) unless --force.
  r = run_apricot("import --from torchscript -i " + fixture("small-1x16x16-4.pt") + " --device cpu -w " + w + data);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to do"), std::string::npos) << r.err;
  // The user's own config may name the module by a relative path: the same file, the same base.
  r = run_apricot("train-base --device cpu -w " + w + data + " --set model.arch=torchscript --set model.pretrained=true"
                  " --set model.path=" + fs::relative(fixture("small-1x16x16-4.pt")).string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to do"), std::string::npos) << r.err;
  // The work directory's config names the module as the base: run continues from it.
  r = run_apricot("run -c " + w + "/config.json --device cpu");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("base model exists"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(w + "/adapt-1/result.json"));
  // Wrong uses are usage errors that say why.
  r = run_apricot("import --from torchscript -i " + fixture("small-1x16x16-4.pt") + " -o x.pt -w " + w);
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;
  // A refused module leaves the work directory as it was, its config included.
  const std::string config_before = slurp(w + "/config.json");
  r = run_apricot("import --from torchscript -i " + fixture("bn-dropout-traced-1x16x16-4.pt") + " --device cpu -w " + w +
                  data + " --force");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("torch.jit.script"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(w + "/config.json"), config_before);
  EXPECT_TRUE(checkpoint_exists(w + "/base/model.pt"));
  fs::remove_all(dir);
}

// Safetensors export of a TorchScript model carries PyTorch's state_dict names, and import fills
// the module back (the recorded module, or --module) to the same logits.
TEST(TorchScript, SafetensorsExportImportsBackIntoTheModule) {
  auto dir = fresh_dir("ts-safetensors");
  Net trained = load_torchscript(script_spec("bn-dropout-1x16x16-4.pt"));
  {
    // Move the running statistics away from the file's, so that buffers must travel too.
    torch::NoGradGuard g;
    trained->train();
    trained->forward(fixture_input() * 3 + 1);
  }
  nlohmann::json meta = {{"format", "apricot-checkpoint"}, {"format_version", 1}, {"arch", "torchscript"},
                         {"model_path", fixture("bn-dropout-1x16x16-4.pt")}, {"input", {1, 16, 16}}, {"classes", 4}};
  const std::string ckpt = (dir / "model.pt").string();
  save_checkpoint(ckpt, *trained, meta);
  auto r = run_apricot("export -m " + ckpt + " -o " + (dir / "w.safetensors").string());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string st = slurp((dir / "w.safetensors").string());
  for (const char* name : {"\"bn1.running_mean\"", "\"bn1.num_batches_tracked\"", "\"conv2.weight\"", "\"model_path\""})
    EXPECT_NE(st.find(name), std::string::npos) << name;
  r = run_apricot("import -i " + (dir / "w.safetensors").string() + " -o " + (dir / "back.pt").string());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto want = eval_logits(*trained, fixture_input());
  EXPECT_TRUE(torch::equal(eval_logits(*load_checkpoint((dir / "back.pt").string()).model, fixture_input()), want));
  // Another copy of the module, named with --module.
  fs::copy_file(fixture("bn-dropout-1x16x16-4.pt"), dir / "copy.pt");
  r = run_apricot("import -i " + (dir / "w.safetensors").string() + " --module " + (dir / "copy.pt").string() +
                  " -o " + (dir / "back2.pt").string());
  ASSERT_EQ(r.code, 0) << r.err;
  LoadedModel back2 = load_checkpoint((dir / "back2.pt").string());
  EXPECT_EQ(back2.spec.path, fs::absolute(dir / "copy.pt").string());
  EXPECT_TRUE(torch::equal(eval_logits(*back2.model, fixture_input()), want));
  // A module whose state_dict does not match the tensors is refused, naming the tensor.
  r = run_apricot("import -i " + (dir / "w.safetensors").string() + " --module " + fixture("small-1x16x16-4.pt") +
                  " -o " + (dir / "bad.pt").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("state_dict"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "bad.pt"));
  // PyTorch's side: the tensors load into the module with load_state_dict (strict) and give the logits.
  const auto theirs = pytorch_logits("t, _ = st_io.load('" + (dir / "w.safetensors").string() + "'); m = torch.jit.load('" +
                                     fixture("bn-dropout-1x16x16-4.pt") + "'); m.load_state_dict(t)");
  if (!theirs.defined()) GTEST_SKIP() << "python3-torch not installed: PyTorch's load_state_dict of the export is skipped";
  EXPECT_TRUE(torch::allclose(theirs, want, 1e-5, 1e-6)) << theirs;
  fs::remove_all(dir);
}

// `apricot bench train` measures a TorchScript module, side by side with a built-in model.
TEST(TorchScript, BenchTrainMeasuresAModuleAgainstABuiltIn) {
  auto r = run_apricot("bench train --module " + fixture("small-1x16x16-4.pt") +
                       " --against small --input 1,16,16 --classes 4 --batch 8 --steps 2 --repeats 1 --warmup 0"
                       " --device cpu --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["models"].size(), 2u) << r.out;
  EXPECT_EQ(doc["models"][0]["arch"], "torchscript");
  EXPECT_EQ(doc["models"][0]["module"], fixture("small-1x16x16-4.pt"));
  EXPECT_EQ(doc["models"][1]["arch"], "small");
  EXPECT_GT(doc["train_ratio"].get<double>(), 0);
  EXPECT_GT(doc["infer_ratio"].get<double>(), 0);
  // The module is checked against --input as anywhere else.
  r = run_apricot("bench train --module " + fixture("small-1x16x16-4.pt") + " --input 3,32,32 --classes 4 --device cpu");
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
}
