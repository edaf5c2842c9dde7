// Common options and session set-up shared by the subcommands.
#include "common.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "apricot/core/device.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/pipeline/validate.hpp"

namespace apricot::cli {

namespace fs = std::filesystem;

void configure_logging(const std::string& level) {
  static bool made = false;
  if (!made) {
    auto logger = spdlog::stderr_color_mt("apricot");
    logger->set_pattern("%^[%H:%M:%S %l]%$ %v");
    spdlog::set_default_logger(logger);
    made = true;
  }
  spdlog::set_level(spdlog::level::from_str(level));
}

void add_common_options(CLI::App* sub, CommonOptions& o, bool with_force) {
  sub->add_option("-c,--config", o.config, "JSON config file (presets in configs/)")->check(CLI::ExistingFile);
  sub->add_option("--set", o.sets, "override a config key: --set train.epochs=5 (repeatable)");
  sub->add_option("-w,--workdir", o.workdir, "work directory for all outputs (config key workdir)");
  sub->add_option("--device", o.device, "auto | cpu | cuda | cuda:N");
  sub->add_option("--threads", o.threads, "CPU threads for LibTorch (0 = the CPUs this process may use: affinity mask, cgroup quota, SLURM_CPUS_PER_TASK)");
  sub->add_option("--seed", o.seed, "random seed (config key seed)");
  sub->add_option("--log-level", o.log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember(kLogLevels));
  sub->add_flag("--json", o.json, "print one JSON document on stdout");
  sub->add_flag("--deterministic", o.deterministic,
                "deterministic algorithms on CUDA too (config key deterministic; slower on a GPU)");
  if (with_force) sub->add_flag("--force", o.force, "recompute and overwrite outputs that already exist");
}

void add_rdlm_options(CLI::App* sub, CommonOptions& o) {
  sub->add_option("--parallel", o.parallel, "rDLMs trained at once (config key rdlm.parallel)");
  sub->add_option("--devices", o.devices,
                  "spread the rDLMs over these devices, e.g. cuda:0,cuda:1 (config key rdlm.devices)");
}

void add_arms_option(CLI::App* sub, CommonOptions& o) {
  sub->add_option("--arms", o.arms, "strategies adapted at once (config key adapt.parallel)");
}

Session open_session(const CommonOptions& o, bool write_config) {
  configure_logging(o.log_level);
  std::vector<std::string> sets = o.sets;
  auto quoted = [](const std::string& s) { return nlohmann::json(s).dump(); };
  if (!o.workdir.empty()) sets.push_back("workdir=" + quoted(o.workdir));
  if (!o.device.empty()) sets.push_back("device=" + quoted(o.device));
  if (!o.threads.empty()) sets.push_back("threads=" + o.threads);
  if (!o.seed.empty()) sets.push_back("seed=" + o.seed);
  if (o.deterministic) sets.push_back("deterministic=true");
  if (!o.parallel.empty()) sets.push_back("rdlm.parallel=" + o.parallel);
  if (!o.arms.empty()) sets.push_back("adapt.parallel=" + o.arms);
  if (!o.devices.empty()) sets.push_back("rdlm.devices=" + nlohmann::json(split_device_list(o.devices)).dump());
  Session s;
  s.cfg = load_config(o.config, sets);
  s.workdir = s.cfg.workdir;
  spdlog::info("apricot {} config: {}", APRICOT_VERSION, to_json(s.cfg).dump());
  s.device = resolve_device(s.cfg.device);
  setup_runtime(s.cfg.threads, s.cfg.seed, s.cfg.deterministic);
  spdlog::info("device {} | {} CPU threads | work directory {}", s.device.str(), torch::get_num_threads(),
               s.workdir);
  if (write_config) write_session_config(s);
  return s;
}

void make_workdir(const Session& s) {
  std::error_code ec;
  fs::create_directories(s.workdir, ec);
  if (ec || !fs::is_directory(s.workdir))
    data_error("work directory '" + s.workdir + "' cannot be created: " + ec.message(),
               "choose a writable location with --workdir");
}

void write_session_config(const Session& s) {
  make_workdir(s);
  write_json_atomic((fs::path(s.workdir) / "config.json").string(), to_json(s.cfg));
}

std::vector<int64_t> parse_input_shape(const std::string& text) {
  int64_t c = 0, h = 0, w = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%ld,%ld,%ld%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1)
    config_error("--input '" + text + "' is not C,H,W", "for example --input 3,32,32");
  return {c, h, w};
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

}  // namespace apricot::cli
