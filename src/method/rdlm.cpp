// rDLMs: subsets, training into WORKDIR/rdlms/rdlm-NN/, the Table IV summary, loading, and the
// memoised correctness table. Training reuses train_model with the base recipe and rdlm.epochs;
// sharding only filters indices, so several processes can fill one work directory.
#include "apricot/models/gated.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/method/recipe.hpp"

#include <spdlog/spdlog.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "apricot/io/checkpoint.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/io/resume.hpp"
#include "apricot/core/stats.hpp"
#include "apricot/train/train.hpp"
#include "apricot/io/workdir.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/models/state.hpp"
#include "apricot/core/seeds.hpp"

namespace apricot {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t rdlm_images(const Config& cfg) {
  const int64_t epochs = cfg.rdlm.init == "base" ? cfg.rdlm.finetune.epochs : cfg.rdlm.epochs;
  return cfg.rdlm.count * cfg.rdlm.size * epochs;
}

TrainConfig finetune_recipe(const Config& cfg) {
  const FinetuneConfig& f = cfg.rdlm.finetune;
  TrainConfig r = cfg.train;
  r.epochs = f.epochs;
  r.optimizer = f.optimizer;
  r.lr = f.lr;
  r.momentum = f.momentum;
  r.nesterov = false;
  use_constant_lr(r);
  return r;
}


torch::Tensor rdlm_subset(const RdlmConfig& cfg, const Split& train, int64_t classes, uint64_t seed, int64_t k) {
  const int64_t n = train.size();
  if (cfg.size > n)
    config_error("config key 'rdlm.size': " + std::to_string(cfg.size) + " exceeds the training split (" +
                     std::to_string(n) + " images)",
                 "choose rdlm.size <= " + std::to_string(n));
  if (cfg.layout == "sliding") {
    return (torch::arange(cfg.size, torch::kInt64) + k * cfg.stride).remainder(n);
  }
  auto gen = at::detail::createCPUGenerator(seeds::rdlm_subset(seed, k));
  if (cfg.layout == "random") {
    return std::get<0>(torch::randperm(n, gen, torch::kInt64).slice(0, 0, cfg.size).sort());
  }
  // balanced: equal count per class (the first size % classes classes get one more).
  std::vector<torch::Tensor> parts;
  for (int64_t c = 0; c < classes; ++c) {
    int64_t want = cfg.size / classes + (c < cfg.size % classes ? 1 : 0);
    auto rows = train.y.eq(c).nonzero().flatten();
    if (rows.size(0) < want)
      config_error("config key 'rdlm.size': balanced layout needs " + std::to_string(want) + " images of class " +
                       std::to_string(c) + ", the training split has " + std::to_string(rows.size(0)),
                   "lower rdlm.size or use layout sliding/random");
    parts.push_back(rows.index_select(0, torch::randperm(rows.size(0), gen, torch::kInt64).slice(0, 0, want)));
  }
  return std::get<0>(torch::cat(parts).sort());
}

std::vector<int64_t> parse_index_list(const std::string& text, int64_t count) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  auto bad = [&](const std::string& why) {
    config_error("index list '" + text + "': " + why, "write e.g. 3,5-7 with indices in 0.." + std::to_string(count - 1));
  };
  if (text.empty() || text.back() == ',') bad("empty item");
  while (std::getline(ss, item, ',')) {
    if (item.empty()) bad("empty item");
    auto dash = item.find('-');
    try {
      size_t used = 0;
      int64_t a = std::stoll(item.substr(0, dash), &used);
      if (used != (dash == std::string::npos ? item.size() : dash)) bad("'" + item + "' is not a number or range");
      int64_t b = a;
      if (dash != std::string::npos) {
        std::string rest = item.substr(dash + 1);
        b = std::stoll(rest, &used);
        if (used != rest.size()) bad("'" + item + "' is not a range");
      }
      if (a < 0 || b < a || b >= count) bad("'" + item + "' is out of range");
      for (int64_t i = a; i <= b; ++i) out.push_back(i);
    } catch (const std::logic_error&) {
      bad("'" + item + "' is not a number or range");
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

// The training recipe of rDLM k: the base recipe with rdlm.epochs (its schedule over those epochs, no
// early stopping), or, when the rDLMs are fine-tuned from the base, rdlm.finetune's constant learning
// rate and epochs with rDLM k's share of the diversity (its learning-rate factor and augmentation).
TrainOptions rdlm_train_options(const Config& cfg, int64_t k) {
  TrainOptions opts;
  opts.recipe = cfg.train;
  opts.recipe.epochs = cfg.rdlm.epochs;
  opts.recipe.patience = 0;  // every rDLM spends its whole budget (rdlm_images counts every epoch)
  if (cfg.rdlm.init == "base") {
    const FinetuneConfig& f = cfg.rdlm.finetune;
    opts.recipe = finetune_recipe(cfg);
    opts.recipe.lr *= f.lr_factors[static_cast<size_t>(k) % f.lr_factors.size()];
    const std::string& aug = f.augment[static_cast<size_t>(k) % f.augment.size()];
    if (aug != "train") {  // "none", "flip", "shift" (10 %, edge fill), "shift+flip"
      opts.recipe.augment = AugmentConfig{};
      if (aug == "flip" || aug == "shift+flip") opts.recipe.augment.flip = true;
      if (aug == "shift" || aug == "shift+flip") opts.recipe.augment.shift = 0.1;
    }
  }
  return opts;
}

json train_one(const Config& cfg, const Dataset& data, const std::string& workdir, const torch::Device& device,
               int64_t k, bool progress, const Split* device_train) {
  const ModelSpec spec = model_spec(cfg.model, data);
  const uint64_t seed = seeds::rdlm(cfg.seed, k);
  auto subset = rdlm_subset(cfg.rdlm, data.train, data.classes, cfg.seed, k);
  Net model;
  {  // initialisation draws from the process-wide generator, which concurrent rDLMs share
    std::lock_guard<std::mutex> lock(global_generator_mutex());
    torch::manual_seed(seed);
    model = make_model(spec);
  }
  const WorkDir wd(workdir);
  if (cfg.rdlm.init == "base-early") {
    auto early = wd.base_early();
    if (!checkpoint_exists(early))
      state_error("rdlm.init is base-early but '" + early + "' does not exist",
                  "run apricot train-base --force with this config (it keeps the copy after rdlm.init_epochs epochs)");
    auto e = load_checkpoint(early);
    check_compatible(e, spec, data.fingerprint, "base-early copy '" + early + "'");
    restore_state(*model, snapshot_state(*e.model));
  }
  std::string base_crc;
  if (cfg.rdlm.init == "base") {
    if (!checkpoint_exists(wd.base_model()))
      state_error("rdlm.init is base but there is no base model ('" + wd.base_model() + "' is missing)",
                  "train it first: apricot train-base -c CONFIG -w " + workdir);
    auto b = load_checkpoint(wd.base_model());
    check_compatible(b, spec, data.fingerprint, "base model '" + wd.base_model() + "'");
    refuse_gated(*b.model, "base model '" + wd.base_model() + "'", "training rDLMs from the base");
    restore_state(*model, snapshot_state(*b.model));
    base_crc = b.meta.at("weights").at("crc32").get<std::string>();
  }
  TrainOptions opts = rdlm_train_options(cfg, k);
  opts.label = WorkDir::rdlm_name(k);
  opts.progress = progress;
  const std::string state = wd.rdlm_state(k);
  opts.state_path = state;
  opts.state_every_epochs = cfg.resume.every_epochs;
  // Keys added since at their defaults dropped: a state saved by an earlier version still matches.
  json config = to_json(cfg);
  drop_added_defaults(config);
  json rdlm_recipe = config["rdlm"];
  // None of these changes rDLM k's weights.
  rdlm_recipe.erase("count"), rdlm_recipe.erase("parallel"), rdlm_recipe.erase("devices");
  opts.state_key = {{"phase", "rdlm"}, {"index", k}, {"seed", cfg.seed}, {"model", config["model"]},
                    {"train", config["train"]}, {"rdlm", rdlm_recipe}, {"data", data.fingerprint}};
  if (!base_crc.empty()) opts.state_key["base_crc32"] = base_crc;
  opts.resume_hint = "rerun the same train-rdlms command to resume it";
  opts.device_train = device_train;
  opts.on_epoch = [&](const EpochStats&, const std::vector<EpochStats>& history) {
    write_file_atomic(wd.rdlm_metrics(k), metrics_jsonl(history));
  };
  auto tr = train_model(*model, data, subset, opts, device, seed);
  const int64_t eb = cfg.train.eval_batch_size;
  auto sub_split = Split{data.train.x.index_select(0, subset), data.train.y.index_select(0, subset)};
  json m = {{"subset_acc", accuracy(*model, sub_split, data.norm, device, eb)},
            {"val_acc", accuracy(*model, data.val, data.norm, device, eb)},
            {"test_acc", accuracy(*model, data.test, data.norm, device, eb)},
            {"best_epoch", tr.best_epoch},
            {"epochs_run", static_cast<int64_t>(tr.history.size())},
            {"stopped_early", tr.stopped_early},
            {"train_seconds", tr.seconds}};
  json meta = checkpoint_meta(spec, data, "rdlm", seed, cfg);
  meta["index"] = k;
  meta["subset"] = {{"layout", cfg.rdlm.layout}, {"size", cfg.rdlm.size}, {"stride", cfg.rdlm.stride},
                    {"first", subset[0].item<int64_t>()}, {"init", cfg.rdlm.init}};
  if (!base_crc.empty()) meta["subset"]["base_crc32"] = base_crc;  // the base it was fine-tuned from
  meta["images"] = rdlm_images(cfg) / cfg.rdlm.count;
  meta["metrics"] = m;
  save_checkpoint(wd.rdlm_model(k), *model, meta);
  remove_state(state);
  std::error_code ec;  // the correctness table describes the old rDLM set
  fs::remove(wd.correctness_cache(), ec);
  fs::remove(wd.correctness_cache() + ".json", ec);
  spdlog::info("{}: subset {:.2f}%  val {:.2f}%  test {:.2f}%  ({:.1f}s)", opts.label,
               100 * m["subset_acc"].get<double>(), 100 * m["val_acc"].get<double>(), 100 * m["test_acc"].get<double>(), tr.seconds);
  return m;
}

// A fine-tuned rDLM belongs to the base it started from: refuse one made from another base.
void require_same_base(const json& meta, const std::string& workdir, int64_t k, const std::string& pt) {
  const WorkDir wd(workdir);
  std::string now;
  try {
    now = json::parse(read_file(meta_path_for(wd.base_model()))).at("weights").at("crc32").get<std::string>();
  } catch (const std::exception&) {
    return;  // no readable base: fine-tuning would say so
  }
  const json then = meta.value("subset", json::object()).value("base_crc32", json());
  if (then == json(now)) return;
  state_error("rDLM " + std::to_string(k) + " ('" + pt + "') was fine-tuned from another base model",
              "rerun train-rdlms with --force to fine-tune the rDLMs from the current base");
}

// summary.json's {mean, std}, with 0 rather than NaN where there are too few rDLMs (as it always was).
json mean_std_json(const std::vector<double>& v) {
  const MeanStd ms = mean_std(v);
  return {{"mean", ms.n == 0 ? 0.0 : ms.mean}, {"std", ms.n < 2 ? 0.0 : ms.std}};
}

}  // namespace

void require_rdlms_of_base(const Config& cfg, const std::string& workdir) {
  const WorkDir wd(workdir);
  for (int64_t k = 0; k < cfg.rdlm.count; ++k) {
    const std::string pt = wd.rdlm_model(k);
    json meta;
    try {
      meta = json::parse(read_file(meta_path_for(pt)));
    } catch (const std::exception&) {
      continue;  // missing or unreadable: loading the rDLMs says so
    }
    require_same_base(meta, workdir, k, pt);
  }
}

namespace {

// What became of each requested rDLM; workers append from several threads.
struct RdlmOutcome {
  json trained = json::array(), skipped = json::array(), busy = json::array();
  std::mutex mutex;
  void add(json& list, int64_t k) {
    std::lock_guard<std::mutex> g(mutex);
    list.push_back(k);
  }
};

// An existing rDLM must fit this run: the same arch, data, recipe (and base, when fine-tuned from it).
void require_up_to_date(const Config& cfg, const Dataset& data, const ModelSpec& spec, const std::string& workdir,
                        int64_t k) {
  const std::string pt = WorkDir(workdir).rdlm_model(k);
  auto m = load_checkpoint(pt);
  check_compatible(m, spec, data.fingerprint, "rDLM " + std::to_string(k) + " ('" + pt + "')");
  require_same_recipe(m.meta, cfg, "rDLM " + std::to_string(k) + " ('" + pt + "')", Phase::kRdlm);
  if (cfg.rdlm.init == "base") require_same_base(m.meta, workdir, k, pt);
}

// The rDLMs of this shard still to train; the others (already trained, checked up to date) are skipped.
std::vector<int64_t> rdlms_to_train(const Config& cfg, const Dataset& data, const ModelSpec& spec,
                                    const std::string& workdir, const RdlmTrainRequest& req, RdlmOutcome& out) {
  std::vector<int64_t> wanted = req.only;
  if (wanted.empty())
    for (int64_t k = 0; k < cfg.rdlm.count; ++k) wanted.push_back(k);
  std::vector<int64_t> todo;
  for (int64_t k : wanted) {
    if (k % req.shard_count != req.shard_index) continue;
    if (!req.force && checkpoint_exists(WorkDir(workdir).rdlm_model(k))) {
      require_up_to_date(cfg, data, spec, workdir, k);
      // A run killed between writing the model and removing its state leaves the state behind.
      remove_state(WorkDir(workdir).rdlm_state(k));
      out.add(out.skipped, k);
      continue;
    }
    todo.push_back(k);
  }
  return todo;
}

// Concurrent rDLMs on a GPU share one copy of the training images per device (none on the CPU, or
// one at a time).
std::vector<Split> shared_training_images(const Dataset& data, const std::vector<torch::Device>& devices,
                                          const ParallelPlan& plan, size_t todo) {
  std::vector<Split> on_device(devices.size());
  if (plan.workers <= 1 || todo == 0) return on_device;
  for (size_t d = 0; d < devices.size(); ++d)
    if (!devices[d].is_cpu()) on_device[d] = Split{data.train.x.to(devices[d]), data.train.y.to(devices[d])};
  std::string where;
  for (size_t d = 0; d < devices.size(); ++d) where += (d ? ", " : "") + devices[d].str();
  spdlog::info("training {} rDLMs, up to {} at once on {} ({} CPU threads each)", todo, plan.workers, where,
               plan.threads_per_worker);
  return on_device;
}

// summary.json once every rDLM exists: kept when nothing was trained and it is there, else written.
json summary_when_complete(const Config& cfg, const Dataset& data, const std::string& workdir,
                           const torch::Device& device, bool trained_any) {
  bool all = true;
  for (int64_t k = 0; k < cfg.rdlm.count; ++k) all = all && checkpoint_exists(WorkDir(workdir).rdlm_model(k));
  if (!all) {
    spdlog::info("not all {} rDLMs exist yet; summary.json is written when the last one is trained", cfg.rdlm.count);
    return nullptr;
  }
  const std::string summary_path = WorkDir(workdir).rdlm_summary();
  if (!trained_any && fs::exists(summary_path)) {
    try {  // nothing changed: the summary on disk stands (unless it is unreadable or null)
      json on_disk = json::parse(read_file(summary_path));
      if (!on_disk.is_null()) return on_disk;
    } catch (const json::exception&) {
    }
  }
  json summary = rdlm_summary(cfg, data, workdir, device);
  write_json_atomic(summary_path, summary);
  return summary;
}

}  // namespace

json train_rdlms(const Config& cfg, const Dataset& data, const std::string& workdir, const torch::Device& device,
                 const RdlmTrainRequest& req) {
  const ModelSpec spec = model_spec(cfg.model, data);
  RdlmOutcome out;
  const std::vector<int64_t> todo = rdlms_to_train(cfg, data, spec, workdir, req, out);
  const std::vector<torch::Device> devices = cfg.rdlm.devices.empty() ? std::vector<torch::Device>{device}
                                                                      : resolve_devices(cfg.rdlm.devices);
  const ParallelPlan plan = make_parallel_plan(cfg.rdlm.parallel, devices, torch::get_num_threads());
  const std::vector<Split> on_device = shared_training_images(data, devices, plan, todo.size());
  auto job = [&](int64_t k, const torch::Device& dev) {
    // One process per rDLM: others sharing the work directory skip it while the lock is held.
    FileLock lock;
    if (!lock.try_lock(WorkDir(workdir).rdlm_lock(k))) {
      spdlog::info("{} is being trained by {}; skipped", WorkDir::rdlm_name(k), lock.holder());
      out.add(out.busy, k);
      return;
    }
    if (!req.force && checkpoint_exists(WorkDir(workdir).rdlm_model(k))) {  // finished by another process meanwhile
      require_up_to_date(cfg, data, spec, workdir, k);
      out.add(out.skipped, k);
      return;
    }
    if (req.force) remove_state(WorkDir(workdir).rdlm_state(k));
    const size_t d = std::find(devices.begin(), devices.end(), dev) - devices.begin();
    const Split* shared = d < on_device.size() && on_device[d].x.defined() ? &on_device[d] : nullptr;
    train_one(cfg, data, workdir, dev, k, req.progress && plan.workers <= 1, shared);
    out.add(out.trained, k);
  };
  run_parallel(todo, plan, job);
  for (json* list : {&out.trained, &out.skipped, &out.busy}) std::sort(list->begin(), list->end());
  if (!out.skipped.empty()) spdlog::info("rDLMs already trained, skipped: {}", out.skipped.dump());
  json summary = summary_when_complete(cfg, data, workdir, device, !out.trained.empty());
  return {{"trained", out.trained}, {"skipped", out.skipped}, {"busy", out.busy}, {"summary", summary}};
}

json rdlm_summary(const Config& cfg, const Dataset& data, const std::string& workdir, const torch::Device& device) {
  const ModelSpec spec = model_spec(cfg.model, data);
  auto models = load_rdlms(cfg, spec, data.fingerprint, workdir, device);
  const int64_t eb = cfg.train.eval_batch_size;
  json per = json::array();
  std::vector<double> tr, va, te;
  auto covered = torch::zeros({data.train.size()}, torch::kBool);
  auto test_any_right = torch::zeros({data.test.size()}, torch::kBool);
  for (int64_t k = 0; k < cfg.rdlm.count; ++k) {
    const std::string mpath = meta_path_for(WorkDir(workdir).rdlm_model(k));
    json meta;
    double sa = 0, v = 0, t = 0;
    try {  // the weights passed their checksum; the metadata beside them must be whole too
      meta = json::parse(read_file(mpath));
      const json& m = meta.at("metrics");
      sa = m.at("subset_acc").get<double>(), v = m.at("val_acc").get<double>(), t = m.at("test_acc").get<double>();
    } catch (const json::exception& e) {
      state_error("rDLM metadata '" + mpath + "' is corrupt: " + e.what(),
                  "retrain it with train-rdlms --force --only " + std::to_string(k));
    }
    tr.push_back(sa), va.push_back(v), te.push_back(t);
    per.push_back({{"index", k}, {"subset", meta.value("subset", json())}, {"subset_acc", sa}, {"val_acc", v},
                   {"test_acc", t}});
    covered.index_fill_(0, rdlm_subset(cfg.rdlm, data.train, data.classes, cfg.seed, k), true);
    test_any_right |= predict(*models[k], data.test.x, data.norm, device, eb).eq(data.test.y);
  }
  json s = {{"count", cfg.rdlm.count},
            {"layout", cfg.rdlm.layout},
            {"size", cfg.rdlm.size},
            {"init", cfg.rdlm.init},
            {"rdlms", per},
            {"subset_acc", mean_std_json(tr)},
            {"val_acc", mean_std_json(va)},
            {"test_acc", mean_std_json(te)},
            {"coverage", covered.to(torch::kFloat64).mean().item<double>()},
            {"uncovered_train_images", (~covered).sum().item<int64_t>()}};
  auto base_pt = WorkDir(workdir).base_model();
  if (checkpoint_exists(base_pt)) {
    auto base = load_checkpoint(base_pt);
    base.model->to(device);
    auto base_wrong = predict(*base.model, data.test.x, data.norm, device, eb).ne(data.test.y);
    int64_t wrong = base_wrong.sum().item<int64_t>();
    int64_t fixable = (base_wrong & test_any_right).sum().item<int64_t>();
    s["base_test_failures"] = wrong;
    s["base_failures_some_rdlm_right"] = fixable;
    s["base_failures_some_rdlm_right_share"] = wrong ? static_cast<double>(fixable) / wrong : 0.0;
  }
  return s;
}

std::vector<Net> load_rdlms(const Config& cfg, const ModelSpec& spec, const std::string& fingerprint,
                            const std::string& workdir, const torch::Device& device) {
  std::vector<int64_t> missing;
  for (int64_t k = 0; k < cfg.rdlm.count; ++k)
    if (!checkpoint_exists(WorkDir(workdir).rdlm_model(k))) missing.push_back(k);
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size(); ++i) {
      if (i) list += ',';
      list += std::to_string(missing[i]);
    }
    state_error(std::to_string(missing.size()) + " of " + std::to_string(cfg.rdlm.count) + " rDLMs are missing in '" +
                    workdir + "/rdlms' (indices " + list + ")",
                "train them with: apricot train-rdlms -c CONFIG -w " + workdir + " (or --only " + list + ")");
  }
  std::vector<Net> out;
  for (int64_t k = 0; k < cfg.rdlm.count; ++k) {
    auto pt = WorkDir(workdir).rdlm_model(k);
    auto m = load_checkpoint(pt);
    check_compatible(m, spec, fingerprint, "rDLM " + std::to_string(k) + " ('" + pt + "')");
    m.model->to(device);
    m.model->eval();
    out.push_back(m.model);
  }
  return out;
}

