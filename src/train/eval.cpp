// Evaluation: batched inference passes, then counts on the CPU. The early-rejecting count checks
// its bound after each chunk, so a model that cannot win stops without seeing the whole split.
#include "apricot/train/eval.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/serialize.h>
#include <torch/version.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <limits>
#include <mutex>
#include <optional>

#include "apricot/core/device.hpp"
#include "apricot/core/files.hpp"
#include "apricot/core/parallel.hpp"
#include "apricot/models/torchscript.hpp"

namespace apricot {

namespace {

// Switches cuDNN autotuning off while alive; nested pauses restore it once, at the end.
class AutotunePause {
 public:
  AutotunePause() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (depth_++ == 0) {
      saved_ = at::globalContext().benchmarkCuDNN();
      at::globalContext().setBenchmarkCuDNN(false);
    }
  }
  ~AutotunePause() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--depth_ == 0) at::globalContext().setBenchmarkCuDNN(saved_);
  }
  AutotunePause(const AutotunePause&) = delete;
  AutotunePause& operator=(const AutotunePause&) = delete;

 private:
  static inline std::mutex mutex_;
  static inline int depth_ = 0;
  static inline bool saved_ = false;
};

// Convolution weights in channels-last (NHWC) order while alive, on the CPU, for a built-in model's
// 4-D tensors that are plain NCHW now (a model training in channels-last is left as it is); back to
// NCHW at the end, values untouched. Inference runs oneDNN's NHWC kernels then: `small` at 1x28x28, batch 1000,
// 2 threads: 18.1-20.4k images/s against 14.1-15.8k.
class ChannelsLastScope {
 public:
  explicit ChannelsLastScope(torch::nn::Module& model) {
    torch::NoGradGuard no_grad;
    auto take = [&](torch::Tensor t) {
      if (t.dim() != 4 || !t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast)) return;
      t.set_data(t.data().contiguous(at::MemoryFormat::ChannelsLast));
      moved_.push_back(t);
    };
    for (auto& t : model.parameters()) take(t);
    for (auto& t : model.buffers()) take(t);
  }
  ~ChannelsLastScope() {
    torch::NoGradGuard no_grad;
    for (auto& t : moved_) t.set_data(t.data().contiguous());
  }
  ChannelsLastScope(const ChannelsLastScope&) = delete;
  ChannelsLastScope& operator=(const ChannelsLastScope&) = delete;

 private:
  std::vector<torch::Tensor> moved_;
};

// Eval mode, no gradients and (on a GPU) no cuDNN autotuning while alive; the training flag is
// restored at the end.
class InferenceScope {
 public:
  InferenceScope(NetImpl& model, const torch::Device& device) : model_(model), was_training_(model.is_training()) {
    model_.eval();
    // Inference batches come in many sizes (a batch's failing inputs, the last chunk of a split):
    // cuDNN autotuning would search algorithms again for each new size, costing more than it saves.
    // Not on a worker of concurrent trainings: the flag is process-wide, so a pause would switch
    // autotuning off for the others' training steps too (and cuDNN keeps what it picked then).
    if (device.is_cuda() && !in_parallel_worker()) pause_.emplace();
    // Built-in models only: their forward passes are written for either layout, while a user's
    // TorchScript forward may .view() a feature map, which an NHWC activation refuses.
    if (device.is_cpu() && !is_torchscript(model_)) nhwc_.emplace(model_);
  }
  ~InferenceScope() {
    if (was_training_) model_.train();
  }
  InferenceScope(const InferenceScope&) = delete;
  InferenceScope& operator=(const InferenceScope&) = delete;

 private:
  NetImpl& model_;
  bool was_training_;
  torch::NoGradGuard no_grad_;
  std::optional<AutotunePause> pause_;
  std::optional<ChannelsLastScope> nhwc_;
};

// Predicted classes of the uint8 images x (n, C, H, W), on the device.
torch::Tensor predict_on_device(NetImpl& model, const torch::Tensor& x, const Normalizer& norm,
                                const torch::Device& device) {
  return model.forward(norm.apply(x.to(device, /*non_blocking=*/true))).argmax(1);  // (n)
}

// The normalised images of split rows idx, on the device.
torch::Tensor data_norm_batch(const Split& split, const torch::Tensor& idx, const Normalizer& norm,
                              const torch::Device& device) {
  return norm.apply(split.x.index_select(0, idx).to(device, /*non_blocking=*/true));
}

}  // namespace

