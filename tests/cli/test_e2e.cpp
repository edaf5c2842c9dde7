// End to end, as users run it: a tiny slice in the CIFAR-10 binary layout, then train-base,
// train-rdlms (a few, sharded), adapt for every strategy and the control arm, eval and run, each as a
// process, checking outputs and exit codes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "apricot/data/dataset.hpp"
#include "apricot/data/formats.hpp"
#include "cli_util.hpp"

using namespace apricot;
using namespace apricot::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Writes `split` as CIFAR-10 binary records (label byte, then R, G, B planes of 32x32).
void write_cifar(const fs::path& path, const Split& split) {
  std::ofstream out(path, std::ios::binary);
  auto x = split.x.contiguous();
  const auto* px = x.data_ptr<uint8_t>();
  for (int64_t i = 0; i < split.size(); ++i) {
    char label = static_cast<char>(split.y[i].item<int64_t>());
    out.write(&label, 1);
    out.write(reinterpret_cast<const char*>(px + i * 3072), 3072);
  }
}

struct Slice {
  fs::path dir, data;
  std::string args;  // config flags shared by every command
};

const Slice& cifar_slice() {
  static Slice s = [] {
    Slice s;
    s.dir = fresh_dir("e2e");
    s.data = s.dir / "cifar-10-batches-bin";
    fs::create_directories(s.data);
    Split train, test;
    make_synthetic(500, 200, 3, 32, 32, 10, 11, train, test);
    write_cifar(s.data / "data_batch_1.bin", Split{train.x.slice(0, 0, 250), train.y.slice(0, 0, 250)});
    write_cifar(s.data / "data_batch_2.bin", Split{train.x.slice(0, 250), train.y.slice(0, 250)});
    write_cifar(s.data / "test_batch.bin", test);
    s.args = " --set data.format=cifar10 --set data.root=" + s.data.string() +
             " --set data.val_size=100 --set model.arch=small --set train.epochs=4 --set train.batch_size=32"
             " --set train.optimizer=adam --set train.lr=0.003 --set train.momentum=0"
             " --set rdlm.count=3 --set rdlm.size=200 --set rdlm.stride=100 --set rdlm.epochs=4"
             " --set adapt.max_batches=12 --set adapt.batch_size=20 --set adapt.retrain_every=4"
             " --set adapt.retrain.steps=3 --set adapt.retrain.batch_size=32 --set adapt.step=0.05"
             " --log-level warn -w " + (s.dir / "work").string();
    return s;
  }();
  return s;
}

json read_json(const fs::path& p) { return json::parse(slurp(p.string())); }

std::string rdlm_path(const fs::path& w, int k) {
  return (w / "rdlms" / ("rdlm-0" + std::to_string(k)) / "model.pt").string();
}

}  // namespace

TEST(EndToEnd, CifarSliceAllPhases) {
  const Slice& s = cifar_slice();
  const fs::path w = s.dir / "work";

  // adapt before train-base: a clear error, exit 4.
  auto r = run_apricot("adapt --strategy 1" + s.args);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("train-base"), std::string::npos) << r.err;

  r = run_apricot("train-base --json" + s.args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GT(json::parse(r.out)["metrics"]["test_acc"].get<double>(), 0.5);

  // Missing rDLMs: exit 4 naming them and the command.
  r = run_apricot("adapt --strategy 2" + s.args);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("0,1,2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("train-rdlms"), std::string::npos) << r.err;

  // Two shards fill one work directory; the second writes the summary.
  r = run_apricot("train-rdlms --shard 0/2 --json" + s.args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["trained"], json({0, 2}));
  EXPECT_FALSE(fs::exists(w / "rdlms" / "summary.json"));
  r = run_apricot("train-rdlms --shard 1/2 --json" + s.args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["trained"], json({1}));
  auto summary = read_json(w / "rdlms" / "summary.json");
  EXPECT_EQ(summary["rdlms"].size(), 3u);
  EXPECT_NEAR(summary["coverage"].get<double>(), 400.0 / 400.0, 1e-9);  // windows 0-199, 100-299, 200-399
  EXPECT_TRUE(summary.contains("base_failures_some_rdlm_right_share"));
  // Rerun: everything skipped, nothing overwritten.
  auto before = slurp(rdlm_path(w, 1));
  r = run_apricot("train-rdlms --json" + s.args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["skipped"], json({0, 1, 2}));
  EXPECT_EQ(slurp(rdlm_path(w, 1)), before);

  EXPECT_EQ(run_apricot("adapt --strategy 7" + s.args).code, exit_status(ExitCode::kUsage));  // a usage error

  for (std::string st : {"1", "2", "3", "none"}) {
    r = run_apricot("adapt --json --strategy " + st + s.args);
    ASSERT_EQ(r.code, 0) << st << ": " << r.err;
    json res = json::parse(r.out);
    for (const char* k : {"strategy", "direction", "seed", "selection", "base", "final", "gain_test", "gain_val",
                          "batches", "failing_inputs", "adjusted_inputs", "accepted", "stopped_by", "seconds", "time"})
      EXPECT_TRUE(res.contains(k)) << st << " lacks " << k;
    EXPECT_EQ(res["strategy"], st);
    EXPECT_EQ(res["batches"], 12);
    EXPECT_EQ(res["stopped_by"], "max_batches");
    EXPECT_GE(res["final"]["val_acc"].get<double>(), res["base"]["val_acc"].get<double>());
    if (st == "none") {
      EXPECT_EQ(res["adjusted_inputs"], 0);
    }
    auto dir = w / ("adapt-" + st);
    EXPECT_TRUE(fs::exists(dir / "model.pt"));
    EXPECT_TRUE(fs::exists(dir / "result.json"));
    std::ifstream trace(dir / "trace.jsonl");
    int lines = 0;
    for (std::string line; std::getline(trace, line); ++lines) {
      json t = json::parse(line);
      for (const char* k : {"batch", "failing", "adjusted", "acc_adjusted", "acc_retrained", "accepted", "seconds"})
        EXPECT_TRUE(t.contains(k)) << k;
    }
    EXPECT_EQ(lines, 12);
    // The adapted model evaluates like any checkpoint.
    r = run_apricot("eval --json --split val --model " + (dir / "model.pt").string() + s.args);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NEAR(json::parse(r.out)["accuracy"].get<double>(), res["final"]["val_acc"].get<double>(), 1e-12);
  }
  // Every strategy saw the same failing inputs in its first batch (same batches for all arms).
  auto digests = [&](const std::string& st) {
    std::ifstream t(w / ("adapt-" + st) / "trace.jsonl");
    std::vector<int64_t> out;
    for (std::string line; std::getline(t, line);) out.push_back(json::parse(line)["digest"]);
    return out;
  };
  EXPECT_EQ(digests("1"), digests("none"));
  EXPECT_EQ(digests("3"), digests("none"));

  // A stored result is not passed off for another configuration.
  r = run_apricot("adapt --strategy none --set adapt.retrain.lr=0.5" + s.args);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;

  // `run` on a complete work directory skips every phase and prints the table.
  r = run_apricot("run" + s.args);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* row : {"base", "strategy 1", "strategy 2", "strategy 3", "control"})
    EXPECT_NE(r.out.find(row), std::string::npos) << row << " missing in:\n" << r.out;
}

