// Phase 1 of Apricot: the reduced models (rDLMs). Subset layouts, training of any selection of
// them into WORKDIR/rdlms/rdlm-NN/, their summary (paper Table IV), loading them back, and the
// memoised rDLM-correctness table on training inputs used by the adaptation.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/models/model.hpp"

namespace apricot {

// Training-row indices (int64) of rDLM k under cfg.layout, deterministic in seed:
//   sliding:  (k*stride + j) mod N for j < size   (the paper's windows, wrapping around)
//   random:   `size` rows of a seeded permutation for rDLM k
//   balanced: size/classes rows of each class (seeded), the remainder spread over the first classes
// Throws kUsage when size exceeds the training split (or a class is too small for balanced).
torch::Tensor rdlm_subset(const RdlmConfig& cfg, const Split& train, int64_t classes, uint64_t seed, int64_t k);
uint64_t rdlm_seed(uint64_t seed, int64_t k);
// Training images all rDLMs process together: count * size * epochs (rdlm.finetune.epochs for init
// base). The budget-matched control spends as many on the base.
int64_t rdlm_images(const Config& cfg);
// The fine-tuning recipe of rdlm.init base (train's recipe with rdlm.finetune's optimizer, constant
// learning rate and epochs); the budget-matched control trains the base with it too.
TrainConfig finetune_recipe(const Config& cfg);

// "3,5-7" -> {3,5,6,7}; throws kUsage for malformed lists or indices >= count.
std::vector<int64_t> parse_index_list(const std::string& text, int64_t count);

struct RdlmTrainRequest {
  std::vector<int64_t> only;  // empty = all
  int64_t shard_index = 0;    // train only k with k % shard_count == shard_index
  int64_t shard_count = 1;
  bool force = false;         // retrain rDLMs that exist
  bool progress = true;
};

// Trains the selected rDLMs that are missing (or all with force); writes the summary when all
// cfg.rdlm.count rDLMs exist. Returns {"trained": [...], "skipped": [...], "summary": {...}|null}.
nlohmann::json train_rdlms(const Config& cfg, const Dataset& data, const std::string& workdir,
                           const torch::Device& device, const RdlmTrainRequest& req);

// WORKDIR/rdlms/summary.json contents, computed from the checkpoints (and the base model if present).
nlohmann::json rdlm_summary(const Config& cfg, const Dataset& data, const std::string& workdir,
                            const torch::Device& device);

// Loads all cfg.rdlm.count rDLMs, checking that each fits `spec` and the dataset fingerprint.
// Throws kState naming the missing ones and the command that trains them.
std::vector<Net> load_rdlms(const Config& cfg, const ModelSpec& spec, const std::string& fingerprint,
                            const std::string& workdir, const torch::Device& device);

// rdlm.init base: refuses (kState, with the command that fixes it) rDLMs fine-tuned from another base
// than WORKDIR/base/model.pt.
void require_rdlms_of_base(const Config& cfg, const std::string& workdir);

// The CRC-32 of each rDLM's weights (from its metadata), identifying the exact set of rDLMs.
std::vector<std::string> rdlm_checksums(const std::string& workdir, int64_t count);

// Which rDLMs classify which training inputs correctly, computed on demand and memoised: the rDLMs
// never change, so each (input, rDLM) entry is predicted at most once per work directory.
class CorrectnessCache {
 public:
  // The cache file is reused only when the data fingerprint and every rDLM checksum match.
  CorrectnessCache(std::vector<Net> rdlms, const Split& train, const Normalizer& norm, torch::Device device,
                   std::string path, const std::string& fingerprint, std::vector<std::string> rdlm_ids);
  // A table known in full ((N, n) int8 or bool: 1 / true right, 0 / false wrong), with no rDLMs to
  // ask and no file: what a test hands the adaptation loop instead of trained rDLMs.
  CorrectnessCache(torch::Tensor known, const Split& train);
  // (F, n) bool on the CPU for training rows idx (int64, F), rows in idx order.
  torch::Tensor rows(const torch::Tensor& idx);
  void save() const;                      // atomic; no-op when nothing new was computed
  int64_t predicted() const { return predicted_; }  // entries computed by this process
  int64_t known() const;                  // entries known in total

 private:
  std::vector<Net> rdlms_;
  const Split& train_;
  const Normalizer& norm_;
  torch::Device device_;
  std::string path_;
  std::string fingerprint_;
  std::vector<std::string> rdlm_ids_;
  torch::Tensor table_;  // (N, n) int8: -1 unknown, 0 wrong, 1 right
  int64_t predicted_ = 0;
  mutable bool dirty_ = false;
};

void validate(const RdlmConfig& r);  // the range checks of rdlm.*; kUsage naming the key

}  // namespace apricot