std::vector<std::string> rdlm_checksums(const std::string& workdir, int64_t count) {
  std::vector<std::string> out;
  for (int64_t k = 0; k < count; ++k) {
    auto path = meta_path_for(WorkDir(workdir).rdlm_model(k));
    try {
      out.push_back(json::parse(read_file(path)).at("weights").at("crc32").get<std::string>());
    } catch (const json::exception& e) {
      state_error("rDLM metadata '" + path + "' is corrupt: " + e.what(), "retrain it with train-rdlms --force --only " +
                                                                              std::to_string(k));
    }
  }
  return out;
}

CorrectnessCache::CorrectnessCache(std::vector<Net> rdlms, const Split& train, const Normalizer& norm,
                                   torch::Device device, std::string path, const std::string& fingerprint,
                                   std::vector<std::string> rdlm_ids)
    : rdlms_(std::move(rdlms)), train_(train), norm_(norm), device_(device), path_(std::move(path)),
      fingerprint_(fingerprint), rdlm_ids_(std::move(rdlm_ids)) {
  const int64_t n = static_cast<int64_t>(rdlms_.size());
  table_ = torch::full({train_.size(), n}, -1, torch::kInt8);
  auto meta_path = path_ + ".json";
  if (fs::exists(path_) && fs::exists(meta_path)) {
    try {
      auto meta = json::parse(read_file(meta_path));
      if (meta.value("fingerprint", "") == fingerprint_ && meta.value("rdlms", -1) == n &&
          meta.value("rows", -1) == train_.size() &&
          meta.value("rdlm_crc32", std::vector<std::string>{}) == rdlm_ids_) {
        torch::Tensor t;
        std::istringstream is(read_file(path_));
        torch::load(t, is);
        if (t.sizes() == table_.sizes() && t.dtype() == torch::kInt8) table_ = t;
      } else {
        spdlog::info("correctness cache '{}' is for other data or rDLMs; starting a new one", path_);
      }
    } catch (const std::exception& e) {
      spdlog::warn("correctness cache '{}' unreadable ({}); starting a new one", path_, e.what());
    }
  }
}

