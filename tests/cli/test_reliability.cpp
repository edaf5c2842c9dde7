// Fault tolerance as a user meets it, with the binary as a child process: killed with SIGKILL at
// random moments each phase resumes and ends with weights bitwise identical to an uninterrupted
// run; SIGTERM/SIGINT save state and exit 130; a corrupt state is refused (exit 4); a full disk
// exits 3 leaving earlier outputs intact; concurrent rDLM trainers never train one rDLM twice;
// a diverging loss names phase, epoch and step.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "cli_util.hpp"

using namespace apricot::test;
using apricot::ExitCode;
using apricot::exit_status;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

extern char** environ;

namespace {

// Small enough to finish in seconds, long enough that every phase saves state several times and a
// signal sent once a state exists finds the phase still running (adaptation takes about a second).
const char* const kConfig = R"({
  "seed": 11,
  "threads": 1,
  "data": {"format": "synthetic", "synthetic_train": 1500, "synthetic_test": 300, "val_size": 200,
           "synthetic_shape": [1, 16, 16], "synthetic_classes": 4},
  "model": {"arch": "small"},
  "train": {"epochs": 8, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
            "augment": {"shift": 0.1, "flip": true}},
  "rdlm": {"count": 3, "size": 700, "stride": 400, "epochs": 5},
  "adapt": {"max_batches": 120, "batch_size": 20, "step": 0.01, "retrain_every": 4,
            "retrain": {"steps": 8, "batch_size": 32, "optimizer": "sgd", "lr": 0.01}},
  "resume": {"every_epochs": 1, "every_batches": 2}
})";

fs::path write_config(const fs::path& dir) {
  auto p = dir / "config.json";
  std::ofstream(p) << kConfig;
  return p;
}

// A running apricot process whose output goes to files.
struct Child {
  pid_t pid = -1;
  fs::path out, err;
};

