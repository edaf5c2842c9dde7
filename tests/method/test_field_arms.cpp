// The field arms (method/field.hpp) on small synthetic data: one budget for every arm, the selection
// rule's break bound, the interpolation's endpoints, head-only leaving the body as it was, reuse of
// a stored result; and through the CLI on a TorchScript model with the field set as npy and as an
// image folder, with bad field data refused before anything is overwritten.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>

#include "apricot/core/errors.hpp"
#include "apricot/core/seeds.hpp"
#include "apricot/data/formats.hpp"
#include "apricot/io/checkpoint.hpp"
#include "apricot/method/adapt.hpp"
#include "apricot/method/field.hpp"
#include "apricot/method/recipe.hpp"
#include "apricot/models/gated.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/data/field.hpp"
#include "apricot/pipeline/pipeline.hpp"
#include "apricot/pipeline/validate.hpp"
#include "cli_util.hpp"
#include "image_files.hpp"
#include "torchscript_fixtures.hpp"

using namespace apricot;
using namespace apricot::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The synthetic data's test images 0..n-1 with inverted pixels (a shift the base has not seen), as
// the field set in x_field.npy / y_field.npy; or as an image folder with class folders 0..3.
void write_inverted_field(const fs::path& dir, int64_t n, bool folder) {
  Split train, test;
  make_synthetic(600, 200, 1, 16, 16, 4, seeds::kSyntheticData, train, test);
  const torch::Tensor x = (255 - test.x.slice(0, 0, n).to(torch::kInt32)).to(torch::kUInt8).contiguous();
  const torch::Tensor y = test.y.slice(0, 0, n).contiguous();
  if (!folder) {
    write_npy(dir / "x_field.npy", "|u1", {n, 16, 16},
              std::string(static_cast<const char*>(x.data_ptr()), static_cast<size_t>(x.numel())));
    write_npy(dir / "y_field.npy", "<i8", {n},
              std::string(static_cast<const char*>(y.data_ptr()), static_cast<size_t>(n * 8)));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = x[i].data_ptr<uint8_t>();
    write_png(dir / std::to_string(y[i].item<int64_t>()) / (std::to_string(i) + ".png"),
              std::vector<uint8_t>(p, p + 256), 16, 16, 1);
  }
}

// Small enough for a test: 2 learning rates x 8 steps x 16 images = 256 training images an arm.
Config field_config(const fs::path& field_root) {
  Config c;
  c.threads = 1;
  c.device = "cpu";
  c.data.synthetic_train = 600, c.data.synthetic_test = 200, c.data.val_size = 100;
  c.data.synthetic_shape = {1, 16, 16};
  c.data.synthetic_classes = 4;
  c.train.epochs = 2, c.train.batch_size = 32;
  c.adapt.strategies = {"finetune", "finetune-interp", "soup-interp", "apricot-interp", "head-only"};
  c.adapt.max_break_rate = 0.05;
  c.field.format = "npy";
  c.field.root = field_root.string();
  c.field.steps = 8, c.field.batch_size = 16, c.field.lrs = {0.01, 0.001};
  c.field.checkpoint_every = 2, c.field.members = 2, c.field.interp_points = 3;
  validate(c);
  return c;
}

const json& result_of(const json& run, const std::string& arm) {
  for (const auto& r : run["results"])
    if (r["strategy"] == arm) return r;
  static const json none;
  ADD_FAILURE() << "no result for " << arm;
  return none;
}

}  // namespace

TEST(Field, InterpolationEndpointsAreTheModelsBitForBit) {
  torch::manual_seed(3);
  const torch::Tensor base = torch::randn({1000}), tuned = torch::randn({1000}) * 1e-3 + base;
  EXPECT_TRUE(torch::equal(interpolate(base, tuned, 0.0), base));
  EXPECT_TRUE(torch::equal(interpolate(base, tuned, 1.0), tuned));
  const torch::Tensor mid = interpolate(base, tuned, 0.5);
  EXPECT_TRUE(torch::allclose(mid, (base + tuned) / 2, 1e-6, 1e-7));
  const auto a = interp_alphas(11);
  ASSERT_EQ(a.size(), 11u);
  EXPECT_EQ(a.front(), 0.0);
  EXPECT_EQ(a.back(), 1.0);
  EXPECT_DOUBLE_EQ(a[3], 0.3);
}

