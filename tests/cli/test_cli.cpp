// The CLI as a process: exit codes, one JSON document on stdout with --json, and for each bad input
// of the foundation issue a clear message with a non-zero exit and no damage to earlier outputs.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "cli_util.hpp"

using namespace apricot::test;
using apricot::ExitCode;
using apricot::exit_status;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kSmoke = std::string(" -c ") + APRICOT_SOURCE_DIR + "/configs/smoke.json";

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// A trained smoke model shared by the tests that need one (trained once per process).
const fs::path& trained_workdir() {
  static fs::path dir = [] {
    auto d = fresh_dir("trained");
    auto r = run_apricot("train-base" + kSmoke + " -w " + d.string() + " --log-level warn");
    EXPECT_EQ(r.code, 0) << r.err;
    return d;
  }();
  return dir;
}

}  // namespace

TEST(Cli, HelpOnEveryLevel) {
  auto top = run_apricot("--help");
  EXPECT_EQ(top.code, 0);
  for (const char* sub : {"run", "train-base", "train-rdlms", "adapt", "eval", "models", "export", "import", "bench"}) {
    EXPECT_NE(top.out.find(sub), std::string::npos) << sub;
    auto r = run_apricot(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("--"), std::string::npos) << sub;
  }
  EXPECT_EQ(run_apricot("").code, exit_status(ExitCode::kUsage));            // a subcommand is required
  EXPECT_EQ(run_apricot("frobnicate").code, exit_status(ExitCode::kUsage));  // unknown subcommand
}

TEST(Cli, ModelsJsonHasThePapersCounts) {
  auto r = run_apricot("models --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  std::map<std::string, int64_t> want = {{"cnn1", 2425930}, {"cnn2", 272106}, {"cnn3", 1000824},
                                         {"resnet20", 274442}, {"resnet32", 470218}};
  int found = 0;
  for (const auto& m : j) {
    EXPECT_EQ(m["input"], json({3, 32, 32}));
    EXPECT_EQ(m["classes"], 10);
    auto it = want.find(m["arch"]);
    if (it != want.end()) {
      EXPECT_EQ(m["total"], it->second) << it->first;
      ++found;
    }
  }
  EXPECT_EQ(found, 5);
  auto other = run_apricot("models --json --input 1,28,28 --classes 5");
  ASSERT_EQ(other.code, 0) << other.err;
  EXPECT_EQ(json::parse(other.out)[0]["input"], json({1, 28, 28}));
  EXPECT_EQ(run_apricot("models --input 3,x,32").code, exit_status(ExitCode::kUsage));
}

