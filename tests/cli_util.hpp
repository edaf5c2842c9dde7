// Runs the apricot binary as a process, as users and scripts do, capturing exit code and output.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
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

// `args` is appended to the binary path as shell words (callers quote paths they make).
inline ProcResult run_apricot(const std::string& args) { return run_shell(std::string(APRICOT_BINARY) + " " + args); }

}  // namespace apricot::test