torch::Tensor predict(NetImpl& model, const torch::Tensor& x, const Normalizer& norm, const torch::Device& device,
                      int64_t batch_size) {
  InferenceScope scope(model, device);
  const int64_t n = x.size(0);
  if (n == 0) return torch::empty({0}, torch::kInt64);
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; i += batch_size)
    parts.push_back(predict_on_device(model, x.slice(0, i, std::min(n, i + batch_size)), norm, device));
  return torch::cat(parts).to(torch::kCPU);
}

double accuracy(NetImpl& model, const Split& split, const Normalizer& norm, const torch::Device& device,
                int64_t batch_size) {
  if (split.size() == 0) return 0.0;
  auto pred = predict(model, split.x, norm, device, batch_size);
  return pred.eq(split.y).sum().item<double>() / static_cast<double>(split.size());
}

CorrectCount count_correct(NetImpl& model, const Split& split, const std::vector<torch::Tensor>& groups,
                           int64_t to_beat, const Normalizer& norm, const torch::Device& device, int64_t batch_size) {
  InferenceScope scope(model, device);
  const int64_t n = split.size();
  CorrectCount out;
  std::vector<torch::Tensor> rows, right, margin, pred;
  for (const auto& g : groups) {
    for (int64_t i = 0; i < g.size(0); i += batch_size) {
      auto idx = g.slice(0, i, std::min(g.size(0), i + batch_size));  // (b)
      auto logits = model.forward(data_norm_batch(split, idx, norm, device)).to(torch::kCPU);  // (b, classes)
      auto y = split.y.index_select(0, idx);
      auto p = logits.argmax(1);  // (b), exactly as predict() decides
      auto ok = p.eq(y);
      auto truth = logits.gather(1, y.unsqueeze(1)).squeeze(1);
      auto rival = logits.scatter(1, y.unsqueeze(1), -std::numeric_limits<float>::infinity()).amax(1);
      out.correct += ok.sum().item<int64_t>();
      out.evaluated += idx.size(0);
      rows.push_back(idx);
      right.push_back(ok);
      margin.push_back(truth - rival);
      pred.push_back(p);
      if (to_beat >= 0 && out.correct + (n - out.evaluated) <= to_beat) return out;  // cannot win any more
    }
  }
  TORCH_CHECK(out.evaluated == n, "count_correct: the groups hold ", out.evaluated, " rows, the split ", n);
  out.complete = true;
  out.right = torch::zeros({n}, torch::kBool);
  out.margin = torch::zeros({n}, torch::kFloat32);
  out.pred = torch::zeros({n}, torch::kInt64);
  if (n > 0) {
    auto all = torch::cat(rows);
    out.right.index_put_({all}, torch::cat(right));
    out.margin.index_put_({all}, torch::cat(margin).to(torch::kFloat32));
    out.pred.index_put_({all}, torch::cat(pred));
  }
  return out;
}

CorrectCount count_all(NetImpl& model, const Split& split, const Normalizer& norm, const torch::Device& device,
                       int64_t batch_size) {
  return count_correct(model, split, {torch::arange(split.size(), torch::kInt64)}, -1, norm, device, batch_size);
}

double accuracy_of(const CorrectCount& c) {
  return c.evaluated > 0 ? static_cast<double>(c.correct) / static_cast<double>(c.evaluated) : 0.0;
}

nlohmann::json answers_key(const std::string& weights_crc32, const std::string& fingerprint,
                           const torch::Device& device, int64_t batch_size, const std::string& module_path) {
  nlohmann::json key = {{"weights_crc32", weights_crc32}, {"fingerprint", fingerprint}, {"device", device.str()},
                        {"threads", at::get_num_threads()}, {"batch_size", batch_size},
                        // The kernels: the same weights give other bits with other BLAS or ATen kernels.
                        {"blas", blas_threads().library + " " + blas_core()},
                        {"aten_cpu_capability", std::getenv("ATEN_CPU_CAPABILITY") ? std::getenv("ATEN_CPU_CAPABILITY") : ""},
                        {"versions", std::string(APRICOT_VERSION) + " / " + TORCH_VERSION}};
  if (!module_path.empty()) {  // a TorchScript model: its code is the file's, not in the checkpoint
    std::error_code ec;
    const auto size = std::filesystem::file_size(module_path, ec);
    const auto time = std::filesystem::last_write_time(module_path, ec);
    key["module"] = {{"path", module_path}, {"bytes", ec ? -1 : static_cast<int64_t>(size)},
                     {"mtime", ec ? 0 : static_cast<int64_t>(time.time_since_epoch().count())}};
  }
  return key;
}