Child spawn_apricot(const std::string& args, const fs::path& logs, const std::string& tag) {
  Child c;
  c.out = logs / (tag + ".out");
  c.err = logs / (tag + ".err");
  std::string cmd = "exec " + apricot::test::apricot_command() + " " + args + " >" + c.out.string() + " 2>" +
                    c.err.string() + " </dev/null";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  EXPECT_EQ(posix_spawn(&c.pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  return c;
}

int wait_exit(const Child& c) {
  int status = 0;
  waitpid(c.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool exited(const Child& c, int* code) {
  int status = 0;
  if (waitpid(c.pid, &status, WNOHANG) != c.pid) return false;
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

// Waits until `file` exists, written after `since` (or the child exits); false if it exited first.
bool wait_for_file(const Child& c, const fs::path& file, int* code,
                   fs::file_time_type since = fs::file_time_type::min()) {
  for (int i = 0; i < 3000; ++i) {
    std::error_code ec;
    auto t = fs::last_write_time(file, ec);
    if (!ec && t > since) return true;
    if (exited(c, code)) return false;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

std::string file_bytes(const fs::path& p) { return slurp(p.string()); }

// The phases in order, with the file each one finishes with and the state file it keeps meanwhile.
struct Phase {
  std::string name, args;
  fs::path output, state;
};

std::vector<Phase> phases(const fs::path& cfg, const fs::path& w) {
  const std::string common = " -c " + cfg.string() + " -w " + w.string();
  return {{"train-base", "train-base" + common, w / "base" / "model.pt", w / "base" / "state.json"},
          {"train-rdlms", "train-rdlms" + common, w / "rdlms" / "rdlm-02" / "model.pt",
           w / "rdlms" / "rdlm-00" / "state.json"},
          {"adapt", "adapt --strategy 1" + common, w / "adapt-1" / "model.pt", w / "adapt-1" / "state.json"}};
}

// The trace without its timing field, to compare two runs.
std::string trace_without_seconds(const fs::path& p) {
  std::ifstream in(p);
  std::string line, out;
  while (std::getline(in, line)) {
    auto j = json::parse(line);
    j.erase("seconds");
    out += j.dump() + "\n";
  }
  return out;
}

// One uninterrupted run of every phase, shared by the tests. ctest runs every test in a process of
// its own, so the run is kept in the temp directory under a name made of the binary's size and
// modification time and the config, and made by whichever test needs it first: the others wait on
// an flock and then read it (nothing writes into it). A rebuilt binary gets a fresh one.
const fs::path& reference_run() {
  static fs::path dir = [] {
    const fs::path bin(APRICOT_BINARY);
    const std::string id = std::string(kConfig) + "|" + std::to_string(fs::file_size(bin)) + "|" +
                           std::to_string(fs::last_write_time(bin).time_since_epoch().count());
    char name[64];
    std::snprintf(name, sizeof name, "apricot-rel-ref-%u-%016zx", static_cast<unsigned>(::getuid()),
                  std::hash<std::string>{}(id));
    const fs::path d = fs::temp_directory_path() / name;
    const int fd = ::open((d.string() + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0) << "cannot open the lock of " << d;
    if (fd >= 0) ::flock(fd, LOCK_EX);
    if (!fs::exists(d / "complete")) {
      fs::remove_all(d);
      fs::create_directories(d);
      auto cfg = write_config(d);
      bool ok = true;
      for (const auto& ph : phases(cfg, d / "w")) {
        auto r = run_apricot(ph.args + " --log-level warn");
        EXPECT_EQ(r.code, 0) << ph.name << ": " << r.err;
        ok = ok && r.code == 0;
      }
      if (ok) std::ofstream(d / "complete") << "every phase ran\n";
    }
    if (fd >= 0) ::close(fd);  // releases the lock
    return d;
  }();
  return dir;
}

// Copies the reference run's finished phases (e.g. "base", "rdlms") into dir/w.
void copy_phases(const fs::path& dir, std::initializer_list<const char*> phases) {
  fs::create_directories(dir / "w");
  for (const char* ph : phases) fs::copy(reference_run() / "w" / ph, dir / "w" / ph, fs::copy_options::recursive);
}

}  // namespace

TEST(Reliability, SameSeedGivesBitwiseIdenticalCheckpoints) {
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-twice");
  auto cfg = write_config(d);
  for (const auto& ph : phases(cfg, d / "w")) {
    auto r = run_apricot(ph.args + " --log-level warn");
    ASSERT_EQ(r.code, 0) << ph.name << ": " << r.err;
  }
  for (const char* f : {"base/model.pt", "rdlms/rdlm-00/model.pt", "rdlms/rdlm-02/model.pt", "adapt-1/model.pt"})
    EXPECT_TRUE(file_bytes(d / "w" / f) == file_bytes(ref / "w" / f)) << f;
  EXPECT_EQ(trace_without_seconds(d / "w" / "adapt-1" / "trace.jsonl"),
            trace_without_seconds(ref / "w" / "adapt-1" / "trace.jsonl"));
}

TEST(Reliability, KilledAtRandomMomentsEachPhaseResumesToIdenticalWeights) {
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-kill");
  auto cfg = write_config(d);
  std::mt19937 rng(2026);
  // Within 150 ms of a state: the phases of kConfig take 0.2-0.6 s on 2 cores (adaptation 0.5 s since
  // evaluation got faster), so a later kill often found the phase finished and it could not resume.
  std::uniform_int_distribution<int> delay_ms(0, 150);
  int kills = 0, resumes = 0;
  for (const auto& ph : phases(cfg, d / "w")) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const auto started = fs::file_time_type::clock::now();
      auto c = spawn_apricot(ph.args, d, ph.name + "-" + std::to_string(attempt));
      int code = -1;
      // Kill only once this very run has saved a state (so it has also resumed from the previous
      // one, if any), at a random moment after that.
      if (!wait_for_file(c, ph.state, &code, started)) {
        if (code < 0) code = wait_exit(c);
        ASSERT_EQ(code, 0) << ph.name << " ended before saving state: " << slurp(c.err.string());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      ::kill(c.pid, SIGKILL);
      code = wait_exit(c);
      if (code == 128 + SIGKILL) ++kills;
      if (slurp(c.err.string()).find("resuming from saved state") != std::string::npos) ++resumes;
    }
    auto r = run_apricot(ph.args);
    ASSERT_EQ(r.code, 0) << ph.name << ": " << r.err;
    if (r.err.find("resuming from saved state") != std::string::npos) ++resumes;
    EXPECT_TRUE(file_bytes(ph.output) == file_bytes(ref / "w" / fs::relative(ph.output, d / "w")))
        << ph.name << " resumed after kills differs from the uninterrupted run";
    EXPECT_FALSE(fs::exists(ph.state)) << "state is removed once the output is safe: " << ph.state;
  }
  EXPECT_GE(kills, 3) << "the test must actually kill phases mid-run";
  EXPECT_GE(resumes, 3) << "the phases must actually resume from saved state";
  for (const char* f : {"base/model.pt", "rdlms/rdlm-00/model.pt", "rdlms/rdlm-01/model.pt", "rdlms/rdlm-02/model.pt"})
    EXPECT_TRUE(file_bytes(d / "w" / f) == file_bytes(ref / "w" / f)) << f;
  EXPECT_EQ(trace_without_seconds(d / "w" / "adapt-1" / "trace.jsonl"),
            trace_without_seconds(ref / "w" / "adapt-1" / "trace.jsonl"));
  auto a = json::parse(slurp((d / "w" / "adapt-1" / "result.json").string()));
  auto b = json::parse(slurp((ref / "w" / "adapt-1" / "result.json").string()));
  for (const char* k : {"final", "accepted", "batches", "failing_inputs", "adjusted_inputs", "retrains"})
    EXPECT_EQ(a[k], b[k]) << k;
}

TEST(Reliability, SigtermAndSigintSaveStateAndExit130) {
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-signal");
  auto cfg = write_config(d);
  auto ph = phases(cfg, d / "w");
  int signals[] = {SIGTERM, SIGINT, SIGTERM};
  for (size_t i = 0; i < ph.size(); ++i) {
    auto c = spawn_apricot(ph[i].args, d, ph[i].name);
    int code = -1;
    ASSERT_TRUE(wait_for_file(c, ph[i].state, &code)) << ph[i].name << ": " << slurp(c.err.string());
    ::kill(c.pid, signals[i]);
    code = wait_exit(c);
    auto err = slurp(c.err.string());
    EXPECT_EQ(code, exit_status(ExitCode::kInterrupted)) << ph[i].name << ": " << err;
    EXPECT_NE(err.find("state saved to"), std::string::npos) << err;
    EXPECT_NE(err.find("rerun the same"), std::string::npos) << err;
    EXPECT_NE(err.find(signals[i] == SIGINT ? "SIGINT" : "SIGTERM"), std::string::npos) << err;
    auto r = run_apricot(ph[i].args);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("resuming from saved state"), std::string::npos) << r.err;
    EXPECT_TRUE(file_bytes(ph[i].output) == file_bytes(ref / "w" / fs::relative(ph[i].output, d / "w")))
        << ph[i].name;
  }
}

// The budget-matched control's training before its loop is a training like any other: SIGTERM during
// it saves its state (adapt-none-matched/start-state.*) and exits 130, and the rerun resumes it to the
// model and result of an uninterrupted run. Once the loop starts, the loop's state holds the start.
TEST(Reliability, MatchedControlsTrainingResumesAfterSigterm) {
  auto d = fresh_dir("rel-matched");
  copy_phases(d, {"base", "rdlms"});
  auto cfg = write_config(d);
  const fs::path w = d / "w";
  const std::string args = "adapt --strategy none-matched -c " + cfg.string() + " -w " + w.string();
  // The uninterrupted run, in a copy made before anything ran.
  const fs::path u = d / "u";
  fs::copy(w, u, fs::copy_options::recursive);
  auto r = run_apricot("adapt --strategy none-matched --log-level warn -c " + cfg.string() + " -w " + u.string());
  ASSERT_EQ(r.code, 0) << r.err;
  auto c = spawn_apricot(args, d, "matched");
  int code = -1;
  ASSERT_TRUE(wait_for_file(c, w / "adapt-none-matched" / "start-state.json", &code)) << slurp(c.err.string());
  ::kill(c.pid, SIGTERM);
  code = wait_exit(c);
  auto err = slurp(c.err.string());
  EXPECT_EQ(code, exit_status(ExitCode::kInterrupted)) << err;
  EXPECT_NE(err.find("budget-matched training"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(w / "adapt-none-matched" / "result.json"));
  r = run_apricot(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming from saved state"), std::string::npos) << r.err;
  EXPECT_TRUE(file_bytes(w / "adapt-none-matched" / "model.pt") == file_bytes(u / "adapt-none-matched" / "model.pt"));
  const auto a = json::parse(slurp((w / "adapt-none-matched" / "result.json").string()));
  const auto b = json::parse(slurp((u / "adapt-none-matched" / "result.json").string()));
  for (const char* key : {"final", "accepted", "images", "start", "batches"}) EXPECT_EQ(a[key], b[key]) << key;
  EXPECT_FALSE(fs::exists(w / "adapt-none-matched" / "start-state.json"));
  EXPECT_FALSE(fs::exists(w / "adapt-none-matched" / "start-state.pt"));
}

TEST(Reliability, CorruptStateIsRefusedNotLoaded) {
  auto d = fresh_dir("rel-corrupt");
  auto cfg = write_config(d);
  auto ph = phases(cfg, d / "w")[0];
  auto c = spawn_apricot(ph.args, d, "base");
  int code = -1;
  ASSERT_TRUE(wait_for_file(c, ph.state, &code));
  ::kill(c.pid, SIGTERM);
  ASSERT_EQ(wait_exit(c), exit_status(ExitCode::kInterrupted));
  auto meta = json::parse(slurp(ph.state.string()));
  auto archive = ph.state.parent_path() / meta["state"]["file"].get<std::string>();
  std::string bytes = file_bytes(archive);
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream(archive, std::ios::binary | std::ios::trunc) << bytes;
  auto r = run_apricot(ph.args);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("corrupt"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  std::ofstream(archive, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 3);
  r = run_apricot(ph.args);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  r = run_apricot(ph.args + " --force --log-level warn");  // the way out the hint names
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(Reliability, DiskFullExits3AndKeepsEarlierOutputs) {
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-full");
  fs::copy(ref / "w" / "base", d / "base", fs::copy_options::recursive);
  auto cfg = write_config(d);
  const std::string before = file_bytes(d / "base" / "model.pt");
  // A file-size limit makes every write past 64 KiB fail with EFBIG, as on a full disk.
  std::string cmd = "sh -c 'ulimit -f 64; trap \"\" XFSZ; exec " + apricot::test::apricot_command() + " train-base -c " +
                    cfg.string() + " -w " + d.string() + " --force' >" + (d / "out").string() + " 2>" +
                    (d / "err").string();
  int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  auto err = slurp((d / "err").string());
  EXPECT_EQ(WEXITSTATUS(status), exit_status(ExitCode::kData)) << err;
  EXPECT_NE(err.find("cannot write"), std::string::npos) << err;
  EXPECT_TRUE(file_bytes(d / "base" / "model.pt") == before) << "the earlier model must be intact";
  auto r = run_apricot("eval -c " + cfg.string() + " -w " + d.string() + " --json");
  EXPECT_EQ(r.code, 0) << r.err;
  for (const auto& e : fs::directory_iterator(d / "base"))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "stray temp file " << e.path();
}

TEST(Reliability, ConcurrentRdlmTrainersNeverTrainTheSameRdlmTwice) {
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-locks");
  auto cfg = write_config(d);
  copy_phases(d, {"base"});
  // A lock file left by a dead process must not block anyone.
  fs::create_directories(d / "w" / "rdlms" / "rdlm-01");
  std::ofstream(d / "w" / "rdlms" / "rdlm-01" / "lock") << "pid 999999 on nowhere\n";
  const std::string args = "train-rdlms -c " + cfg.string() + " -w " + (d / "w").string() + " --json";
  auto a = spawn_apricot(args, d, "a");
  auto b = spawn_apricot(args, d, "b");
  ASSERT_EQ(wait_exit(a), 0) << slurp(a.err.string());
  ASSERT_EQ(wait_exit(b), 0) << slurp(b.err.string());
  auto ja = json::parse(slurp(a.out.string())), jb = json::parse(slurp(b.out.string()));
  std::multiset<int> trained;
  for (auto& j : {ja, jb})
    for (int k : j["trained"]) trained.insert(k);
  EXPECT_EQ(trained, (std::multiset<int>{0, 1, 2})) << ja.dump() << "\n" << jb.dump();
  for (int k = 0; k < 3; ++k) {
    auto f = "rdlms/rdlm-0" + std::to_string(k) + "/model.pt";
    EXPECT_TRUE(file_bytes(d / "w" / f) == file_bytes(ref / "w" / f)) << f;
  }
  // A second adaptation of the same strategy in the same directory is refused while one runs. The first
  // is given no end of its own (the loop is fast enough to finish 45 batches before the second starts),
  // and is stopped with SIGTERM once the second has been refused.
  auto first = spawn_apricot("adapt --strategy 2 -c " + cfg.string() + " -w " + (d / "w").string() +
                                 " --set adapt.max_batches=100000000 --set adapt.passes=1000000",
                             d, "adapt");
  int code = -1;
  ASSERT_TRUE(wait_for_file(first, d / "w" / "adapt-2" / "state.json", &code)) << slurp(first.err.string());
  auto second = run_apricot("adapt --strategy 2 -c " + cfg.string() + " -w " + (d / "w").string());
  EXPECT_EQ(second.code, exit_status(ExitCode::kState)) << second.err;
  EXPECT_NE(second.err.find("is being adapted"), std::string::npos) << second.err;
  ::kill(first.pid, SIGTERM);
  EXPECT_EQ(wait_exit(first), exit_status(ExitCode::kInterrupted)) << slurp(first.err.string());
}

TEST(Reliability, DivergingLossNamesPhaseEpochAndStep) {
  auto d = fresh_dir("rel-nan");
  auto cfg = write_config(d);
  auto r = run_apricot("train-base -c " + cfg.string() + " -w " + (d / "w").string() + " --set train.lr=1e30");
  EXPECT_EQ(r.code, exit_status(ExitCode::kOther)) << r.err;
  EXPECT_NE(r.err.find("base: the loss is not finite at epoch 1, step"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("diverged"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d / "w" / "base" / "model.pt")) << "no model is written from a diverged run";
}

TEST(Adapt, TargetedRepairAdjustsOnlyOnThePairAndReportsItsErrors) {
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-target");
  auto cfg = write_config(d);
  copy_phases(d, {"base", "rdlms"});
  const std::string common = " -c " + cfg.string() + " -w " + (d / "w").string();
  // The base model's most frequent confusion on the test split is the pair to repair.
  auto base = run_apricot("eval --json" + common);
  ASSERT_EQ(base.code, 0) << base.err;
  auto conf = json::parse(base.out)["confusion"];
  int src = 0, dst = 1;
  for (int i = 0; i < static_cast<int>(conf.size()); ++i)
    for (int j = 0; j < static_cast<int>(conf.size()); ++j)
      if (i != j && conf[i][j].get<int64_t>() > conf[src][dst].get<int64_t>()) src = i, dst = j;
  const std::string pair = "[" + std::to_string(src) + "," + std::to_string(dst) + "]";
  auto r = run_apricot("adapt --strategy 1 --json --set adapt.target=" + pair + common);
  ASSERT_EQ(r.code, 0) << r.err;
  auto res = json::parse(slurp((d / "w" / "adapt-1" / "result.json").string()));
  ASSERT_TRUE(res.contains("target")) << res.dump();
  EXPECT_EQ(res["target"]["pair"], json::parse(pair));
  EXPECT_EQ(res["target"]["errors_before"]["test"], conf[src][dst]);
  auto after = run_apricot("eval --json -m " + (d / "w" / "adapt-1" / "model.pt").string() + common);
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(res["target"]["errors_after"]["test"], json::parse(after.out)["confusion"][src][dst]);
  // Only inputs of the pair count as failing, so far fewer than in an untargeted run.
  auto untargeted = json::parse(slurp((ref / "w" / "adapt-1" / "result.json").string()));
  EXPECT_LT(res["failing_inputs"].get<int64_t>(), untargeted["failing_inputs"].get<int64_t>());
  auto bad = run_apricot("adapt --strategy 1 --set adapt.target=[2,2]" + common);
  EXPECT_EQ(bad.code, exit_status(ExitCode::kUsage)) << bad.err;
  EXPECT_NE(bad.err.find("adapt.target"), std::string::npos) << bad.err;
  bad = run_apricot("adapt --strategy 1 --force --set adapt.target=[0,9]" + common);
  EXPECT_EQ(bad.code, exit_status(ExitCode::kUsage)) << bad.err;
  EXPECT_NE(bad.err.find("do not exist"), std::string::npos) << bad.err;
}

TEST(Reliability, AdaptationNeverAcceptsNonFiniteWeights) {
  auto d = fresh_dir("rel-adapt-nan");
  auto cfg = write_config(d);
  copy_phases(d, {"base", "rdlms"});
  // A step of 1e300 overflows every adjusted weight to +-inf (or NaN).
  auto r = run_apricot("adapt --strategy 2 -c " + cfg.string() + " -w " + (d / "w").string() +
                       " --set adapt.step=1e300 --set adapt.retrain_every=0 --set adapt.max_batches=10");
  ASSERT_EQ(r.code, 0) << r.err;
  auto res = json::parse(slurp((d / "w" / "adapt-2" / "result.json").string()));
  EXPECT_GT(res["rejected_nonfinite"].get<int64_t>(), 0) << res.dump();
  EXPECT_EQ(res["accepted"], 0);
  EXPECT_EQ(res["final"], res["base"]);
  auto m = apricot::load_checkpoint((d / "w" / "adapt-2" / "model.pt").string());
  for (const auto& p : m.model->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
}

TEST(Reliability, CorruptOrTruncatedCheckpointIsRefusedNotLoaded) {
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-corrupt-ckpt");
  auto cfg = write_config(d);
  copy_phases(d, {"base", "rdlms"});
  const std::string common = " -c " + cfg.string() + " -w " + (d / "w").string();
  const auto base = d / "w" / "base" / "model.pt";
  std::string bytes = file_bytes(base);
  bytes[bytes.size() - 100] ^= 0x01;  // one bit, inside the last tensor's data
  std::ofstream(base, std::ios::binary | std::ios::trunc) << bytes;
  auto r = run_apricot("eval" + common);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("CRC-32 does not match"), std::string::npos) << r.err;
  r = run_apricot("adapt --strategy 1" + common);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_FALSE(fs::exists(d / "w" / "adapt-1" / "result.json"));
  // A truncated rDLM stops the adaptation before anything is computed.
  std::ofstream(base, std::ios::binary | std::ios::trunc) << file_bytes(ref / "w" / "base" / "model.pt");
  const auto rdlm = d / "w" / "rdlms" / "rdlm-01" / "model.pt";
  std::string rb = file_bytes(rdlm);
  std::ofstream(rdlm, std::ios::binary | std::ios::trunc) << rb.substr(0, rb.size() / 2);
  r = run_apricot("adapt --strategy 1" + common);
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rdlm-01"), std::string::npos) << r.err;
}

TEST(Reliability, CheckpointMetadataWithOutOfRangeNumbersIsRefused) {
  // Found by fuzz_checkpoint_meta: a float where an integer belongs was converted without a range
  // check (undefined behaviour); a number beyond double's range escaped as a json exception.
  json meta = {{"format", "apricot-checkpoint"}, {"arch", "small"}, {"input", {1, 16, 16}}, {"classes", 4}};
  EXPECT_NO_THROW(apricot::spec_from_meta(meta, "model.json"));
  for (json bad : {json(1e300), json(4.5), json(-3), json(1), json(uint64_t{1} << 63)}) {
    json m = meta;
    m["classes"] = bad;
    try {
      apricot::spec_from_meta(m, "model.json");
      ADD_FAILURE() << "accepted classes " << bad.dump();
    } catch (const apricot::Error& e) {
      EXPECT_EQ(e.code(), apricot::ExitCode::kState);
    }
    if (bad == json(1)) continue;  // a valid height
    m = meta;
    m["input"][1] = bad;
    EXPECT_THROW(apricot::spec_from_meta(m, "model.json"), apricot::Error) << bad.dump();
  }
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-meta-range");
  fs::copy(ref / "w" / "base", d / "base", fs::copy_options::recursive);
  std::ofstream(d / "base" / "model.json", std::ios::trunc) << R"({"format": "apricot-checkpoint", "classes": 1e400})";
  auto r = run_apricot("eval -c " + write_config(d).string() + " -w " + d.string());
  EXPECT_EQ(r.code, exit_status(ExitCode::kState)) << r.err;
  EXPECT_NE(r.err.find("corrupt"), std::string::npos) << r.err;
}

TEST(Reliability, ParallelRdlmsMatchSequentialAndResumeAfterSigterm) {
  // Three rDLMs at once, one CPU thread each (the reference trained them one by one with one
  // thread): SIGTERM while all are mid-training saves each one's state; the rerun resumes them
  // and ends with the reference's weights, byte for byte.
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-parallel");
  auto cfg = write_config(d);
  copy_phases(d, {"base"});
  const std::string args = "train-rdlms -c " + cfg.string() + " -w " + (d / "w").string() + " --threads 3 --parallel 3";
  auto c = spawn_apricot(args, d, "parallel");
  int code = -1;
  for (const char* k : {"rdlm-00", "rdlm-01", "rdlm-02"})
    ASSERT_TRUE(wait_for_file(c, d / "w" / "rdlms" / k / "state.json", &code)) << slurp(c.err.string());
  ::kill(c.pid, SIGTERM);
  code = wait_exit(c);
  auto err = slurp(c.err.string());
  EXPECT_EQ(code, exit_status(ExitCode::kInterrupted)) << err;
  EXPECT_NE(err.find("up to 3 at once on cpu (1 CPU threads each)"), std::string::npos) << err;
  EXPECT_NE(err.find("state saved to"), std::string::npos) << err;
  auto r = run_apricot(args + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming from saved state"), std::string::npos) << r.err;
  EXPECT_FALSE(json::parse(r.out)["trained"].empty());  // one may have finished before the signal
  for (const char* k : {"rdlm-00", "rdlm-01", "rdlm-02"})
    EXPECT_TRUE(file_bytes(d / "w" / "rdlms" / k / "model.pt") == file_bytes(ref / "w" / "rdlms" / k / "model.pt")) << k;
  // A rerun with one rDLM left still gives it its share of the threads (one), not all of them.
  r = run_apricot(args + " --only 2 --force --log-level warn");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(file_bytes(d / "w" / "rdlms" / "rdlm-02" / "model.pt") ==
              file_bytes(ref / "w" / "rdlms" / "rdlm-02" / "model.pt"));
}

TEST(Reliability, ArmsAdaptedAtOnceMatchOneAtATime) {
  // Strategy 1 and the control arm at once, one CPU thread each: strategy 1 ends with the
  // reference's weights (adapted alone with one thread), byte for byte.
  const auto& ref = reference_run();
  auto d = fresh_dir("rel-arms");
  auto cfg = write_config(d);
  copy_phases(d, {"base", "rdlms"});
  auto r = run_apricot("adapt -c " + cfg.string() + " -w " + (d / "w").string() +
                       " --threads 2 --arms 2 --set 'adapt.strategies=[\"1\", \"none\"]' --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("adapting 2 arms, up to 2 at once on cpu (1 CPU threads each)"), std::string::npos) << r.err;
  auto all = json::parse(r.out);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]["strategy"], "1");
  EXPECT_EQ(all[1]["strategy"], "none");
  EXPECT_TRUE(file_bytes(d / "w" / "adapt-1" / "model.pt") == file_bytes(ref / "w" / "adapt-1" / "model.pt"));
  EXPECT_EQ(trace_without_seconds(d / "w" / "adapt-1" / "trace.jsonl"),
            trace_without_seconds(ref / "w" / "adapt-1" / "trace.jsonl"));
}

TEST(Reliability, TorchScriptModelResumesAfterSigkillAndTrainsRdlmsInParallel) {
  // The user's own module (the BatchNorm + Dropout fixture, so that running statistics and dropout
  // draws must be restored too) through every phase: once uninterrupted, with rDLMs one by one;
  // once with each phase killed (SIGKILL) after it saved a state and rerun, rDLMs two at once. Every
  // checkpoint, the adaptation trace and a TorchScript export must match byte for byte.
  auto d = fresh_dir("rel-ts");
  auto cfg = write_config(d);
  const std::string model = " --set model.arch=torchscript --set model.path=" + std::string(APRICOT_SOURCE_DIR) +
                            "/tests/fixtures/bn-dropout-1x16x16-4.pt --set train.epochs=4 --set rdlm.epochs=3"
                            " --set adapt.max_batches=60";
  for (const auto& ph : phases(cfg, d / "ref")) {
    auto r = run_apricot(ph.args + model + " --log-level warn");
    ASSERT_EQ(r.code, 0) << ph.name << ": " << r.err;
  }
  int kills = 0, resumes = 0;
  for (const auto& ph : phases(cfg, d / "w")) {
    const std::string args = ph.args + model + (ph.name == "train-rdlms" ? " --threads 2 --parallel 2" : "");
    auto c = spawn_apricot(args, d, ph.name);
    int code = -1;
    if (wait_for_file(c, ph.state, &code)) {
      std::this_thread::sleep_for(10ms);
      ::kill(c.pid, SIGKILL);
      kills += wait_exit(c) == 128 + SIGKILL;
    } else {
      if (code < 0) code = wait_exit(c);
      ASSERT_EQ(code, 0) << ph.name << " ended before saving state: " << slurp(c.err.string());
    }
    auto r = run_apricot(args);
    ASSERT_EQ(r.code, 0) << ph.name << ": " << r.err;
    resumes += r.err.find("resuming from saved state") != std::string::npos;
    if (ph.name == "train-rdlms") {
      EXPECT_NE(r.err.find("up to 2 at once on cpu (1 CPU threads each)"), std::string::npos) << r.err;
    }
  }
  EXPECT_GE(kills, 2) << "the test must actually kill phases mid-run";
  EXPECT_GE(resumes, 2) << "the killed phases must resume from their saved states, not start over";
  for (const char* f : {"base/model.pt", "rdlms/rdlm-00/model.pt", "rdlms/rdlm-01/model.pt", "rdlms/rdlm-02/model.pt",
                        "adapt-1/model.pt"})
    EXPECT_TRUE(file_bytes(d / "w" / f) == file_bytes(d / "ref" / f)) << f;
  EXPECT_EQ(trace_without_seconds(d / "w" / "adapt-1" / "trace.jsonl"),
            trace_without_seconds(d / "ref" / "adapt-1" / "trace.jsonl"));
  for (const char* run : {"w", "ref"}) {
    auto r = run_apricot("export -m " + (d / run / "adapt-1" / "model.pt").string() + " --format torchscript -o " +
                         (d / (std::string(run) + ".pt")).string());
    ASSERT_EQ(r.code, 0) << r.err;
  }
  EXPECT_TRUE(file_bytes(d / "w.pt") == file_bytes(d / "ref.pt")) << "the exported modules differ";
  fs::remove_all(d);
}
