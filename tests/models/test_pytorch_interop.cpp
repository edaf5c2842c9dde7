// The PyTorch round trip: every model (and both ResNet variants) exported by `apricot export` gives
// PyTorch (scripts/pytorch/models.py, via roundtrip.py) the same logits as the C++ model, and a model
// made in PyTorch and brought in by `apricot import` gives the C++ side PyTorch's logits. Skipped
// where the build's Python (APRICOT_PYTHON) cannot import torch; not a numerics benchmark.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/io/checkpoint.hpp"
#include "apricot/models/model.hpp"
#include "apricot/io/safetensors.hpp"
#include "cli_util.hpp"

namespace fs = std::filesystem;
using apricot::test::run_apricot;
using apricot::test::slurp;

namespace {

// The build's APRICOT_PYTHON: Debian's python3-torch for Debian's LibTorch, the venv's PyTorch 2.15
// for the pip build (bitwise equality needs the same version's kernels on both sides).
constexpr const char* kPython = APRICOT_PYTHON;
constexpr int64_t kImages = 4;

struct Case {
  std::string arch, variant;
  int64_t channels, height, width, classes;
  std::string name() const { return arch + (arch.rfind("resnet", 0) == 0 ? "-" + variant : ""); }
  std::string input() const {
    return std::to_string(channels) + "," + std::to_string(height) + "," + std::to_string(width);
  }
  apricot::ModelSpec spec() const {
    apricot::ModelSpec s;
    s.arch = arch, s.resnet_variant = variant;
    s.channels = channels, s.height = height, s.width = width, s.classes = classes;
    return s;
  }
};

// Small inputs where the arch allows; "small" on a non-square image so that an H/W mix-up in the
// metadata or the flatten order shows.
const std::vector<Case> kCases = {
    {"small", "v1", 1, 16, 12, 5},         {"cnn1", "v1", 3, 32, 32, 10},
    {"cnn2", "v1", 3, 32, 32, 10},         {"cnn3", "v1", 3, 32, 32, 10},
    {"resnet20", "v1", 3, 32, 32, 10},     {"resnet20", "preact", 3, 32, 32, 10},
    {"resnet32", "v1", 3, 32, 32, 10},     {"resnet32", "preact", 3, 32, 32, 10},
};


std::string quote(const fs::path& p) {
  std::string q = "'";  // (appended in place: GCC 12 warns, falsely, on "'" + string&& in C++20)
  q += p.string();
  q += '\'';
  return q;
}

void write_f32(const fs::path& path, const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * 4));
  ASSERT_TRUE(f.good()) << path;
}

torch::Tensor read_f32(const fs::path& path, std::vector<int64_t> sizes) {
  const std::string bytes = slurp(path.string());
  int64_t numel = 1;
  for (auto s : sizes) numel *= s;
  if (static_cast<int64_t>(bytes.size()) != numel * 4) {
    ADD_FAILURE() << path << " holds " << bytes.size() << " bytes, expected " << numel * 4;
    return torch::full(sizes, std::numeric_limits<float>::quiet_NaN());
  }
  return torch::from_blob(const_cast<char*>(bytes.data()), sizes, torch::kFloat32).clone();
}

// Runs roundtrip.py on a file of jobs (one Python start for all cases); its output goes to the log.
void run_roundtrip_batch(const fs::path& jobs) {
  const fs::path log = jobs.string() + ".log";
  const std::string cmd = std::string(kPython) + " " + quote(fs::path(APRICOT_SOURCE_DIR) / "scripts/pytorch/roundtrip.py") +
                          " batch " + quote(jobs) + " >" + quote(log) + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << slurp(log.string());
}