namespace {
const Normalizer& dummy_normalizer() {  // a known table never normalises images
  static const Normalizer none;
  return none;
}
}  // namespace

CorrectnessCache::CorrectnessCache(torch::Tensor known, const Split& train)
    : train_(train), norm_(dummy_normalizer()), device_(torch::kCPU) {
  TORCH_CHECK(known.dim() == 2 && known.size(0) == train.size(), "a correctness table has a row per training image");
  table_ = known.to(torch::kInt8).contiguous();
  TORCH_CHECK(table_.ge(0).all().item<bool>(), "a known correctness table has no unknown (-1) entries");
}

int64_t CorrectnessCache::known() const { return table_.ge(0).sum().item<int64_t>(); }

torch::Tensor CorrectnessCache::rows(const torch::Tensor& idx) {
  auto sub = table_.index_select(0, idx);  // (F, n)
  auto unknown_rows = sub.lt(0).any(1).nonzero().flatten();
  if (unknown_rows.size(0) > 0) {
    auto need = idx.index_select(0, unknown_rows);  // training rows to predict
    auto x = train_.x.index_select(0, need);
    auto y = train_.y.index_select(0, need);
    std::vector<torch::Tensor> cols;
    for (auto& m : rdlms_) cols.push_back(predict(*m, x, norm_, device_, 1024).eq(y));
    auto right = torch::stack(cols, 1).to(torch::kInt8);  // (U, n)
    table_.index_copy_(0, need, right);
    predicted_ += right.numel();
    dirty_ = true;
    sub = table_.index_select(0, idx);
  }
  return sub.eq(1);
}

void CorrectnessCache::save() const {
  if (!dirty_ || path_.empty()) return;
  std::ostringstream os;
  torch::save(table_, os);
  write_file_atomic(path_, os.str());
  write_json_atomic(path_ + ".json", {{"fingerprint", fingerprint_},
                                      {"rdlms", static_cast<int64_t>(rdlms_.size())},
                                      {"rows", train_.size()},
                                      {"rdlm_crc32", rdlm_ids_},
                                      {"known", known()}});
  dirty_ = false;
}

}  // namespace apricot
