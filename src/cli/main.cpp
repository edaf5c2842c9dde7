// Entry point: registers the subcommands, parses, runs the chosen one, and maps every error to
// one message on stderr and the documented exit code (0 ok, 2 usage/config, 3 data/I-O,
// 4 checkpoint/state, 1 anything else).
#include <alloca.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "apricot/core/allocator.hpp"
#include "apricot/core/errors.hpp"
#include "common.hpp"

namespace {

// OpenMP threads that reach a barrier first spin before they sleep (libgomp's default: 300,000
// rounds, GOMP_SPINCOUNT), which pays off only while every thread of the team has a CPU. Next to
// another CPU-bound process the team's last thread is often descheduled, and its teammates spin
// away the CPU it is waiting for, at every barrier of every op: throughput fell to a fraction of a
// fair share (docs/PERFORMANCE.md, "Shared machine"). OMP_WAIT_POLICY=PASSIVE makes a waiting
// thread sleep at once. libgomp reads it once, in its constructor, when it is loaded, so setenv()
// in main() comes too late (checked: GOMP_SPINCOUNT under OMP_DISPLAY_ENV=verbose stays 300000),
// and so does setenv() in a .preinit_array function: that runs before libc's own initialisation,
// which then resets `environ` to the original block. What works is to exec this program again with
// the variable added. Done here, in .preinit_array, the exec comes after the libraries are mapped
// but before any constructor runs (LibTorch's operator registration is most of its start-up), so
// it costs a fraction of a second once. Only glibc passes (argc, argv, envp) to these functions;
// without them, or if the exec fails (no /proc), the run goes on with libgomp's default. A user's
// own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone. No allocation: libc is not initialised yet.
void exec_with_passive_openmp(int /*argc*/, char** argv, char** envp) {
  if (argv == nullptr || envp == nullptr) return;
  size_t n = 0;
  for (; envp[n] != nullptr; ++n)
    if (std::strncmp(envp[n], "OMP_WAIT_POLICY=", 16) == 0 || std::strncmp(envp[n], "GOMP_SPINCOUNT=", 15) == 0)
      return;
  auto** env = static_cast<char**>(alloca((n + 2) * sizeof(char*)));
  std::memcpy(env, envp, n * sizeof(char*));
  static char passive[] = "OMP_WAIT_POLICY=PASSIVE";
  env[n] = passive;
  env[n + 1] = nullptr;
  ::execve("/proc/self/exe", argv, env);
}

// Run by the dynamic loader before every library's constructor (executables only).
__attribute__((section(".preinit_array"), used)) void (*const kExecWithPassiveOpenmp)(int, char**, char**) =
    &exec_with_passive_openmp;

}  // namespace

int main(int argc, char** argv) {
  using namespace apricot;
  retain_freed_memory();  // before any tensor: see allocator.hpp
  CLI::App app{"apricot: repair a trained image classifier by weight adaptation (Zhang & Chan, ASE 2019)",
               "apricot"};
  app.set_version_flag("--version", std::string("apricot ") + APRICOT_VERSION);
  app.require_subcommand(1);
  cli::Action action;
  cli::setup_run(app, action);
  cli::setup_train_base(app, action);
  cli::setup_train_rdlms(app, action);
  cli::setup_adapt(app, action);
  cli::setup_eval(app, action);
  cli::setup_compare(app, action);
  cli::setup_models(app, action);
  cli::setup_export(app, action);
  cli::setup_import(app, action);
  cli::setup_report(app, action);
  cli::setup_sweep(app, action);
  cli::setup_bench(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  try {
    return action();
  } catch (const Error& e) {
    cli::configure_logging("info");
    // An interruption is the user's request, not a failure: a warning, then how to go on.
    const auto level = e.code() == ExitCode::kInterrupted ? spdlog::level::warn : spdlog::level::err;
    spdlog::log(level, "{}", e.what());
    if (!e.hint().empty()) spdlog::log(level, "hint: {}", e.hint());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    spdlog::error("LibTorch error: {}", msg.substr(0, msg.find('\n')));
    return static_cast<int>(ExitCode::kOther);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return static_cast<int>(ExitCode::kOther);
  }
}
