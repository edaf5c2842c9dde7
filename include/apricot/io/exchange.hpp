// Weights in and out of apricot (`apricot export`, `apricot import --from safetensors`): which
// tensors travel, under which names, with which metadata, and how a model is rebuilt and filled
// from them. The commands in src/cli/ only parse options and check the output paths.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apricot/io/checkpoint.hpp"
#include "apricot/io/safetensors.hpp"

namespace apricot {

// Whether a buffer travels with the weights: floating-point buffers always (BatchNorm running
// statistics); with whole_state (a TorchScript model, whose state_dict PyTorch loads strictly)
// integer ones too.
bool buffer_travels(const torch::Tensor& buffer, bool whole_state);

// A checkpoint's tensors as export writes them: every parameter and travelling buffer under its
// LibTorch name (a TorchScript model's whole state_dict, under PyTorch's names), tied tensors under
// their second names too (PyTorch's state_dict() lists both). CPU copies.
std::vector<NamedTensor> exported_tensors(const LoadedModel& m);
// The safetensors metadata export writes: format, arch, resnet_variant, input "C,H,W", classes,
// normalization (JSON), producer; model_path for a TorchScript model.
std::map<std::string, std::string> exported_metadata(const LoadedModel& m);

// The model a safetensors file's metadata names (arch, input, classes, resnet_variant). For arch
// torchscript, `module` is the TorchScript file (empty: the model_path export recorded, if it
// exists). Error(kState) naming `source` and the key for missing or malformed metadata;
// Error(kUsage) when the module is needed and not found, or given for a built-in arch.
ModelSpec spec_from_safetensors(const SafetensorsFile& file, const std::string& source, const std::string& module);
// Fills every parameter and travelling buffer of `model` from `file` by name; refuses a missing,
// extra or misshapen tensor and tied names that disagree (Error(kState) naming the tensor). Returns
// the number of tensors used.
size_t fill_from_safetensors(NetImpl& model, const ModelSpec& spec, const SafetensorsFile& file,
                             const std::string& source);
// The checkpoint metadata of an imported model (role "imported", imported_from `source`, the
// normalisation from the file's metadata when present, validated).
nlohmann::json imported_meta(const ModelSpec& spec, const SafetensorsFile& file, const std::string& source);

}  // namespace apricot