void save_answers(const std::string& path, const SplitAnswers& a, const nlohmann::json& key) {
  // The key goes first and comes back last, so a kill in between leaves no key (nothing is read),
  // never new tensors under an old key. A failure costs only the saving: the arms evaluate instead.
  try {
    std::error_code ec;
    std::filesystem::remove(path + ".json", ec);
    std::vector<torch::Tensor> t = {a.val.pred, a.val.margin, a.test.pred, a.test.margin};
    std::ostringstream os;
    torch::save(t, os);
    write_file_atomic(path, os.str());
    write_json_atomic(path + ".json", key);
  } catch (const std::exception& e) {
    spdlog::warn("could not keep the base's answers in {} ({}); each arm evaluates the base instead", path,
                 e.what());
  }
}

std::optional<SplitAnswers> load_answers(const std::string& path, const nlohmann::json& key, const Split& val,
                                         const Split& test) {
  try {
    if (!std::filesystem::exists(path) || !std::filesystem::exists(path + ".json")) return std::nullopt;
    if (nlohmann::json::parse(read_file(path + ".json")) != key) return std::nullopt;
    std::vector<torch::Tensor> t;
    std::istringstream is(read_file(path));
    torch::load(t, is);
    auto complete = [](const Split& s, const torch::Tensor& pred, const torch::Tensor& margin) {
      const int64_t n = s.size();
      if (pred.sizes() != c10::IntArrayRef{n} || margin.sizes() != c10::IntArrayRef{n} ||
          pred.scalar_type() != torch::kInt64 || margin.scalar_type() != torch::kFloat32)
        return std::optional<CorrectCount>();
      CorrectCount c;
      c.pred = pred, c.margin = margin, c.right = pred.eq(s.y);
      c.correct = c.right.sum().item<int64_t>();
      c.evaluated = n, c.complete = true;
      return std::optional<CorrectCount>(c);
    };
    if (t.size() != 4) return std::nullopt;
    auto v = complete(val, t[0], t[1]), w = complete(test, t[2], t[3]);
    if (!v || !w) return std::nullopt;
    return SplitAnswers{*v, *w};
  } catch (const std::exception&) {  // unreadable: evaluate instead
    return std::nullopt;
  }
}

std::vector<torch::Tensor> reference_order(const torch::Tensor& right, const torch::Tensor& margin) {
  auto wrong_rows = right.logical_not().nonzero().flatten();
  auto right_rows = right.nonzero().flatten();
  auto by_margin = std::get<1>(margin.index_select(0, right_rows).sort(/*stable=*/true, 0, /*descending=*/false));
  return {wrong_rows, right_rows.index_select(0, by_margin)};
}

nlohmann::json EvalResult::to_json() const {
  return {{"split", split}, {"n", n}, {"accuracy", accuracy}, {"per_class", per_class}, {"confusion", confusion}};
}

std::vector<int64_t> int64_values(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kCPU, torch::kInt64).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

nlohmann::json answers_json(const torch::Tensor& y, const torch::Tensor& before, const torch::Tensor& after) {
  return {{"label", int64_values(y)}, {"base", int64_values(before)}, {"after", int64_values(after)}};
}

Changes compare_predictions(const torch::Tensor& y, const torch::Tensor& before, const torch::Tensor& after,
                            int64_t classes) {
  TORCH_CHECK(y.sizes() == before.sizes() && y.sizes() == after.sizes(), "compare_predictions: sizes differ");
  return compare_rightness(y, before.eq(y), after.eq(y), classes);
}

Changes compare_rightness(const torch::Tensor& y, const torch::Tensor& rb, const torch::Tensor& ra, int64_t classes) {
  TORCH_CHECK(y.sizes() == rb.sizes() && y.sizes() == ra.sizes(), "compare_rightness: sizes differ");
  Changes c;
  c.n = y.size(0);
  c.right_before = rb.sum().item<int64_t>();
  c.right_after = ra.sum().item<int64_t>();
  c.repaired = (ra & rb.logical_not()).sum().item<int64_t>();
  c.broken = (rb & ra.logical_not()).sum().item<int64_t>();
  for (int64_t k = 0; k < classes; ++k) {
    const auto in = y.eq(k);
    const double total = in.sum().item<double>();
    c.class_before.push_back(total > 0 ? (rb & in).sum().item<double>() / total : 0.0);
    c.class_after.push_back(total > 0 ? (ra & in).sum().item<double>() / total : 0.0);
  }
  return c;
}

nlohmann::json Changes::to_json() const {
  const double dn = n > 0 ? static_cast<double>(n) : 1.0;
  return {{"n", n},
          {"accuracy_before", right_before / dn},
          {"accuracy_after", right_after / dn},
          {"repaired", {{"count", repaired}, {"rate", repaired_rate()}}},
          {"broken", {{"count", broken}, {"rate", broken_rate()}}},
          {"per_class", {{"before", class_before}, {"after", class_after}}}};
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
