// Evaluation of a model on one split: accuracy, per-class accuracy and the confusion matrix.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/data.hpp"
#include "apricot/models.hpp"

namespace apricot {

struct EvalResult {
  std::string split;
  int64_t n = 0;
  double accuracy = 0;
  std::vector<double> per_class;                // accuracy per true class (NaN-free: 0 for absent classes)
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  nlohmann::json to_json() const;               // keys split, n, accuracy, per_class, confusion
};

EvalResult evaluate(NetImpl& model, const Split& split, const std::string& name, int64_t classes,
                    const Normalizer& norm, const torch::Device& device, int64_t batch_size);

}  // namespace apricot
