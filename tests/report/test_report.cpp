// The report: aggregation of fake work directories written with the tool's exact keys against hand
// values (the statistics themselves: test_stats.cpp), error handling, the CLI (report and a tiny sweep),
// and a real-browser check of the HTML page (Debian's chromium-headless-shell, which scripts/test.sh
// installs; skipped where absent).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/report/report.hpp"
#include "cli_util.hpp"

using namespace apricot;
using namespace apricot::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void put(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A work directory as the phases leave it, with the keys of train_base.cpp, rdlm.cpp and adapt.cpp.
struct FakeRun {
  int64_t seed = 1;
  std::string arch = "small";
  double base_train = 0.9, base_val = 0.85, base_test = 0.8;
  bool rdlms = true;
  std::map<std::string, double> final_test = {};  // strategy -> final test accuracy
  int rdlm_count = 3;                             // their test accuracies: 0.70, 0.71, ... unless rdlm_acc
  std::vector<double> rdlm_acc = {};
  int classes = 0;  // > 0: result.json has "changes" with this many classes
};

void write_fake(const fs::path& w, const FakeRun& r) {
  json config = {{"seed", r.seed},
                 {"workdir", w.string()},
                 {"device", "cpu"},
                 {"threads", 0},
                 {"model", {{"arch", r.arch}, {"resnet_variant", "v1"}}},
                 {"data", {{"format", "synthetic"}}},
                 {"rdlm", {{"count", 3}}},
                 {"adapt", {{"strategies", {"1", "none"}}, {"selection", "val"}}}};
  put(w / "config.json", config.dump(2));
  json base = {{"arch", r.arch},
               {"dataset", {{"name", "synthetic"}}},
               {"metrics",
                {{"train_acc", r.base_train}, {"val_acc", r.base_val}, {"test_acc", r.base_test}, {"train_seconds", 10.0},
                 {"best_epoch", 5}, {"epochs_run", 5}}},
               {"params", {{"total", 1234}, {"trainable", 1234}}},
               {"seconds", 12.0 + static_cast<double>(r.seed)},
               {"config", config},
               {"role", "base"}};
  put(w / "base" / "model.json", base.dump(2));
  // The learning curve (metrics.jsonl), ending at the kept weights' validation accuracy.
  std::string curve;
  const double val[] = {0.6, 0.7, 0.8, 0.84, r.base_val};
  for (int e = 0; e < 5; ++e)
    curve += json{{"epoch", e + 1}, {"steps", 10 * (e + 1)}, {"lr", 0.01}, {"loss", 1.0 - 0.1 * e}, {"train_acc", val[e]},
                  {"val_acc", val[e]}, {"seconds", 1.0}, {"images_per_s", 100.0}}.dump() + "\n";
  put(w / "base" / "metrics.jsonl", curve);
  if (r.rdlms) {
    json per = json::array();
    for (int k = 0; k < r.rdlm_count; ++k) {
      double acc = k < static_cast<int>(r.rdlm_acc.size()) ? r.rdlm_acc[k] : 0.7 + 0.01 * k;
      char name[32];
      std::snprintf(name, sizeof name, "rdlm-%02d", k);
      put(w / "rdlms" / name / "model.json",
          json{{"role", "rdlm"}, {"index", k},
               {"metrics", {{"subset_acc", 0.9}, {"val_acc", acc}, {"test_acc", acc}, {"train_seconds", 2.0 + k}}}}
              .dump());
      per.push_back({{"index", k}, {"test_acc", acc}, {"val_acc", acc}, {"subset_acc", 0.9}});
    }
    put(w / "rdlms" / "summary.json",
        json{{"count", r.rdlm_count}, {"rdlms", per}, {"test_acc", {{"mean", 0.71}, {"std", 0.01}}}, {"coverage", 0.9},
             {"base_test_failures", 40}, {"base_failures_some_rdlm_right", 10},
             {"base_failures_some_rdlm_right_share", 0.25}}
            .dump());
  }
  for (const auto& [s, acc] : r.final_test) {
    const fs::path d = w / ("adapt-" + s);
    json result = {{"strategy", s}, {"selection", "val"}, {"seed", r.seed},
                   {"base", {{"val_acc", r.base_val}, {"test_acc", r.base_test}}},
                   {"final", {{"val_acc", r.base_val + 0.01}, {"test_acc", acc}}},
                   {"gain_test", acc - r.base_test}, {"accepted", 2}, {"seconds", 5.0}};
    if (r.classes > 0) {  // class k gains (k - classes / 2) tenths of a point, scaled by the arm's gain
      json before = json::array(), after = json::array();
      for (int k = 0; k < r.classes; ++k) {
        before.push_back(r.base_test);
        after.push_back(r.base_test + (acc - r.base_test) * (1 + 0.4 * (k - r.classes / 2)));
      }
      result["changes"] = {{"test", {{"per_class", {{"before", before}, {"after", after}}}}}};
    }
    put(d / "result.json", result.dump());
    // batch 0: an accepted adjustment; batch 1: nothing; batch 2: an accepted retraining.
    std::string trace;
    trace += json{{"batch", 0}, {"acc_adjusted", r.base_val + 0.005}, {"acc_retrained", -1.0}, {"accepted", true},
                  {"best_acc", r.base_val + 0.005}}.dump() + "\n";
    trace += json{{"batch", 1}, {"acc_adjusted", r.base_val}, {"acc_retrained", -1.0}, {"accepted", false},
                  {"best_acc", r.base_val + 0.005}}.dump() + "\n";
    trace += json{{"batch", 2}, {"acc_adjusted", -1.0}, {"acc_retrained", r.base_val + 0.01}, {"accepted", true},
                  {"best_acc", r.base_val + 0.01}}.dump() + "\n";
    put(d / "trace.jsonl", trace);
  }
}

// Three seeds of one configuration (both arms) and one other model with only a base model.
std::vector<std::string> fake_sweep(const fs::path& root) {
  FakeRun a{1, "small", 0.9, 0.85, 0.80, true, {{"1", 0.83}, {"none", 0.82}}};
  FakeRun b{2, "small", 0.92, 0.86, 0.82, true, {{"1", 0.84}, {"none", 0.845}}};
  FakeRun c{3, "small", 0.91, 0.87, 0.81, true, {{"1", 0.835}, {"none", 0.815}}};
  FakeRun d{0, "cnn1", 0.7, 0.6, 0.5, false, {}};
  write_fake(root / "seed-1", a);
  write_fake(root / "seed-2", b);
  write_fake(root / "seed-3", c);
  write_fake(root / "other", d);
  return {(root / "seed-2").string(), (root / "seed-1").string(), (root / "seed-3").string(),
          (root / "other").string()};
}

}  // namespace