// Bitwise equality is expected: both sides run the same LibTorch CPU kernels on the same float32
// data in the same order. Reports the largest absolute difference either way.
void expect_same_logits(const Case& c, const char* direction, const torch::Tensor& cpp, const torch::Tensor& py) {
  ASSERT_EQ(cpp.sizes(), py.sizes()) << c.name();
  const double max_abs = (cpp - py).abs().max().item<double>();
  std::cout << "[ interop  ] " << direction << " " << c.name() << ": max |logit diff| " << max_abs
            << " (logits up to " << cpp.abs().max().item<double>() << ")\n";
  EXPECT_TRUE(torch::equal(cpp, py)) << direction << " " << c.name() << ": max abs difference " << max_abs;
}

class PytorchInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!apricot::test::python_has_this_torch())
      GTEST_SKIP() << kPython << " cannot import torch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR
                   << " (Debian build: apt-get install python3-torch; the pip build's venv has it)";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("apricot_interop_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

// C++ makes and exports; PyTorch loads the safetensors file and computes the logits.
TEST_F(PytorchInterop, CppModelsGivePytorchTheSameLogits) {
  std::vector<torch::Tensor> cpp_logits;
  std::ofstream jobs(dir_ / "jobs.txt");
  for (size_t i = 0; i < kCases.size(); ++i) {
    const Case& c = kCases[i];
    const fs::path d = dir_ / c.name();
    torch::manual_seed(100 + static_cast<uint64_t>(i));
    apricot::Net model = apricot::make_model(c.spec());
    {
      // Fresh models have zero biases and identity BatchNorm; a mix-up among those would be
      // invisible, so give every bias, BN affine parameter and running statistic its own value.
      torch::NoGradGuard no_grad;
      for (auto& p : model->named_parameters())
        if (p.value().dim() == 1) p.value().add_(0.1 * torch::randn_like(p.value()));
      for (auto& b : model->named_buffers()) {
        if (b.key().size() >= 11 && b.key().compare(b.key().size() - 11, 11, "running_var") == 0)
          b.value().uniform_(0.5, 1.5);
        else if (b.value().is_floating_point())
          b.value().add_(0.1 * torch::randn_like(b.value()));
      }
    }
    nlohmann::json meta = {{"format", "apricot-checkpoint"},
                           {"arch", c.arch},
                           {"resnet_variant", c.variant},
                           {"input", {c.channels, c.height, c.width}},
                           {"classes", c.classes},
                           {"normalization", {{"kind", "scale"}}}};
    apricot::save_checkpoint((d / "model.pt").string(), *model, meta);
    auto ex = run_apricot("export --log-level warn --model " + quote(d / "model.pt") + " --format safetensors --out " +
                          quote(d / "model.safetensors"));
    ASSERT_EQ(ex.code, 0) << ex.err;

    const torch::Tensor x = torch::randn({kImages, c.channels, c.height, c.width});  // (N, C, H, W)
    write_f32(d / "input.bin", x);
    model->eval();
    torch::NoGradGuard no_grad;
    cpp_logits.push_back(model->forward(x));  // (N, classes)
    jobs << "export-check " << quote(d / "model.safetensors") << " " << quote(d / "input.bin") << " "
         << quote(d / "py_logits.bin") << "\n";
  }
  jobs.close();
  run_roundtrip_batch(dir_ / "jobs.txt");
  for (size_t i = 0; i < kCases.size(); ++i) {
    const Case& c = kCases[i];
    expect_same_logits(c, "C++ -> PyTorch", cpp_logits[i], read_f32(dir_ / c.name() / "py_logits.bin", {kImages, c.classes}));
  }
}

// PyTorch makes a model, its logits and the safetensors file; `apricot import` makes a checkpoint,
// which C++ loads and runs.
TEST_F(PytorchInterop, PytorchModelsImportWithTheSameLogits) {
  {
    std::ofstream jobs(dir_ / "jobs.txt");
    for (size_t i = 0; i < kCases.size(); ++i) {
      const Case& c = kCases[i];
      jobs << "make " << c.arch << " " << c.input() << " " << c.classes << " " << 200 + i << " "
           << quote(dir_ / (c.name() + ".safetensors")) << " --variant " << c.variant << " --images " << kImages << "\n";
    }
  }
  run_roundtrip_batch(dir_ / "jobs.txt");
  for (const Case& c : kCases) {
    const fs::path st = dir_ / (c.name() + ".safetensors");
    const fs::path pt = dir_ / c.name() / "model.pt";
    auto im = run_apricot("import --log-level warn --from safetensors --in " + quote(st) + " --out " + quote(pt));
    ASSERT_EQ(im.code, 0) << im.err;
    apricot::LoadedModel m = apricot::load_checkpoint(pt.string());
    EXPECT_EQ(m.spec.arch, c.arch);
    EXPECT_EQ(m.spec.resnet_variant, c.variant);
    EXPECT_EQ(std::vector<int64_t>({m.spec.channels, m.spec.height, m.spec.width, m.spec.classes}),
              std::vector<int64_t>({c.channels, c.height, c.width, c.classes}));
    EXPECT_EQ(m.norm.kind, "scale");

    const fs::path base = dir_ / c.name();
    const torch::Tensor x = read_f32(base.string() + ".input.bin", {kImages, c.channels, c.height, c.width});
    m.model->eval();
    torch::NoGradGuard no_grad;
    expect_same_logits(c, "PyTorch -> C++", m.model->forward(x), read_f32(base.string() + ".logits.bin", {kImages, c.classes}));

    // Every tensor PyTorch wrote sits in the checkpoint unchanged (export is covered above).
    std::map<std::string, torch::Tensor> by_name;
    for (auto& p : m.model->named_parameters()) by_name[p.key()] = p.value();
    for (auto& b : m.model->named_buffers())
      if (b.value().is_floating_point()) by_name[b.key()] = b.value();
    auto file = apricot::read_safetensors(st.string());
    EXPECT_EQ(file.tensors.size(), by_name.size()) << c.name();
    for (auto& t : file.tensors) {
      ASSERT_TRUE(by_name.count(t.name)) << c.name() << ": " << t.name;
      EXPECT_TRUE(torch::equal(t.tensor, by_name[t.name])) << c.name() << ": " << t.name;
    }
  }
}

}  // namespace

