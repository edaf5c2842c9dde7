// Runs the apricot binary as a process, as users and scripts do, capturing exit code and output.
#pragma once
#include <sys/wait.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>

#include "apricot/core/errors.hpp"

namespace apricot::test {

// Runs f in process: 0 when it returns, else the exit code of the apricot::Error it throws (with
// the message and hint in *message when given).
inline int exit_code_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = std::string(e.what()) + " | " + e.hint();
    return static_cast<int>(e.code());
  }
  return 0;
}

struct ProcResult {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::filesystem::path fresh_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("apricot-cli-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

// Runs `command` through the shell (stdin from /dev/null), capturing its exit code and output.
inline ProcResult run_shell(const std::string& command) {
  static int counter = 0;
  auto base = std::filesystem::temp_directory_path() /
              ("apricot-proc-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::string cmd = command + " >" + base.string() + ".out 2>" + base.string() + ".err </dev/null";
  int status = std::system(cmd.c_str());
  ProcResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(base.string() + ".out");
  r.err = slurp(base.string() + ".err");
  std::filesystem::remove(base.string() + ".out");
  std::filesystem::remove(base.string() + ".err");
  return r;
}

// Why a test that needs a GPU cannot run here, for its GTEST_SKIP message ("" where it can): the
// LibTorch this build links has no CUDA, or it has CUDA and this machine shows no CUDA device.
inline std::string why_no_cuda() {
  if (torch::cuda::is_available()) return "";
#ifdef APRICOT_TORCH_CUDA
  return std::string("needs a GPU: this build's LibTorch ") + TORCH_VERSION +
         " has CUDA, but this machine shows no CUDA device (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them)";
#else
  return std::string("needs a GPU: this build's LibTorch ") + TORCH_VERSION +
         " is CPU-only (build against a CUDA LibTorch: scripts/setup.sh --torch pip)";
#endif
}

// Whether the build's APRICOT_PYTHON imports a torch of this LibTorch's major.minor version: the
// tests that compare with PyTorch need the same release's kernels (an unpacked LibTorch archive's
// build may see Debian's python3-torch 1.13 there). Asked once per process.
inline bool python_has_this_torch() {
  static const bool ok =
      std::system((std::string(APRICOT_PYTHON) + " -c 'import sys, torch; sys.exit(torch.__version__.split(\".\")[:2] != [\"" +
                   std::to_string(TORCH_VERSION_MAJOR) + "\", \"" + std::to_string(TORCH_VERSION_MINOR) + "\"])' >/dev/null 2>&1")
                      .c_str()) == 0;
  return ok;
}

// The binary as the tests start it, on the CPU whatever the machine has: `device: auto` (the default)
// picks a GPU where there is one, and these tests expect CPU results (bitwise comparisons, CPU-only
// settings). An empty CUDA_VISIBLE_DEVICES hides every CUDA device from the child only; the CUDA
// tests of this process still see them.
inline std::string apricot_command() { return "env CUDA_VISIBLE_DEVICES= " APRICOT_BINARY; }

// `args` is appended to the binary path as shell words (callers quote paths they make).
// (Appended in place: GCC 12 warns, falsely, on `string&& + " "` in C++20 at -O3.)
inline ProcResult run_apricot(const std::string& args) {
  std::string command = apricot_command();
  command += ' ';
  command += args;
  return run_shell(command);
}

}  // namespace apricot::test
