// The adaptation loop's resumable state (adapt.hpp): its scalars as JSON, and its state files.
#include "apricot/method/adapt.hpp"

#include "apricot/io/checkpoint.hpp"  // meta_path_for
#include "apricot/io/resume.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

namespace apricot {

using nlohmann::json;

namespace {
constexpr const char* kFormat = "apricot-adapt-state-2";
}  // namespace

void to_json(json& j, const AdaptTimes& t) {
  j = {{"adjustment", t.adjustment}, {"prediction", t.prediction}, {"evaluation", t.evaluation},
       {"retraining", t.retraining}};
}

void from_json(const json& j, AdaptTimes& t) {
  j.at("adjustment").get_to(t.adjustment), j.at("prediction").get_to(t.prediction);
  j.at("evaluation").get_to(t.evaluation), j.at("retraining").get_to(t.retraining);
}

void to_json(json& j, const AdaptState& s) {
  j = {{"pass", s.pass}, {"next_batch", s.next_batch}, {"batches", s.batches},
       {"failing_inputs", s.failing_inputs}, {"adjusted_inputs", s.adjusted_inputs},
       {"accepted_adjustments", s.accepted_adjustments}, {"accepted_retrains", s.accepted_retrains},
       {"retrains", s.retrains}, {"rejected_nonfinite", s.rejected_nonfinite}, {"rejected_breaks", s.rejected_breaks},
       {"since_improvement", s.since_improvement}, {"best_correct", s.best_correct}, {"best_acc", s.best_acc},
       {"base_val", s.base_val}, {"base_test", s.base_test}, {"target_before", s.target_before},
       {"start", s.start}, {"images_matching", s.images_matching},
       {"time", s.time}, {"elapsed", s.elapsed}, {"trace_bytes", s.trace_bytes}};
}

void from_json(const json& j, AdaptState& s) {
  j.at("pass").get_to(s.pass), j.at("next_batch").get_to(s.next_batch), j.at("batches").get_to(s.batches);
  j.at("failing_inputs").get_to(s.failing_inputs), j.at("adjusted_inputs").get_to(s.adjusted_inputs);
  j.at("accepted_adjustments").get_to(s.accepted_adjustments);
  j.at("accepted_retrains").get_to(s.accepted_retrains), j.at("retrains").get_to(s.retrains);
  j.at("rejected_nonfinite").get_to(s.rejected_nonfinite), j.at("since_improvement").get_to(s.since_improvement);
  s.rejected_breaks = j.value("rejected_breaks", int64_t{0});
  j.at("best_correct").get_to(s.best_correct), j.at("best_acc").get_to(s.best_acc);
  j.at("base_val").get_to(s.base_val), j.at("base_test").get_to(s.base_test);
  s.target_before = j.at("target_before");
  s.start = j.value("start", json());
  s.images_matching = j.value("images_matching", int64_t{0});
  j.at("time").get_to(s.time), j.at("elapsed").get_to(s.elapsed), j.at("trace_bytes").get_to(s.trace_bytes);
}

void save_adapt_state(const std::string& pt_path, const json& key, const AdaptState& st,
                      const torch::nn::Module& model) {
  torch::serialize::OutputArchive a;
  write_module(a, "model", model);
  at::Generator gen = st.gen;  // shares the generator; only its state is read
  write_generator(a, "gen", gen);
  // Before the first batch (a state saved right after the starting candidate) there is no order yet.
  a.write("perm", st.perm.defined() ? st.perm : torch::empty({0}, torch::kInt64));
  a.write("best_right", st.best_right);
  a.write("best_margin", st.best_margin);
  save_state(pt_path, a, {{"format", kFormat}, {"key", key}, {"loop", st}});
}

bool load_adapt_state(const std::string& pt_path, const json& key, AdaptState& st, torch::nn::Module& model,
                      const std::string& what) {
  LoadedState ls = load_matching_state(pt_path, key, kFormat, what);
  if (!ls.archive) return false;
  try {
    st = ls.meta.at("loop").get<AdaptState>();
    read_module(*ls.archive, "model", model);
    st.gen = at::detail::createCPUGenerator();
    read_generator(*ls.archive, "gen", st.gen);
    ls.archive->read("perm", st.perm);
    ls.archive->read("best_right", st.best_right);
    ls.archive->read("best_margin", st.best_margin);
  } catch (const std::exception& e) {
    state_unusable(what, pt_path, e);
  }
  spdlog::info("{}: resuming from saved state after batch {} ({})", what, st.batches, meta_path_for(pt_path));
  return true;
}


}  // namespace apricot
