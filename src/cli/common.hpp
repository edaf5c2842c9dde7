// What every subcommand shares: the common options (--config, --set, --workdir, --device, --threads,
// --seed, --log-level, --json) and the session they open (effective config, device, work directory).
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <functional>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/models/model.hpp"

namespace apricot::cli {

struct CommonOptions {
  std::string config;              // JSON file
  std::vector<std::string> sets;   // key.path=value overrides
  std::string workdir;             // overrides config "workdir"
  std::string device;              // overrides config "device"
  std::string threads;             // overrides config "threads"
  std::string seed;                // overrides config "seed"
  std::string log_level = "info";  // trace | debug | info | warn | error | off
  bool json = false;               // one JSON document on stdout
  bool force = false;              // recompute outputs that exist
  bool deterministic = false;      // --deterministic
  std::string devices;             // --devices cuda:0,cuda:1 (config key rdlm.devices)
  std::string parallel;            // --parallel N (config key rdlm.parallel)
  std::string arms;                // --arms N (config key adapt.parallel)
};

// Valid --log-level values.
inline const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "off"};

// A subcommand registers itself and stores the function to run after parsing.
using Action = std::function<int()>;

void add_common_options(CLI::App* sub, CommonOptions& o, bool with_force);
// --devices and --parallel, for the subcommands that train rDLMs.
void add_rdlm_options(CLI::App* sub, CommonOptions& o);
// --arms, for the subcommands that adapt several strategies.
void add_arms_option(CLI::App* sub, CommonOptions& o);

struct Session {
  Config cfg;
  torch::Device device{torch::kCPU};
  std::string workdir;
};

// Loads and validates the config (defaults <- file <- --set <- dedicated flags), sets the log level,
// threads and seed, resolves the device, prints the effective config; when write_config, creates the
// work directory and writes WORKDIR/config.json.
Session open_session(const CommonOptions& o, bool write_config);
// Creates the work directory (Error kData when it cannot be); write_session_config also writes the
// effective config there as WORKDIR/config.json.
void make_workdir(const Session& s);
void write_session_config(const Session& s);

// Prints a JSON document on stdout (the only thing a --json run writes there).
void print_json(const nlohmann::json& j);

void configure_logging(const std::string& level);

// The --input option's "C,H,W" (three positive integers, nothing else); kUsage otherwise.
std::vector<int64_t> parse_input_shape(const std::string& text);

// The comparison table `run` prints, from run_pipeline's document (pipeline.hpp).
void print_results_table(const nlohmann::json& run);

CLI::App* setup_train_base(CLI::App& app, Action& action);
CLI::App* setup_train_rdlms(CLI::App& app, Action& action);
CLI::App* setup_adapt(CLI::App& app, Action& action);
CLI::App* setup_run(CLI::App& app, Action& action);
CLI::App* setup_bench(CLI::App& app, Action& action);
CLI::App* setup_eval(CLI::App& app, Action& action);
CLI::App* setup_models(CLI::App& app, Action& action);
CLI::App* setup_export(CLI::App& app, Action& action);
CLI::App* setup_import(CLI::App& app, Action& action);
CLI::App* setup_report(CLI::App& app, Action& action);
CLI::App* setup_sweep(CLI::App& app, Action& action);
CLI::App* setup_compare(CLI::App& app, Action& action);

}  // namespace apricot::cli
