// The ways people really save PyTorch models, on the fixtures of scripts/pytorch/make_fixtures.py
// (tests/fixtures/README.md): tuple and dict outputs, GroupNorm/LayerNorm, integer buffers of the
// model's own, non-square images, tied weights, torch.no_grad() parts, a file saved from CUDA, CUDA
// in forward, and a frozen feature extractor that no phase or arm of apricot may change.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/models/model.hpp"
#include "apricot/models/torchscript.hpp"
#include "apricot/train/train.hpp"
#include "apricot/method/adjustment.hpp"
#include "cli_util.hpp"
#include "torchscript_fixtures.hpp"

using namespace apricot;
using namespace apricot::test;
namespace fs = std::filesystem;

namespace {

ModelSpec form_spec(const std::string& file, int64_t height = 16, int64_t width = 16) {
  ModelSpec s;
  s.arch = "torchscript", s.channels = 1, s.height = height, s.width = width, s.classes = 4, s.path = fixture(file);
  return s;
}

std::map<std::string, torch::Tensor> params_of(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  return out;
}

}  // namespace

TEST(TorchScriptForms, EachLoadsAndComputesWhatPyTorchComputed) {
  for (const char* name : {"tuple-out", "dict-out", "groupnorm", "layernorm", "intbuf", "tied", "nograd",
                           "gpu-saved", "frozen", "view-flatten"}) {
    const std::string base = std::string(name) + "-1x16x16-4";
    Net m = load_torchscript(form_spec(base + ".pt"));
    EXPECT_TRUE(torch::allclose(eval_logits(*m, fixture_input()), logits_file(base + ".logits.txt"), 1e-5, 1e-6)) << name;
  }
  Net wide = load_torchscript(form_spec("nonsquare-1x16x24-4.pt", 16, 24));
  EXPECT_TRUE(torch::allclose(eval_logits(*wide, fixture_input(16, 24)), logits_file("nonsquare-1x16x24-4.logits.txt"), 1e-5, 1e-6));
  // A square image of the wrong width is refused, naming the shape it tried and the interpreter's cause.
  std::string msg;
  EXPECT_EQ(exit_code_of([] { load_torchscript(form_spec("nonsquare-1x16x24-4.pt", 16, 16)); }, &msg),
            static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("(2, 1, 16, 16)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Error: "), std::string::npos) << msg;
}

// Plain tensor attributes (`self.mean = torch.tensor(...)`: neither parameters nor buffers) are the
// module's own, listed apart from its weights (never trained or averaged), and go where the module
// goes: PyTorch's own .to() leaves them behind, and a forward on a GPU would then mix devices. Only
// a GPU shows the move (TensorAttributesRunOnTheGpu; LibTorch's meta device cannot stand in, as
// nn::Module::to refuses it); here .to(cpu) must keep the function.
TEST(TorchScriptForms, TensorAttributesAreListedApartFromTheWeights) {
  Net m = load_torchscript(form_spec("tensor-attr-1x16x16-4.pt"));
  const auto want = logits_file("tensor-attr-1x16x16-4.logits.txt");
  EXPECT_TRUE(torch::allclose(eval_logits(*m, fixture_input()), want, 1e-5, 1e-6));
  const auto attrs = tensor_attributes(*m);
  ASSERT_EQ(attrs.size(), 2u);
  EXPECT_EQ(attrs[0].first, "mean");
  EXPECT_EQ(attrs[1].first, "std");
  EXPECT_EQ(params_of(*m).count("mean"), 0u);
  for (const auto& b : m->named_buffers()) EXPECT_NE(b.key(), "mean");
  EXPECT_TRUE(tensor_attributes(*make_model(ModelSpec{})).empty()) << "a built-in model has none";
  m->to(torch::kCPU);
  m->to(torch::kCPU, torch::kFloat32);
  EXPECT_TRUE(torch::allclose(eval_logits(*m, fixture_input()), want, 1e-5, 1e-6));
  for (const auto& [name, t] : tensor_attributes(*m)) EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
}

TEST(TorchScriptForms, TensorAttributesRunOnTheGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << why_no_cuda();
  Net m = load_torchscript(form_spec("tensor-attr-1x16x16-4.pt"));
  m->to(torch::Device(torch::kCUDA, 0));
  const auto got = eval_logits(*m, fixture_input().cuda()).cpu();
  // cuDNN may use TF32 for the convolutions (LibTorch's default): the tolerance of Cuda.* tests.
  EXPECT_TRUE(torch::allclose(got, logits_file("tensor-attr-1x16x16-4.logits.txt"), 2e-2, 2e-3)) << got;
  // The export is for any machine: every tensor in the file on the CPU.
  auto dir = fresh_dir("ts-attr-gpu");
  save_torchscript(*m, (dir / "out.pt").string());
  auto back = torch::jit::load((dir / "out.pt").string());
  for (const char* name : {"mean", "std"}) EXPECT_TRUE(back.attr(name).toTensor().is_cpu()) << name;
  for (const auto& p : back.parameters()) EXPECT_TRUE(p.is_cpu());
  fs::remove_all(dir);
}

