// The work-directory layout, in one place. Every phase reads and writes its files through this
// type, so the layout is spelled once:
//   WORKDIR/config.json                      effective configuration of the last command
//   WORKDIR/base/{model.pt, model.json, metrics.jsonl, early.pt, state.*}
//   WORKDIR/rdlms/rdlm-NN/{model.pt, model.json, metrics.jsonl, state.*}
//   WORKDIR/rdlms/{summary.json, correctness.pt, correctness.pt.json}
//   WORKDIR/adapt-ARM/{model.pt, model.json, result.json, trace.jsonl, state.*, lock}
// Paths only: nothing here touches the disk.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace apricot {

class WorkDir {
 public:
  explicit WorkDir(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  std::string config() const { return join(root_, "config.json"); }

  std::string base_dir() const { return join(root_, "base"); }
  std::string base_model() const { return join(base_dir(), "model.pt"); }
  std::string base_meta() const { return join(base_dir(), "model.json"); }  // base_model()'s metadata
  std::string base_early() const { return join(base_dir(), "early.pt"); }
  std::string base_metrics() const { return join(base_dir(), "metrics.jsonl"); }
  std::string base_state() const { return join(base_dir(), "state.pt"); }
  // The base's answers on the validation and test splits (eval.hpp's SplitAnswers), for the arms.
  std::string base_answers() const { return join(base_dir(), "answers.pt"); }

  std::string rdlms_dir() const { return join(root_, "rdlms"); }
  std::string rdlm_dir(int64_t k) const { return join(rdlms_dir(), rdlm_name(k)); }  // rdlms/rdlm-NN
  std::string rdlm_model(int64_t k) const { return join(rdlm_dir(k), "model.pt"); }
  std::string rdlm_meta(int64_t k) const { return join(rdlm_dir(k), "model.json"); }  // rdlm_model(k)'s metadata
  std::string rdlm_metrics(int64_t k) const { return join(rdlm_dir(k), "metrics.jsonl"); }
  std::string rdlm_state(int64_t k) const { return join(rdlm_dir(k), "state.pt"); }
  std::string rdlm_lock(int64_t k) const { return join(rdlm_dir(k), "lock"); }
  std::string rdlm_summary() const { return join(rdlms_dir(), "summary.json"); }
  std::string correctness_cache() const { return join(rdlms_dir(), "correctness.pt"); }

  // ARM: an arm's name (method/arms.hpp), e.g. "1" or "none-matched".
  std::string adapt_dir(const std::string& arm) const { return join(root_, adapt_name(arm)); }
  std::string adapt_model(const std::string& arm) const { return join(adapt_dir(arm), "model.pt"); }
  std::string adapt_result(const std::string& arm) const { return join(adapt_dir(arm), "result.json"); }
  std::string adapt_trace(const std::string& arm) const { return join(adapt_dir(arm), "trace.jsonl"); }
  std::string adapt_state(const std::string& arm) const { return join(adapt_dir(arm), "state.pt"); }
  // The starting candidate's training (none-matched), resumable on its own until the loop's state exists.
  std::string adapt_start_state(const std::string& arm) const { return join(adapt_dir(arm), "start-state.pt"); }
  std::string adapt_lock(const std::string& arm) const { return join(adapt_dir(arm), "lock"); }

  std::string report_dir() const { return join(root_, "report"); }

  // The names inside: "rdlm-NN" (two digits at least) and back (nothing for another name), and an
  // arm's phase, "adapt-ARM" (also its label in logs and messages).
  static std::string rdlm_name(int64_t k);
  static std::optional<int64_t> rdlm_index(const std::string& name);
  static std::string adapt_name(const std::string& arm) { return "adapt-" + arm; }

 private:
  static std::string join(const std::string& a, const std::string& b);
  std::string root_;
};

}  // namespace apricot