TEST(ReportSweep, SeedLists) {
  EXPECT_EQ(parse_seed_list("1-5"), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(parse_seed_list("1,3,7"), (std::vector<int64_t>{1, 3, 7}));
  EXPECT_EQ(parse_seed_list("9,0-2,2"), (std::vector<int64_t>{0, 1, 2, 9}));
  EXPECT_EQ(parse_seed_list("4"), (std::vector<int64_t>{4}));
  for (const char* bad : {"", "5-1", "a", "1,,2", "-3", "1-", "1.5", "0-99999"})
    EXPECT_EQ(exit_code_of([&] { parse_seed_list(bad); }), exit_status(ExitCode::kUsage)) << bad;
}

TEST(Report, AggregatesSeedsAgainstHandValues) {
  auto root = fresh_dir("report-agg");
  std::vector<RunData> runs;
  for (const auto& w : fake_sweep(root)) runs.push_back(load_run(w));
  ASSERT_EQ(runs[0].traces["1"].size(), 3u);
  json rep = build_report(runs);
  ASSERT_EQ(rep["groups"].size(), 2u);
  EXPECT_EQ(rep["strategies"], json({"1", "none"}));
  const json& g = rep["groups"][0];
  EXPECT_EQ(g["label"], "small");
  EXPECT_EQ(g["seeds"], json({1, 2, 3}));  // sorted by seed whatever the order given
  EXPECT_EQ(g["runs"][0]["seed"], 1);
  // Table II
  EXPECT_EQ(g["models"]["params"], 1234);
  EXPECT_NEAR(g["models"]["test_acc"]["mean"].get<double>(), 0.81, 1e-12);
  EXPECT_NEAR(g["models"]["test_acc"]["std"].get<double>(), 0.01, 1e-12);
  // How far from a plateau: the best of all epochs minus the best but the last three (0.85-0.87 vs 0.7).
  EXPECT_NEAR(g["models"]["last3_gain"]["mean"].get<double>(), 0.16, 1e-12);
  EXPECT_EQ(g["models"]["last3_gain"]["n"], 3);
  EXPECT_NEAR(g["models"]["best_epoch"]["mean"].get<double>(), 5, 1e-12);
  // Table III: base seconds 13, 14, 15; rDLMs 2+3+4 = 9 per run, 3 per rDLM
  EXPECT_NEAR(g["times"]["base_seconds"]["mean"].get<double>(), 14, 1e-12);
  EXPECT_NEAR(g["times"]["rdlms_total_seconds"]["mean"].get<double>(), 9, 1e-12);
  EXPECT_NEAR(g["times"]["rdlm_mean_seconds"]["mean"].get<double>(), 3, 1e-12);
  // Table IV
  EXPECT_NEAR(g["rdlms"]["base_failures_some_rdlm_right_share"]["mean"].get<double>(), 0.25, 1e-12);
  EXPECT_NEAR(g["rdlms"]["test_acc_mean"]["mean"].get<double>(), 0.71, 1e-12);
  // Table V: gains 0.03, 0.02, 0.025; differences to the control 0.01, -0.005, 0.02.
  const json& s1 = g["adaptation"]["1"];
  EXPECT_NEAR(s1["gain_test"]["mean"].get<double>(), 0.025, 1e-12);
  EXPECT_NEAR(s1["gain_test"]["std"].get<double>(), 0.005, 1e-12);
  EXPECT_NEAR(s1["max_gain_test"].get<double>(), 0.03, 1e-12);
  const double dm = 0.025 / 3, dsd = std::sqrt(((0.01 - dm) * (0.01 - dm) + (-0.005 - dm) * (-0.005 - dm) +
                                                (0.02 - dm) * (0.02 - dm)) / 2);
  EXPECT_NEAR(s1["vs_control"]["mean"].get<double>(), dm, 1e-12);
  EXPECT_NEAR(s1["vs_control"]["std"].get<double>(), dsd, 1e-12);
  const json& p = s1["paired"];
  EXPECT_EQ(p["n"], 3);
  EXPECT_EQ(p["wins"], 2);
  EXPECT_EQ(p["ties"], 0);
  EXPECT_EQ(p["losses"], 1);
  EXPECT_EQ(p["df"], 2);
  const double t = dm / (dsd / std::sqrt(3.0));
  EXPECT_NEAR(p["t"].get<double>(), t, 1e-9);
  EXPECT_NEAR(p["p_two_sided"].get<double>(), 1 - t / std::sqrt(t * t + 2), 1e-9);  // df 2 closed form
  EXPECT_FALSE(g["adaptation"]["none"].contains("paired"));
  EXPECT_NEAR(rep["overall"]["1"]["gain_test"]["mean"].get<double>(), 0.025, 1e-12);
  // The other model: a base model only; everything else missing, not a crash.
  const json& o = rep["groups"][1];
  EXPECT_EQ(o["label"], "cnn1");
  EXPECT_TRUE(o["rdlms"]["test_acc_mean"]["mean"].is_null());
  EXPECT_TRUE(o["adaptation"].empty());

  const std::string md = render_markdown(rep);
  EXPECT_NE(md.find("## Table II: models"), std::string::npos);
  EXPECT_NE(md.find("| small | synthetic | 3 | 1,2,3 | 1234 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 5.0 / 5.0 | +16.00 ± 1.00 pp |"), std::string::npos) << md;  // convergence columns
  EXPECT_NE(md.find("+2.50 ± 0.50 pp"), std::string::npos) << md;      // gain over base
  EXPECT_NE(md.find("| 1 | 3 | +0.83 pp |"), std::string::npos) << md;  // paired row
  EXPECT_NE(md.find("| cnn1 | 1 | 0/3 | — | — | — | — |"), std::string::npos) << md;  // no rDLMs yet
  EXPECT_NE(md.find("2/0/1"), std::string::npos);
}

TEST(Report, GroupsByConfigurationAndLabelsTheDifference) {
  auto root = fresh_dir("report-groups");
  FakeRun a{1, "small", 0.9, 0.85, 0.8, true, {{"none", 0.81}}};
  write_fake(root / "a", a);
  write_fake(root / "b", a);
  // Same arch, another rDLM count: a separate group, labelled by the key that differs.
  json c = json::parse(slurp((root / "b" / "config.json").string()));
  c["rdlm"]["count"] = 5;
  put(root / "b" / "config.json", c.dump());
  json rep = build_report({load_run((root / "a").string()), load_run((root / "b").string())});
  ASSERT_EQ(rep["groups"].size(), 2u);
  EXPECT_EQ(rep["groups"][0]["label"], "small (rdlm.count=3)");
  EXPECT_EQ(rep["groups"][1]["label"], "small (rdlm.count=5)");
}

TEST(Report, TargetedRepairErrors) {
  auto root = fresh_dir("report-target");
  FakeRun a{1, "small", 0.9, 0.85, 0.8, true, {{"1", 0.81}, {"none", 0.80}}};
  write_fake(root / "w", a);
  // As adapt.cpp writes it with adapt.target [3, 5]; one stray rDLM beyond rdlm.count is ignored.
  const fs::path res = root / "w" / "adapt-1" / "result.json";
  json j = json::parse(slurp(res.string()));
  j["target"] = {{"pair", {3, 5}}, {"errors_before", {{"val", 4}, {"test", 12}}}, {"errors_after", {{"val", 2}, {"test", 9}}}};
  put(res, j.dump());
  put(root / "w" / "rdlms" / "rdlm-07" / "model.json", json{{"metrics", {{"test_acc", 0.1}}}}.dump());
  json rep = build_report({load_run((root / "w").string())});
  const json& g = rep["groups"][0];
  EXPECT_EQ(g["target_pairs"], json::array({{3, 5}}));
  EXPECT_EQ(g["adaptation"]["1"]["target_test_errors"]["before"]["mean"], 12.0);
  EXPECT_EQ(g["adaptation"]["1"]["target_test_errors"]["after"]["mean"], 9.0);
  EXPECT_EQ(g["rdlms"]["trained"]["mean"], 3.0);
  const std::string md = render_markdown(rep);
  EXPECT_NE(md.find("| target pair [3,5]: test errors | 12.0 → 9.0 | — |"), std::string::npos) << md;
}

TEST(Report, ReadsRdlmsInIndexOrder) {
  // 101 rDLMs: rdlms/rdlm-100 sorts between rdlm-10 and rdlm-11 as text, but is the last by index.
  auto root = fresh_dir("report-order");
  FakeRun a;
  a.rdlms = false;
  write_fake(root / "w", a);
  json c = json::parse(slurp((root / "w" / "config.json").string()));
  c["rdlm"]["count"] = 101;
  put(root / "w" / "config.json", c.dump());
  for (int k = 0; k <= 100; ++k) {
    char name[16];
    std::snprintf(name, sizeof name, "rdlm-%02d", k);
    put(root / "w" / "rdlms" / name / "model.json", json{{"metrics", {{"index", k}}}}.dump());
  }
  RunData r = load_run((root / "w").string());
  ASSERT_EQ(r.rdlms.size(), 101u);
  for (int k = 0; k <= 100; ++k) EXPECT_EQ(r.rdlms[k]["index"], k) << k;
}

TEST(Report, ErrorsNameTheFile) {
  auto root = fresh_dir("report-errors");
  EXPECT_EQ(exit_code_of([&] { load_run((root / "missing").string()); }), exit_status(ExitCode::kData));
  fs::create_directories(root / "empty");
  try {
    load_run((root / "empty").string());
    FAIL() << "an empty directory is not a work directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kData);
    EXPECT_NE(std::string(e.what()).find("not an apricot work directory"), std::string::npos);
  }
  FakeRun a;
  a.final_test = {{"1", 0.9}};
  write_fake(root / "w", a);
  put(root / "w" / "adapt-1" / "result.json", "{\"strategy\": ");
  try {
    load_run((root / "w").string());
    FAIL() << "a truncated result.json must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kData);
    EXPECT_NE(std::string(e.what()).find("adapt-1/result.json"), std::string::npos) << e.what();
  }
}

TEST(Report, WritesThreeFilesAndReplacesOldOnes) {
  auto root = fresh_dir("report-write");
  auto dirs = fake_sweep(root);
  const fs::path out = root / "out";
  put(out / "report.md", "old");
  json rep = write_report(dirs, out.string());
  EXPECT_NE(slurp((out / "report.md").string()), "old");
  EXPECT_EQ(json::parse(slurp((out / "report.json").string())), rep);
  const std::string html = slurp((out / "report.html").string());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("Figure 2"), std::string::npos);
  EXPECT_NE(html.find("Figure 3"), std::string::npos);
  // Self-contained: no script, no external resources.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  // Adaptation curves: per run and arm, one accepted adjustment and one accepted retraining.
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t p = html.find(needle); p != std::string::npos; p = html.find(needle, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("accepted adjustment, "), 6u);  // 3 runs x 2 arms
  EXPECT_EQ(count("accepted retraining, "), 6u);
  for (const auto& f : fs::directory_iterator(out))
    EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << f.path();
}

