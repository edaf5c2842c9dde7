// Evaluation: one batched inference pass, then counts on the CPU.
#include "apricot/eval.hpp"

#include "apricot/train.hpp"

namespace apricot {

nlohmann::json EvalResult::to_json() const {
  return {{"split", split}, {"n", n}, {"accuracy", accuracy}, {"per_class", per_class}, {"confusion", confusion}};
}

EvalResult evaluate(NetImpl& model, const Split& split, const std::string& name, int64_t classes,
                    const Normalizer& norm, const torch::Device& device, int64_t batch_size) {
  EvalResult r;
  r.split = name;
  r.n = split.size();
  r.confusion.assign(classes, std::vector<int64_t>(classes, 0));
  r.per_class.assign(classes, 0.0);
  if (r.n == 0) return r;
  auto pred = predict(model, split.x, norm, device, batch_size);
  auto flat = (split.y * classes + pred).bincount({}, classes * classes);  // (classes*classes)
  auto acc = flat.accessor<int64_t, 1>();
  int64_t correct = 0;
  for (int64_t t = 0; t < classes; ++t) {
    int64_t row = 0;
    for (int64_t p = 0; p < classes; ++p) {
      r.confusion[t][p] = acc[t * classes + p];
      row += acc[t * classes + p];
    }
    correct += r.confusion[t][t];
    r.per_class[t] = row ? static_cast<double>(r.confusion[t][t]) / row : 0.0;
  }
  r.accuracy = static_cast<double>(correct) / r.n;
  return r;
}

}  // namespace apricot
