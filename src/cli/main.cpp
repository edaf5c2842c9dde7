// Entry point: registers the subcommands, parses, runs the chosen one, and maps every error to
// one message on stderr and the documented exit code (0 ok, 2 usage/config, 3 data/I-O,
// 4 checkpoint/state, 1 anything else).
#include <spdlog/spdlog.h>

#include <iostream>

#include "apricot/allocator.hpp"
#include "apricot/errors.hpp"
#include "common.hpp"

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