TEST(ReportCli, ReportCommand) {
  auto root = fresh_dir("report-cli");
  auto dirs = fake_sweep(root);
  const std::string out = (root / "rep").string();
  auto r = run_apricot("report " + dirs[0] + " " + dirs[1] + " --out " + out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["groups"][0]["runs"].size(), 2u);
  EXPECT_TRUE(fs::exists(fs::path(out) / "report.html"));
  // An existing report is kept without --force (exit 2, as export and import do), replaced with it.
  const std::string before = slurp((fs::path(out) / "report.md").string());
  r = run_apricot("report " + dirs[0] + " --out " + out);
  EXPECT_EQ(r.code, exit_status(ExitCode::kUsage)) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(slurp((fs::path(out) / "report.md").string()), before);
  fs::remove(fs::path(out) / "report.md");  // any one of the three files counts as a report
  EXPECT_EQ(run_apricot("report " + dirs[0] + " --out " + out).code, exit_status(ExitCode::kUsage));
  r = run_apricot("report " + dirs[0] + " --out " + out + " --force");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("## Table V: adaptation, small"), std::string::npos) << r.out;
  EXPECT_NE(slurp((fs::path(out) / "report.md").string()), before);  // now one run, not two
  r = run_apricot("report " + (root / "nope").string() + " --out " + out + " --force");
  EXPECT_EQ(r.code, exit_status(ExitCode::kData));
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  EXPECT_EQ(run_apricot("report --out " + out).code, exit_status(ExitCode::kUsage));  // no work directory
}

