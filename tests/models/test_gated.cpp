// The gated patch as a model (models/gated.hpp): tau = +inf is the base bit for bit, tau = -inf the
// expert; a finite tau routes row by row; the checkpoint keeps every part; operations that change one
// network's weights refuse it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <limits>

#include "apricot/core/errors.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/io/exchange.hpp"
#include "apricot/models/gated.hpp"
#include "apricot/models/state.hpp"
#include "cli_util.hpp"

using namespace apricot;
using namespace apricot::test;
namespace fs = std::filesystem;

namespace {

ModelSpec small_spec() {
  ModelSpec s;
  s.arch = "small", s.channels = 1, s.height = 16, s.width = 16, s.classes = 4;
  return s;
}

Net seeded(const ModelSpec& spec, uint64_t seed) {
  torch::manual_seed(seed);
  Net m = make_model(spec);
  m->eval();
  return m;
}

std::shared_ptr<GatedNetImpl> composite(const std::string& gate, double tau) {
  auto g = std::make_shared<GatedNetImpl>(seeded(small_spec(), 1), seeded(small_spec(), 2), GateSpec{gate, 1, 4}, tau);
  g->gate->initialise(at::detail::createCPUGenerator(7));
  g->eval();
  return g;
}

torch::Tensor batch() {
  torch::manual_seed(11);
  return torch::randn({32, 1, 16, 16});
}

}  // namespace

TEST(Gated, PlusInfinityIsTheBaseAndMinusInfinityTheExpertBitForBit) {
  torch::NoGradGuard no_grad;
  const torch::Tensor x = batch();
  for (const std::string& gate : gate_kinds()) {
    SCOPED_TRACE(gate);
    auto base_only = composite(gate, std::numeric_limits<double>::infinity());
    auto expert_only = composite(gate, -std::numeric_limits<double>::infinity());
    const torch::Tensor b = base_only->base->forward(x), e = expert_only->expert->forward(x);
    EXPECT_FALSE(torch::equal(b, e));
    EXPECT_TRUE(torch::equal(base_only->forward(x), b));
    EXPECT_TRUE(torch::equal(expert_only->forward(x), e));
    // A finite tau: each row is the expert's where its score is above tau, the base's elsewhere.
    const torch::Tensor s = base_only->scores(x);
    const double mid = s.median().item<double>();
    auto half = composite(gate, mid);
    const torch::Tensor out = half->forward(x), routed = s.gt(mid);
    EXPECT_GT(routed.sum().item<int64_t>(), 0);
    EXPECT_LT(routed.sum().item<int64_t>(), x.size(0));
    for (int64_t i = 0; i < x.size(0); ++i)
      EXPECT_TRUE(torch::equal(out[i], routed[i].item<bool>() ? e[i] : b[i])) << i;
  }
}

TEST(Gated, CheckpointKeepsEveryPartAndTau) {
  const auto dir = fresh_dir("gated-ckpt");
  auto g = composite("input", 0.25);
  Dataset data;
  data.channels = 1, data.height = 16, data.width = 16, data.classes = 4, data.name = "synthetic";
  nlohmann::json meta = checkpoint_meta(small_spec(), data);
  meta["composite"] = gated_meta(*g);
  save_checkpoint((dir / "model.pt").string(), *g, meta);
  const LoadedModel back = load_checkpoint((dir / "model.pt").string());
  ASSERT_TRUE(is_gated(*back.model));
  EXPECT_EQ(back.spec.arch, "small");  // eval and compare check it against the config like any model
  const auto& loaded = dynamic_cast<const GatedNetImpl&>(*back.model);
  EXPECT_EQ(loaded.tau(), 0.25);
  EXPECT_EQ(loaded.gate->spec.kind, "input");
  for (const auto& d : compare_tensors(*g, *back.model)) EXPECT_TRUE(d.equal()) << d.name;
  torch::NoGradGuard no_grad;
  back.model->eval();
  EXPECT_TRUE(torch::equal(back.model->forward(batch()), g->forward(batch())));
  // The safetensors export holds every part by name, and says what it is.
  const auto tensors = exported_tensors(back);
  auto has = [&](const std::string& prefix) {
    return std::any_of(tensors.begin(), tensors.end(), [&](const NamedTensor& t) { return t.name.rfind(prefix, 0) == 0; });
  };
  EXPECT_TRUE(has("base.") && has("expert.") && has("gate.w1") && has("tau"));
  EXPECT_EQ(exported_metadata(back).count("composite"), 1u);
  fs::remove_all(dir);
}

TEST(Gated, OperationsOnOneNetworkRefuseItClearly) {
  auto g = composite("logits", 0.0);
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { refuse_gated(*g, "base model 'w/base/model.pt'", "weight adaptation"); }, &msg),
            static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("gated patch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("weight adaptation"), std::string::npos) << msg;
  EXPECT_EQ(exit_code_of([&] { refuse_gated(*seeded(small_spec(), 1), "m", "x"); }), 0);
  // A built-in composite has no TorchScript form: the message says what to use instead.
  const auto dir = fresh_dir("gated-refuse");
  EXPECT_EQ(exit_code_of([&] { save_gated_torchscript(*g, (dir / "g.pt").string()); }, &msg),
            static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("safetensors"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir / "g.pt"));
  // Metadata naming an unknown gate is refused as such.
  nlohmann::json meta = model_meta(small_spec());
  meta["composite"] = {{"kind", "gated"}, {"gate", "oracle"}, {"tau", 0}};
  EXPECT_EQ(exit_code_of([&] { gate_spec_from_meta(meta, "m.json"); }, &msg), static_cast<int>(ExitCode::kState));
  EXPECT_NE(msg.find("oracle"), std::string::npos) << msg;
  fs::remove_all(dir);
}
