// Evaluation of a model on one split: predictions, accuracy, per-input correctness, per-class
// accuracy and the confusion matrix, and the exact early-rejecting count the adaptation loop uses
// to compare a candidate with the best model. Inference only: eval mode, no gradients.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "apricot/data/dataset.hpp"
#include "apricot/models/model.hpp"

namespace apricot {

// Predicted classes (N) int64 on the CPU for uint8 images x (N, C, H, W), in eval mode, no grad.
torch::Tensor predict(NetImpl& model, const torch::Tensor& x, const Normalizer& norm, const torch::Device& device,
                      int64_t batch_size);
// Fraction of `split` classified correctly.
double accuracy(NetImpl& model, const Split& split, const Normalizer& norm, const torch::Device& device,
                int64_t batch_size);

// How many inputs of a split a model gets right, counted in a chosen order and stopped as soon as
// the count can no longer exceed `to_beat` (correct so far + inputs left <= to_beat). Whether the
// model beats `to_beat` is therefore decided exactly; only a loser's count stays unknown.
struct CorrectCount {
  int64_t correct = 0;    // among the inputs evaluated
  int64_t evaluated = 0;  // inputs evaluated (the split's size when complete)
  bool complete = false;  // every input was evaluated: `correct` is the model's count
  torch::Tensor right;    // (N) bool on the CPU, by split row; only when complete
  torch::Tensor margin;   // (N) float32: true-class logit minus the largest other one; only when complete
  torch::Tensor pred;     // (N) int64: the predicted classes, as predict() gives them; only when complete
  bool beats(int64_t to_beat) const { return complete && correct > to_beat; }
};
// `groups`: int64 row tensors that together hold every row of `split` once, evaluated group after
// group, each in chunks of batch_size. Any order gives the same verdict; a good one stops losers
// sooner: the rows the reference model gets wrong first (a candidate that repairs none of them stops
// there), then its right answers by rising margin (where a candidate breaks them first; see
// reference_order). to_beat < 0: count all.
CorrectCount count_correct(NetImpl& model, const Split& split, const std::vector<torch::Tensor>& groups,
                           int64_t to_beat, const Normalizer& norm, const torch::Device& device, int64_t batch_size);

// That order for a reference model's `right` answers and their `margin`s (CorrectCount's).
std::vector<torch::Tensor> reference_order(const torch::Tensor& right, const torch::Tensor& margin);

// A model's answers on the whole validation and test splits (complete CorrectCounts: predictions,
// rightness, margins), kept beside the base model (WorkDir::base_answers) by train-base, which
// evaluates the base on both splits anyway, so that no adaptation arm evaluates the base again.
// The key names what the answers depend on to the last bit: the weights (their crc32), the data,
// the device, the CPU threads and the inference batch size; answers under another key are not used.
struct SplitAnswers {
  CorrectCount val, test;
};
// module_path: a TorchScript model's file (its size and time join the key), "" for a built-in model.
nlohmann::json answers_key(const std::string& weights_crc32, const std::string& fingerprint,
                           const torch::Device& device, int64_t batch_size, const std::string& module_path);
// Writes path (tensors) and path + ".json" (the key); a failure is a warning, not an error.
void save_answers(const std::string& path, const SplitAnswers& answers, const nlohmann::json& key);
// The answers at path when its key equals `key` and they fit the splits; nullopt otherwise (absent,
// another key, unreadable: the caller evaluates instead).
std::optional<SplitAnswers> load_answers(const std::string& path, const nlohmann::json& key, const Split& val,
                                         const Split& test);
// The whole split, counted: count_correct over every row in order, no early stop.
CorrectCount count_all(NetImpl& model, const Split& split, const Normalizer& norm, const torch::Device& device,
                       int64_t batch_size);
// correct / n (0 for an empty split), as accuracy() gives it.
double accuracy_of(const CorrectCount& c);

struct EvalResult {
  std::string split;
  int64_t n = 0;
  double accuracy = 0;
  std::vector<double> per_class;                // accuracy per true class (NaN-free: 0 for absent classes)
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  nlohmann::json to_json() const;               // keys split, n, accuracy, per_class, confusion
};

// What one model fixed and broke against another (the reference, usually the base) on one split,
// from their predictions: repaired = wrong before and right after (rate among the reference's
// failures), broken = right before and wrong after (rate among its right answers), and accuracy per
// true class before and after. Rates are 0 when their denominator is.
struct Changes {
  int64_t n = 0;
  int64_t right_before = 0, right_after = 0;
  int64_t repaired = 0, broken = 0;
  std::vector<double> class_before, class_after;
  double repaired_rate() const { return n > right_before ? double(repaired) / double(n - right_before) : 0.0; }
  double broken_rate() const { return right_before > 0 ? double(broken) / double(right_before) : 0.0; }
  // {n, accuracy_before, accuracy_after, repaired {count, rate}, broken {count, rate},
  //  per_class {before, after}}
  nlohmann::json to_json() const;
};
// y, before, after: (N) int64 labels and predicted classes, on the CPU.
Changes compare_predictions(const torch::Tensor& y, const torch::Tensor& before, const torch::Tensor& after,
                            int64_t classes);
// The same from which inputs each model gets right: right_before, right_after (N) bool on the CPU.
Changes compare_rightness(const torch::Tensor& y, const torch::Tensor& right_before, const torch::Tensor& right_after,
                          int64_t classes);

// A tensor's values as int64 (predictions, labels), for JSON.
std::vector<int64_t> int64_values(const torch::Tensor& t);
// Per image, for bootstraps over images (scripts/*-analysis.py): {"label", "base", "after"}, the true
// classes and both models' predicted classes, (N) tensors on the CPU.
nlohmann::json answers_json(const torch::Tensor& y, const torch::Tensor& before, const torch::Tensor& after);

EvalResult evaluate(NetImpl& model, const Split& split, const std::string& name, int64_t classes,
                    const Normalizer& norm, const torch::Device& device, int64_t batch_size);

}  // namespace apricot