// Needs no Python: a file without "normalization" (PyTorch users need not write one) imports as
// "scale", and exporting that checkpoint states it, so the export imports again.
TEST(PytorchInteropFiles, FileWithoutNormalizationSurvivesImportExportImport) {
  const fs::path dir = fs::temp_directory_path() / ("apricot_interop_nonorm_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const Case c = kCases.front();
  torch::manual_seed(7);
  apricot::Net model = apricot::make_model(c.spec());
  std::vector<apricot::NamedTensor> tensors;
  for (auto& p : model->named_parameters()) tensors.push_back({p.key(), p.value().detach()});
  apricot::write_safetensors((dir / "in.safetensors").string(), tensors,
                             {{"arch", c.arch}, {"input", c.input()}, {"classes", std::to_string(c.classes)}});
  auto im = run_apricot("import --log-level warn --in " + quote(dir / "in.safetensors") + " --out " + quote(dir / "a/model.pt"));
  ASSERT_EQ(im.code, 0) << im.err;
  auto ex = run_apricot("export --log-level warn --model " + quote(dir / "a/model.pt") + " --out " + quote(dir / "out.safetensors"));
  ASSERT_EQ(ex.code, 0) << ex.err;
  EXPECT_EQ(nlohmann::json::parse(apricot::read_safetensors((dir / "out.safetensors").string()).metadata.at("normalization")),
            nlohmann::json({{"kind", "scale"}}));
  auto again = run_apricot("import --log-level warn --in " + quote(dir / "out.safetensors") + " --out " + quote(dir / "b/model.pt"));
  EXPECT_EQ(again.code, 0) << again.err;
  fs::remove_all(dir);
}