// A file saved by a newer PyTorch: nn.RMSNorm (PyTorch 2.4) is scripted as a call of aten::rms_norm.
// A build whose LibTorch has the operator loads it and computes PyTorch 2.15's logits; LibTorch 1.13
// refuses it with the operator, its own version and the fix, not with "not a TorchScript file".
TEST(TorchScriptForms, FileOfANewerPyTorchLoadsOrIsRefusedNamingTheFix) {
  const std::string stem = std::string(APRICOT_SOURCE_DIR) + "/tests/fixtures/pytorch-2.15/rmsnorm-1x16x16-4";
  ModelSpec s = form_spec("rmsnorm-1x16x16-4.pt");
  s.path = stem + ".pt";
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  Net m = load_torchscript(s);
  EXPECT_TRUE(torch::allclose(eval_logits(*m, fixture_input()), logits_at(stem + ".logits.txt"), 1e-5, 1e-6));
#else
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { load_torchscript(s); }, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("aten::rms_norm"), std::string::npos) << msg;
  EXPECT_NE(msg.find(TORCH_VERSION), std::string::npos) << msg;
  EXPECT_NE(msg.find("newer PyTorch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scripts/setup.sh --torch pip"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("not a TorchScript file"), std::string::npos) << msg;
#endif
}

// A forward that flattens with x.view(x.size(0), -1) needs NCHW activations: apricot's evaluation
// (channels-last for built-in models on the CPU) must hand it the layout it was written for.
TEST(TorchScriptForms, ViewFlattenModuleIsEvaluatedAndTrained) {
  auto dir = fresh_dir("ts-view");
  auto r = run_apricot("train-base --device cpu --threads 1 -w " + (dir / "w").string() +
                       " --set model.arch=torchscript --set model.path=" + fixture("view-flatten-1x16x16-4.pt") +
                       " --set train.epochs=1 --set data.synthetic_train=300 --set data.synthetic_test=100"
                       " --set data.val_size=50");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "w" / "base" / "model.pt"));
  fs::remove_all(dir);
}

