// Checkpoints: model.pt (LibTorch archive of every parameter and buffer by name) beside model.json
// (metadata: arch, input shape, classes, normalisation, dataset fingerprint, seed, config, metrics,
// versions, and the CRC-32 and size of model.pt). Both written atomically. Loading verifies the
// checksum and the metadata before any weight is read.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apricot/core/config.hpp"

#include "apricot/data/dataset.hpp"
#include "apricot/models/model.hpp"

namespace apricot {

struct LoadedModel {
  Net model;
  ModelSpec spec;
  Normalizer norm;
  nlohmann::json meta;
};

// The metadata path for a checkpoint path: "dir/model.pt" -> "dir/model.json".
std::string meta_path_for(const std::string& pt_path);

// The model's part of every checkpoint's metadata: format tag and version, arch, resnet_variant,
// model_path (TorchScript, absolute), input and classes; spec_from_meta reads it back.
nlohmann::json model_meta(const ModelSpec& spec);
// Fills the fields every checkpoint has (arch, input, classes, normalisation, dataset, versions);
// callers add seed, config, metrics and the like before saving.
nlohmann::json checkpoint_meta(const ModelSpec& spec, const Dataset& data);
// The metadata of a checkpoint the pipeline writes: the fields above plus its role ("base",
// "base-early", "rdlm", "adapt"), the seed it was made with and the effective configuration.
nlohmann::json checkpoint_meta(const ModelSpec& spec, const Dataset& data, const std::string& role, uint64_t seed,
                               const Config& cfg);
ModelSpec spec_from_meta(const nlohmann::json& meta, const std::string& source);

// Writes pt_path and its .json. `meta` gets the "weights" entry (file, bytes, crc32) added.
void save_checkpoint(const std::string& pt_path, const torch::nn::Module& model, nlohmann::json meta);
// Throws Error(kState) for a file that is not an apricot checkpoint, a checksum mismatch or weights
// that do not fit the arch; Error(kData) when the file is missing or unreadable.
LoadedModel load_checkpoint(const std::string& pt_path);
// One named tensor (parameter or buffer) of two models compared value by value.
struct TensorDiff {
  std::string name;
  std::vector<int64_t> shape;
  std::string only_in;        // "a" or "b" when the other model has no tensor of this name
  std::string note;           // a shape or dtype mismatch, in words ("(3,4) float vs (4,3) float")
  int64_t numel = 0;
  int64_t differing = 0;      // values that are not bitwise equal; -1 for a shape or dtype mismatch
  double max_abs_diff = 0;    // the largest |a - b| (NaN where one side is NaN and the other not)
  bool equal() const { return only_in.empty() && differing == 0; }
};
// Every parameter and buffer of a, in its order, then those only b has. Bitwise: -0.0 != 0.0 and a
// NaN equals a NaN of the same bits.
std::vector<TensorDiff> compare_tensors(const torch::nn::Module& a, const torch::nn::Module& b);

// Error(kState) unless the checkpoint's arch, input shape and classes equal `expected` (and, when
// `fingerprint` is not empty, the dataset fingerprint equals it).
void check_compatible(const LoadedModel& m, const ModelSpec& expected, const std::string& fingerprint,
                      const std::string& what);

bool checkpoint_exists(const std::string& pt_path);  // both files present

}  // namespace apricot