TEST(ReportCli, SweepRunsEverySeedThenTheReport) {
  auto root = fresh_dir("report-sweep");
  const std::string args =
      " --set data.format=synthetic --set data.synthetic_train=400 --set data.synthetic_test=100"
      " --set 'data.synthetic_shape=[1,12,12]' --set data.val_size=100 --set model.arch=small"
      " --set train.epochs=1 --set train.batch_size=32 --set train.optimizer=adam --set train.lr=0.003"
      " --set rdlm.count=2 --set rdlm.size=100 --set rdlm.stride=100 --set rdlm.epochs=1"
      " --set adapt.max_batches=4 --set adapt.retrain_every=2 --set adapt.retrain.steps=2 --set adapt.step=0.05"
      " --threads 1 -w " + root.string();
  EXPECT_EQ(run_apricot("sweep --seeds 3-1" + args).code, exit_status(ExitCode::kUsage));
  EXPECT_EQ(run_apricot("sweep --seeds 1 --seed 4" + args).code, exit_status(ExitCode::kUsage));
  EXPECT_EQ(run_apricot("sweep --seeds 1 --strategies 1,7" + args).code, exit_status(ExitCode::kUsage));  // a usage error
  auto r = run_apricot("sweep --seeds 1,2 --strategies 1,none --json --log-level warn" + args);
  ASSERT_EQ(r.code, 0) << r.err;
  json out = json::parse(r.out);
  ASSERT_EQ(out["runs"].size(), 2u);
  for (int seed : {1, 2}) {
    const fs::path w = root / ("seed-" + std::to_string(seed));
    EXPECT_EQ(json::parse(slurp((w / "config.json").string()))["seed"], seed);
    EXPECT_TRUE(fs::exists(w / "adapt-1" / "result.json"));
    EXPECT_TRUE(fs::exists(w / "adapt-none" / "result.json"));
    EXPECT_FALSE(fs::exists(w / "adapt-2"));
  }
  json rep = json::parse(slurp((root / "report" / "report.json").string()));
  ASSERT_EQ(rep["groups"].size(), 1u);
  EXPECT_EQ(rep["groups"][0]["seeds"], json({1, 2}));
  EXPECT_EQ(rep["groups"][0]["adaptation"]["1"]["paired"]["n"], 2);
  EXPECT_EQ(out["report"], rep);
  // A second sweep finds every phase done and rewrites the report it owns (no --force needed).
  apricot::write_file_atomic((root / "report" / "report.md").string(), "stale\n");
  r = run_apricot("sweep --seeds 1,2 --strategies 1,none" + args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("skipped"), std::string::npos);
  EXPECT_NE(slurp((root / "report" / "report.md").string()).find("## Table V"), std::string::npos);
}