TEST(Field, HeadIsTheLastLinearLayer) {
  torch::nn::Sequential net(torch::nn::Conv2d(1, 3, 3), torch::nn::Flatten(), torch::nn::Linear(12, 4));
  EXPECT_EQ(head_parameters(*net, 4), (std::vector<std::string>{"2.weight", "2.bias"}));
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { head_parameters(*net, 5); }, &msg), static_cast<int>(ExitCode::kState));
  EXPECT_NE(msg.find("finetune"), std::string::npos) << msg;
}

TEST(Field, AFieldArmNeedsAFieldSet) {
  Config c;
  c.adapt.strategies = {"finetune"};
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { validate(c); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("field.format"), std::string::npos) << msg;
  // field.lrs takes numbers, and checks them.
  EXPECT_EQ(exit_code_of([&] {
              parse_config_text(R"({"field": {"format": "npy", "root": "x", "lrs": [0.01, 0.5]}})", "t.json");
            }),
            0);
  EXPECT_EQ(exit_code_of([&] { parse_config_text(R"({"field": {"format": "npy", "root": "x", "lrs": [0]}})", "t.json"); },
                         &msg),
            static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("field.lrs"), std::string::npos) << msg;
}

TEST(Field, ArmsShareOneBudgetAndRespectTheBreakBound) {
  spdlog::set_level(spdlog::level::warn);
  const auto dir = fresh_dir("field-arms");
  write_inverted_field(dir / "field", 80, false);
  const Config cfg = field_config(dir / "field");
  const std::string wd = (dir / "w").string();
  const json run = run_pipeline(cfg, wd, torch::kCPU, false);
  ASSERT_EQ(run["results"].size(), 5u);
  for (const auto& r : run["results"]) {
    SCOPED_TRACE(r["strategy"].get<std::string>());
    EXPECT_EQ(r["images"]["total"], 256);  // |lrs| x steps x batch_size, soups' members included
    EXPECT_EQ(r["field"]["holdout"]["n"], 40);
    EXPECT_EQ(r["field"]["selection"]["n"], 12);  // field.select 0.3 of the 40 left: chosen on, never trained on
    EXPECT_EQ(r["field"]["split"]["fit"], 28);
    EXPECT_LE(r["changes"]["val"]["broken"]["count"].get<int64_t>(), r["field"]["allowed_val_breaks"].get<int64_t>());
    EXPECT_EQ(r["field"]["holdout_answers"]["label"].size(), 40u);
    EXPECT_EQ(r["field"]["test_answers"]["after"].size(), 200u);
    EXPECT_TRUE(fs::exists(fs::path(wd) / ("adapt-" + r["strategy"].get<std::string>()) / "model.pt"));
  }
  // finetune-interp's line: 0 is the base (no break, the base's field accuracy); 1 is the fine-tune
  // the finetune arm made with the same seed (its last checkpoint, answer for answer).
  const json& ft = result_of(run, "finetune");
  const json& fi = result_of(run, "finetune-interp");
  for (size_t i = 0; i < 2; ++i) {
    const json& path = fi["field"]["search"][i]["path"];
    ASSERT_EQ(path.size(), 3u);
    EXPECT_EQ(path[0]["val_breaks"], 0);
    EXPECT_EQ(path[0]["selection_field_acc"], fi["field"]["selection"]["accuracy_before"]);
    const json& last = ft["field"]["search"][i]["checkpoints"].back();
    EXPECT_EQ(last["step"], 8);
    EXPECT_EQ(path[2]["selection_field_acc"], last["selection_field_acc"]);
    EXPECT_EQ(path[2]["val_acc"], last["val_acc"]);
    EXPECT_EQ(path[2]["val_breaks"], last["val_breaks"]);
  }
  EXPECT_EQ(ft["field"]["search"][0]["checkpoints"].size(), 4u);  // every 2 of 8 steps
  // The rule: the best score among the candidates within the bound (the base's included), and a
  // candidate is within it exactly when it breaks at most the allowed number of validation answers.
  const int64_t allowed = ft["field"]["allowed_val_breaks"];
  const json& sel = ft["field"]["selection"];
  double best = (sel["accuracy_before"].get<double>() + ft["base"]["val_acc"].get<double>()) / 2;
  for (const auto& lr : ft["field"]["search"])
    for (const auto& c : lr["checkpoints"]) {
      EXPECT_EQ(c["admissible"].get<bool>(), c["val_breaks"].get<int64_t>() <= allowed) << c;
      if (c["admissible"].get<bool>()) best = std::max(best, c["score"].get<double>());
    }
  EXPECT_DOUBLE_EQ(ft["field"]["score"].get<double>(), best);
  // head-only changes the last layer and nothing else (BatchNorm statistics included).
  const LoadedModel base = load_checkpoint(wd + "/base/model.pt");
  const LoadedModel head = load_checkpoint(wd + "/adapt-head-only/model.pt");
  const auto names = head_parameters(*base.model, 4);
  auto theirs = head.model->named_parameters();
  for (const auto& p : base.model->named_parameters()) {
    if (std::find(names.begin(), names.end(), p.key()) == names.end()) {
      EXPECT_TRUE(torch::equal(p.value(), theirs[p.key()])) << p.key();
    }
  }
  auto their_buffers = head.model->named_buffers();
  for (const auto& b : base.model->named_buffers()) EXPECT_TRUE(torch::equal(b.value(), their_buffers[b.key()])) << b.key();
  // A stored result is reused; one made from another field split is refused, not overwritten.
  AdaptRequest req;
  req.strategy = Strategy::kFinetune;
  req.progress = false;
  const Dataset data = load_dataset(cfg.data, cfg.seed);
  EXPECT_EQ(run_adapt(cfg, data, wd, torch::kCPU, req)["seconds"], ft["seconds"]);
  // The field folder is one folder however it is spelt: relative from another directory, or with
  // "..", the stored result is still the one to reuse.
  {
    struct Cwd {  // back to the test's directory however the block ends
      fs::path was = fs::current_path();
      ~Cwd() { fs::current_path(was); }
    } cwd;
    fs::current_path(dir / "w");
    Config relative = cfg;
    relative.field.root = "../field/./";
    EXPECT_EQ(run_adapt(relative, data, wd, torch::kCPU, req)["seconds"], ft["seconds"]);
  }
  // field.select is part of the recipe: results made before it (no key) chose on what they trained
  // on, i.e. select 0; the gates' keys are only the gated arms'.
  {
    json old = to_json(cfg), zero = to_json(cfg), gates = to_json(cfg);
    old["field"].erase("select");
    zero["field"]["select"] = 0.0;
    gates["field"]["gate_steps"] = 7;
    EXPECT_EQ(recipe_key(old, Phase::kAdapt, Strategy::kFinetune), recipe_key(zero, Phase::kAdapt, Strategy::kFinetune));
    EXPECT_NE(recipe_key(old, Phase::kAdapt, Strategy::kFinetune),
              recipe_key(to_json(cfg), Phase::kAdapt, Strategy::kFinetune));
    EXPECT_EQ(recipe_key(gates, Phase::kAdapt, Strategy::kFinetune),
              recipe_key(to_json(cfg), Phase::kAdapt, Strategy::kFinetune));
    EXPECT_NE(recipe_key(gates, Phase::kAdapt, Strategy::kGated), recipe_key(to_json(cfg), Phase::kAdapt, Strategy::kGated));
  }
  Config other = cfg;
  other.field.holdout = 0.25;
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { run_adapt(other, data, wd, torch::kCPU, req); }, &msg),
            static_cast<int>(ExitCode::kState));
  EXPECT_NE(msg.find("field set"), std::string::npos) << msg;
  fs::remove_all(dir);
}