TEST(EndToEnd, RdlmsOfAnotherShapeAreRefused) {
  const Slice& s = cifar_slice();
  auto d = fresh_dir("e2e-mismatch");
  // rDLMs trained on 1x12x12 synthetic data, base on the CIFAR slice: adapt must refuse (exit 4).
  auto common = " --log-level warn -w " + d.string() + " --set rdlm.count=2 --set rdlm.size=100 --set rdlm.epochs=1"
                " --set train.epochs=1";
  auto r = run_apricot("train-rdlms --set data.format=synthetic --set data.synthetic_train=300 --set data.val_size=50"
                       " --set data.synthetic_shape=[1,12,12] --set data.synthetic_classes=4" + std::string(common));
  ASSERT_EQ(r.code, 0) << r.err;
  std::string cifar = " --set data.format=cifar10 --set data.root=" + s.data.string() + " --set data.val_size=100";
  r = run_apricot("train-base" + cifar + common);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_apricot("adapt --strategy 1" + cifar + common);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("1x12x12"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rDLM 0"), std::string::npos) << r.err;
}

// train-base keeps the base's answers on both splits (base/answers.pt); each arm reads them instead of
// evaluating the base again, when they were made on the same device with the same threads and batch
// size, and the adaptation is then the same as with a fresh evaluation, to the last bit.
TEST(EndToEnd, BaseAnswersKeptByTrainBaseGiveTheSameAdaptation) {
  auto d = fresh_dir("e2e-answers");
  const std::string w = (d / "w").string();
  const std::string common = " --device cpu -w " + w + " --set data.synthetic_train=500 --set data.synthetic_test=200"
                             " --set data.val_size=100 --set train.epochs=2 --set rdlm.count=3 --set rdlm.size=200"
                             " --set rdlm.stride=100 --set rdlm.epochs=1 --set adapt.max_batches=6"
                             " --set adapt.retrain_every=2 --set adapt.retrain.steps=4 --set adapt.step=0.05";
  for (const char* phase : {"train-base", "train-rdlms"}) {
    auto r = run_apricot(std::string(phase) + " --threads 1 --log-level warn" + common);
    ASSERT_EQ(r.code, 0) << phase << ": " << r.err;
  }
  ASSERT_TRUE(fs::exists(d / "w" / "base" / "answers.pt"));
  auto r = run_apricot("adapt --strategy 1 --threads 1 --log-level debug" + common);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("answers on both splits read from"), std::string::npos) << r.err;
  const json kept = read_json(d / "w" / "adapt-1" / "result.json");
  fs::copy_file(d / "w" / "adapt-1" / "model.pt", d / "kept.pt");
  fs::copy_file(d / "w" / "adapt-1" / "model.json", d / "kept.json");  // a checkpoint is both files
  // Other threads: another key, so the base is evaluated again.
  r = run_apricot("adapt --strategy 1 --force --threads 2 --log-level debug" + common);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("answers on both splits read from"), std::string::npos) << r.err;
  // Without the file, with the threads of the first run: the same adaptation.
  fs::remove(d / "w" / "base" / "answers.pt");
  r = run_apricot("adapt --strategy 1 --force --threads 1 --log-level debug" + common);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("answers on both splits read from"), std::string::npos) << r.err;
  const json fresh = read_json(d / "w" / "adapt-1" / "result.json");
  for (const char* key : {"base", "final", "accepted", "changes", "batches"}) EXPECT_EQ(kept[key], fresh[key]) << key;
  r = run_apricot("compare " + (d / "kept.pt").string() + " " + (d / "w" / "adapt-1" / "model.pt").string());
  EXPECT_EQ(r.code, 0) << r.out;
  fs::remove_all(d);
}