// ---- the page in a real browser ----
namespace {

std::string find_chromium() {
  if (const char* env = std::getenv("APRICOT_CHROMIUM")) return env;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  std::string dir;
  while (std::getline(ss, dir, ':'))
    for (const char* name : {"chromium-headless-shell", "chromium", "chromium-browser"})
      if (::access((fs::path(dir) / name).c_str(), X_OK) == 0) return (fs::path(dir) / name).string();
  return "";
}

struct Image {
  int64_t w = 0, h = 0, channels = 0;
  std::vector<uint8_t> px;  // row-major, `channels` bytes per pixel
};

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) | (uint32_t(uint8_t(s[at + 2])) << 8) |
         uint32_t(uint8_t(s[at + 3]));
}

// Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what chromium writes); empty image otherwise.
Image decode_png(const std::string& file) {
  Image img;
  if (file.size() < 8 || file.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return img;
  std::string idat;
  int depth = 0, color = 0, interlace = 0;
  for (size_t at = 8; at + 8 <= file.size();) {
    uint32_t len = be32(file, at);
    std::string type = file.substr(at + 4, 4);
    if (at + 12 + len > file.size()) return {};
    if (type == "IHDR") {
      img.w = be32(file, at + 8), img.h = be32(file, at + 12);
      depth = uint8_t(file[at + 16]), color = uint8_t(file[at + 17]), interlace = uint8_t(file[at + 20]);
    } else if (type == "IDAT") {
      idat += file.substr(at + 8, len);
    }
    at += 12 + len;
  }
  if (depth != 8 || interlace != 0 || (color != 2 && color != 6)) return {};
  img.channels = color == 6 ? 4 : 3;
  const size_t stride = img.w * img.channels;
  std::vector<uint8_t> raw((stride + 1) * img.h);
  uLongf n = raw.size();
  if (uncompress(raw.data(), &n, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK || n != raw.size())
    return {};
  img.px.assign(stride * img.h, 0);
  for (int64_t y = 0; y < img.h; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* out = &img.px[y * stride];
    const uint8_t* up = y ? &img.px[(y - 1) * stride] : nullptr;
    for (size_t i = 0; i < stride; ++i) {
      int a = i >= size_t(img.channels) ? out[i - img.channels] : 0, b = up ? up[i] : 0,
          c = (up && i >= size_t(img.channels)) ? up[i - img.channels] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: return {};
      }
      out[i] = static_cast<uint8_t>(in[i] + pred);
    }
  }
  return img;
}

}  // namespace

