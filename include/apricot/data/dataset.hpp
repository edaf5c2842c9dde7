// Datasets decoded once into one uint8 tensor per split (formats.hpp); normalisation
// (normalize.hpp) and augmentation (augment.hpp) are vectorised per batch.
// Subsets are index tensors into the train split, never copies.
#pragma once
#include <cstdint>
#include <string>

#include "apricot/data/normalize.hpp"
#include "apricot/data/split.hpp"

namespace apricot {

struct DataConfig;

struct Dataset {
  Split train;  // what models train on (validation rows already removed when taken from train)
  Split val;    // selection split; may come from train or from the test split
  Split test;   // reporting only
  int64_t channels = 0, height = 0, width = 0, classes = 0;
  Normalizer norm;          // fitted on `train`
  std::string fingerprint;  // stable hash of format, sizes and the pixel/label bytes of all splits
  std::string name;         // e.g. "cifar10", "idx", "synthetic"
};

// Full pipeline from config: load, apply train/test limits, take the validation split, fit the
// normaliser, fingerprint. Deterministic in (config, seed).
Dataset load_dataset(const DataConfig& cfg, uint64_t seed);

void validate(const DataConfig& d);  // the range checks of data.*; kUsage naming the key

}  // namespace apricot