TEST(TorchScriptForms, CudaInForwardIsAClearErrorNamingTheCause) {
  // CUDA made inside forward: the cause is named, not the interpreter's first line.
  std::string msg;
  EXPECT_EQ(exit_code_of([] { load_torchscript(form_spec("cuda-in-forward-1x16x16-4.pt")); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("CUDA"), std::string::npos) << msg;
  EXPECT_NE(msg.find("x.device"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("The following operation failed"), std::string::npos) << msg;
}

TEST(TorchScriptForms, TiedWeightIsOneParameterSteppedOnce) {
  Net m = load_torchscript(form_spec("tied-1x16x16-4.pt"));
  auto params = params_of(*m);
  EXPECT_TRUE(params.count("a.weight"));
  EXPECT_FALSE(params.count("b.weight"));  // registered once, as PyTorch's named_parameters() lists it
  const auto tied = tied_names(*m);
  ASSERT_EQ(tied.size(), 1u);
  EXPECT_EQ(tied[0], std::make_pair(std::string("b.weight"), std::string("a.weight")));
  EXPECT_EQ(count_params(*m).total, 1436);  // make_fixtures.py: 1,436 parameters
  // One plain SGD step moves the tied tensor by lr times its (summed) gradient, once.
  m->train();
  const auto x = fixture_input();
  const auto y = torch::tensor({1, 2}, torch::kInt64);
  const torch::Tensor before = params["a.weight"].detach().clone();
  m->zero_grad();
  torch::nn::functional::cross_entropy(m->forward(x), y).backward();
  const torch::Tensor grad = params["a.weight"].grad().clone();  // both uses' gradients, summed
  auto opt = make_optimizer("sgd", 0.5, 0.0, false, 0.0, trainable_parameters(*m));
  train_step(*m, *opt, x, y);
  EXPECT_TRUE(torch::allclose(params["a.weight"], before - 0.5 * grad, 1e-6, 1e-7));
}

TEST(TorchScriptForms, NoGradPartsAreHeldFrozenAndExportKeepsTheFilesFlags) {
  Net m = load_torchscript(form_spec("nograd-1x16x16-4.pt"));
  auto params = params_of(*m);
  EXPECT_FALSE(params.at("stem.weight").requires_grad());  // computed under torch.no_grad() in forward
  bool some_trainable = false;
  for (const auto& [name, p] : params) some_trainable |= p.requires_grad();
  EXPECT_TRUE(some_trainable);
  const auto names = weight_layout(*m, false).names;  // the weights the engine moves
  EXPECT_EQ(std::find(names.begin(), names.end(), "stem.weight"), names.end());
  auto dir = fresh_dir("ts-nograd");
  save_torchscript(*m, (dir / "out.pt").string());
  auto back = torch::jit::load((dir / "out.pt").string());
  for (const auto& p : back.named_parameters())
    if (p.name == "stem.weight") {
      EXPECT_TRUE(p.value.requires_grad()) << "the file said trainable";
    }
  fs::remove_all(dir);
}

// The frozen feature extractor (requires_grad=False on its convolutions and BatchNorms) through
// every phase and arm: base training from scratch, rDLMs from scratch, the paper's three strategies,
// the soups, the control and the budget-matched control, with retraining. Every frozen parameter of
// every model written is the file's, bitwise; BatchNorm running statistics are buffers and may move.
TEST(TorchScriptForms, FrozenPartsStayBitwiseThroughEveryArm) {
  auto dir = fresh_dir("ts-frozen");
  const std::string w = (dir / "w").string();
  const std::string args = " --device cpu --threads 1 -w " + w +
                           " --set model.arch=torchscript --set model.path=" + fixture("frozen-1x16x16-4.pt") +
                           " --set data.synthetic_train=400 --set data.synthetic_test=100 --set data.val_size=100"
                           " --set train.epochs=2 --set rdlm.count=3 --set rdlm.size=150 --set rdlm.stride=100"
                           " --set rdlm.epochs=2 --set adapt.max_batches=4 --set adapt.retrain_every=2"
                           " --set adapt.retrain.steps=5 --set adapt.step_mode=per-batch --set adapt.step=0.5"
                           " --set adapt.bn_recalibrate=64"
                           " --set 'adapt.strategies=[\"1\",\"2\",\"3\",\"none\",\"soup\",\"greedy-soup\",\"none-matched\"]'";
  auto r = run_apricot("run" + args);
  ASSERT_EQ(r.code, 0) << r.err;
  Net file = load_torchscript(form_spec("frozen-1x16x16-4.pt"));
  std::map<std::string, torch::Tensor> frozen;
  for (const auto& p : file->named_parameters())
    if (!p.value().requires_grad()) frozen[p.key()] = p.value();
  ASSERT_EQ(frozen.size(), 8u);  // conv1, bn1, conv2, bn2: weight and bias each
  std::vector<std::string> models = {"base/model.pt"};
  for (int k = 0; k < 3; ++k) models.push_back("rdlms/rdlm-0" + std::to_string(k) + "/model.pt");
  int64_t accepted = 0;
  for (const char* arm : {"1", "2", "3", "none", "soup", "greedy-soup", "none-matched"}) {
    models.push_back(std::string("adapt-") + arm + "/model.pt");
    accepted += nlohmann::json::parse(slurp(w + "/adapt-" + arm + "/result.json"))["accepted"].get<int64_t>();
  }
  EXPECT_GT(accepted, 0) << "no arm accepted a candidate: the check below would prove little";
  for (const auto& rel : models) {
    LoadedModel m = load_checkpoint(w + "/" + rel);
    auto params = params_of(*m.model);
    bool trainable_moved = false;
    for (const auto& [name, t] : params) {
      if (frozen.count(name)) {
        EXPECT_TRUE(torch::equal(t, frozen[name])) << rel << ": frozen " << name << " changed";
        EXPECT_FALSE(t.requires_grad()) << rel << ": " << name;
      } else {
        trainable_moved |= !torch::equal(t, params_of(*file)[name]);
      }
    }
    EXPECT_TRUE(trainable_moved) << rel << ": training changed nothing at all";
  }
  // The export keeps the flags.
  r = run_apricot("export -m " + w + "/adapt-soup/model.pt --format torchscript -o " + (dir / "out.pt").string());
  ASSERT_EQ(r.code, 0) << r.err;
  auto back = torch::jit::load((dir / "out.pt").string());
  for (const auto& p : back.named_parameters()) EXPECT_EQ(p.value.requires_grad(), !frozen.count(p.name)) << p.name;
  fs::remove_all(dir);
}