namespace {

// A sweep as the study leaves it: three seeds, every arm, twenty rDLMs a seed crowded into a few
// bins around the base model's accuracy, per-class changes, accuracies a few hundredths of a point apart.
std::vector<std::string> rich_sweep(const fs::path& root) {
  std::vector<std::string> dirs;
  const std::vector<std::string> arms = {"1", "2", "3", "none", "none-matched", "soup", "greedy-soup"};
  for (int seed = 1; seed <= 3; ++seed) {
    FakeRun r;
    r.seed = seed;
    r.base_val = 0.9, r.base_test = 0.9050 + 0.0005 * seed;
    r.rdlm_count = 20, r.classes = 10;
    for (int k = 0; k < r.rdlm_count; ++k) r.rdlm_acc.push_back(r.base_test - 0.003 + 0.0003 * (k % 5) * (k % 4));
    for (size_t a = 0; a < arms.size(); ++a) r.final_test[arms[a]] = r.base_test + 0.001 * a - 0.002;
    dirs.push_back((root / ("seed-" + std::to_string(seed))).string());
    write_fake(dirs.back(), r);
  }
  return dirs;
}

std::string html_unescape(std::string s) {
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}})
    for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

// Where a test keeps what a person may want to look at after a run: APRICOT_TEST_ARTIFACTS, or
// test-artifacts/ in the directory ctest runs the tests in (the build directory).
fs::path artifact_dir() {
  const char* env = std::getenv("APRICOT_TEST_ARTIFACTS");
  fs::path dir = env && *env ? fs::path(env) : fs::current_path() / "test-artifacts";
  fs::create_directories(dir);
  return dir;
}

}  // namespace