// The gated arms: the same fine-tunes as finetune and finetune-interp (so on the selection data the
// composite never scores below either), the gates' cost counted, the chosen model checkpointed with
// every part, its answers those result.json reports; a composite is refused as a base to adapt.
TEST(Field, GatedChoosesByTheSameRuleAndNeverScoresBelowTheFineTunes) {
  spdlog::set_level(spdlog::level::warn);
  const auto dir = fresh_dir("field-gated");
  write_inverted_field(dir / "field", 80, false);
  Config cfg = field_config(dir / "field");
  cfg.adapt.strategies = {"finetune", "finetune-interp", "gated", "gated-distilled"};
  cfg.field.gate_steps = 100;
  validate(cfg);
  const std::string wd = (dir / "w").string();
  const json run = run_pipeline(cfg, wd, torch::kCPU, false);
  const json& ft = result_of(run, "finetune");
  const json& fi = result_of(run, "finetune-interp");
  const json& g = result_of(run, "gated");
  const json& gd = result_of(run, "gated-distilled");
  EXPECT_GE(g["field"]["score"].get<double>(), ft["field"]["score"].get<double>());
  EXPECT_GE(g["field"]["score"].get<double>(), fi["field"]["score"].get<double>());
  EXPECT_LE(g["changes"]["val"]["broken"]["count"].get<int64_t>(), g["field"]["allowed_val_breaks"].get<int64_t>());
  EXPECT_LE(gd["changes"]["val"]["broken"]["count"].get<int64_t>(), gd["field"]["allowed_val_breaks"].get<int64_t>());
  // Budget: the fine-tunes' 256 images, plus 2 gates x 100 steps x 16; distillation as many again.
  EXPECT_EQ(g["images"]["field_finetune"], 256);
  EXPECT_EQ(g["images"]["gate"], 3200);
  EXPECT_EQ(g["images"]["total"], 3456);
  ASSERT_EQ(g["field"]["gates"].size(), 2u);
  EXPECT_TRUE(g["cost"].contains("time_ratio"));
  // Inverted images: the input gate sends (nearly) all of them to the expert and little else.
  EXPECT_GT(g["field"]["gates"][0]["holdout_share_at_1pct_val"].get<double>(), 0.9) << g["field"]["gates"];
  // The chosen model's hold-out answers are the ones reported.
  const LoadedModel chosen = load_checkpoint(wd + "/adapt-gated/model.pt");
  const Dataset data = load_dataset(cfg.data, cfg.seed);
  const FieldSet field = load_field(cfg.field, cfg.data, data, cfg.seed);
  const torch::Tensor after = predict(*chosen.model, field.holdout.x, chosen.norm, torch::kCPU, 256);
  const json& reported = g["field"]["holdout_answers"]["after"];
  ASSERT_EQ(static_cast<int64_t>(reported.size()), after.size(0));
  for (int64_t i = 0; i < after.size(0); ++i) EXPECT_EQ(reported[i].get<int64_t>(), after[i].item<int64_t>()) << i;
  const json chose = g["field"]["chosen"];
  EXPECT_EQ(is_gated(*chosen.model), chose.contains("gate") && chose["tau"] != "-inf") << chose;
  // Here the expert is right on the inverted images, the base on the clean ones: the composite wins.
  EXPECT_TRUE(is_gated(*chosen.model)) << chose;
  if (is_gated(*chosen.model)) {
    // A composite as the base of weight adaptation: a clear error, nothing written.
    const std::string other = (dir / "w2").string();
    fs::create_directories(other + "/base");
    fs::copy_file(wd + "/adapt-gated/model.pt", other + "/base/model.pt");
    fs::copy_file(wd + "/adapt-gated/model.json", other + "/base/model.json");
    AdaptRequest req;
    req.strategy = Strategy::kFinetune;
    req.progress = false;
    std::string msg;
    EXPECT_EQ(exit_code_of([&] { run_adapt(cfg, data, other, torch::kCPU, req); }, &msg),
              static_cast<int>(ExitCode::kUsage));
    EXPECT_NE(msg.find("gated patch"), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(other + "/adapt-finetune/result.json"));
    EXPECT_FALSE(fs::exists(other + "/adapt-finetune/model.pt"));
  }
  // gated-distilled: one network of the base's architecture, whatever its teacher was.
  EXPECT_FALSE(is_gated(*load_checkpoint(wd + "/adapt-gated-distilled/model.pt").model));
  // Its teacher is the composite gated chose (gated's stored result, made from the same inputs),
  // distilled with as many images again as the fine-tunes took.
  EXPECT_TRUE(gd["time"].contains("teacher_stored")) << gd["time"];
  if (is_gated(*chosen.model)) {
    EXPECT_EQ(gd["images"]["distill"], 256);
    if (!gd["field"]["chosen"].value("base", false)) {
      EXPECT_EQ(gd["field"]["chosen"]["teacher"], chose);
    }
  }
  // The same arm on the field set as an image folder (built-in model, through run_adapt).
  write_inverted_field(dir / "folder", 80, true);
  Config folder = cfg;
  folder.field.format = "imagefolder";
  folder.field.root = (dir / "folder").string();
  AdaptRequest again;
  again.strategy = Strategy::kGated;
  again.progress = false;
  again.force = true;
  const json from_folder = run_adapt(folder, data, wd, torch::kCPU, again);
  EXPECT_EQ(from_folder["field"]["holdout"]["n"], 40);
  EXPECT_LE(from_folder["changes"]["val"]["broken"]["count"].get<int64_t>(),
            from_folder["field"]["allowed_val_breaks"].get<int64_t>());
  // Bad gate settings are refused naming the key.
  Config bad = cfg;
  bad.field.gates = {"input", "oracle"};
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { validate(bad); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("field.gates"), std::string::npos) << msg;
  bad.field.gates = {"logits", "logits"};
  EXPECT_EQ(exit_code_of([&] { validate(bad); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("twice"), std::string::npos) << msg;
  bad = cfg;
  bad.field.gate_steps = 0;
  EXPECT_EQ(exit_code_of([&] { validate(bad); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("field.gate_steps"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(Field, CliRunsTheArmsOnATorchScriptModelWithNpyAndImageFolderFields) {
  const auto dir = fresh_dir("field-cli");
  write_inverted_field(dir / "npy", 40, false);
  write_inverted_field(dir / "folder", 40, true);
  const std::string common =
      " --device cpu --threads 1 --log-level warn -w " + (dir / "w").string() +
      " --set model.arch=torchscript --set model.path=" + fixture("small-1x16x16-4.pt") +
      " --set model.pretrained=true --set data.synthetic_train=300 --set data.synthetic_test=100"
      " --set data.val_size=50 --set field.steps=4 --set field.batch_size=8 --set 'field.lrs=[0.01]'"
      " --set field.members=2 --set field.interp_points=3 --set adapt.max_break_rate=0.1";
  const std::string npy = common + " --set field.format=npy --set field.root=" + (dir / "npy").string();
  auto r = run_apricot("run" + npy + " --set 'adapt.strategies=[\"finetune-interp\",\"head-only\",\"gated\"]'"
                       " --set field.gate_steps=20");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("field repair"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("WiSE-FT interp"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gated patch"), std::string::npos) << r.out;
  // The chosen model, whatever it is (the base, a plain expert or the composite), evaluates like any.
  r = run_apricot("eval -m " + (dir / "w" / "adapt-gated" / "model.pt").string() + npy + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_apricot("adapt --strategy gated --force --set field.gate_steps=20" + common +
                  " --set field.format=imagefolder --set field.root=" + (dir / "folder").string());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string folder = common + " --set field.format=imagefolder --set field.root=" + (dir / "folder").string();
  r = run_apricot("adapt --strategy finetune" + folder);
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path result = dir / "w" / "adapt-finetune" / "result.json";
  ASSERT_TRUE(fs::exists(result));
  const json field = json::parse(slurp(result.string()))["field"];  // every image, in one part or the other
  EXPECT_EQ(field["holdout"]["n"].get<int64_t>() + field["split"]["fit"].get<int64_t>() +
                field["split"]["pick"].get<int64_t>(),
            40);
  EXPECT_EQ(field["selection"]["n"], field["split"]["pick"]);
  // Bad field data: a clear error naming the folder, exit 3, and the earlier result untouched.
  const std::string before = slurp(result.string());
  r = run_apricot("run" + common + " --set field.format=npy --set field.root=" + (dir / "missing").string() +
                  " --set 'adapt.strategies=[\"finetune\"]' --force");
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(result.string()), before);
  fs::remove_all(dir);
}
