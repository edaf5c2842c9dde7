// `apricot train-rdlms`: trains the reduced models (all, --only a list, or one --shard of a job
// array) into WORKDIR/rdlms/, skipping those already trained, and writes the summary when complete.
#include <spdlog/spdlog.h>

#include "apricot/core/errors.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/method/rdlm.hpp"
#include "common.hpp"

namespace apricot::cli {

namespace {

struct RdlmsOptions {
  CommonOptions common;
  std::string shard;  // I/K
  std::string only;   // 3,5-7
};

int run_train_rdlms(const RdlmsOptions& o) {
  Session s = open_session(o.common, /*write_config=*/true);
  resolve_devices(s.cfg.rdlm.devices);  // fail before any data is loaded
  RdlmTrainRequest req;
  req.force = o.common.force;
  if (!o.only.empty()) req.only = parse_index_list(o.only, s.cfg.rdlm.count);
  if (!o.shard.empty()) {
    auto slash = o.shard.find('/');
    try {
      if (slash == std::string::npos) throw std::invalid_argument("no slash");
      size_t used_i = 0, used_k = 0;
      std::string i_text = o.shard.substr(0, slash), k_text = o.shard.substr(slash + 1);
      req.shard_index = std::stoll(i_text, &used_i);
      req.shard_count = std::stoll(k_text, &used_k);
      if (used_i != i_text.size() || used_k != k_text.size()) throw std::invalid_argument("trailing text");
    } catch (const std::exception&) {
      req.shard_count = 0;
    }
    if (req.shard_count < 1 || req.shard_index < 0 || req.shard_index >= req.shard_count)
      config_error("--shard '" + o.shard + "' is not I/K with 0 <= I < K", "for example --shard 0/4 ... --shard 3/4");
  }
  Dataset data = load_dataset(s.cfg.data, s.cfg.seed);
  auto out = train_rdlms(s.cfg, data, s.workdir, s.device, req);
  if (!out["summary"].is_null()) {
    const auto& sm = out["summary"];
    spdlog::info("rDLMs: test accuracy {:.2f}% +- {:.2f}%, training-set coverage {:.2f}%{}",
                 100 * sm["test_acc"]["mean"].get<double>(), 100 * sm["test_acc"]["std"].get<double>(),
                 100 * sm["coverage"].get<double>(),
                 sm.contains("base_failures_some_rdlm_right_share")
                     ? ", base test failures some rDLM gets right: " +
                           std::to_string(100 * sm["base_failures_some_rdlm_right_share"].get<double>()).substr(0, 5) +
                           "%"
                     : std::string());
  }
  if (o.common.json) print_json(out);
  return 0;
}

}  // namespace

CLI::App* setup_train_rdlms(CLI::App& app, Action& action) {
  auto o = std::make_shared<RdlmsOptions>();
  auto* sub = app.add_subcommand("train-rdlms", "train the reduced models (WORKDIR/rdlms/rdlm-NN/)");
  add_common_options(sub, o->common, /*with_force=*/true);
  add_rdlm_options(sub, o->common);
  sub->add_option("--shard", o->shard, "I/K: train only rDLMs with index % K == I (job arrays)");
  sub->add_option("--only", o->only, "train only these rDLMs, e.g. 3,5-7");
  sub->callback([o, &action] { action = [o] { return run_train_rdlms(*o); }; });
  return sub;
}

}  // namespace apricot::cli
