// The training loop's resumable state (train.hpp): its scalars as JSON, and its state files.
#include "apricot/train/train.hpp"

#include "apricot/io/checkpoint.hpp"  // meta_path_for
#include "apricot/io/resume.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

namespace apricot {

using nlohmann::json;

namespace {
constexpr const char* kFormat = "apricot-train-state-2";
}  // namespace

void to_json(json& j, const EpochStats& e) {
  j = {{"epoch", e.epoch}, {"steps", e.steps}, {"lr", e.lr}, {"loss", e.loss}, {"train_acc", e.train_acc},
       {"val_acc", e.val_acc}, {"seconds", e.seconds}, {"images_per_s", e.images_per_s}};
}

void from_json(const json& j, EpochStats& e) {
  j.at("epoch").get_to(e.epoch), j.at("steps").get_to(e.steps), j.at("lr").get_to(e.lr), j.at("loss").get_to(e.loss);
  j.at("train_acc").get_to(e.train_acc), j.at("val_acc").get_to(e.val_acc), j.at("seconds").get_to(e.seconds);
  j.at("images_per_s").get_to(e.images_per_s);
}

void to_json(json& j, const TrainState& s) {
  j = {{"epoch", s.epoch}, {"offset", s.offset}, {"steps", s.steps}, {"best_val_acc", s.best_val_acc},
       {"best_epoch", s.best_epoch}, {"history", s.history}, {"elapsed", s.elapsed}};
}

void from_json(const json& j, TrainState& s) {
  j.at("epoch").get_to(s.epoch), j.at("offset").get_to(s.offset), j.at("steps").get_to(s.steps);
  j.at("best_val_acc").get_to(s.best_val_acc), j.at("best_epoch").get_to(s.best_epoch);
  j.at("history").get_to(s.history), j.at("elapsed").get_to(s.elapsed);
}

void save_train_state(const std::string& pt_path, const json& key, const std::string& device, const TrainState& st,
                      const torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive a;
  write_module(a, "model", model);
  write_optimizer(a, "optimizer", optimizer);
  at::Generator gen = st.gen;
  write_generator(a, "gen", gen);
  write_tensors(a, "best", st.best);
  if (st.offset > 0) {  // mid-epoch: the epoch's permutation and running sums
    a.write("perm", st.perm);
    a.write("loss_sum", st.loss_sum.to(torch::kCPU));
    a.write("correct", st.correct.to(torch::kCPU));
  }
  save_state(pt_path, a, {{"format", kFormat}, {"key", key}, {"device", device}, {"loop", st}});
}

bool load_train_state(const std::string& pt_path, const json& key, const std::string& device, TrainState& st,
                      torch::nn::Module& model, torch::optim::Optimizer& optimizer, const std::string& what) {
  LoadedState ls = load_matching_state(pt_path, key, kFormat, what);
  if (ls.archive && ls.meta.value("device", "") != device) {
    spdlog::warn("{}: saved state {} was made on another device; starting over", what, meta_path_for(pt_path));
    remove_state(pt_path);
    return false;
  }
  if (!ls.archive) return false;
  try {
    at::Generator gen = st.gen;  // the caller's generator, seeded; its state is replaced
    st = ls.meta.at("loop").get<TrainState>();
    st.gen = gen;
    read_module(*ls.archive, "model", model);
    read_optimizer(*ls.archive, "optimizer", optimizer);
    read_generator(*ls.archive, "gen", st.gen);
    st.best = read_tensors(*ls.archive, "best");
    if (st.offset > 0) {
      ls.archive->read("perm", st.perm);
      ls.archive->read("loss_sum", st.loss_sum);
      ls.archive->read("correct", st.correct);
    }
  } catch (const std::exception& e) {
    state_unusable(what, pt_path, e);
  }
  spdlog::info("{}: resuming from saved state at epoch {} step {} ({})", what, st.epoch + 1, st.steps,
               meta_path_for(pt_path));
  return true;
}

}  // namespace apricot