// The page in a real browser: Chromium runs tests/browser/layout_check.js in a copy of the page and
// reports every label that overlaps another label or the plotted data or leaves its chart, and every
// resource the page loaded; then a screenshot of the whole page must have ink in every chart's box.
// The screenshot is kept in test-artifacts/report.png.
TEST(ReportBrowser, ChartsRenderWithoutOverlapsAndWithoutNetwork) {
  const std::string chromium = find_chromium();
  if (chromium.empty())
    GTEST_SKIP() << "no chromium on PATH (scripts/test.sh installs chromium-headless-shell; APRICOT_CHROMIUM=path)";
  auto root = fresh_dir("report-browser");
  write_report(rich_sweep(root), (root / "out").string());
  const std::string html = slurp((root / "out" / "report.html").string());
  // Self-contained: no script, no link, no image or style from elsewhere.
  for (const char* ref : {"<script", "<link", "<img", "<iframe", "url(", "@import", "src=", "href="})
    EXPECT_EQ(html.find(ref), std::string::npos) << ref;
  // Flags every run uses: headless, no GPU, no sandbox (root in CI), no name resolution at all (a
  // request anywhere would fail and show in the resource list), a profile of its own.
  const std::string flags = " --headless --disable-gpu --no-sandbox --hide-scrollbars --no-first-run "
                            "--host-resolver-rules='MAP * ~NOTFOUND' --user-data-dir=" +
                            (root / "profile").string();

  // 1. The layout check, run by the page itself.
  std::string page = html;
  const std::string script = slurp(std::string(APRICOT_SOURCE_DIR) + "/tests/browser/layout_check.js");
  ASSERT_FALSE(script.empty());
  page.insert(page.rfind("</body>"), "<script>\n" + script + "</script>\n");
  put(root / "check.html", page);
  const fs::path dom = root / "dom.html";
  std::string cmd = "timeout 120 " + chromium + flags + " --window-size=1200,1000 --dump-dom file://" +
                    (root / "check.html").string() + " >" + dom.string() + " 2>" + (root / "chromium.log").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp((root / "chromium.log").string());
  const std::string d = slurp(dom.string());
  const std::string open = "<pre id=\"apricot-layout\">";
  const auto at = d.rfind(open), stop = d.find("</pre>", at);  // the last: the page appends it
  ASSERT_NE(at, std::string::npos) << "the layout check did not run: " << d.substr(0, 500);
  const json layout = json::parse(html_unescape(d.substr(at + open.size(), stop - at - open.size())));
  EXPECT_TRUE(layout["resources"].empty()) << layout["resources"].dump();
  // The base learning curves, Figure 2, Figure 3 and the per-class chart for the group, and one
  // curve chart per run.
  ASSERT_EQ(layout["charts"].size(), 7u) << layout["charts"].dump(1);
  for (const auto& c : layout["charts"]) EXPECT_GT(c["marks"].get<int>(), 0) << c.dump();
  for (const auto& p : layout["problems"]) ADD_FAILURE() << p.dump();

  // 2. A screenshot of the whole page: every chart's box has drawn pixels.
  const int64_t width = 1200, height = layout["page"]["height"].get<int64_t>();
  const fs::path png = root / "shot.png";
  cmd = "timeout 120 " + chromium + flags + " --window-size=" + std::to_string(width) + "," + std::to_string(height) +
        " --screenshot=" + png.string() + " file://" + (root / "out" / "report.html").string() + " >" +
        (root / "chromium.log").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp((root / "chromium.log").string());
  Image img = decode_png(slurp(png.string()));
  ASSERT_EQ(img.w, width) << "not a PNG chromium is known to write";
  ASSERT_EQ(img.h, height);
  fs::copy_file(png, artifact_dir() / "report.png", fs::copy_options::overwrite_existing);
  auto ink = [&](int64_t x, int64_t y) {
    const size_t i = (y * img.w + x) * img.channels;
    return img.px[i] < 200 || img.px[i + 1] < 200 || img.px[i + 2] < 200;
  };
  for (const auto& c : layout["charts"]) {
    const auto b = c["box"].get<std::vector<double>>();  // left, top, right, bottom
    int64_t drawn = 0, area = 0;
    for (int64_t y = std::max<int64_t>(0, b[1]); y < std::min<int64_t>(img.h, b[3]); ++y)
      for (int64_t x = std::max<int64_t>(0, b[0]); x < std::min<int64_t>(img.w, b[2]); ++x) ++area, drawn += ink(x, y);
    ASSERT_GT(area, 10000) << c.dump() << " lies outside the screenshot";
    EXPECT_GT(drawn, area / 50) << c["name"] << ": " << drawn << " of " << area << " pixels drawn";
  }
  int64_t blue = 0;
  for (size_t i = 0; i + 2 < img.px.size(); i += img.channels)
    blue += img.px[i + 2] > img.px[i] + 60 && img.px[i + 2] > img.px[i + 1] + 20;  // #1f77b4: bars, strategy 1
  EXPECT_GT(blue, 500) << "no chart colours: the SVG did not render";
}