TEST(Cli, TrainEvalExportRoundTrip) {
  const auto& dir = trained_workdir();
  EXPECT_TRUE(fs::exists(dir / "base" / "model.pt"));
  EXPECT_TRUE(fs::exists(dir / "base" / "model.json"));
  EXPECT_TRUE(fs::exists(dir / "base" / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "config.json"));
  auto meta = json::parse(slurp((dir / "base" / "model.json").string()));
  EXPECT_GT(meta["metrics"]["test_acc"].get<double>(), 0.8);
  for (const char* k : {"arch", "input", "classes", "normalization", "dataset", "seed", "config", "libtorch_version",
                        "tool_version", "seconds"})
    EXPECT_TRUE(meta.contains(k)) << k;

  auto ev = run_apricot("eval" + kSmoke + " -w " + dir.string() + " --split test --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  json e = json::parse(ev.out);  // exactly one JSON document on stdout
  EXPECT_EQ(e["split"], "test");
  EXPECT_EQ(e["n"], 200);
  EXPECT_NEAR(e["accuracy"].get<double>(), meta["metrics"]["test_acc"].get<double>(), 1e-12);

  auto st = (dir / "model.safetensors").string();
  auto ex = run_apricot("export --model " + (dir / "base" / "model.pt").string() + " --format safetensors --out " + st);
  ASSERT_EQ(ex.code, 0) << ex.err;
  // A plain reader: 8-byte little-endian header length, then a JSON header.
  std::string bytes = slurp(st);
  ASSERT_GT(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  json header = json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["arch"], "small");
  EXPECT_EQ(header["__metadata__"]["input"], "1,12,12");
  for (const char* name : {"conv1.weight", "conv1.bias", "conv2.weight", "fc1.weight", "fc2.weight", "fc2.bias"})
    EXPECT_TRUE(header.contains(name)) << name;
  EXPECT_EQ(header["conv1.weight"]["shape"], json({16, 1, 3, 3}));
  EXPECT_EQ(header["fc2.weight"]["dtype"], "F32");
  // Import is the reverse: the same weights give the same accuracy, and a model for another
  // shape is refused.
  auto imported = (dir / "imported" / "model.pt").string();
  auto im = run_apricot("import --from safetensors --in " + st + " --out " + imported);
  ASSERT_EQ(im.code, 0) << im.err;
  auto ev2 = run_apricot("eval" + kSmoke + " -w " + dir.string() + " --split test --json --model " + imported);
  ASSERT_EQ(ev2.code, 0) << ev2.err;
  EXPECT_EQ(json::parse(ev2.out)["confusion"], e["confusion"]);
  EXPECT_EQ(run_apricot("import --in " + st + " --out " + imported).code, exit_status(ExitCode::kUsage));  // exists, no --force
  {
    std::string tampered = bytes;
    auto pos = tampered.find("\"1,12,12\"");
    ASSERT_NE(pos, std::string::npos);
    tampered.replace(pos, 9, "\"1,16,16\"");  // same length: offsets stay valid
    write_bytes(dir / "tampered.safetensors", tampered);
    auto bad = run_apricot("import --in " + (dir / "tampered.safetensors").string() + " --out " +
                           (dir / "bad" / "model.pt").string());
    EXPECT_EQ(bad.code, exit_status(ExitCode::kState)) << bad.err;
    EXPECT_NE(bad.err.find("shape"), std::string::npos) << bad.err;
  }

  // Never over an existing file without --force, never over the checkpoint itself.
  auto again_st = run_apricot("export --model " + (dir / "base" / "model.pt").string() + " --out " + st);
  EXPECT_EQ(again_st.code, exit_status(ExitCode::kUsage)) << again_st.err;
  auto self = run_apricot("export --force --model " + (dir / "base" / "model.pt").string() + " --out " +
                          (dir / "base" / "model.pt").string());
  EXPECT_EQ(self.code, exit_status(ExitCode::kUsage)) << self.err;

  // A second train-base leaves the good model alone.
  auto before = slurp((dir / "base" / "model.pt").string());
  auto again = run_apricot("train-base" + kSmoke + " -w " + dir.string() + " --log-level warn");
  EXPECT_EQ(again.code, 0);
  EXPECT_EQ(slurp((dir / "base" / "model.pt").string()), before);
}

TEST(Cli, BadDataInputs) {
  auto d = fresh_dir("baddata");
  // Missing data directory.
  auto r = run_apricot("train-base --set data.format=cifar10 --set data.root=" + (d / "nowhere").string() + " -w " +
                       (d / "w1").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  // Truncated CIFAR file.
  fs::create_directories(d / "cifar");
  write_bytes(d / "cifar" / "data_batch_1.bin", std::string(3073 * 2 + 100, '\0'));
  write_bytes(d / "cifar" / "test_batch.bin", std::string(3073, '\0'));
  r = run_apricot("train-base --set data.format=cifar10 --set data.root=" + (d / "cifar").string() + " -w " +
                  (d / "w2").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;
  EXPECT_NE(r.err.find("data_batch_1.bin"), std::string::npos) << r.err;
  // Label out of range.
  std::string rec(3073, '\0');
  rec[0] = 42;
  write_bytes(d / "cifar" / "data_batch_1.bin", rec + rec);
  r = run_apricot("train-base --set data.format=cifar10 --set data.root=" + (d / "cifar").string() + " -w " +
                  (d / "w3").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;
  EXPECT_NE(r.err.find("42"), std::string::npos) << r.err;
  // IDX with a wrong magic number.
  fs::create_directories(d / "idx");
  for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                        "t10k-labels-idx1-ubyte"})
    write_bytes(d / "idx" / f, std::string("\x12\x34\x56\x78garbage", 11));
  r = run_apricot("train-base --set data.format=idx --set data.root=" + (d / "idx").string() + " -w " +
                  (d / "w4").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;
  EXPECT_NE(r.err.find("magic"), std::string::npos) << r.err;
  for (const auto& out : {r.err}) EXPECT_EQ(out.find("terminate called"), std::string::npos);
}

TEST(Cli, BadConfigInputs) {
  auto d = fresh_dir("badcfg");
  write_bytes(d / "broken.json", "{ \"train\": { \"epochs\": 3 ");
  auto r = run_apricot("train-base -c " + (d / "broken.json").string() + " -w " + (d / "w").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage));
  EXPECT_NE(r.err.find("broken.json"), std::string::npos) << r.err;
  r = run_apricot("train-base" + kSmoke + " --set train.epohcs=3 -w " + (d / "w").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage));
  EXPECT_NE(r.err.find("epochs"), std::string::npos) << r.err;
  for (const char* bad : {"train.epochs=0", "train.epochs=-1", "train.batch_size=0", "train.lr=0", "train.lr=-1"}) {
    r = run_apricot("train-base" + kSmoke + " --set " + bad + " -w " + (d / "w").string());
    EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << bad;
    EXPECT_NE(r.err.find(std::string(bad).substr(0, std::string(bad).find('='))), std::string::npos) << r.err;
  }
  r = run_apricot("train-base" + kSmoke + " --set model.arch=vgg16 -w " + (d / "w").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage));
  EXPECT_NE(r.err.find("resnet20"), std::string::npos) << r.err;  // lists the valid archs
  // With the GPU visible (run_apricot hides it): trains on CUDA where there is one, else refuses.
  r = apricot::test::run_shell(std::string(APRICOT_BINARY) + " train-base" + kSmoke + " --device cuda -w " + (d / "gpu").string());
  if (torch::cuda::is_available()) {
    EXPECT_EQ(r.code, 0) << r.err;
  } else {
    EXPECT_EQ(r.code, exit_status(ExitCode::kUsage));
    EXPECT_NE(r.err.find("cuda"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(d / "w" / "base" / "model.pt"));
}

TEST(Cli, UnwritableWorkdir) {
  auto d = fresh_dir("unwritable");
  write_bytes(d / "file", "x");  // a regular file where a directory should be
  auto r = run_apricot("train-base" + kSmoke + " -w " + (d / "file" / "sub").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;
  EXPECT_NE(r.err.find("file/sub"), std::string::npos) << r.err;
}

TEST(Cli, BadCheckpoints) {
  const auto& dir = trained_workdir();
  auto d = fresh_dir("badckpt");
  write_bytes(d / "model.pt", "not a checkpoint");
  auto r = run_apricot("eval" + kSmoke + " --model " + (d / "model.pt").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  r = run_apricot("export --model " + (d / "model.pt").string() + " --out " + (d / "x.safetensors").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_FALSE(fs::exists(d / "x.safetensors"));
  // A good checkpoint evaluated under a config for another input shape.
  r = run_apricot("eval" + kSmoke + " --set data.synthetic_shape=[1,16,16] --model " +
                  (dir / "base" / "model.pt").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("12x12"), std::string::npos) << r.err;
  // Another arch.
  r = run_apricot("eval" + kSmoke + " --set model.arch=cnn1 --model " + (dir / "base" / "model.pt").string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
}

TEST(Cli, BuiltInDefaultsRunWithoutAConfig) {
  // No -c: the default synthetic data, validation split and rDLM windows, every phase, made small
  // only in epochs, rDLM count and batches (a full default run trains 20 rDLMs for 30 epochs and
  // adapts four arms: too slow for a test).
  auto d = fresh_dir("defaults");
  auto r = run_apricot("run --device cpu --threads 1 --log-level warn -w " + d.string() +
                       " --set train.epochs=1 --set rdlm.count=2 --set rdlm.epochs=1 --set adapt.max_batches=2"
                       " --set 'adapt.strategies=[\"1\"]'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("strategy 1"), std::string::npos) << r.out;  // the results table
  for (const char* out : {"base/model.pt", "rdlms/summary.json", "adapt-1/result.json"})
    EXPECT_TRUE(fs::exists(d / out)) << out;
  fs::remove_all(d);
}

TEST(Cli, UnknownStrategyIsAUsageErrorAndHelpListsTheChoices) {
  auto help = run_apricot("adapt --help");
  ASSERT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("{1,2,3,soup,greedy-soup,greedy-soup-split,none,none-matched,finetune,finetune-interp,soup-interp,apricot-interp,head-only,gated,gated-distilled}"), std::string::npos) << help.out;
  auto d = fresh_dir("strategy");
  auto r = run_apricot("adapt" + kSmoke + " --strategy 7 -w " + d.string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("--strategy"), std::string::npos) << r.err;
  r = run_apricot("adapt" + kSmoke + " --set 'adapt.strategies=[\"1\",\"7\"]' -w " + d.string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("adapt.strategies"), std::string::npos) << r.err;
  r = run_apricot("run" + kSmoke + " --set 'adapt.strategies=[\"best\"]' -w " + d.string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("adapt.strategies"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d / "base"));  // refused before any work
}
