// The derived seeds (seeds.hpp). The constants are arbitrary but fixed: changing one changes results.
#include "apricot/core/seeds.hpp"

namespace apricot::seeds {

uint64_t validation_split(uint64_t run) {
  // splitmix64 with a salt: decorrelates the split from other consumers of the same run seed.
  uint64_t z = run + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t rdlm(uint64_t run, int64_t k) { return run * 1000003ULL + 7919ULL * static_cast<uint64_t>(k + 1); }
uint64_t rdlm_subset(uint64_t run, int64_t k) { return rdlm(run, k) ^ 0x5bd1e995ULL; }
uint64_t model_stream(uint64_t training) { return training ^ 0x9e3779b97f4a7c15ULL; }
uint64_t recalibration_images(uint64_t run) { return run * 104729ULL + 3ULL; }
uint64_t adapt_batches(uint64_t run) { return run * 7919ULL + 17ULL; }
uint64_t retraining(uint64_t run, int64_t batch) { return run * 31ULL + static_cast<uint64_t>(batch); }
uint64_t matched_training(uint64_t run) { return run * 31ULL + 999983ULL; }
uint64_t field_holdout(uint64_t run) { return validation_split(run ^ 0xF1E1D0ULL); }
uint64_t field_select(uint64_t run) { return validation_split(run ^ 0x5E1EC7ULL); }
uint64_t field_gate(uint64_t run, int64_t gate) {
  return validation_split(run * 131ULL + 0x6A7EULL + static_cast<uint64_t>(gate));
}
uint64_t field_distill(uint64_t run, int64_t lr) { return field_finetune(run, 0, lr) ^ 0xD157111EDULL; }
uint64_t greedy_split(uint64_t run) { return validation_split(run ^ 0x5B117ULL); }
uint64_t field_finetune(uint64_t run, int64_t member, int64_t lr) {
  return validation_split(run * 8191ULL + 0xF1E1DULL + 1000ULL * static_cast<uint64_t>(member) +
                          static_cast<uint64_t>(lr));
}

}  // namespace apricot::seeds
